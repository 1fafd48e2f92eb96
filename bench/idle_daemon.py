"""CPU of the whole daemon with no viewer: tray, control socket, config watcher, idle card.

bench/idle_cpu.py measures the runner alone; this runs `daemon.Daemon` itself (what `pixcam`
starts), looping the presenter video as its camera into a sink that converts each frame to
I420 the way pyvirtualcam does for v4l2loopback. Once it runs, the camera is paused as
`pixcam ctl pause` does (camera closed, the idle card going out, as with no viewer), and the
process's user+system CPU (every thread, the tray's GLib loop included) is taken over
`--seconds`, as a share of one core. To include the tray, run it with a display and a tray:

    dbus-run-session -- xvfb-run -a sh -c 'trayer & .venv/bin/python bench/idle_daemon.py'

Options: `--seconds 60`, `--settle 3` (seconds from the pause to the measurement).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _needs import PRESENTER, need, run
from idle_cpu import cpu_seconds

from pixcam.daemon import Daemon
from pixcam.runner.pipeline import Pipeline
from pixcam.tools.bench_pipeline import I420Sink
from pixcam.video.sinks import SinkSpec
from pixcam.video.sources import SourceSpec

REPO = Path(__file__).resolve().parents[1]


def measure(daemon: Daemon, seconds: float, settle: float, result: dict[str, Any]) -> None:
    try:
        deadline = time.monotonic() + 60
        while daemon.status()["pipeline"] is None or daemon.status()["tray"] == "starting":
            if time.monotonic() > deadline:
                raise RuntimeError("the daemon did not start within 60 s")
            time.sleep(0.2)
        daemon.pause_camera(True)
        time.sleep(settle)  # the camera closes, the idle card starts
        c0, t0 = cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        c1, t1 = cpu_seconds(), time.monotonic()
        status = daemon.status()
        result.update(
            share=(c1 - c0) / (t1 - t0),
            seconds=t1 - t0,
            state=status["state"],
            tray=status["tray"],
        )
    finally:
        daemon.quit()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds from pause to measuring")
    args = ap.parse_args()
    need(PRESENTER, "the benchmark video")
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.toml"
        # The defaults (tray on where there is a display), but no on-demand: the discard sink
        # is no device to watch, so the camera runs until the pause below.
        config.write_text("[daemon]\nalways_on = true\n")

        def pipeline(cfg: Any, source: Any, sink: Any, **kw: Any) -> Pipeline:
            opener = lambda _spec, w, h, fps: I420Sink(w, h, fps)  # noqa: E731
            return Pipeline(cfg, source, sink, sink_opener=opener, keepalive=True, **kw)

        daemon = Daemon(
            config,
            source=SourceSpec(path=str(PRESENTER), loop=True, realtime=True),
            sink=SinkSpec(device="discard"),
            socket_path=Path(tmp) / "pixcam.sock",
            pipeline_factory=pipeline,
        )
        result: dict[str, Any] = {}
        threading.Thread(
            target=measure, args=(daemon, args.seconds, args.settle, result), daemon=True
        ).start()
        daemon.run()
    if "share" not in result:
        print("the measurement did not complete", file=sys.stderr)
        return 1
    print(
        f"daemon idle over {result['seconds']:.0f} s: {result['share']:.2%} of one core "
        f"(state {result['state']}, tray {result['tray']})"
    )
    return 0


if __name__ == "__main__":
    run(main)
