"""`pixcam run`: camera (or --input) → effects → virtual camera (or --output), in the foreground."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from pixcam import paths
from pixcam.config import Config, load_config
from pixcam.errors import PixcamError
from pixcam.modes import STILL_SUFFIXES
from pixcam.runner.pipeline import Pipeline
from pixcam.video.sinks import SinkSpec
from pixcam.video.sources import SourceSpec

log = logging.getLogger("pixcam.run")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Only the options the user gave, as {"section.key": value}; the rest is the config's."""
    out: dict[str, Any] = {}
    if args.background is not None:
        out["effects.background"] = args.background
    # A background's own option implies that background, unless --background says otherwise.
    for option, key, background in (
        (args.image, "effects.image", "image"),
        (args.color, "effects.color", "color"),
        (args.blur, "effects.blur_strength", "blur"),
    ):
        if option is not None:
            out[key] = option
            out.setdefault("effects.background", background)
    if args.mirror is not None:
        out["effects.mirror"] = args.mirror
    if args.auto_frame is not None:
        out["framing.mode"] = "auto" if args.auto_frame else "off"
    if args.only_me is not None:
        out["people.keep"] = "me" if args.only_me else "all"
    if args.model is not None:
        out["model.name"] = args.model
    if args.device is not None:
        # The config takes a camera index as an integer ("2" would be an invalid path).
        device = args.device.strip()
        out["camera.device"] = int(device) if device.isdigit() else device
    if args.output_device is not None:
        out["output.device"] = args.output_device
    if getattr(args, "output_backend", None) is not None:
        out["output.backend"] = args.output_backend
    return out


def files_read(input_path: str | None, cfg: Config) -> dict[str, str | None]:
    """The files a stream reads (what each is → its path), for `check_not_overwriting`."""
    reads: dict[str, str | None] = {"the input": input_path}
    for what, name in (
        ("the background image", cfg.effects.image),
        ("the background video", cfg.effects.video),
    ):
        try:
            reads[what] = str(paths.find_background(name)) if name else None
        except PixcamError:  # not there: nothing to overwrite (the stream says the rest)
            reads[what] = None
    return reads


def run(args: argparse.Namespace) -> int:
    if args.frames is not None and args.frames < 1:  # 0 and -1 wrote one frame, exit 0
        raise PixcamError(f"--frames {args.frames}: give a whole number of 1 or more")
    cfg = load_config(args.config).with_values(overrides_from_args(args))
    if args.output:
        paths.check_not_overwriting(args.output, "--output", files_read(args.input, cfg))
    source = None
    if args.input:
        # Into a file: every frame once, in order, then stop (offline rendering); a still
        # picture with --frames repeats for that many, a clip of it. Into the virtual camera:
        # behave like a camera (paced, looping, newest frame only).
        live = not args.output
        still = Path(args.input).suffix.lower() in STILL_SUFFIXES
        loop = live or (still and args.frames is not None)
        source = SourceSpec(path=args.input, loop=loop, realtime=live)
    sink = SinkSpec(device=str(cfg.output.device), path=args.output, backend=cfg.output.backend)
    pipeline = Pipeline(cfg, source, sink, frames=args.frames)

    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (systemd stop) ends like Ctrl-C: the virtual camera and the file get closed.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pipeline.start()
    try:
        while not stop.is_set() and not pipeline.wait(0.5):
            pass
    finally:
        pipeline.stop()
    status = pipeline.status()
    log.info("%d frames, stages (median ms): %s", status["frames"], status["stages_ms"])
    return 0
