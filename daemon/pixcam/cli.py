"""Command line: the only place that parses arguments.

Each sub-command's handler imports what it needs lazily, so `pixcam ctl` stays fast and a
missing optional dependency only affects the command that needs it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from pixcam.errors import PixcamError
from pixcam.interrupt import caused_by_ctrl_c, keep_ctrl_c
from pixcam.modes import BACKGROUNDS, OUTPUT_BACKENDS, QUALITIES
from pixcam.paths import installed_version

log = logging.getLogger("pixcam")

Handler = Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------- models
def _cmd_models_list(args: argparse.Namespace) -> int:
    from pixcam import models

    rows = models.list_models()
    if args.json:
        import json

        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print(models.format_table(rows))
    return 0


def _cmd_models_install(args: argparse.Namespace) -> int:
    from pixcam import models

    for line in models.install(args.source, names=args.name or None, force=args.force):
        print(line, flush=True)
    return 0


def _cmd_models_verify(args: argparse.Namespace) -> int:
    from pixcam import models

    bad = good = 0
    for spec in models.list_models():
        if not spec.present:
            continue
        try:
            models.verify(spec)
            print(f"ok       {spec.name}")
            good += 1
        except PixcamError as exc:
            print(f"FAILED   {exc}")
            bad += 1
    if not good and not bad:  # nothing to check is no success: the stream could not start
        models.check_models_dir()
        raise PixcamError(
            f"no models installed in {models.models_dir()}; install them with "
            "`pixcam models install`"
        )
    return 1 if bad else 0


def _cmd_models_calibrate(args: argparse.Namespace) -> int:
    from pixcam.tools.calibrate_int8 import calibrate

    lines = calibrate(
        args.data,
        model=args.model,
        frames_per_video=args.frames_per_video,
        limit=args.limit,
        out_dir=args.out,
        iou=not args.no_iou,
    )
    for line in lines:
        print(line, flush=True)
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list, install and verify models")
    msub = p.add_subparsers(dest="models_cmd", required=True)
    ls = msub.add_parser("list", help="show the known models and whether each is installed")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(handler=_cmd_models_list)
    ins = msub.add_parser(
        "install",
        help="download the models from their pinned public origins (or copy them with "
        "--from), check each sha256, and make the int8 models",
    )
    ins.add_argument(
        "--from",
        dest="source",
        metavar="DIR_OR_URL",
        help="an offline copy: a folder or URL prefix laid out like ../shared/models "
        "(default: upstream, or $PIXCAM_MODEL_MIRROR/HOST/PATH when that is set)",
    )
    ins.add_argument("--name", action="append", help="install only this model (repeatable)")
    ins.add_argument("--force", action="store_true", help="fetch again even if installed")
    ins.set_defaults(handler=_cmd_models_install)
    ver = msub.add_parser("verify", help="check the sha256 of every installed model")
    ver.set_defaults(handler=_cmd_models_verify)
    cal = msub.add_parser(
        "calibrate",
        help="developers: re-make the int8 models' calibration ranges from licensed photos "
        "and print the sha256 to pin",
    )
    cal.add_argument("--data", type=Path, required=True, help="folder with images/, video/")
    cal.add_argument("--no-iou", action="store_true", help="skip the dev-photo IoU check")
    cal.add_argument("--model", help="only this derived model (default: every one)")
    cal.add_argument("--frames-per-video", type=int, help="frames of each video (default 8)")
    cal.add_argument("--limit", type=int, help="only the first N dev photos")
    cal.add_argument("--out", type=Path, help="folder for the ranges files (default: the package)")
    cal.set_defaults(handler=_cmd_models_calibrate)


# -------------------------------------------------------------------------- segment
def _cmd_segment(args: argparse.Namespace) -> int:
    from pixcam.tools import segment_cli

    return segment_cli.run(args)


def _add_segment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="run BodyPix on images, folders or a video")
    p.add_argument("input", nargs="+", help="image or video file, or several images/folders")
    file_or_flag = {"nargs": "?", "const": "", "metavar": "FILE"}
    p.add_argument("--out", "-o", **file_or_flag, help="mask output (image, or video for a video)")
    p.add_argument(
        "--alpha",
        **file_or_flag,
        help="the alpha the live pipeline composites with (segment + refine, configured)",
    )
    p.add_argument(
        "--out-dir",
        metavar="DIR",
        help="write NAME.mask.png etc. here; give --out/--alpha/... without a file name",
    )
    p.add_argument("--config", metavar="FILE", help="config file (default: the user's)")
    p.add_argument("--model", help="model name (default: the configured one)")
    p.add_argument(
        "--threshold", type=float, help="person threshold 0..1 (default: the configured one)"
    )
    p.add_argument(
        "--internal-resolution",
        type=int,
        help="long side of the network input in pixels (default: the configured one)",
    )
    p.add_argument("--quality", choices=QUALITIES, help="default: the configured one")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--overlay", **file_or_flag, help="also write the mask drawn over the input")
    p.add_argument("--opacity", type=float, default=0.7, help="overlay opacity 0..1")
    p.add_argument(
        "--mask-background",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="colour the background (true) or the person (false) in the mask image",
    )
    p.add_argument("--parts", action="store_true", help="colour the 24 body parts")
    p.add_argument("--probabilities", **file_or_flag, help="also write the probability map (8-bit)")
    p.set_defaults(handler=_cmd_segment)


# ------------------------------------------------------------------------------ run
def _keep_virtual_camera(
    output_file: str | None, output_device: str | None = None, backend: str | None = None
) -> None:
    """Before the heavy imports: a watching app keeps its stream while pixcam starts. Mostly
    started already, from the command line (pixcam/__init__.py); this says what it did."""
    from pixcam.video import keeper

    if output_file or backend == "pipewire":
        keeper.release()  # into a file or PipeWire only: no loopback to keep
    else:
        keeper.start(output_device)


def _cmd_run(args: argparse.Namespace) -> int:
    _keep_virtual_camera(args.output, args.output_device, args.output_backend)
    from pixcam import run

    return run.run(args)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="camera → background effect → virtual camera (foreground)")
    p.add_argument("--input", metavar="FILE", help="use a video file instead of the camera")
    p.add_argument("--output", metavar="FILE", help="write an .mp4 instead of the virtual camera")
    p.add_argument("--device", help="camera: auto, an index or /dev/videoN")
    p.add_argument("--output-device", help="v4l2loopback device to write (default: auto)")
    p.add_argument(
        "--output-backend",
        choices=OUTPUT_BACKENDS,
        help="virtual camera: v4l2loopback, pipewire (no kernel module), both, or auto",
    )
    p.add_argument("--background", choices=BACKGROUNDS)
    p.add_argument("--image", help="background image (implies --background image)")
    p.add_argument("--color", help='background colour "#rrggbb" (implies --background color)')
    p.add_argument("--blur", type=int, metavar="1..100", help="blur strength (implies blur)")
    p.add_argument("--model", help="model name (see `pixcam models list`)")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, help="mirror the picture")
    p.add_argument(
        "--auto-frame",
        action=argparse.BooleanOptionalAction,
        help="keep head and shoulders centred (framing.mode auto/off)",
    )
    p.add_argument(
        "--only-me",
        action=argparse.BooleanOptionalAction,
        help="show only the main person, anyone else as background (people.keep me/all)",
    )
    p.add_argument("--frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--config", metavar="FILE", help="config file (default: the user's)")
    p.set_defaults(handler=_cmd_run)


# --------------------------------------------------------------------------- daemon
def _cmd_daemon(args: argparse.Namespace) -> int:
    _keep_virtual_camera(getattr(args, "output", None))
    from pixcam import daemon

    return daemon.run_from_args(args)


def _add_daemon(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "daemon",
        help="the background service with tray icon and `pixcam ctl` (what `pixcam` alone runs)",
    )
    p.add_argument("--config", metavar="FILE", help="config file (default: the user's)")
    p.add_argument("--input", metavar="FILE", help="loop a video file instead of the camera")
    p.add_argument("--output", metavar="FILE", help="write an .mp4 instead of the virtual camera")
    p.add_argument("--socket", metavar="PATH", help="control socket (default: the user's)")
    p.add_argument("--no-tray", action="store_true", help="no tray icon even with a display")
    p.set_defaults(handler=_cmd_daemon)


# ---------------------------------------------------------------------------- bench
def _cmd_bench(args: argparse.Namespace) -> int:
    from pixcam.tools import bench

    return bench.run(args)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure speed and accuracy on this machine")
    bsub = p.add_subparsers(dest="bench_cmd", required=True)
    seg = bsub.add_parser("segment", help="median ms per inference and IoU per model")
    seg.add_argument("--model", action="append", help="model name (repeatable; default all)")
    seg.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    seg.add_argument("--data", help="folder with images/ and masks/ (default ../shared data)")
    seg.add_argument("--limit", type=int, help="use at most this many photos")
    seg.add_argument("--repeat", type=int, default=20, help="timed inferences per setting")
    seg.add_argument(
        "--internal-resolution", type=int, action="append", help="long side (repeatable)"
    )
    seg.set_defaults(handler=_cmd_bench)
    pipe = bsub.add_parser("pipeline", help="median ms per frame and per pipeline stage")
    pipe.add_argument("--video", help="input video (default ../shared presenter-1280x720.mp4)")
    pipe.add_argument("--model", help="model name (default: the configured one)")
    pipe.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    pipe.add_argument("--quality", choices=QUALITIES, help="[model] quality")
    pipe.add_argument("--frames", type=int, default=40, help="timed frames per setting")
    pipe.add_argument("--background", default="blur", choices=BACKGROUNDS)
    pipe.add_argument(
        "--sizes", default="720,1080,2160", help="frame heights (the video upscaled; 2160 = 4K)"
    )
    pipe.add_argument(
        "--subsampling", default="420", choices=("420", "422"), help="the MJPG's chroma"
    )
    pipe.add_argument(
        "--live",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="also run the live pipeline on a replayed 30 fps MJPG camera this long per size "
        "and report fps and capture-to-sink latency (0: skip)",
    )
    pipe.add_argument(
        "--internal-resolution", type=int, default=0, help="network input long side (0: model's)"
    )
    pipe.add_argument(
        "--parts",
        metavar="EFFECTS",
        help="also time body-part effects against the plain pipeline: comma-separated "
        "view, blur-face, pixelate-face, blur-face-hands, or all",
    )
    pipe.set_defaults(handler=_cmd_bench_pipeline)


def _cmd_bench_pipeline(args: argparse.Namespace) -> int:
    from pixcam.tools import bench_pipeline

    return bench_pipeline.run(args)


# --------------------------------------------------------------------------- doctor
def _cmd_doctor(args: argparse.Namespace) -> int:
    from pixcam.tools import doctor

    return doctor.run(config_path=args.config)


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check the environment and explain how to fix problems")
    p.add_argument("--config", help="config file to check (default: the user's config)")
    p.set_defaults(handler=_cmd_doctor)


# ---------------------------------------------------------------------------- setup
def _cmd_setup(args: argparse.Namespace) -> int:
    from pixcam.tools import install_system

    return install_system.run(
        uninstall=args.uninstall, dry_run=args.dry_run, yes=args.yes, start=args.start
    )


def _add_setup(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "setup",
        help="install v4l2loopback's config (sudo) and the autostart files (no sudo)",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be done, do nothing")
    p.add_argument("--uninstall", action="store_true", help="remove what setup installed")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--start",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start the systemd user service right away",
    )
    p.set_defaults(handler=_cmd_setup)


# ------------------------------------------------------------------------------ ctl
def _cmd_ctl(args: argparse.Namespace) -> int:
    from pixcam import control

    return control.run_ctl(
        args.ctl_cmd,
        getattr(args, "key", None),
        getattr(args, "value", None),
        path=args.socket,
        raw=args.json,
    )


def _add_ctl(sub: argparse._SubParsersAction) -> None:
    # --json/--socket on every sub-command, so they go where people type them: at the end.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the raw JSON reply")
    common.add_argument("--socket", help="control socket (default: the running instance's)")
    p = sub.add_parser("ctl", help="control the running pixcam (status, set, toggle, ...)")
    csub = p.add_subparsers(dest="ctl_cmd", required=True)
    csub.add_parser("status", parents=[common], help="show the running state and settings")
    s = csub.add_parser(
        "set", parents=[common], help="change a setting and save it to the config file"
    )
    s.add_argument("key", help="a config key such as effects.background")
    s.add_argument("value", help='a TOML value (true, 40, 0.5, ["face"]) or plain text')
    csub.add_parser("toggle", parents=[common], help="switch the effects on/off")
    csub.add_parser("reload", parents=[common], help="re-read the config file")
    csub.add_parser("quit", parents=[common], help="stop the running pixcam")
    csub.add_parser("pause", parents=[common], help="switch the camera off until resume")
    csub.add_parser("resume", parents=[common], help="undo pause")
    a = csub.add_parser("away", parents=[common], help='show the "be right back" card, or not')
    a.add_argument("key", metavar="on|off", choices=("on", "off"))
    p.set_defaults(handler=_cmd_ctl)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixcam", description="Virtual webcam with BodyPix background blur and replacement."
    )
    parser.add_argument("--version", action="version", version=f"pixcam {installed_version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    sub = parser.add_subparsers(dest="command")
    _add_models(sub)
    _add_segment(sub)
    _add_bench(sub)
    _add_run(sub)
    _add_doctor(sub)
    _add_setup(sub)
    _add_ctl(sub)
    _add_daemon(sub)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="pixcam: %(levelname)s: %(message)s")


class _GuardedOutput:
    """sys.stdout whose write errors (a full disk, `> /dev/full`, an I/O error) are one
    PixcamError line; a closed pipe stays BrokenPipeError (the reader left: nothing to say)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        with self._errors_said():
            return self._stream.write(text)

    def flush(self) -> None:
        with self._errors_said():
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    @contextlib.contextmanager
    def _errors_said(self) -> Iterator[None]:
        try:
            yield
        except BrokenPipeError:
            raise
        except OSError as exc:
            _drop_output(self._stream)  # what stays buffered must not fail again at exit
            raise PixcamError(f"cannot write the output: {exc.strerror or exc}") from None


