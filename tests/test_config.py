"""Config schema, `file:line key:` errors, atomic write-back and hot reload."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomlkit
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pixcam.config import (
    KEYS,
    Config,
    ConfigWatcher,
    config_path,
    key_lines,
    load_config,
    parse_config,
    parse_value,
    set_value,
    set_values,
)
from pixcam.errors import PixcamError
from pixcam.parts import PART_NAMES

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TOML = REPO / "config" / "default.toml"

# One line per error: `file:line key: what` (values/keys) or `file:line: what` (syntax).
_KEY = r'(?:[\w-]+|"(?:[^"\\]|\\.)*")'
ERROR_LINE = re.compile(rf"^(?P<file>.+?):(?P<line>\d+)(?::| (?P<key>{_KEY}(?:\.{_KEY})*):) \S")


def _error_lines(exc: pytest.ExceptionInfo[PixcamError]) -> list[str]:
    lines = str(exc.value).split("\n")
    for line in lines:
        assert ERROR_LINE.match(line), line
    return lines


# ------------------------------------------------------------------------ defaults
def test_default_toml_parses_to_exactly_the_defaults() -> None:
    assert load_config(DEFAULT_TOML) == Config()


def test_default_toml_documents_every_key() -> None:
    doc = tomlkit.parse(DEFAULT_TOML.read_text()).unwrap()
    in_file = [f"{section}.{key}" for section, table in doc.items() for key in table]
    assert in_file == list(KEYS)


def test_missing_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path / "nope.toml") == Config()


def test_config_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_path() == tmp_path / "pixcam" / "config.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/is/ignored")
    assert config_path() == Path.home() / ".config" / "pixcam" / "config.toml"


def test_get_and_flat() -> None:
    cfg = Config()
    assert cfg.get("effects.background") == "blur"
    assert list(cfg.flat()) == list(KEYS)
    with pytest.raises(PixcamError, match="effects.nope: unknown key"):
        cfg.get("effects.nope")


def test_with_values() -> None:
    cfg = Config().with_values({"effects.blur_strength": 70, "parts.privacy_parts": ["hands"]})
    assert cfg.effects.blur_strength == 70 and cfg.parts.privacy_parts == ("hands",)
    assert cfg.camera == Config().camera
    with pytest.raises(PixcamError) as exc:
        Config().with_values({"effects.blur_strength": 500, "camera.fps": "x"})
    assert str(exc.value).split("\n") == [
        'camera.fps: "x" is not an integer; allowed: an integer 1..240',
        "effects.blur_strength: 500 is out of range; allowed: an integer 1..100",
    ]
    with pytest.raises(PixcamError, match="^effects.blurr: unknown key"):
        Config().with_values({"effects.blurr": 1})


def test_partial_file_keeps_other_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[effects]\nbackground = "color"\ncolor = "#ABCDEF"\n')
    cfg = load_config(path)
    assert cfg.effects.background == "color"
    assert cfg.effects.color == "#ABCDEF"
    assert cfg.camera == Config().camera


def test_valid_values_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "[camera]\ndevice = 2\n[model]\nthreshold = 0.25\ninternal_resolution = 257\n"
        '[parts]\nprivacy_parts = ["hands", "torso_front"]\n[output]\ndevice = "/dev/video10"\n'
    )
    cfg = load_config(path)
    assert cfg.camera.device == 2
    assert cfg.model.threshold == 0.25
    assert cfg.parts.privacy_parts == ("hands", "torso_front")


def test_every_part_name_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    names = ", ".join(f'"{n}"' for n in PART_NAMES)
    path.write_text(f'[parts]\nprivacy_parts = [{names}, "face", "hands"]\n')
    assert load_config(path).parts.privacy_parts[:24] == PART_NAMES


# -------------------------------------------------------------------------- errors
BAD_VALUES = [
    # (section, key, TOML value, what the message must say)
    ("effects", "background", '"blurr"', r'"blurr" is not one of the choices; allowed: "blur"'),
    ("effects", "color", '"green"', r'"green" is not valid; allowed: .*#rrggbb'),
    ("effects", "color", '"#12345g"', r"allowed: .*#rrggbb"),
    ("effects", "blur_strength", "0", r"0 is out of range; allowed: an integer 1\.\.100"),
    ("effects", "blur_strength", "40.0", r"40\.0 is not an integer"),
    ("effects", "enabled", '"yes"', r'"yes" is not true or false'),
    ("effects", "mirror", "1", r"1 is not true or false"),
    ("effects", "image", "3", r"3 is not a string"),
    ("refine", "smoothing", "0.96", r"0\.96 is out of range; allowed: a number 0\.\.0\.95"),
    ("refine", "smoothing", "-0.1", r"out of range"),
    ("model", "threshold", "1.5", r"1\.5 is out of range; allowed: a number between 0 and 1,"),
    ("model", "threshold", "nan", r"nan is out of range"),
    ("model", "threshold", "true", r"true is not a number"),
    ("model", "internal_resolution", "10", r"10 is too small"),
    ("model", "name", '""', r'"" is empty'),
    ("parts", "privacy", '"mosaic"', r'"mosaic" is not one of the choices; .*"pixelate"'),
    (
        "parts",
        "privacy_parts",
        '["face", "lefthand"]',
        r'"lefthand" is not a body part; .*left_hand',
    ),
    ("parts", "privacy_parts", '"face"', r'"face" is not a list'),
    ("parts", "privacy_parts", "[1]", r"1 is not a part name"),
    ("parts", "opacity", "2", r"2 is out of range"),
    ("camera", "device", "-1", r"-1 is a negative camera index"),
    ("camera", "device", '"video0"', r'"video0" is neither "auto" nor a path'),
    ("camera", "device", "true", r"true is not a string or a camera index"),
    ("camera", "fps", '"30"', r'"30" is not an integer'),
    ("camera", "width", "0", r"0 is out of range"),
    ("output", "device", '"loopback"', r"is neither"),
    ("output", "fps", "-1", r"out of range"),
    ("daemon", "always_on", '"false"', r'"false" is not true or false'),
]


@pytest.mark.parametrize(("section", "key", "value", "message"), BAD_VALUES)
def test_bad_value_reports_file_line_key(
    tmp_path: Path, section: str, key: str, value: str, message: str
) -> None:
    path = tmp_path / "config.toml"
    # The bad key sits on line 5, after comments and another valid key.
    path.write_text(f"# my config\n\n[{section}]\n# note\n{key} = {value}  # here\n")
    with pytest.raises(PixcamError) as exc:
        load_config(path)
    (line,) = _error_lines(exc)
    assert line.startswith(f"{path}:5 {section}.{key}: "), line
    assert re.search(message, line), line


def test_unknown_key_and_section_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[camera]\ndevcie = "auto"\n\n[efects]\nbackground = "blur"\n')
    with pytest.raises(PixcamError) as exc:
        load_config(path)
    lines = _error_lines(exc)
    assert lines == [
        f"{path}:2 camera.devcie: unknown key; allowed in [camera]: "
        "device, width, height, fps, mjpg",
        f"{path}:4 efects: unknown section; allowed: [camera], [model], [refine], [effects], "
        "[parts], [framing], [people], [output], [daemon]",
    ]


def test_several_errors_one_line_each_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    text = DEFAULT_TOML.read_text()
    text = text.replace("fps = 30", "fps = 0").replace('background = "blur"', "background = 1")
    path.write_text(text)
    with pytest.raises(PixcamError) as exc:
        load_config(path)
    lines = _error_lines(exc)
    numbers = text.splitlines()
    assert len(lines) == 2
    for line in lines:
        number = int(ERROR_LINE.match(line)["line"])  # type: ignore[index]
        key = line.split(" ")[1].rstrip(":").split(".")[1]
        assert numbers[number - 1].startswith(f"{key} = ")


def test_dotted_and_inline_tables_point_at_their_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('# x\neffects.background = "nope"\n')
    with pytest.raises(PixcamError, match=rf"^{re.escape(str(path))}:2 effects.background: "):
        load_config(path)
    path.write_text('\n\neffects = { background = "nope" }\n')
    with pytest.raises(PixcamError, match=rf"^{re.escape(str(path))}:3 effects.background: "):
        load_config(path)


def test_odd_unknown_keys_print_quoted_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[camera]\n"my\\nkey" = 1\n\n["a b"]\nx = 1\n')
    with pytest.raises(PixcamError) as exc:
        load_config(path)
    lines = _error_lines(exc)
    assert lines[0].startswith(f'{path}:2 camera."my\\nkey": unknown key; ')
    assert lines[1].startswith(f'{path}:4 "a b": unknown section; ')


def test_a_long_unknown_key_is_cut_like_a_long_value(tmp_path: Path) -> None:
    """A 100 000-character key was printed whole: a 100 kB error line in the log and in
    `ctl status`' config_error."""
    path = tmp_path / "config.toml"
    path.write_text(f"[effects]\n{'k' * 100_000} = 1\n")
    with pytest.raises(PixcamError) as exc:
        load_config(path)
    assert _error_lines(exc)[0].startswith(f'{path}:2 effects."{"k" * 40}…{"k" * 10}": unknown')
    with pytest.raises(PixcamError) as exc:
        set_value(path, "effects." + "z" * 5000, "1")
    assert len(str(exc.value)) < 300


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("\ncamera = 5\n")
    with pytest.raises(PixcamError, match=r":2 camera: must be a table \(\[camera\] section\)"):
        load_config(path)


