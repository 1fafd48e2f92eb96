"""CPU of the runner with no viewer: camera closed, the idle card going out, over `--seconds`.

The pipeline starts paused (as the on-demand daemon does before anyone watches) with a sink
that converts each frame to I420 the way pyvirtualcam does for v4l2loopback, and the config
watcher polls as in the daemon. CPU is the process's user+system ticks from /proc/self/stat
over the window, as a share of one core.

    .venv/bin/python bench/idle_cpu.py [--seconds 60] [--settle 2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _needs import run

from pixcam.config import ConfigWatcher, load_config
from pixcam.runner.pipeline import Pipeline
from pixcam.tools.bench_pipeline import I420Sink

REPO = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    """This process's user + system CPU so far, from /proc (what `top` reads)."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--settle", type=float, default=2.0, help="seconds before measuring")
    args = ap.parse_args()
    cfg = load_config(None)
    sent: list[int] = []

    def sink(_spec: object, w: int, h: int, fps: float) -> I420Sink:
        s = I420Sink(w, h, fps)
        send = s.send
        s.send = lambda f: (sent.append(1), send(f))[1]  # type: ignore[method-assign]
        return s

    pipe = Pipeline(cfg, start_paused=True, sink_opener=sink, keepalive=True)
    watcher = ConfigWatcher(REPO / "config" / "default.toml", lambda *_a: None)
    pipe.start()
    watcher.start()
    time.sleep(args.settle)  # past start-up
    c0, t0, n0 = cpu_seconds(), time.monotonic(), len(sent)
    time.sleep(args.seconds)
    c1, t1, n1 = cpu_seconds(), time.monotonic(), len(sent)
    state = pipe.status()["state"]
    watcher.stop()
    pipe.stop()
    share = (c1 - c0) / (t1 - t0)
    print(
        f"idle over {t1 - t0:.0f} s: {share:.2%} of one core, "
        f"{(n1 - n0) / (t1 - t0):.1f} idle frames/s sent, state {state}"
    )
    return 0


if __name__ == "__main__":
    run(main)
