"""TOML configuration: schema, `file:line key:` errors, hot reload and atomic write-back.

The schema below mirrors config/default.toml section by section (a test checks that the file
parses to exactly these defaults). It is the only place settings are checked: a value it
takes is one every stage takes (a test runs the chain at the edges of every range), so the
stages' own settings classes carry no checks of their own. A section is one `_Section` class
and one field of `Config`; its rules across keys are its own `model_validator`.

Every model forbids unknown keys, so a typo is an error instead of a silently ignored
setting, and is strict, so `fps = "30"` or `mirror = 1` are
reported rather than guessed at.

Public API:
- `config_path()`: `$XDG_CONFIG_HOME/pixcam/config.toml` (default `~/.config/...`);
- `load_config(path) -> Config`: a missing file gives the defaults; any problem raises one
  `PixcamError` with one `file:line key: what is wrong; allowed: ...` line per error;
- `set_values(path, {"effects.image": "x.png", "effects.background": "image"}) -> Config`
  (`set_value` for one key): validate, then rewrite the file once, atomically, keeping the
  user's comments and layout;
- `parse_value(text, key)`: what `pixcam ctl set KEY VALUE` makes of VALUE;
- `ConfigWatcher`: hot reload; an invalid edit keeps the last good config and reports a line.
  `on_change` reports only edits made outside; the daemon's own writes (`set_values()`) and
  `reload()` return the new Config to the caller, who applies it.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pixcam import paths
from pixcam.errors import PixcamError
from pixcam.modes import (
    AWAY_MODES,
    BACKGROUNDS,
    FRAMING_MODES,
    KEEP_MODES,
    OUTPUT_BACKENDS,
    PRIVACY_MODES,
    QUALITIES,
    AwayMode,
    BackgroundMode,
    FramingMode,
    KeepMode,
    OutputBackend,
    PrivacyMode,
    Quality,
)
from pixcam.parts import PART_GROUPS, PART_NAMES

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

# A config file is a few kB; refuse anything absurd instead of reading it into memory.
MAX_CONFIG_BYTES = 1 << 20

PART_CHOICES: tuple[str, ...] = (*PART_GROUPS, *PART_NAMES)


def _field(default: Any, allowed: str, **constraints: Any) -> Any:
    """A field whose `allowed` text ends every error message about it."""
    return Field(default, json_schema_extra={"allowed": allowed}, **constraints)


def _custom(message: str, *, names_value: bool = False) -> PydanticCustomError:
    """Our own error: `_describe` puts the offending value in front of `message` unless the
    message already names it. Passed as context so braces in user values are not templates."""
    kind = "pixcam" if names_value else "pixcam_value"
    return PydanticCustomError(kind, "{message}", {"message": message})


def _across(key: str, message: str) -> PydanticCustomError:
    """An error of a rule across keys of one section, reported on `key`, the one that decides."""
    return PydanticCustomError("pixcam_key", "{message}", {"key": key, "message": message})


def _is_device_path(value: str) -> bool:
    return value.startswith(("/", "~"))


class _Section(BaseModel):
    # strict: TOML is typed, so a wrong type is a mistake worth reporting, not coercing.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CameraConfig(_Section):
    device: int | str = _field(
        "auto", '"auto", a camera index such as 0, or a device path such as "/dev/video0"'
    )
    width: int = _field(1280, "an integer 16..7680", ge=16, le=7680)
    height: int = _field(720, "an integer 16..4320", ge=16, le=4320)
    fps: int = _field(30, "an integer 1..240", ge=1, le=240)
    mjpg: bool = _field(True, "true or false")

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> int | str:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise _custom("is not a string or a camera index")
        if isinstance(value, int) and value < 0:
            raise _custom("is a negative camera index")
        if isinstance(value, str) and value != "auto" and not _is_device_path(value):
            raise _custom('is neither "auto" nor a path')
        return value


MIN_RESOLUTION, MAX_RESOLUTION = 64, 4096  # model.internal_resolution, 0 aside
MAX_THREADS = 64  # model.threads


def check_internal_resolution(value: int) -> None:
    """--internal-resolution held to model.internal_resolution's range, in one line."""
    if value and not MIN_RESOLUTION <= value <= MAX_RESOLUTION:
        raise PixcamError(
            f"--internal-resolution must be 0 (the model's default) or "
            f"{MIN_RESOLUTION}..{MAX_RESOLUTION}, got {value}"
        )


