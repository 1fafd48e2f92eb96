"""Thin adapter between `pixcam run`'s options and the configuration.

`load_config` (pixcam.config) gives the validated `Config`; `with_overrides` lays the command
line on top and validates again, so `--blur 500` fails with the same message as in the file.
"""

from __future__ import annotations

from typing import Any

from pixcam.config import Config, load_config
from pixcam.errors import PixcamError


def load_run_config(path: str | None = None) -> Config:
    """The configuration at `path` (None: the user's config file, or the defaults)."""
    return load_config(path)


def with_overrides(cfg: Config, overrides: dict[str, dict[str, Any]]) -> Config:
    """A copy of `cfg` with `overrides[section][key]` replaced, validated again."""
    data = cfg.model_dump()
    for section, values in overrides.items():
        for key, value in values.items():
            if key not in data.get(section, {}):
                raise PixcamError(f"unknown setting [{section}] {key}")
            data[section][key] = value
    try:
        return Config.model_validate(data)
    except ValueError as exc:
        # pydantic's multi-line report → one line per problem, joined.
        errors = getattr(exc, "errors", lambda: [])()
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors
        )
        raise PixcamError(f"invalid option: {detail or exc}") from None
