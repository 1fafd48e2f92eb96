"""The named choices several layers share, said once: the schema, the stages, the CLI and the
tray all take them from here (no heavy imports, so the CLI can build its parser cheaply)."""

from __future__ import annotations

from typing import Literal, get_args

BackgroundMode = Literal["blur", "image", "video", "color", "none"]
PrivacyMode = Literal["none", "blur", "pixelate"]
Quality = Literal["fast", "balanced", "best"]  # `[model] quality`: see segment.load_segmenter
FramingMode = Literal["off", "auto"]
# `[output] backend`: where the virtual camera is published (see video/outputs.py).
OutputBackend = Literal["auto", "v4l2loopback", "pipewire", "both"]

BACKGROUNDS: tuple[str, ...] = get_args(BackgroundMode)
PRIVACY_MODES: tuple[str, ...] = get_args(PrivacyMode)
QUALITIES: tuple[str, ...] = get_args(Quality)
FRAMING_MODES: tuple[str, ...] = get_args(FramingMode)
KeepMode = Literal["all", "me"]  # `[people] keep`: everyone found, or only the main person
AwayMode = Literal["off", "card", "blur"]  # `[people] away`: the "be right back" picture
KEEP_MODES: tuple[str, ...] = get_args(KeepMode)
AWAY_MODES: tuple[str, ...] = get_args(AwayMode)
OUTPUT_BACKENDS: tuple[str, ...] = get_args(OutputBackend)
# What a background image may be: looked up by name (paths) and listed in the tray's menu.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# A still picture as input (`pixcam run --input`); the rest of what OpenCV opens is a video.
STILL_SUFFIXES = (*IMAGE_SUFFIXES, ".tif", ".tiff", ".pgm", ".ppm", ".gif")
