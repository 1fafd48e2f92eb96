"""Auto-tune trace: output fps and the chosen step over time, with a CPU hog part of the way.

Runs the live runner (`pipeline.Pipeline`) on a real video played at its own rate (as a camera
would deliver it) into a sink that drops the frames, samples `status()` every `--every`
seconds, and from `--hog-at` to `--hog-until` runs `--hogs` busy processes on the CPUs this
process may use (start it under `taskset -c 0` to give it, and the hog, one core). The share
column is how much of those CPUs the trace and its hogs got (1: no other program ran there).

    taskset -c 0 .venv/bin/python bench/autotune_trace.py [--seconds 60] [--model NAME]
        [--video FILE] [--fps N] [--every 1] [--hogs 1] [--hog-at 10] [--hog-until 40] [--csv]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _needs import lacking, need, run

from pixcam.config import Config
from pixcam.runner.pipeline import Pipeline
from pixcam.video.sinks import Sink, SinkSpec
from pixcam.video.sources import SourceSpec

REPO = Path(__file__).resolve().parents[1]

VIDEO = REPO.parent / "shared" / "data" / "video" / "presenter-1280x720.mp4"
HOG = "while True: pass"


class DropSink(Sink):
    """Takes frames at any rate and keeps none (the runner counts what it sends)."""

    def __init__(self, width: int, height: int, fps: float) -> None:
        self.name, self.width, self.height, self.fps = "drop", width, height, fps

    def send(self, frame: np.ndarray) -> None:
        self.check_shape(frame)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads, so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CoreShare:
    """The share of this trace's CPUs that the trace and its hogs had since the last call: near
    1 while they have those CPUs to themselves, less while other programs take turns there."""

    def __init__(self, cpus: int) -> None:
        self.cpus = cpus
        self._t = time.monotonic()
        self._seen = {os.getpid(): cpu_seconds(os.getpid())}  # a new hog starts from 0

    def __call__(self, hogs: list[subprocess.Popen[bytes]]) -> float:
        now, used = time.monotonic(), 0.0
        for pid in (os.getpid(), *(h.pid for h in hogs)):
            with contextlib.suppress(OSError):  # a hog that ended meanwhile
                cpu = cpu_seconds(pid)
                used += cpu - self._seen.get(pid, 0.0)
                self._seen[pid] = cpu
        share = used / max(1e-6, (now - self._t) * self.cpus)
        self._t = now
        return round(share, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", default=str(VIDEO))
    ap.add_argument("--model", default="default")
    ap.add_argument("--fps", type=int, default=0, help="output rate (0: the video's)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--every", type=float, default=1.0)
    ap.add_argument("--hogs", type=int, default=1)
    ap.add_argument("--hog-at", type=float, default=10.0)
    ap.add_argument("--hog-until", type=float, default=40.0)
    ap.add_argument("--csv", action="store_true", help="comma-separated rows")
    args = ap.parse_args()
    need(args.video, "the video")
    if args.hogs and shutil.which("taskset") is None:
        lacking("taskset (util-linux) is not installed: it pins the hogs to the trace's CPUs")
    cfg = Config().with_values({"model.name": args.model, "output.fps": args.fps})
    cpus = sorted(os.sched_getaffinity(0))
    pipe = Pipeline(
        cfg,
        SourceSpec(path=args.video, loop=True, realtime=True),
        SinkSpec(device="drop"),
        sink_opener=lambda spec, w, h, fps: DropSink(w, h, fps),
        keepalive=False,
    )
    pipe.start()
    hogs: list[subprocess.Popen[bytes]] = []
    share = CoreShare(len(cpus))
    t0 = time.monotonic()
    if args.csv:
        print("t_s,fps,target_fps,level,levels,segment_ms,total_ms,hog,core_share,step")
    else:
        print(
            f"# {args.video}, model {args.model}, CPUs {cpus}, "
            f"hog {args.hog_at:g}-{args.hog_until:g} s"
        )
        print("  t_s    fps target level/of seg_ms total_ms hog share  step / reason")
    try:
        while (t := time.monotonic() - t0) < args.seconds:
            if not hogs and args.hog_at <= t < args.hog_until:
                pin = ["taskset", "-c", ",".join(map(str, cpus))]
                hogs = [
                    subprocess.Popen([*pin, sys.executable, "-c", HOG]) for _ in range(args.hogs)
                ]
            elif hogs and t >= args.hog_until:
                stop(hogs)
                hogs = []
            st = pipe.status()
            tune = st["auto_tune"] or {}
            total = st["stages_ms"].get("total", 0.0)
            seg = st["stages_ms"].get("segment", 0.0)
            level, target = tune.get("level", 0), tune.get("target_fps", 0.0)
            levels = len(tune.get("steps", ()))  # the last level: nothing left to give up
            hog, step = "yes" if hogs else "no", tune.get("step")
            got = share(hogs)
            if args.csv:
                print(
                    f"{t:.1f},{st['fps']},{target},{level},{levels},{seg},{total},{hog},{got},{step}"
                )
            else:
                print(
                    f"{t:5.1f} {st['fps']:6.1f} {target:6.1f} {level:5d}/{levels} {seg:6.1f} "
                    f"{total:8.1f} {hog:>3} {got:5.2f}  {step} / {tune.get('reason')}"
                )
            sys.stdout.flush()
            time.sleep(args.every)
    finally:
        stop(hogs)
        pipe.stop()


def stop(hogs: list[subprocess.Popen[bytes]]) -> None:
    for h in hogs:
        h.terminate()
        h.wait()


if __name__ == "__main__":
    run(main)
