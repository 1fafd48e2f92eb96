"""Every XDG path comes from `paths.py`, and a relative `$XDG_*_HOME` is ignored (the spec)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pixcam import config, control, models, paths


def test_every_path_follows_the_xdg_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "d"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("PIXCAM_MODELS_DIR", raising=False)
    assert config.config_path() == tmp_path / "c" / "pixcam" / "config.toml"
    assert models.models_dir() == tmp_path / "d" / "pixcam" / "models"
    assert paths.background_dirs()[0] == tmp_path / "d" / "pixcam" / "backgrounds"
    assert control.socket_path() == tmp_path / "pixcam" / "control.sock"
    monkeypatch.setenv("PIXCAM_MODELS_DIR", str(tmp_path / "m"))
    assert models.models_dir() == tmp_path / "m"


def test_relative_xdg_homes_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/config")
    monkeypatch.setenv("XDG_DATA_HOME", "relative/data")
    monkeypatch.delenv("PIXCAM_MODELS_DIR", raising=False)
    assert paths.config_home() == Path.home() / ".config"
    assert models.models_dir() == Path.home() / ".local" / "share" / "pixcam" / "models"


@pytest.mark.parametrize("home", ["", "relative/home"])
def test_an_empty_or_relative_home_is_the_accounts_home(
    monkeypatch: pytest.MonkeyPatch, home: str
) -> None:
    """Python takes HOME="" as / (root's `models install` wrote /.local/share/pixcam) and a
    relative HOME as below the current folder."""
    import pwd

    from pixcam.video import keeper_cache

    account = Path(pwd.getpwuid(os.getuid()).pw_dir)
    monkeypatch.setenv("HOME", home)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "PIXCAM_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert paths.config_file() == account / ".config" / "pixcam" / "config.toml"
    assert models.models_dir() == account / ".local" / "share" / "pixcam" / "models"
    assert keeper_cache.cache_file() == str(account / ".cache" / "pixcam" / "last-output")


def test_a_background_given_as_dot_slash_name_is_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --image ./photo.jpg` was "not found in …/backgrounds": pathlib drops the "./", so
    it looked like a bare name to search for."""
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "photo.jpg").write_bytes(b"x")
    monkeypatch.chdir(tmp_path / "here")
    assert paths.find_background("./photo.jpg").resolve() == tmp_path / "here" / "photo.jpg"
    assert paths.find_background("../here/photo.jpg").resolve() == tmp_path / "here" / "photo.jpg"
