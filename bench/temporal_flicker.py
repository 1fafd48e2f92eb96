"""Mask flicker vs lag of `Refiner`'s temporal smoothing, on the shared videos with the model.

Per video and smoothing value, over the first `--frames` frames:
- flicker: mean |alpha_t - alpha_{t-1}| (0..255) on pixels whose picture did not change
  (grey-level change < 3 at a 1/4 downscale): mask change there is pure network noise;
- lag: mean |alpha_t - alpha_t(smoothing 0)| on pixels whose picture changed (≥ 12 levels):
  how far the smoothed mask trails a moving person.

    .venv/bin/python bench/temporal_flicker.py [--frames 120] [--quality best] [--video presenter]

`--quality` runs a `[model] quality` preset (as the pipeline does); without it, the model alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from _needs import need, run

from pixcam.chain.refine import Refiner, RefineSettings, probability_size

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "data" / "video"

SMOOTHING = (0.0, 0.5, 0.8, 0.95)


def frames_and_probs(
    path: Path, n: int, quality: str | None = None, resolution: int = 0, every: str = ""
) -> list[tuple[np.ndarray, np.ndarray]]:
    from pixcam.chain.segment import fused as fused_module
    from pixcam.chain.segment import load_segmenter
    from pixcam.chain.segment.fused import FusedSegmenter

    seg = load_segmenter(None, threads=2, internal_resolution=resolution, quality=quality)
    if isinstance(seg, FusedSegmenter):
        seg.steady = True  # a stream, as in the live chain (effects.Effects)
        # Live frames come 33 ms apart; here a loaded machine may space them further.
        fused_module.HOLD_S = float("inf")
        if every:  # BodyPix on one frame in N ("3"), its held output carried ("3c")
            seg.main_every, seg.carry = int(every.rstrip("c")), every.endswith("c")
    cap = cv2.VideoCapture(str(path))
    out = []
    while len(out) < n:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        result = seg.run(frame, parts=False)  # as the live chain runs it (no part effect)
        out.append((frame, result.person_probability(size=probability_size(w, h, result.cell))))
    cap.release()
    return out


def measure(data: list[tuple[np.ndarray, np.ndarray]]) -> dict[float, tuple[float, float]]:
    alphas = {s: [] for s in SMOOTHING}
    for s in SMOOTHING:
        refiner = Refiner(RefineSettings(smoothing=s))
        alphas[s] = [refiner.refine(f, p).astype(np.int16) for f, p in data]
    greys = [
        cv2.cvtColor(cv2.resize(f, None, fx=0.25, fy=0.25), cv2.COLOR_BGR2GRAY) for f, _ in data
    ]
    h, w = data[0][0].shape[:2]
    result = {}
    for s in SMOOTHING:
        flick, lag = [], []
        for t in range(1, len(data)):
            change = cv2.absdiff(greys[t], greys[t - 1])
            change = cv2.resize(change, (w, h), interpolation=cv2.INTER_NEAREST)
            still, moving = change < 3, change >= 12
            flick.append(np.abs(alphas[s][t] - alphas[s][t - 1])[still].mean())
            if moving.any():
                lag.append(np.abs(alphas[s][t] - alphas[0.0][t])[moving].mean())
        result[s] = (float(np.mean(flick)), float(np.mean(lag)) if lag else 0.0)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--quality", choices=("fast", "balanced", "best"), help="a preset")
    ap.add_argument("--internal-resolution", type=int, default=0, help="network input long side")
    ap.add_argument("--video", default="", help="only videos whose name contains this")
    ap.add_argument("--every", default="", help="fused: BodyPix on 1 frame in N; Nc: carried")
    args = ap.parse_args()
    need(VIDEOS, "the shared videos")
    videos = [p for p in sorted(VIDEOS.glob("*.mp4")) if args.video in p.stem]
    if not videos:
        print(f"no videos in {VIDEOS}", file=sys.stderr)
        return 1
    print(f"{'video':<28}{'smoothing':>10}{'flicker':>10}{'lag':>10}")
    for path in videos:
        data = frames_and_probs(
            path, args.frames, args.quality, args.internal_resolution, args.every
        )
        for s, (flicker, lag) in measure(data).items():
            print(f"{path.stem:<28}{s:>10.2f}{flicker:>10.3f}{lag:>10.2f}")
    return 0


if __name__ == "__main__":
    run(main)