class ModelConfig(_Section):
    name: str = _field("default", 'a model name from `pixcam models list`, or "default"')
    internal_resolution: int = _field(
        0,
        f"0 (the model's default) or an integer {MIN_RESOLUTION}..{MAX_RESOLUTION}",
        ge=0,
        le=MAX_RESOLUTION,
    )
    # 0 or 1 would make everything, or nothing, the person.
    threshold: float = _field(0.5, "a number between 0 and 1, not 0 or 1", gt=0.0, lt=1.0)
    threads: int = _field(2, f"an integer 1..{MAX_THREADS}", ge=1, le=MAX_THREADS)
    quality: Quality = _field("balanced", ", ".join(f'"{q}"' for q in QUALITIES))
    auto_tune: bool = _field(True, "true or false")
    skip_still: bool = _field(True, "true or false")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise _custom("is empty")
        return value

    @field_validator("internal_resolution")
    @classmethod
    def _resolution(cls, value: int) -> int:
        # Below 64 px the network output is a handful of cells: surely a typo.
        if 0 < value < MIN_RESOLUTION:
            raise _custom("is too small")
        return value


class RefineConfig(_Section):
    smoothing: float = _field(0.5, "a number 0..0.95", ge=0.0, le=0.95)
    feather: int = _field(2, "an integer 0..100 (pixels)", ge=0, le=100)
    edge_aware: bool = _field(True, "true or false")


class EffectsConfig(_Section):
    enabled: bool = _field(True, "true or false")
    background: BackgroundMode = _field("blur", ", ".join(f'"{b}"' for b in BACKGROUNDS))
    blur_strength: int = _field(40, "an integer 1..100", ge=1, le=100)
    image: str = _field("studio-grey.png", "a path, or a file name in backgrounds/")
    video: str = _field("", 'a path to a video file, or "" for none')
    color: str = _field(
        "#2e7d32", 'a colour as "#rrggbb", e.g. "#2e7d32"', pattern=r"^#[0-9a-fA-F]{6}$"
    )
    mirror: bool = _field(False, "true or false")

    @model_validator(mode="after")
    def _source_set(self) -> EffectsConfig:
        # Catch "video background but no video" here rather than as a black frame later.
        for kind in ("image", "video"):
            if self.background == kind and not getattr(self, kind).strip():
                raise _across("background", f'"{kind}" needs effects.{kind} set first')
        return self


class PartsConfig(_Section):
    view: bool = _field(False, "true or false")
    opacity: float = _field(0.7, "a number 0..1", ge=0.0, le=1.0)
    privacy: PrivacyMode = _field("none", ", ".join(f'"{p}"' for p in PRIVACY_MODES))
    privacy_parts: tuple[str, ...] = _field(("face",), "a list of: " + ", ".join(PART_CHOICES))

    @field_validator("privacy_parts", mode="before")
    @classmethod
    def _parts(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple):
            raise _custom("is not a list")
        for item in value:
            if not isinstance(item, str):
                raise _custom(f"{_show(item)} is not a part name", names_value=True)
            if item not in PART_CHOICES:
                raise _custom(f"{_show(item)} is not a body part", names_value=True)
        return tuple(value)

    @model_validator(mode="after")
    def _privacy_has_parts(self) -> PartsConfig:
        if self.privacy != "none" and not self.privacy_parts:
            raise _across("privacy_parts", f'privacy "{self.privacy}" needs at least one part')
        return self


class FramingConfig(_Section):
    mode: FramingMode = _field("off", ", ".join(f'"{m}"' for m in FRAMING_MODES))
    zoom: float = _field(0.7, "a number 0.2..1", ge=0.2, le=1.0)
    speed: float = _field(1.0, "a number 0.1..5", ge=0.1, le=5.0)


class PeopleConfig(_Section):
    keep: KeepMode = _field("all", ", ".join(f'"{m}"' for m in KEEP_MODES))
    away: AwayMode = _field("off", ", ".join(f'"{m}"' for m in AWAY_MODES))
    away_after: float = _field(30.0, "a number 1..3600 (seconds)", ge=1.0, le=3600.0)
    away_image: str = _field("", 'a path, a file name in backgrounds/, or "" for the text')
    away_text: str = _field("Be right back", "a short text", max_length=80)


