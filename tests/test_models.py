"""Model manifest, installation with sha256 checks, and the clear errors around them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import SHARED_MODELS, need
from pixcam import cli, models
from pixcam.errors import PixcamError


@pytest.fixture
def private_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "models"
    monkeypatch.setenv("PIXCAM_MODELS_DIR", str(target))
    return target


def test_manifest_entries_are_complete() -> None:
    specs = models.list_models()
    names = [s.name for s in specs]
    assert len(names) == len(set(names))
    assert models.default_model_name() in names
    families = {s.family for s in specs}
    assert {"bodypix", "selfie"} <= families
    for spec in specs:
        assert len(spec.sha256) == 64
        assert "segments" in spec.outputs
        assert spec.input in ("minus_one_one", "zero_one", "uint8")


def test_install_copies_and_verifies(private_models: Path) -> None:
    need(SHARED_MODELS, "shared models")
    lines = list(models.install(str(SHARED_MODELS), names=["selfie-general"]))
    assert lines[0].startswith("installed selfie-general")
    spec = models.get_spec("selfie-general")
    assert spec.installed and models.verify(spec) == private_models / spec.file
    again = list(models.install(str(SHARED_MODELS), names=["selfie-general"]))
    assert "already installed" in again[0]
    assert not list(private_models.glob(".*"))  # no temporary files left behind


def test_altered_source_is_not_installed(private_models: Path, tmp_path: Path) -> None:
    need(SHARED_MODELS, "shared models")
    spec = models.get_spec("selfie-general")
    bad_source = tmp_path / "source"
    (bad_source / Path(spec.source).parent).mkdir(parents=True)
    data = bytearray((SHARED_MODELS / spec.source).read_bytes())
    data[1000] ^= 0xFF
    (bad_source / spec.source).write_bytes(bytes(data))
    with pytest.raises(PixcamError, match="could not be installed"):
        list(models.install(str(bad_source), names=["selfie-general"]))
    lines: list[str] = []
    with pytest.raises(PixcamError, match="could not be installed"):
        lines.extend(models.install(str(bad_source)))
    assert any(line.startswith("FAILED   selfie-general") for line in lines)
    assert not spec.installed


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_damaged_install_gives_one_clear_line(
    private_models: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    need(SHARED_MODELS, "shared models")
    list(models.install(str(SHARED_MODELS), names=["selfie-general"]))
    spec = models.get_spec("selfie-general")
    if damage == "truncate":
        spec.path.write_bytes(spec.path.read_bytes()[:5000])
    elif damage == "flip":
        data = bytearray(spec.path.read_bytes())
        data[-10] ^= 0x01
        spec.path.write_bytes(bytes(data))
    else:
        spec.path.unlink()
    image = need(SHARED_MODELS.parent / "data" / "images" / "doctor-5871743_640.jpg", "photo")
    code = cli.main(["segment", str(image), "--out", str(private_models / "m.png"),
                     "--model", "selfie-general"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "Traceback" not in err[0]
    assert "selfie-general" in err[0] or spec.file in err[0]
    assert "pixcam models install" in err[0]
    if damage != "delete":
        assert spec.sha256[:12] in err[0]  # expected hash shown


def test_corrupt_model_with_right_hash_fails_cleanly(
    private_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file that is not a TFLite flatbuffer at all must still give a PixcamError.
    from pixcam.chain.segment.engine import Engine

    bogus = private_models / "bogus.tflite"
    private_models.mkdir(parents=True)
    bogus.write_bytes(b"not a model" * 100)
    with pytest.raises(PixcamError, match="could not be loaded"):
        Engine(bogus)


def test_models_list_json(models_installed, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert {"name", "family", "path", "sha256", "weights", "capabilities", "installed"} <= set(
        rows[0]
    )
    assert by_name["bodypix-050-s16-float"]["capabilities"] == ["person", "parts"]
    assert by_name["selfie-general"]["capabilities"] == ["person"]
    installed_families = {r["family"] for r in rows if r["installed"]}
    assert {"bodypix", "selfie"} <= installed_families


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(PixcamError, match="known models: .*bodypix-050-s16-float"):
        models.get_spec("bodypicks")


def test_install_from_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(PixcamError, match="not a folder"):
        list(models.install(str(tmp_path / "nowhere")))


def test_install_from_file_url(private_models: Path) -> None:
    need(SHARED_MODELS, "shared models")
    lines = list(models.install(SHARED_MODELS.as_uri(), names=["selfie-landscape"]))
    assert lines[0].startswith("installed selfie-landscape")
    shutil.rmtree(private_models)


@pytest.mark.parametrize("command", ["segment", "run"])
def test_first_run_without_models_says_how_in_one_line(
    private_models: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    image = need(SHARED_MODELS.parent / "data" / "images" / "doctor-5871743_640.jpg", "photo")
    out = private_models.parent / "out"
    argv = {
        "segment": ["segment", str(image), "--out", f"{out}.png"],
        "run": ["run", "--input", str(image), "--output", f"{out}.mp4", "--frames", "1"],
    }[command]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    default = models.default_model_name()
    assert f"model {default} is not installed" in err[0]
    assert err[0].endswith("install it with `pixcam models install`")


def test_a_check_then_a_load_hash_the_model_once_and_run_the_bytes_they_hashed(
    private_models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ctl set model.name` checks the model (runner/usable.py), then the stream loads it: one
    read and one sha256 for both, and the interpreter gets exactly those bytes. A file changed
    since (even to the same size and mtime) is read and refused again."""
    import hashlib
    import os

    from pixcam.chain.segment import engine, load_segmenter

    need(SHARED_MODELS, "shared models")
    list(models.install(str(SHARED_MODELS), names=["selfie-general"]))
    spec = models.get_spec("selfie-general")
    hashed: list[int] = []
    real_sha256 = hashlib.sha256
    monkeypatch.setattr(
        hashlib, "sha256", lambda data=b"": hashed.append(len(data)) or real_sha256(data)
    )
    given: list[dict[str, object]] = []
    real_cls = engine.interpreter_class()

    def recording(**kwargs: object) -> object:
        given.append(kwargs)
        return real_cls(**kwargs)

    monkeypatch.setattr(engine, "interpreter_class", lambda: recording)
    models.resolve(spec.name)  # the check before saving
    load_segmenter(spec.name)  # the load that follows
    assert hashed == [spec.path.stat().st_size]
    assert given[0].get("model_content") == spec.path.read_bytes() and "model_path" not in given[0]
    st = spec.path.stat()
    data = bytearray(spec.path.read_bytes())
    data[-10] ^= 0x01
    spec.path.write_bytes(bytes(data))
    os.utime(spec.path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    with pytest.raises(PixcamError, match="damaged or altered"):
        models.resolve(spec.name)


@pytest.mark.parametrize("kind", ["folder", "fifo", "loop", "dev-zero"])
def test_a_special_file_in_place_of_a_model_is_named(
    private_models: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder, FIFO, symlink loop or /dev/zero where a model file belongs: said what it is,
    never "not installed" or "not made yet"; `models verify` exits 1 and `run` does not hang."""
    import os

    need(SHARED_MODELS, "shared models")
    list(models.install(str(SHARED_MODELS), names=["selfie-general"]))
    spec = models.get_spec("selfie-general")
    spec.path.unlink()
    if kind == "folder":
        spec.path.mkdir()
    elif kind == "fifo":
        os.mkfifo(spec.path)
    elif kind == "loop":
        spec.path.symlink_to(spec.path.name)
    else:
        spec.path.symlink_to("/dev/zero")
    said = {"folder": "is a folder", "fifo": "named pipe", "loop": "symlink loop"}
    with pytest.raises(PixcamError, match=said.get(kind, "is a device")) as caught:
        models.resolve(spec.name)
    assert "not installed" not in str(caught.value) and str(spec.path) in str(caught.value)
    assert cli.main(["models", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"FAILED   model file {spec.path}" in out


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_verify_fails_on_a_missing_or_empty_model_folder(
    private_models: Path, state: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if state == "empty":
        private_models.mkdir()
    assert cli.main(["models", "verify"]) == 1
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).strip().splitlines()
    assert len(lines) == 1 and "no models installed" in lines[0]
    assert "pixcam models install" in lines[0]


def test_a_full_disk_while_quantizing_leaves_no_temporary_file(
    tmpfs: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The float model fits, the int8 one made from it does not: one line, and neither the
    quantized model's temporary file nor a partial is left to keep the disk full."""
    pytest.importorskip("ai_edge_quantizer")
    need(SHARED_MODELS, "shared models")
    disk = tmpfs("2600k")
    monkeypatch.setenv("PIXCAM_MODELS_DIR", str(disk / "models"))
    name = models.default_model_name()
    assert cli.main(["models", "install", "--from", str(SHARED_MODELS), "--name", name]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0], err
    assert err[0].startswith(f"pixcam: {name}: cannot write in "), err  # the int8 one
    assert not [p.name for p in (disk / "models").iterdir() if p.name.startswith(".")]
