"""What each auto-tune step saves, and what it changes in the picture: the measured order.

For every step in `autotune.STEPS`, alone on top of the starting settings (stride-8 int8
model, blur, face blur, so every step applies), and then for the levels as auto-tune climbs
them, runs the real chain (`effects.Effects`) on the same frames of a real video, interleaved
with the untouched chain, and prints the median CPU ms per frame (all threads: the cost, which
a busy machine does not inflate the way it does wall time), the CPU ms saved, and the mean
absolute difference of the output picture from the untouched chain's (0..255 levels: the
quality given up). The steps go in order of CPU ms saved per level of picture difference.

    .venv/bin/python bench/studies/autotune_steps.py [--frames 30] [--video FILE]
        [--model bodypix-050-s8-int8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "bench"))  # _needs and the benches a study builds on

from _needs import need, run  # noqa: E402
from partfx_bench import read_frames  # noqa: E402

from pixcam.chain import autotune  # noqa: E402
from pixcam.chain.effects import Effects, EffectsSettings  # noqa: E402
from pixcam.chain.segment import load_segmenter  # noqa: E402
from pixcam.config import Config  # noqa: E402

VIDEO = REPO.parent / "shared" / "data" / "video" / "presenter-1280x720.mp4"


def chain(settings: EffectsSettings) -> Effects:
    m = settings.model
    return Effects(settings, load_segmenter(m.name, m.threads, m.internal_resolution))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--video", default=str(VIDEO))
    ap.add_argument("--model", default="bodypix-050-s8-int8")
    args = ap.parse_args()
    need(args.video, "the video")
    cfg = Config().with_values(
        {"model.name": args.model, "parts.privacy": "blur", "effects.background": "blur"}
    )
    base = EffectsSettings.from_config(cfg)
    res = autotune.base_resolution(base.model)
    steps = autotune.applicable(base)
    # Each step alone (what it saves), then the levels as auto-tune climbs them.
    variants = {"untouched": base} | {s.name: s.apply(base, res) for s in steps}
    variants |= {f"level {k}": autotune.tuned(base, k, res) for k in range(2, len(steps) + 1)}
    chains = {name: chain(s) for name, s in variants.items()}
    clip = read_frames(Path(args.video), args.frames)
    wall: dict[str, list[float]] = {name: [] for name in chains}
    cpu: dict[str, list[float]] = {name: [] for name in chains}
    diff: dict[str, list[float]] = {name: [] for name in chains}
    for frame in clip:
        ref = None
        for name, fx in chains.items():  # interleaved: load changes hit every variant alike
            t, c = time.perf_counter(), time.process_time()
            out = fx.process(frame)
            # CPU time (all threads) is the cost; wall time is what a busy machine adds.
            cpu[name].append((time.process_time() - c) * 1e3)
            wall[name].append((time.perf_counter() - t) * 1e3)
            if ref is None:
                ref = out
            diff[name].append(float(cv2.absdiff(out, ref).mean()))
    skip = min(5, len(clip) // 3)  # the temporal smoothing's first frames
    base_cpu = statistics.median(cpu["untouched"][skip:])
    print(f"{args.video}: {len(clip)} frames, {args.model} at {res} px, medians after {skip}")
    print(
        f"{'step':18} {'wall ms':>8} {'CPU ms':>8} {'CPU saved':>9} {'picture diff':>13} "
        f"{'saved per diff':>14}"
    )
    for name in chains:
        w = statistics.median(wall[name][skip:])
        c = statistics.median(cpu[name][skip:])
        d = statistics.mean(diff[name][skip:])
        per = (base_cpu - c) / d if d > 0 else float("nan")
        print(f"{name:18} {w:8.1f} {c:8.1f} {base_cpu - c:9.1f} {d:13.2f} {per:14.1f}")
    for fx in chains.values():
        fx.close()


if __name__ == "__main__":
    run(main)
