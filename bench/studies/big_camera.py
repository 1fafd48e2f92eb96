"""A 4K MJPG camera into a smaller virtual camera: per-stage cost and live fps.

Per output height (the camera's 2160 lines, and `[output] height` 1080 and 720), one core, one
inference thread, median CPU ms per frame over the presenter video upscaled to 3840×2160 and
encoded as MJPG (quality 90, as webcams send): the decode as the camera source does it
(`mjpg.decode_frame`: I420, at libjpeg-turbo's reduced scale that covers the output and a
bilinear step to its exact size), the chain's stages and what the sink converts (nothing for
I420, BGR→I420 otherwise). Then the live runner on a replayed 30 fps
camera of those frames, on every core the process may use, for `--live` seconds: fps out,
capture-to-sink latency and the process CPU per frame out. Every frame is inferred
(`skip_still` off): a moving picture.

    .venv/bin/python bench/studies/big_camera.py [--frames 30] [--live 10] [--heights 2160,1080,720]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "bench"))  # _needs and the benches a study builds on

from _needs import PRESENTER, need, run  # noqa: E402

from pixcam.chain.effects import Effects, EffectsSettings  # noqa: E402
from pixcam.config import Config, load_config  # noqa: E402
from pixcam.runner.pipeline import output_size  # noqa: E402
from pixcam.tools.bench_pipeline import (  # noqa: E402
    CHAIN,
    WARMUP,
    StageCpuTimes,
    bench_live,
    decode_frames,
    encode_mjpg,
    load_model,
    network_ms,
)
from pixcam.video import mjpg  # noqa: E402
from pixcam.video.sinks import to_device  # noqa: E402

CAMERA_H = 2160
ROWS = ("decode", "segment", "  network", "refine", "compose", "sink", "frame")


def cpu_ms(fn):  # noqa: ANN001, ANN201 - a tiny timing helper
    c = time.process_time()
    out = fn()
    return out, (time.process_time() - c) * 1e3


def stage_costs(cfg: Config, jpegs: list[np.ndarray], out_h: int) -> dict[str, float]:
    """Median CPU ms per stage, one inference thread."""
    w, h = output_size(3840, CAMERA_H, out_h)
    effects = Effects(EffectsSettings.from_config(cfg), load_model(cfg, 1))
    clock = StageCpuTimes()
    samples: dict[str, list[float]] = {r: [] for r in ROWS}
    for i, jpeg in enumerate(jpegs):
        frame, dec = cpu_ms(lambda j=jpeg: mjpg.decode_frame(j, (w, h)))
        clock.start()
        out = effects.process(frame, on_stage=clock)
        _, sink = cpu_ms(lambda o=out: to_device(o))
        if i < WARMUP:
            continue
        row = {"decode": dec, "sink": sink}
        row.update({s: clock.stages[s][1] for s in CHAIN})
        row["  network"] = network_ms(effects)[1]
        row["frame"] = dec + sink + sum(clock.stages[s][1] for s in CHAIN)
        for k, v in row.items():
            samples[k].append(v)
    effects.close()
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--live", type=float, default=10.0)
    ap.add_argument("--heights", default="2160,1080,720")
    args = ap.parse_args()
    need(PRESENTER, "the benchmark video")
    heights = [int(x) for x in args.heights.split(",")]
    base = load_config(None).with_values({"model.skip_still": False})
    jpegs = encode_mjpg(decode_frames(PRESENTER, args.frames + WARMUP), CAMERA_H)
    costs = {h: stage_costs(base, jpegs, h) for h in heights}
    print(
        f"4K MJPG camera, one core, one inference thread: median CPU ms per frame, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"{'output':<12}" + "".join(f"{f'{h}p':>10}" for h in heights))
    for r in ROWS:
        print(f"{r:<12}" + "".join(f"{costs[h][r]:>10.1f}" for h in heights))
    if args.live > 0:
        print(f"\nlive, {args.live:g} s, a 30 fps 4K MJPG camera replayed through the runner:")
        for h in heights:
            c = time.process_time()
            status = bench_live(base.with_values({"output.height": h}), jpegs, args.live)
            cpu = (time.process_time() - c) * 1e3 / max(1, status["frames"])
            lat = status.get("latency_ms") or {}
            # CPU per frame out (every thread, loading included): what 30 fps would cost on a
            # quiet machine, since the fps itself only says how busy this one was.
            print(
                f"  into {h}p: {status['fps']:.1f} fps out, {cpu:.0f} CPU ms per frame out "
                f"({cpu * 30 / 10:.0f} % of a core at 30 fps), latency median "
                f"{lat.get('median', float('nan')):.1f} ms p95 {lat.get('p95', float('nan')):.1f}"
                f" ms, load average {os.getloadavg()[0]:.1f}"
            )
    return 0


if __name__ == "__main__":
    run(main)
