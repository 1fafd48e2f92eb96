"""Where pixcam keeps things, said once (XDG base directories).

A relative `$XDG_*_HOME` is invalid by the spec and ignored, like an unset one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _xdg(variable: str, default: Path) -> Path:
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else default


def config_home() -> Path:
    """`$XDG_CONFIG_HOME`, `~/.config` by default."""
    return _xdg("XDG_CONFIG_HOME", Path.home() / ".config")


def data_home() -> Path:
    """`$XDG_DATA_HOME`, `~/.local/share` by default."""
    return _xdg("XDG_DATA_HOME", Path.home() / ".local" / "share")


def cache_home() -> Path:
    """`$XDG_CACHE_HOME`, `~/.cache` by default."""
    return _xdg("XDG_CACHE_HOME", Path.home() / ".cache")


def config_file() -> Path:
    """The user's settings: `$XDG_CONFIG_HOME/pixcam/config.toml`."""
    return config_home() / "pixcam" / "config.toml"


def models_dir() -> Path:
    """`$PIXCAM_MODELS_DIR`, else `$XDG_DATA_HOME/pixcam/models`."""
    override = os.environ.get("PIXCAM_MODELS_DIR")
    return Path(override) if override else data_home() / "pixcam" / "models"


def backgrounds_dir() -> Path:
    """The user's own background images: `$XDG_DATA_HOME/pixcam/backgrounds`."""
    return data_home() / "pixcam" / "backgrounds"


def runtime_dir() -> Path:
    """`$XDG_RUNTIME_DIR/pixcam`, or a private `pixcam-<uid>` in the temp dir without it."""
    base = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(base) and os.path.isdir(base):
        return Path(base) / "pixcam"
    return Path(tempfile.gettempdir()) / f"pixcam-{os.getuid()}"


def dev_videos() -> Path | None:
    """Where the benches find their default videos: `$PIXCAM_DEV_VIDEOS`, or None (then a
    bench needs `--video`). An installed pixcam knows no developer folder of its own."""
    folder = os.environ.get("PIXCAM_DEV_VIDEOS")
    return Path(folder) if folder else None