def _drop_output(stream: TextIO) -> None:
    """Point the output's descriptor at /dev/null, so Python's flush at exit says nothing."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # not a real file (a test's capture)
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for `ls | head -1`'s ls


def main(argv: Sequence[str] | None = None) -> int:
    keep_ctrl_c()  # an early Ctrl-C, swallowed during the imports, still ends pixcam
    stdout = sys.stdout
    sys.stdout = _GuardedOutput(stdout)  # type: ignore[assignment]
    try:
        return _main(argv)
    except KeyboardInterrupt:  # at any moment, parsing included: Ctrl-C's usual exit
        return 130
    except BrokenPipeError:  # `pixcam models list | head -1`: the reader has what it wanted
        _drop_output(stdout)
        return SIGPIPE_EXIT
    except PixcamError as exc:  # the output failing in argparse's --help or --version
        return _report(exc)
    except Exception as exc:
        if caused_by_ctrl_c(exc):
            return 130
        raise
    finally:
        sys.stdout = stdout


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None and args.command is None:
        handler = _cmd_daemon  # bare `pixcam`: start the daemon (`--help` still prints help)
    if handler is None:
        parser.print_help()
        return 2
    try:
        code = handler(args)
        sys.stdout.flush()  # a full disk shows here, not in Python's flush at exit
        return code
    except PixcamError as exc:
        return _report(exc)


def _report(exc: PixcamError) -> int:
    """The error on stderr, each line marked (several problems are a line each); exit 1."""
    for line in str(exc).splitlines() or [""]:
        print(f"pixcam: {line}", file=sys.stderr)
    return 1