def test_cross_key_check_names_the_deciding_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[effects]\nvideo = ""\nbackground = "video"\n')
    with pytest.raises(PixcamError, match=r':3 effects.background: "video" needs effects.video'):
        load_config(path)


def test_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[camera]\nwidth = 1280\nheight = = 720\n[effects]\n")
    with pytest.raises(PixcamError) as exc:
        load_config(path)
    (line,) = _error_lines(exc)
    assert line.startswith(f"{path}:3: invalid TOML: ")
    assert " at line " not in line  # the position is in the prefix, not repeated


def test_duplicate_key_and_bad_encoding(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[camera]\nfps = 30\nfps = 25\n")
    with pytest.raises(PixcamError, match="invalid TOML"):
        load_config(path)
    path.write_bytes(b'# ok\n[effects]\nimage = "caf\xe9.png"\n')
    with pytest.raises(PixcamError, match=r":3: not UTF-8 text"):
        load_config(path)


def test_unreadable_path_is_a_pixcam_error(tmp_path: Path) -> None:
    with pytest.raises(PixcamError, match="can't read the config file"):
        load_config(tmp_path)  # a directory


def test_key_lines_skips_multiline_strings() -> None:
    text = '[effects]\nimage = """\n[camera]\nfps = 1\n"""\ncolor = "#000000"\n'
    lines = key_lines(text)
    assert lines[("effects", "color")] == 6
    assert ("camera",) not in lines


# --------------------------------------------------------------------------- set_value
@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "pixcam" / "config.toml"
    path.parent.mkdir()
    path.write_text(DEFAULT_TOML.read_text())
    return path


def test_set_value_keeps_comments_and_layout(user_file: Path) -> None:
    before = user_file.read_text().splitlines()
    cfg = set_value(user_file, "effects.background", "image")
    assert cfg.effects.background == "image"
    after = user_file.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [('background = "blur"', 'background = "image"')]
    assert load_config(user_file) == cfg


def test_set_value_keeps_trailing_comment_and_adds_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("# mine\n[effects]\nblur_strength = 10  # soft\n")
    set_value(path, "effects.blur_strength", 70)
    set_value(path, "daemon.always_on", True)
    cfg = set_value(path, "parts.privacy_parts", ("face", "left_hand"))
    text = path.read_text()
    assert text.startswith("# mine\n[effects]\nblur_strength = 70  # soft\n")
    assert cfg.daemon.always_on and cfg.effects.blur_strength == 70
    assert load_config(path) == cfg


def test_set_value_creates_the_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "pixcam" / "config.toml"
    cfg = set_value(path, "effects.mirror", True)
    assert cfg == Config(effects={"mirror": True})
    assert load_config(path) == cfg
    assert path.read_text().startswith("# ")


def test_set_value_writes_through_a_symlink_and_keeps_mode(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "pixcam.toml"
    real.parent.mkdir()
    real.write_text("[effects]\n")
    real.chmod(0o640)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    set_value(link, "effects.mirror", True)
    assert link.is_symlink()
    assert load_config(real).effects.mirror is True
    assert (real.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in real.parent.iterdir()] == ["pixcam.toml"]  # no temp files left


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("effects.background", "blurr", r'^effects.background: "blurr" is not one of'),
        ("effects.nope", 1, r"^effects.nope: unknown key; allowed: effects.enabled"),
        ("nope.key", 1, r"^nope.key: unknown key; sections: camera"),
        ("effects.blur_strength", "40", r'^effects.blur_strength: "40" is not an integer'),
        ("effects.background", "video", r'^effects.background: "video" needs effects.video'),
        ("effects.image", None, r"^effects.image: a NoneType is not a string"),
        ("camera", 1, r"^camera: unknown key"),
        ("effects.back ground\n", 1, r'^effects."back ground\\n": unknown key; allowed: [^\n]*$'),
    ],
)
def test_set_value_refuses_bad_values_and_leaves_the_file(
    user_file: Path, key: str, value: Any, message: str
) -> None:
    before = user_file.read_bytes()
    with pytest.raises(PixcamError, match=message):
        set_value(user_file, key, value)
    assert user_file.read_bytes() == before
    assert sorted(p.name for p in user_file.parent.iterdir()) == ["config.toml"]


