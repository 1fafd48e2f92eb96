"""`pixcam run`: camera (or --input) → effects → virtual camera (or --output), in the foreground."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from pixcam.pipeline import Pipeline
from pixcam.runconfig import load_run_config, with_overrides
from pixcam.sinks import SinkSpec
from pixcam.sources import SourceSpec

log = logging.getLogger("pixcam.run")


def overrides_from_args(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Only the options the user gave; everything else comes from the config."""
    effects: dict[str, Any] = {}
    if args.background is not None:
        effects["background"] = args.background
    if args.image is not None:
        effects["image"] = args.image
        effects.setdefault("background", "image")
    if args.color is not None:
        effects["color"] = args.color
        effects.setdefault("background", "color")
    if args.blur is not None:
        effects["blur_strength"] = args.blur
        effects.setdefault("background", "blur")
    if args.mirror is not None:
        effects["mirror"] = args.mirror
    out: dict[str, dict[str, Any]] = {"effects": effects}
    if args.model is not None:
        out["model"] = {"name": args.model}
    if args.device is not None:
        # The config takes a camera index as an integer ("2" would be an invalid path).
        device = args.device.strip()
        out["camera"] = {"device": int(device) if device.isdigit() else device}
    if args.output_device is not None:
        out["output"] = {"device": args.output_device}
    return {k: v for k, v in out.items() if v}


def run(args: argparse.Namespace) -> int:
    cfg = with_overrides(load_run_config(args.config), overrides_from_args(args))
    source = None
    if args.input:
        # Into a file: every frame once, in order, then stop (offline rendering). Into the
        # virtual camera: behave like a camera (paced, looping, newest frame only).
        live = not args.output
        source = SourceSpec(path=args.input, loop=live, realtime=live)
    sink = SinkSpec(device=str(cfg.output.device), path=args.output)
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
