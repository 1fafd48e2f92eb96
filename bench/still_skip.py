"""What skipping the network on a still picture saves, and what it costs in lag.

Per video, every frame goes through two `Effects` chains on one segmenter, in alternating
order: every-frame inference (`model.skip_still = false`) and the skipping chain (the default).
Reported:
- carried: share of frames whose mask was carried instead of inferred;
- CPU ratio: the skipping chain's mean process CPU per frame / the every-frame chain's
  (segment, refine, compose and the motion test; decode and sink are the same for both);
- IoU: of the two chains' masks (alpha ≥ 128) per frame, mean and lowest;
- lag: the longest run of consecutive frames whose mask lost more than 2 % IoU against the
  every-frame mask (a movement the gate did not see at once), in frames.

    taskset -c 1 .venv/bin/python bench/still_skip.py [--frames 240] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "data" / "video"
sys.path.insert(0, str(REPO / "daemon"))

from pixcam.config import load_config  # noqa: E402
from pixcam.effects import Effects, EffectsSettings  # noqa: E402

STALE_IOU = 0.98


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ma, mb = a >= 128, b >= 128
    union = np.count_nonzero(ma | mb)
    return 1.0 if union == 0 else np.count_nonzero(ma & mb) / union


def measure(path: Path, frames: int, threads: int) -> dict[str, float]:
    from pixcam.segment import load_segmenter

    cfg = load_config(None)
    seg = load_segmenter(None, threads=threads, internal_resolution=cfg.model.internal_resolution)
    every = Effects(EffectsSettings.from_config(cfg.with_values({"model.skip_still": False})), seg)
    skip = Effects(EffectsSettings.from_config(cfg.with_values({"model.skip_still": True})), seg)
    carried: list[bool] = []
    cpu = {"every": 0.0, "skip": 0.0}
    ious: list[float] = []
    cap = cv2.VideoCapture(str(path))
    for i in range(frames):
        ok, frame = cap.read()
        if not ok:
            break
        stages: dict[str, float] = {}
        for name in ("every", "skip") if i % 2 else ("skip", "every"):
            fx = every if name == "every" else skip
            c = time.process_time()
            fx.process(frame, on_stage=lambda s, _w, seen=stages: seen.setdefault(s, 0.0))
            cpu[name] += time.process_time() - c
        carried.append("carry" in stages)
        ious.append(iou(every._alpha, skip._alpha))  # noqa: SLF001 - a bench reads the state
    cap.release()
    run = longest = 0
    for c, v in zip(carried, ious, strict=True):
        run = run + 1 if c and v < STALE_IOU else 0
        longest = max(longest, run)
    return {
        "frames": len(carried),
        "carried": float(np.mean(carried)),
        "cpu_ratio": cpu["skip"] / cpu["every"],
        "iou_mean": float(np.mean(ious)),
        "iou_min": float(np.min(ious)),
        "lag": longest,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("videos", nargs="*", default=["presenter-1280x720.mp4", "walking-640x360.mp4"])
    args = ap.parse_args()
    print(
        f"{'video':<26}{'frames':>7}{'carried':>9}{'CPU ratio':>11}{'IoU mean':>10}"
        f"{'IoU min':>9}{'lag':>5}"
    )
    for name in args.videos:
        path = VIDEOS / name
        if not path.is_file():
            print(f"{name}: not found in {VIDEOS}", file=sys.stderr)
            return 1
        r = measure(path, args.frames, args.threads)
        print(
            f"{path.stem:<26}{r['frames']:>7}{r['carried']:>9.0%}{r['cpu_ratio']:>11.2f}"
            f"{r['iou_mean']:>10.3f}{r['iou_min']:>9.3f}{r['lag']:>5}"
        )
    print(f"lag = longest run of carried frames with IoU < {STALE_IOU} against every-frame masks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
