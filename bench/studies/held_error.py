"""How far a held BodyPix output takes the fused mask from the one BodyPix on every frame gives.

Per video: the refined alpha (smoothing 0.5) with BodyPix on one frame in N (`--every`, "Nc":
carried) against BodyPix on every frame, the mean |difference| (0..255) over all pixels and
over the pixels whose picture changed (≥ 12 grey levels at 1/4 size, as `temporal_flicker.py`).

    PYTHONPATH=daemon .venv/bin/python bench/studies/held_error.py --every 2,4,6 [--frames 120]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _needs import need, run  # noqa: E402
from temporal_flicker import VIDEOS, frames_and_probs  # noqa: E402

from pixcam.chain.refine import Refiner, RefineSettings  # noqa: E402


def alphas(data: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    refiner = Refiner(RefineSettings(smoothing=0.5))
    return [refiner.refine(f, p).astype(np.int16) for f, p in data]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--every", default="2,4,6")
    args = ap.parse_args()
    need(VIDEOS, "the shared videos")
    print(f"{'video':<28}{'every':>8}{'all':>8}{'moving':>8}")
    for path in sorted(VIDEOS.glob("*.mp4")):
        ref_data = frames_and_probs(path, args.frames, "balanced", every="1")
        ref = alphas(ref_data)
        greys = [
            cv2.cvtColor(cv2.resize(f, None, fx=0.25, fy=0.25), cv2.COLOR_BGR2GRAY).astype(int)
            for f, _ in ref_data
        ]
        for every in args.every.split(","):
            got = alphas(frames_and_probs(path, args.frames, "balanced", every=every))
            all_, moving = [], []
            for t in range(1, len(ref)):
                d = np.abs(got[t] - ref[t])
                small = cv2.resize(d.astype(np.float32), greys[t].shape[::-1], cv2.INTER_AREA)
                all_.append(float(d.mean()))
                moved = np.abs(greys[t] - greys[t - 1]) >= 12
                if moved.any():
                    moving.append(float(small[moved].mean()))
            print(f"{path.stem:<28}{every:>8}{np.mean(all_):>8.3f}{np.mean(moving or [0.0]):>8.3f}")
    return 0


if __name__ == "__main__":
    run(main)