class OutputConfig(_Section):
    backend: OutputBackend = _field("auto", ", ".join(f'"{b}"' for b in OUTPUT_BACKENDS))
    device: str = _field("auto", '"auto" or a device path such as "/dev/video10"')
    fps: int = _field(0, "0 (the camera's) or an integer 1..240", ge=0, le=240)
    height: int = _field(0, "0 (the camera's) or an integer 16..4320", ge=0, le=4320)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value != "auto" and not _is_device_path(value):
            raise _custom('is neither "auto" nor a path')
        return value

    @field_validator("height")
    @classmethod
    def _height(cls, value: int) -> int:
        if 0 < value < 16:
            raise _custom("is too small")
        return value


class DaemonConfig(_Section):
    always_on: bool = _field(False, "true or false")
    tray: bool = _field(True, "true or false")


class Config(_Section):
    """The whole configuration; immutable, so it can be handed between threads freely."""

    camera: CameraConfig = Field(default_factory=CameraConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    refine: RefineConfig = Field(default_factory=RefineConfig)
    effects: EffectsConfig = Field(default_factory=EffectsConfig)
    parts: PartsConfig = Field(default_factory=PartsConfig)
    framing: FramingConfig = Field(default_factory=FramingConfig)
    people: PeopleConfig = Field(default_factory=PeopleConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)

    def get(self, key: str) -> Any:
        """The value of a dotted key such as "effects.background"."""
        section, name = split_key(key)
        return getattr(getattr(self, section), name)

    def with_values(self, values: Mapping[str, Any]) -> Config:
        """A validated copy with {"section.key": value} replaced (command-line overrides).

        PixcamError with one `key: what is wrong; allowed: ...` line per problem.
        """
        data = self.model_dump()
        for key, value in values.items():
            section, name = split_key(key)
            data[section][name] = _toml_value(value)
        try:
            return Config.model_validate(data)
        except ValidationError as exc:
            lines = dict.fromkeys(
                f"{key_text(loc)}: {what}"
                for loc, what in map(_describe, exc.errors(include_url=False))
            )
            raise PixcamError("\n".join(lines)) from None

    def flat(self) -> dict[str, Any]:
        """Every setting as {"section.key": value}, e.g. for `pixcam ctl status`."""
        return {
            f"{section}.{name}": getattr(getattr(self, section), name)
            for section, model in SECTIONS.items()
            for name in model.model_fields
        }


SECTIONS: dict[str, type[_Section]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in Config.model_fields.items()
}

# Every settable key, "section.key", in file order.
KEYS: tuple[str, ...] = tuple(
    f"{section}.{name}" for section, model in SECTIONS.items() for name in model.model_fields
)


def allowed(key: str) -> str:
    """The human description of what a key accepts."""
    section, name = split_key(key)
    extra = SECTIONS[section].model_fields[name].json_schema_extra
    return str(extra["allowed"]) if isinstance(extra, dict) else ""


def split_key(key: str) -> tuple[str, str]:
    """("effects", "background") for "effects.background"; PixcamError for unknown keys."""
    section, _, name = key.partition(".")
    shown = key_text(tuple(key.split(".")))  # a typo'd key with odd characters stays one line
    if section not in SECTIONS:
        raise PixcamError(f"{shown}: unknown key; sections: {', '.join(SECTIONS)}")
    if name not in SECTIONS[section].model_fields:
        names = ", ".join(f"{section}.{n}" for n in SECTIONS[section].model_fields)
        raise PixcamError(f"{shown}: unknown key; allowed: {names}")
    return section, name


def config_path() -> Path:
    """`$XDG_CONFIG_HOME/pixcam/config.toml`, `~/.config/pixcam/config.toml` by default."""
    return paths.config_file()


# ------------------------------------------------------------------------------ errors
def _show(value: Any) -> str:
    """A value as the user would write it in TOML, shortened for a one-line message."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, float) and not math.isfinite(value):
        text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, dict):
        text = "a table"
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(_show(v) for v in value) + "]"
    else:
        text = f"a {type(value).__name__}"
    text = text.replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


_TYPE_WORDS = {
    "int_type": "is not an integer",
    "float_type": "is not a number",
    "bool_type": "is not true or false",
    "string_type": "is not a string",
}


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def key_text(parts: tuple[str, ...]) -> str:
    """A dotted key as TOML writes it: `camera.fps`, or `"my key".x` for odd names, so an
    unknown key with spaces, dots or newlines still prints as one unambiguous line."""
    return ".".join(_key_part(p) for p in parts)


def _key_part(part: str) -> str:
    """One part of a key, quoted when odd; a long one cut in the middle as values are."""
    if len(part) > 60:
        part = f"{part[:40]}…{part[-10:]}"
    return part if _BARE_KEY.match(part) else json.dumps(part, ensure_ascii=False)


def _describe(error: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    """(key path, "what is wrong; allowed: ...") for one pydantic error."""
    loc = tuple(str(part) for part in error["loc"] if not isinstance(part, int))
    kind, value = error["type"], error.get("input")
    if kind == "pixcam_key":  # a check across keys, reported on the key that decides
        loc = (*loc[:1], error["ctx"]["key"])
    if len(loc) == 1 and loc[0] not in SECTIONS:
        return loc, f"unknown section; allowed: {', '.join(f'[{s}]' for s in SECTIONS)}"
    if len(loc) == 1:
        return loc, f"must be a table ([{loc[0]}] section), got {_show(value)}"
    section, name = loc[0], loc[1]
    fields = SECTIONS[section].model_fields
    if name not in fields:
        return loc[:2], f"unknown key; allowed in [{section}]: {', '.join(fields)}"
    hint = allowed(f"{section}.{name}")
    if kind == "pixcam":
        what = error["msg"]
    elif kind == "pixcam_value":
        what = f"{_show(value)} {error['msg']}"
    elif kind in _TYPE_WORDS:
        what = f"{_show(value)} {_TYPE_WORDS[kind]}"
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        what = f"{_show(value)} is out of range"
    elif kind == "pixcam_key":
        what = error["msg"]
    elif kind == "literal_error":
        what = f"{_show(value)} is not one of the choices"
    else:
        what = f"{_show(value)} is not valid"
    return loc[:2], f"{what}; allowed: {hint}"


_SEGMENT = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_HEADER_RE = re.compile(rf"^\s*\[\[?\s*({_SEGMENT}(?:\s*\.\s*{_SEGMENT})*)\s*\]\]?")
_KEY_RE = re.compile(rf"^\s*({_SEGMENT}(?:\s*\.\s*{_SEGMENT})*)\s*=")


def _unquote(segment: str) -> str:
    if segment.startswith('"'):
        try:  # TOML basic-string escapes are JSON's (bar the rare \U and \e)
            return str(json.loads(segment))
        except ValueError:
            return segment[1:-1]
    return segment.strip("'")


def _split_dotted(text: str) -> tuple[str, ...]:
    return tuple(_unquote(m) for m in re.findall(_SEGMENT, text))


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """1-based line of each table and key, e.g. {("effects",): 40, ("effects", "color"): 52}.

    tomlkit keeps layout but not line numbers, so scan the text: headers set the current
    table, `a.b = ` lines add keys under it. Good enough to point at a key; lines inside
    multi-line strings are skipped so their contents can't be mistaken for keys.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_string: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string is not None:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        header = _HEADER_RE.match(line)
        key = None if header else _KEY_RE.match(line)
        if header:
            table = _split_dotted(header.group(1))
            lines.setdefault(table, number)
        elif key:
            path = table + _split_dotted(key.group(1))
            for depth in range(len(table) + 1, len(path) + 1):
                lines.setdefault(path[:depth], number)
            rest = line[key.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_string = quote
    return lines


def _line_of(lines: Mapping[tuple[str, ...], int], key: tuple[str, ...]) -> int:
    # The key itself, else its section (e.g. an inline table), else the top of the file.
    for depth in range(len(key), 0, -1):
        if key[:depth] in lines:
            return lines[key[:depth]]
    return 1


def _format_errors(exc: ValidationError, path: PathLike, text: str) -> str:
    lines = key_lines(text)
    found: dict[tuple[int, str], None] = {}  # ordered set: one line per distinct problem
    for error in exc.errors(include_url=False):
        key, what = _describe(error)
        found[(_line_of(lines, key), f"{key_text(key)}: {what}")] = None
    return "\n".join(f"{path}:{line} {msg}" for line, msg in sorted(found))


# ----------------------------------------------------------------------------- loading
def _decode(data: bytes, path: PathLike) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PixcamError(f"{path}:{line}: not UTF-8 text; save the file as UTF-8") from None


def _parse_document(text: str, path: PathLike) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        what = re.sub(r" at line \d+ col \d+$", "", str(exc))
        raise PixcamError(f"{path}:{exc.line}: invalid TOML: {what}") from None
    except (tomlkit.exceptions.TOMLKitError, ValueError, TypeError) as exc:
        # tomlkit raises a few other kinds (duplicate keys, bad dates) without a position.
        raise PixcamError(f"{path}:1: invalid TOML: {exc}") from None


def _plain(doc: tomlkit.TOMLDocument, path: PathLike) -> dict[str, Any]:
    try:
        return doc.unwrap()
    except (tomlkit.exceptions.TOMLKitError, ValueError, TypeError) as exc:
        raise PixcamError(f"{path}:1: invalid TOML: {exc}") from None


def parse_config(text: str | bytes, path: PathLike = "<config>") -> Config:
    """Validate config text; `path` is only used in the error lines."""
    if isinstance(text, bytes):
        text = _decode(text, path)
    plain = _plain(_parse_document(text, path), path)
    try:
        return Config.model_validate(plain)
    except ValidationError as exc:
        raise PixcamError(_format_errors(exc, path, text)) from None


def _read(path: Path) -> bytes | None:
    """The file's bytes, None when it doesn't exist; PixcamError when it can't be read.

    Opened non-blocking and checked to be a regular file before reading: a FIFO or a device
    in the config's place would otherwise block the open (and whoever waits on the reader)
    until someone writes to it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise paths.open_error(path, "config file", exc) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise PixcamError(
                f"can't read the config file {path}: it is {paths.kind_of(mode)}, not a regular "
                "file; replace it with a plain TOML file"
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise PixcamError(f"{path}: can't read the config file: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise PixcamError(f"{path}: too large for a config file (over 1 MiB)")
    return data


def load_config(path: PathLike | None = None) -> Config:
    """The configuration in `path` (default `config_path()`); a missing file = defaults."""
    path = Path(path) if path is not None else config_path()
    data = _read(path)
    return Config() if data is None else parse_config(data, path)


# --------------------------------------------------------------------------- writing
_write_lock = threading.Lock()  # the tray and `pixcam ctl set` may write at the same time

NEW_FILE_HEADER = (
    "# pixcam configuration, written by pixcam; comments and layout you add are kept.\n"
    "# Every key and its default: config/default.toml in the pixcam sources.\n"
)


def parse_value(text: str, key: str | None = None) -> Any:
    """VALUE of `pixcam ctl set KEY VALUE`: a TOML literal when it is one, else the string.

    So `true`, `40`, `0.5`, `"x"` and `["face", "hands"]` are typed, while `image` or
    `#1e88e5` are plain strings. For string-only keys a bare `2024` stays the string "2024".
    """
    try:
        doc = _parse_document(f"value = {text}\n", "<value>")
        parsed = _plain(doc, "<value>")
    except PixcamError:
        return text
    if list(parsed) != ["value"]:  # `1\nother = 2` must not smuggle in more keys
        return text
    value = parsed["value"]
    if key is not None and not isinstance(value, str) and key in KEYS:
        annotation = SECTIONS[key.partition(".")[0]].model_fields[key.partition(".")[2]]
        if annotation.annotation is str:
            return text
    return value


def _toml_value(value: Any) -> Any:
    # tomlkit has no tuple item; a list round-trips to the same validated tuple.
    return list(value) if isinstance(value, tuple) else value


def set_value(path: PathLike | None, key: str, value: Any) -> Config:
    """`set_values` for one key."""
    return set_values(path, {key: value})


def set_values(path: PathLike | None, values: Mapping[str, Any]) -> Config:
    """Set keys in the config file, validated together, in one atomic write that keeps the
    user's comments and layout.

    Returns the new Config. On any error the file is left exactly as it was. Errors about the
    keys being set read `key: ...`; errors elsewhere in the file keep their `file:line`.
    """
    path = Path(path) if path is not None else config_path()
    changes = {split_key(key): _toml_value(value) for key, value in values.items()}
    with _write_lock:
        # Write through a symlink (dotfile managers) instead of replacing the link.
        real = Path(os.path.realpath(path))
        data = _read(real)
        old_text = _decode(data, path) if data is not None else NEW_FILE_HEADER
        doc = _parse_document(old_text, path)
        plain = _plain(doc, path)
        for (section, name), value in changes.items():
            if section in plain and not isinstance(plain[section], dict):
                parse_config(old_text, path)  # raises the file:line error for the section
            plain.setdefault(section, {})[name] = value
        try:
            expected = Config.model_validate(plain)
        except ValidationError as exc:
            raise PixcamError(_set_errors(exc, path, old_text, set(changes))) from None
        keys = ", ".join(key_text(k) for k in changes)
        try:
            for (section, name), value in changes.items():
                if section not in doc:
                    doc[section] = tomlkit.table()
                doc[section][name] = value  # type: ignore[index]
            new_text = doc.as_string()
        except (tomlkit.exceptions.TOMLKitError, ValueError, TypeError) as exc:
            raise PixcamError(f"{keys}: can't be written as TOML: {exc}") from None
        # Belt and braces: what lands on disk must read back as what we validated.
        if parse_config(new_text, path) != expected:
            raise PixcamError(f"{keys}: internal error writing {path}; file left unchanged")
        if data is None or new_text != old_text:
            remove_temp_files(real)
            _atomic_write(real, new_text)
    return expected


def _set_errors(
    exc: ValidationError, path: PathLike, old_text: str, keys: set[tuple[str, str]]
) -> str:
    lines = key_lines(old_text)
    found: dict[str, None] = {}
    for error in exc.errors(include_url=False):
        loc, what = _describe(error)
        if loc in keys:
            found[f"{key_text(loc)}: {what}"] = None
        else:
            found[f"{path}:{_line_of(lines, loc)} {key_text(loc)}: {what}"] = None
    return "\n".join(found)


# A temp file of a save (`_atomic_write`) this old is left from a writer that was killed.
STALE_TEMP_S = 60.0


def remove_temp_files(path: PathLike | None = None, older_than: float = STALE_TEMP_S) -> None:
    """Remove `.NAME.*.tmp` beside the config file (through a symlink: beside the real file)
    that were last written over `older_than` seconds ago: saves cut short by a kill."""
    path = Path(path) if path is not None else config_path()
    real = Path(os.path.realpath(path))
    now = time.time()
    with _suppress_oserror():
        for tmp in real.parent.glob(f".{glob.escape(real.name)}.*.tmp"):
            with _suppress_oserror():
                st = os.lstat(tmp)
                if stat.S_ISREG(st.st_mode) and now - st.st_mtime >= older_than:
                    os.unlink(tmp)
                    log.info("removed %s, left by an interrupted save", tmp)


def _atomic_write(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename: readers see the old or the new file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = 0o644
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise PixcamError(f"{path}: can't write the config file: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        with _suppress_oserror():
            os.unlink(tmp)
        raise PixcamError(f"{path}: can't write the config file: {exc.strerror}") from None
    except BaseException:
        with _suppress_oserror():
            os.unlink(tmp)
        raise
    # Make the rename itself durable; best effort (some filesystems refuse to fsync a dir).
    with _suppress_oserror():
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, OSError)


# ---------------------------------------------------------------------------- watching
class ConfigWatcher:
    """Reloads the config file when it changes, from a polling thread.

    A valid edit that changes the settings calls `on_change(config)`; comment-only edits
    don't, unless they fix a reported error. An invalid edit keeps the last good config and
    calls `on_error(message)` once per distinct bad content. Both callbacks run on the
    watcher thread.

    New content is acted on only once it is settled: it read the same on two polls and the
    file was last written at least `settle` seconds (`SETTLE_S`) before. A file written in
    place can be caught half-way, and its first half is often a valid file of its own: an
    editor that pauses mid-save (1.2 s was seen) must not have the half applied. A save by
    rename is whole at once but waits the same, so the rule has no exception. The cost: an
    edit takes effect about `settle` seconds after the save; `reload()` waits for it too.

    Polling (not inotify) because it also follows editors that replace the file, symlinks,
    and directories created later, with no extra dependency; a stat every 0.5 s is free.
    """

    # A file modified this recently may change again within the same mtime tick, so its
    # content is re-read even if stat looks unchanged (git's "racy clean" problem).
    RACY_SECONDS = 2.0
    # New content acts once the file has not been written for this long (see above).
    SETTLE_S = 2.0

    def __init__(
        self,
        path: PathLike | None,
        on_change: Callable[[Config], None],
        on_error: Callable[[str], None] | None = None,
        *,
        interval: float = 0.5,
        current: Config | None = None,
        settle: float | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else config_path()
        self.interval = interval
        self.settle = self.SETTLE_S if settle is None else settle
        self._on_change = on_change
        self._on_error = on_error
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stat: tuple[int, ...] | None = None
        self._pending: str | None = None  # digest of new content waiting to settle
        self._reported: str | None = None  # digest of bad content already reported
        data = _read(self.path)
        self._digest = _digest(data)
        if current is None:  # raises PixcamError: a bad file at startup is the caller's call
            current = Config() if data is None else parse_config(data, self.path)
        self._current = current

    @property
    def current(self) -> Config:
        """The last good configuration."""
        return self._current

    def start(self) -> ConfigWatcher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pixcam-config", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def __enter__(self) -> ConfigWatcher:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # a callback bug must not end hot reload
                log.exception("config watcher")

    def check(self) -> None:
        """One poll: notice a change and call the callbacks. Also called by the thread.

        New content (valid or not) is acted on only once it has read the same on two polls
        in a row: an editor that truncates and then writes in place is caught half-way now
        and then, and a valid prefix of the new file must not become "the last good" config.
        """
        with self._lock:
            stat_now = self._stat_key()
            recent = stat_now is not None and time.time() - stat_now[0] / 1e9 < self.RACY_SECONDS
            if stat_now == self._stat and self._pending is None and not recent:
                return
            self._stat = stat_now
            error: str | None = None
            data: bytes | None = None
            try:
                data = _read(self.path)
                digest = _digest(data)
            except PixcamError as exc:
                error, digest = str(exc), f"unreadable:{exc}"
            if digest == self._digest:
                self._pending = None
                return
            # Unreadable (a FIFO, a folder) is no save under way: it needs no settling.
            settled = error is not None or self._settled(stat_now)
            if digest != self._pending or not settled:
                self._pending = digest  # settle first: act if the next poll reads the same
                return
            self._pending = None
            try:
                if error is not None:
                    raise PixcamError(error)
                config = Config() if data is None else parse_config(data, self.path)
            except PixcamError as exc:
                self._bad(str(exc), digest)
                return
            # A fix that brings back the running settings (CRLF, BOM, comments only, empty
            # or deleted file) changes nothing, but it must still clear the reported error.
            recovered = self._reported is not None
            self._digest, self._reported = digest, None
            changed = config != self._current or recovered
            self._current = config
        if changed:
            self._on_change(config)

    def _bad(self, message: str, digest: str) -> None:
        self._digest = digest
        if digest != self._reported:
            self._reported = digest
            if self._on_error is not None:
                self._on_error(message)

    def _settled(self, stat_key: tuple[int, ...] | None) -> bool:
        """The file was last written `settle` seconds ago or more (a deleted one is settled)."""
        return stat_key is None or time.time() - stat_key[0] / 1e9 >= self.settle

    def reload(self) -> Config:
        """Re-read (SIGHUP, `pixcam ctl reload`): the Config for the caller to apply, or
        PixcamError. Not reported to `on_change`, so it is applied once.

        A file written less than `settle` seconds ago is waited for (a save may be under
        way), at most `settle` seconds more. On an error the last good config stays current
        and `on_error` is not called: the caller reports it (the ctl reply, the daemon's log).
        """
        deadline = time.monotonic() + self.settle
        while not self._settled(self._stat_key()) and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            data = _read(self.path)
            config = Config() if data is None else parse_config(data, self.path)
            self._adopt(config, data)
        return config

    def set_values(self, values: Mapping[str, Any]) -> Config:
        """`set_values` on the watched file (tray, `pixcam ctl set`): one write, and the Config
        for the caller to apply; the next poll knows the content and reports nothing."""
        with self._lock:
            config = set_values(self.path, values)
            self._adopt(config, _read(self.path))
        return config

    def _adopt(self, config: Config, data: bytes | None) -> None:
        """Make `config` (read from `data`) current, under the lock."""
        self._stat, self._digest = self._stat_key(), _digest(data)
        self._pending = self._reported = None
        self._current = config

    def _stat_key(self) -> tuple[int, ...] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev, st.st_ctime_ns)


def _digest(data: bytes | None) -> str:
    return "missing" if data is None else hashlib.sha256(data).hexdigest()
