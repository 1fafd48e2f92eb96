"""What the refine → compose hand-over costs: its last resize and the compose, paired.

Per size, the presenter video is encoded to MJPG and decoded to I420 as the camera source
does, segmented and refined once per frame (the real model); then the refiner's last step
(its small alpha upscaled to the frame) and the compose (the default blur) are timed in three
ways, in rotating order, each on a fresh pyramid holding the levels segment and refine made:
- before: one whole-frame resize, the full alpha alone handed over (the compositor halves it
  down to the blur's level and finds the box on its half), an odd-sized level halved by the
  general area resize;
- halving: the same, with `i420.halved` (an odd size halved by a bilinear step);
- hand-over: `refine.upscale_alpha` (only the part around the person resized) and the small
  alpha handed over too (`Alpha.small`: the box, the blur's alpha, the half from the box).
Each frame is composed `--rounds` times each way. Printed: median ms of each, the median of
the per-compose differences against "before" (same frame and round), and the output's
difference from "before" in grey levels (largest, and mean over all frames' pixels).

    taskset -c 1 .venv/bin/python bench/studies/alpha_handover.py [--frames 40] [--rounds 3]
        [--sizes 720,1080]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "bench"))  # _needs and the benches a study builds on

from _needs import PRESENTER, need, run  # noqa: E402

from pixcam.chain import pyramid  # noqa: E402
from pixcam.chain.compose import Compositor  # noqa: E402
from pixcam.chain.effects import EffectsSettings  # noqa: E402
from pixcam.chain.refine import Refiner, probability_size, upscale_alpha  # noqa: E402
from pixcam.config import load_config  # noqa: E402
from pixcam.i420 import halved  # noqa: E402
from pixcam.tools.bench_pipeline import (  # noqa: E402
    decode_frames,
    encode_mjpg,
    load_model,
)
from pixcam.video import mjpg  # noqa: E402

WAYS = ("before", "halving", "hand-over")
WARMUP = 3


def general_halved(plane: np.ndarray, times: int) -> np.ndarray:
    """The halving as it was: an odd size went through OpenCV's general area resize."""
    for _ in range(times):
        size = (max(1, plane.shape[1] // 2), max(1, plane.shape[0] // 2))
        plane = cv2.resize(plane, size, interpolation=cv2.INTER_AREA)
    return plane


def measure(height: int, frames: int, rounds: int) -> dict[str, tuple[float, float, int, float]]:
    cfg = load_config(None).with_values({"model.threads": 1})
    settings = EffectsSettings.from_config(cfg)
    seg = load_model(cfg, 1)
    jpegs = encode_mjpg(decode_frames(PRESENTER, frames), height)
    refiner, compositor = Refiner(settings.refine), Compositor(settings.compose)
    ms: dict[str, list[float]] = {w: [] for w in WAYS}
    worst = dict.fromkeys(WAYS, 0)
    mean_diff = dict.fromkeys(WAYS, 0.0)
    for i, jpeg in enumerate(jpegs):
        frame = mjpg.decode_frame(jpeg)
        levels = pyramid.Pyramid(frame)
        out = seg.run(frame, parts=False, pyramid=levels)
        prob = out.person_probability(size=probability_size(frame.width, frame.height, out.cell))
        alpha = refiner.refine_alpha(frame, prob, levels)
        made = sorted(levels._levels)  # what segment and refine asked of the pyramid
        results = {}
        for r in range(rounds):
            start = (i + r) % len(WAYS)
            for way in WAYS[start:] + WAYS[:start]:
                pyramid.halved = general_halved if way == "before" else halved
                fresh = pyramid.Pyramid(frame)
                for k in made:
                    fresh.level(k)
                small = alpha.small if way == "hand-over" else None
                size = (frame.width, frame.height)
                t = time.perf_counter()
                if small is None:
                    full = cv2.resize(alpha.small, size, interpolation=cv2.INTER_LINEAR)
                else:
                    full = upscale_alpha(small, size)
                results[way] = compositor.compose(frame, full, fresh, small=small).data
                if i >= WARMUP:
                    ms[way].append((time.perf_counter() - t) * 1e3)
            pyramid.halved = halved
        for way in WAYS:
            diff = cv2.absdiff(results[way], results["before"])
            worst[way] = max(worst[way], int(diff.max()))
            mean_diff[way] += float(diff.mean()) / len(jpegs)
    return {
        w: (
            statistics.median(ms[w]),
            statistics.median(a - b for a, b in zip(ms[w], ms["before"], strict=True)),
            worst[w],
            mean_diff[w],
        )
        for w in WAYS
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="720,1080")
    args = ap.parse_args()
    need(PRESENTER, "the benchmark video")
    for height in (int(s) for s in args.sizes.split(",")):
        for way, (med, diff, worst, mean) in measure(height, args.frames, args.rounds).items():
            print(
                f"{height}p {way:10s} upscale + compose {med:5.2f} ms  {diff:+.3f} ms  "
                f"output diff max {worst} mean {mean:.3f}"
            )
    return 0


if __name__ == "__main__":
    run(main)