def test_set_value_can_fix_a_bad_key_but_reports_other_bad_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[effects]\nbackground = "blurr"\n\n[camera]\nfps = 0\n')
    before = path.read_bytes()
    # The other error keeps the file's own line; nothing is written.
    with pytest.raises(PixcamError, match=rf"^{re.escape(str(path))}:5 camera.fps: 0 is out"):
        set_value(path, "effects.background", "blur")
    assert path.read_bytes() == before
    path.write_text(path.read_text().replace("fps = 0", "fps = 25"))
    assert set_value(path, "effects.background", "blur").effects.background == "blur"


def test_set_value_on_a_file_with_a_syntax_error(user_file: Path) -> None:
    user_file.write_text("[camera\n")
    with pytest.raises(PixcamError, match=r":1: invalid TOML"):
        set_value(user_file, "effects.mirror", True)
    assert user_file.read_text() == "[camera\n"


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("true", None, True),
        ("40", None, 40),
        ("0.5", None, 0.5),
        ('"x y"', None, "x y"),
        ('["face", "hands"]', None, ["face", "hands"]),
        ("image", None, "image"),
        ("#1e88e5", "effects.color", "#1e88e5"),
        ("/dev/video2", "camera.device", "/dev/video2"),
        ("2", "camera.device", 2),
        ("2024", "effects.image", "2024"),  # a string-only key keeps the text
        ("1\nother = 2", None, "1\nother = 2"),  # no smuggled keys
        ("", None, ""),
    ],
)
def test_parse_value(text: str, key: str | None, value: Any) -> None:
    assert parse_value(text, key) == value


