"""How long a background change takes to show in pixcam's output, in real time.

A tray click or `pixcam ctl set effects.background ...` reaches the runner as a new
configuration (`Pipeline.apply`, what the daemon calls); the image is read and prepared off
the frame thread, then the frame chain switches. This runs the live runner on the presenter
video, looped and paced like a camera, into a sink that keeps each frame's top-left corner
(background in that video), switches the background in turn (colour, image, blur) for
`--rounds` rounds and times each change from the call to the first frame out whose corner
differs from the frames before it. It also gives the largest gap between frames out during the
changes and with nothing changing (the frame thread must never wait on a change).

Options: `--rounds 5`, `--settle 1.5` (seconds between changes).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

import numpy as np
from _needs import PRESENTER, need, run

from pixcam import models
from pixcam.chain.effects import EffectsSettings
from pixcam.config import Config
from pixcam.i420 import I420, Frame, halved, yuv_to_bgr
from pixcam.runner.pipeline import Pipeline
from pixcam.video.sinks import Sink, SinkSpec
from pixcam.video.sources import SourceSpec

REPO = Path(__file__).resolve().parents[1]

CHANGES = (
    ("colour", {"effects.background": "color", "effects.color": "#20c020"}),
    ("image", {"effects.background": "image", "effects.image": "warm-office.png"}),
    ("blur", {"effects.background": "blur"}),
)
CORNER = 0.12  # the corner patch: this share of the frame's width and height
SEEN = 12.0  # mean |difference| (0..255) of the corner that counts as the change showing
START_TIMEOUT_S = 120.0
CHANGE_TIMEOUT_S = 30.0


def corner_bgr(frame: Frame) -> np.ndarray:
    """The frame's top-left corner in BGR. An I420 frame's corner is converted alone: the sink
    runs on the frame thread, where converting the whole frame would add to what is timed."""
    h, w = frame.shape[:2]
    ch, cw = max(2, int(h * CORNER)) & ~1, max(2, int(w * CORNER)) & ~1
    if isinstance(frame, I420):
        y, u, v = frame.y[:ch, :cw], frame.u[: ch // 2, : cw // 2], frame.v[: ch // 2, : cw // 2]
        return yuv_to_bgr(halved(y, 1), u, v, frame.full_range)
    return frame[:ch, :cw]


class CornerSink(Sink):
    """Keeps the time each frame went out and its corner's mean colour. The gaps are measured
    from these times over the bench's own windows: the runner's `largest_gap_ms` covers only
    its last 10 s."""

    name = "corner recorder"

    def __init__(self, width: int, height: int, fps: float) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.lock = threading.Lock()
        self.frames: list[tuple[float, np.ndarray]] = []

    def send(self, frame: Frame) -> None:
        now = time.monotonic()
        colour = corner_bgr(frame).reshape(-1, 3).mean(axis=0)
        with self.lock:
            self.frames.append((now, colour))

    def since(self, t: float) -> list[tuple[float, np.ndarray]]:
        with self.lock:
            return [f for f in self.frames if f[0] >= t]


def largest_gap(frames: list[tuple[float, np.ndarray]]) -> float:
    times = [t for t, _ in frames]
    return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


def wait_running(pipe: Pipeline, sink_box: list[CornerSink]) -> CornerSink:
    """The sink, once the model is loaded and frames go out."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        status = pipe.status()
        if sink_box and status["model"] and status["state"] == "running":
            return sink_box[0]
        time.sleep(0.2)
    raise SystemExit(f"pixcam did not start running within {START_TIMEOUT_S:.0f} s")


def time_change(pipe: Pipeline, sink: CornerSink, cfg: Config, settle: float) -> float:
    """Seconds from `apply` to the first frame whose corner differs from before it."""
    before = [c for _, c in sink.since(time.monotonic() - settle / 2)]
    reference = np.mean(before, axis=0)
    t0 = time.monotonic()
    pipe.apply(cfg)
    while time.monotonic() < t0 + CHANGE_TIMEOUT_S:
        for t, corner in sink.since(t0):
            if float(np.abs(corner - reference).mean()) > SEEN:
                return t - t0
        time.sleep(0.01)
    raise SystemExit(f"a change did not show within {CHANGE_TIMEOUT_S:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--settle", type=float, default=1.5, help="seconds between changes")
    args = ap.parse_args()
    need(PRESENTER, "the benchmark video")
    cfg = Config()  # the defaults, not the user's file
    models.resolve(EffectsSettings.from_config(cfg).model.name)  # not installed: the bench ends
    sink_box: list[CornerSink] = []

    def open_sink(_spec: SinkSpec, w: int, h: int, fps: float) -> CornerSink:
        sink_box.append(CornerSink(w, h, fps))
        return sink_box[-1]

    pipe = Pipeline(
        cfg,
        SourceSpec(path=str(PRESENTER), loop=True, realtime=True),
        SinkSpec(device=str(cfg.output.device)),  # as the daemon opens it
        sink_opener=open_sink,
        keepalive=True,
    )
    pipe.start()
    seen: dict[str, list[float]] = {name: [] for name, _ in CHANGES}
    try:
        sink = wait_running(pipe, sink_box)
        quiet_from = time.monotonic()
        time.sleep(args.settle * len(CHANGES))
        quiet_gap = largest_gap(sink.since(quiet_from))
        changes_from = time.monotonic()
        for _ in range(args.rounds):
            for name, values in CHANGES:
                cfg = cfg.with_values(values)
                seen[name].append(time_change(pipe, sink, cfg, args.settle))
                time.sleep(args.settle)
        change_gap = largest_gap(sink.since(changes_from))
        fps = pipe.status()["fps"]
    finally:
        pipe.stop()
    print(f"background change → seen in pixcam's output, {args.rounds} rounds, 720p presenter:")
    for name, values in seen.items():
        print(
            f"  {name:<7} median {1e3 * statistics.median(values):6.0f} ms "
            f"(max {1e3 * max(values):.0f} ms)"
        )
    print(
        f"largest gap between frames out: {1e3 * change_gap:.0f} ms during the changes, "
        f"{1e3 * quiet_gap:.0f} ms with nothing changing (output {fps:.1f} fps)"
    )
    return 0


if __name__ == "__main__":
    run(main)