# ----------------------------------------------------------------------------- fuzzing
_TOKENS = st.sampled_from(
    [
        "[camera]", "[effects]", "[parts]", "[model]", "[[x]]", "[", "]", "=", " ", "\n",
        "background", "fps", "device", "privacy_parts", "color", "threshold", "x.y",
        '"blur"', '"#00ff00"', '"face"', "true", "1e400", "-0", "nan", "inf", "1979-05-27",
        "30", "0.5", '"""', "'", '"', "#", "{", "}", ",", "\\u0000", "\x00", "é", "\t", "\r",
    ]
)  # fmt: skip
_CONFIG_TEXT = st.one_of(
    st.lists(_TOKENS, max_size=40).map("".join),
    st.text(max_size=200),
    # default.toml with one line replaced by junk: mostly-valid files with one bad spot
    st.tuples(st.integers(0, 80), st.lists(_TOKENS, max_size=8).map("".join)).map(
        lambda t: _splice(t[0], t[1])
    ),
)


def _splice(index: int, junk: str) -> str:
    lines = DEFAULT_TOML.read_text().splitlines()
    lines[index % len(lines)] = junk
    return "\n".join(lines)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(text=_CONFIG_TEXT)
def test_fuzz_config_text_gives_config_or_one_line_errors(text: str) -> None:
    try:
        cfg = parse_config(text.encode("utf-8", "surrogatepass"), "fuzz.toml")
    except PixcamError as exc:
        event("error")
        for line in str(exc).split("\n"):
            assert ERROR_LINE.match(line), line
            assert line.startswith("fuzz.toml:")
    else:
        event("valid")
        assert isinstance(cfg, Config)


_ANY_VALUE = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
# Mostly-plausible values, so that writes succeed often enough to be tested too.
_PLAUSIBLE = st.one_of(
    st.booleans(),
    st.integers(-5, 300),
    st.floats(-0.5, 1.5),
    st.sampled_from(["blur", "image", "color", "none", "pixelate", "#a0b0c0", "/dev/video0"]),
    st.sampled_from(["auto", "x.png", "default", ""]),
    st.lists(st.sampled_from(["face", "hands", "left_foot", "nose"]), max_size=3),
)


def _typed_for(key: str) -> st.SearchStrategy[Any]:
    """Values of the key's own type (so mostly valid, sometimes out of range)."""
    default = Config().get(key) if key in KEYS else None
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(-2, 300)
    if isinstance(default, float):
        return st.floats(-0.1, 1.1)
    if isinstance(default, tuple):
        return st.lists(st.sampled_from(["face", "hands", *PART_NAMES[:4], "nose"]), max_size=3)
    return st.sampled_from(["auto", "blur", "image", "color", "#a0b0c0", "/dev/video3", "a.png"])


_KEY_AND_VALUE = st.sampled_from([*KEYS, "effects", "bogus.key", "effects.background.x"]).flatmap(
    lambda key: st.tuples(st.just(key), st.one_of(_typed_for(key), _PLAUSIBLE, _ANY_VALUE))
)


@pytest.mark.slow
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key_value=_KEY_AND_VALUE)
def test_fuzz_set_value_never_corrupts_the_file(
    user_file: Path, key_value: tuple[str, Any]
) -> None:
    key, value = key_value
    before = user_file.read_bytes()
    try:
        cfg = set_value(user_file, key, value)
    except PixcamError as exc:
        event("refused")
        assert str(exc)
        assert user_file.read_bytes() == before  # untouched, not half-written
    else:
        event("written")
        assert load_config(user_file) == cfg
        assert cfg.get(key) == (tuple(value) if isinstance(value, list) else value)
    assert sorted(p.name for p in user_file.parent.iterdir()) == ["config.toml"]


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=30))
def test_fuzz_ctl_values_through_set_value(tmp_path_factory: Any, text: str) -> None:
    path = tmp_path_factory.mktemp("ctl") / "config.toml"
    for key in ("effects.background", "effects.blur_strength", "parts.privacy_parts"):
        with contextlib.suppress(PixcamError):
            set_value(path, key, parse_value(text, key))
        load_config(path)  # whatever happened, the file on disk is valid


# ---------------------------------------------------------------------------- watching
class _Recorder:
    def __init__(self) -> None:
        self.configs: list[Config] = []
        self.errors: list[str] = []
        self.changed = threading.Event()
        self.failed = threading.Event()

    def on_change(self, cfg: Config) -> None:
        self.configs.append(cfg)
        self.changed.set()

    def on_error(self, message: str) -> None:
        self.errors.append(message)
        self.failed.set()


def _rewrite(path: Path, text: str) -> None:
    # Like most editors: write a new file and rename it over the old one.
    tmp = path.with_suffix(".swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_watcher_check_valid_invalid_and_comment_only_edits(user_file: Path) -> None:
    rec = _Recorder()
    watcher = ConfigWatcher(user_file, rec.on_change, rec.on_error, settle=0)
    assert watcher.current == Config()
    watcher.check()
    assert rec.configs == [] and rec.errors == []

    _rewrite(user_file, user_file.read_text().replace("fps = 30", "fps = 15"))
    watcher.check()  # first sighting: maybe the editor is still writing
    assert rec.configs == []
    watcher.check()
    assert [c.camera.fps for c in rec.configs] == [15]

    _rewrite(user_file, user_file.read_text() + "\n# just a comment\n")
    watcher.check()
    watcher.check()
    assert len(rec.configs) == 1  # same settings: no reload

    good = watcher.current
    _rewrite(user_file, user_file.read_text().replace("mjpg = true", "mjpg = maybe"))
    watcher.check()  # first sighting: maybe the editor is still writing
    assert rec.errors == []
    watcher.check()
    watcher.check()
    assert len(rec.errors) == 1  # reported once, not on every poll
    assert re.match(rf"^{re.escape(str(user_file))}:\d+: invalid TOML", rec.errors[0])
    assert watcher.current is good

    with pytest.raises(PixcamError, match="invalid TOML"):
        watcher.reload()
    assert watcher.current is good

    user_file.unlink()  # deleted file = defaults
    watcher.check()
    watcher.check()
    assert rec.configs[-1] == Config()


def test_watcher_thread_follows_real_edits(user_file: Path) -> None:
    rec = _Recorder()
    with ConfigWatcher(user_file, rec.on_change, rec.on_error, interval=0.02, settle=0) as watcher:
        set_value(user_file, "effects.background", "color")
        assert rec.changed.wait(30)
        assert rec.configs[-1].effects.background == "color"

        good = watcher.current
        text = user_file.read_text()
        user_file.write_text(text.replace('background = "color"', 'background = "colour"'))
        assert rec.failed.wait(30)
        assert re.search(r":\d+ effects.background: \"colour\" is not one of", rec.errors[0])
        assert watcher.current is good

        rec.changed.clear()
        user_file.write_text(text.replace("blur_strength = 40", "blur_strength = 90"))
        assert rec.changed.wait(30)
        assert rec.configs[-1].effects.blur_strength == 90
        assert rec.configs[-1].effects.background == "color"


def test_watcher_reports_only_outside_edits(user_file: Path) -> None:
    rec = _Recorder()
    watcher = ConfigWatcher(user_file, rec.on_change, rec.on_error, settle=0)
    # Two keys, one write: valid only together (an image background needs the image first).
    before = user_file.stat().st_ino
    cfg = watcher.set_values({"effects.background": "video", "effects.video": "/tmp/x.mp4"})
    assert (cfg.effects.background, cfg.effects.video) == ("video", "/tmp/x.mp4")
    assert user_file.stat().st_ino != before  # replaced atomically, once
    assert watcher.current is cfg
    watcher.check()
    assert rec.configs == []  # the caller applies its own write; the poll reports nothing
    with pytest.raises(PixcamError, match="effects.mirror: 2 is not true or false"):
        watcher.set_values({"effects.mirror": 2, "effects.blur_strength": 50})
    assert watcher.current is cfg and rec.errors == []
    assert load_config(user_file) == cfg  # a refused change writes nothing
    _rewrite(user_file, user_file.read_text().replace("mirror = false", "mirror = true"))
    assert watcher.reload().effects.mirror is True and rec.configs == []
    watcher.check()
    assert rec.configs == []  # reload() told the caller already


def test_watcher_callback_exception_does_not_stop_it(user_file: Path) -> None:
    seen: list[int] = []
    first, done = threading.Event(), threading.Event()

    def on_change(cfg: Config) -> None:
        seen.append(cfg.camera.fps)
        if len(seen) == 1:
            first.set()
            raise RuntimeError("bug in the daemon")
        done.set()

    with ConfigWatcher(user_file, on_change, interval=0.02, settle=0):
        set_value(user_file, "camera.fps", 10)
        assert first.wait(30)
        set_value(user_file, "camera.fps", 12)
        assert done.wait(30)
    assert seen == [10, 12]


def test_watcher_refuses_a_bad_file_at_start(user_file: Path) -> None:
    user_file.write_text("[camera]\nfps = 0\n")
    with pytest.raises(PixcamError, match=r":2 camera.fps"):
        ConfigWatcher(user_file, lambda cfg: None)
    # ... unless the daemon hands it the config it runs with.
    watcher = ConfigWatcher(user_file, lambda cfg: None, current=Config())
    assert watcher.current == Config()


# ------------------------------------------------------------- issue 15: faults 1, 6, 7
def _in_thread(fn: Any) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    thread.join(3.0)
    return thread


def test_a_fifo_in_place_of_the_config_never_blocks(user_file: Path) -> None:
    rec = _Recorder()
    watcher = ConfigWatcher(user_file, rec.on_change, rec.on_error, settle=0)
    user_file.unlink()
    os.mkfifo(user_file)
    errors: list[str] = []

    def poke() -> None:
        watcher.check()
        watcher.check()
        for call in (lambda: load_config(user_file), lambda: set_value(user_file, "camera.fps", 9)):
            try:
                call()
            except PixcamError as exc:
                errors.append(str(exc))

    thread = _in_thread(poke)
    if thread.is_alive():  # unblock the stuck open() so the test can end
        fd = os.open(user_file, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    assert not thread.is_alive(), "reading a FIFO config blocked"
    assert len(rec.errors) == 1 and "not a regular file" in rec.errors[0]
    assert len(errors) == 2 and all("not a regular file" in e for e in errors)
    assert watcher.current == Config() and rec.configs == []


def test_a_save_caught_half_way_is_not_applied(user_file: Path) -> None:
    """Truncate-then-write in place: the valid first half must not become the last good."""
    rec = _Recorder()
    watcher = ConfigWatcher(user_file, rec.on_change, rec.on_error, settle=0)
    good = watcher.current
    with open(user_file, "w") as f:  # in place, like editors that keep the inode
        f.write("[effects]\nblur_strength = 77\nmirror = true\n")
        f.flush()
        watcher.check()  # the poll lands between the two halves of the save
        f.write('background = "colour"\n')  # the finished file has a mistake
    watcher.check()
    watcher.check()
    assert len(rec.errors) == 1 and "effects.background" in rec.errors[0]
    assert rec.configs == [] and watcher.current is good
    assert (good.effects.blur_strength, good.effects.mirror) == (40, False)


@pytest.mark.parametrize("fix", ["crlf", "bom", "comments", "empty", "deleted"])
def test_an_error_clears_when_the_fix_brings_back_the_running_settings(
    tmp_path: Path, fix: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("# defaults\n")
    rec = _Recorder()
    watcher = ConfigWatcher(path, rec.on_change, rec.on_error, settle=0)
    path.write_text("[camera]\nfps = 0\n")
    watcher.check()
    watcher.check()
    assert len(rec.errors) == 1
    if fix == "deleted":
        path.unlink()
    else:
        text = {"crlf": "[camera]\r\nfps = 30\r\n", "bom": "\ufeff[camera]\nfps = 30\n"}
        text |= {"comments": "# nothing set\n", "empty": ""}
        path.write_bytes(text[fix].encode())
    watcher.check()
    watcher.check()
    # The settings are those already running, yet the caller must hear of the fix (the
    # daemon clears config_error and the red tray on any on_change).
    assert rec.configs == [Config()] and len(rec.errors) == 1


def _edges(key: str) -> list[Any]:
    """The values at the very edges of what the schema takes for `key` (and a few inside)."""
    import typing

    from pixcam.config import SECTIONS

    section, name = key.split(".")
    field = SECTIONS[section].model_fields[name]
    choices = typing.get_args(field.annotation)
    if field.annotation is bool:
        return [True, False]
    if choices and all(isinstance(c, str) for c in choices):
        return list(choices)
    bounds = {
        kind: getattr(m, kind)
        for m in field.metadata
        for kind in ("ge", "gt", "le", "lt")
        if hasattr(m, kind)
    }
    low, high = bounds.get("ge", bounds.get("gt")), bounds.get("le", bounds.get("lt"))
    if low is None or high is None:
        return []
    step = 1 if field.annotation is int else 1e-6
    low += step if "gt" in bounds else 0
    high -= step if "lt" in bounds else 0
    return [low, high, type(low)((low + high) / 2)]


def test_every_value_the_schema_takes_is_one_the_stages_take(models_installed: Path) -> None:
    """Issue 23 fault 3: one set of ranges. Each key at the edges of its range (and every
    choice), alone and with the part effects on, builds the chain and runs a frame through
    the real default model."""
    from pixcam.chain.effects import Effects, EffectsSettings
    from pixcam.chain.segment import load_segmenter
    from pixcam.config import KEYS
    from pixcam.i420 import I420

    base = Config().with_values({"parts.privacy": "blur", "parts.view": True})
    frame = I420.from_bgr(np.full((240, 320, 3), 120, np.uint8))
    segmenter = load_segmenter(None, threads=2)
    tried = 0
    for key in KEYS:
        if key.startswith(("camera.", "output.", "daemon.")):
            continue  # not the chain's
        for value in _edges(key):
            for start in (Config(), base):
                try:
                    cfg = start.with_values({key: value})
                except PixcamError:
                    continue  # refused by a rule across keys: never saved
                fx = Effects(EffectsSettings.from_config(cfg))
                fx.set_segmenter(segmenter, fx.settings.model)
                fx.process(frame)
                tried += 1
    assert tried > 60


@pytest.mark.parametrize(
    "values",
    [
        {"model.threshold": 1},
        {"model.threshold": 0},
        {"model.threshold": 1.0},
        {"parts.privacy": "blur", "parts.privacy_parts": []},
    ],
)
def test_values_the_stages_cannot_take_are_refused_by_the_schema(
    tmp_path: Path, values: dict[str, Any]
) -> None:
    path = tmp_path / "config.toml"
    with pytest.raises(PixcamError) as caught:
        set_values(path, values)
    assert "\n" not in str(caught.value) and "allowed" in str(caught.value)
    assert not path.exists()


def test_new_content_waits_until_the_file_has_settled(user_file: Path) -> None:
    """Fault 4 of issue 23, the rule itself: read the same twice is not enough while the
    file was written less than `settle` seconds ago; a deleted or unreadable file needs no
    settling. `test_daemon.py::test_a_save_that_pauses_half_way_is_never_applied` runs it."""
    rec = _Recorder()
    watcher = ConfigWatcher(user_file, rec.on_change, rec.on_error, settle=30)
    user_file.write_text("[effects]\nblur_strength = 77\n")
    for _ in range(3):
        watcher.check()
    assert rec.configs == [] and watcher.current.effects.blur_strength == 40
    old = time.time() - 31
    os.utime(user_file, (old, old))
    watcher.check()
    watcher.check()
    assert [c.effects.blur_strength for c in rec.configs] == [77]
