"""What skipping the network on a still picture saves, and what it costs in lag.

Per video, every frame goes through two `Effects` chains on one segmenter, in alternating
order: every-frame inference (`model.skip_still = false`) and the skipping chain (the default).
Reported:
- carried: share of frames whose mask was carried instead of inferred;
- CPU ratio: the skipping chain's mean process CPU per frame / the every-frame chain's
  (segment, refine, compose and the motion test; decode and sink are the same for both);
- IoU: of the two chains' masks (alpha ≥ 128) per frame, mean and lowest;
- lag: the longest run of consecutive frames whose mask lost more than 2 % IoU against the
  every-frame mask (a movement the gate did not see at once), in frames;
- flicker, per chain: mean |alpha_t - alpha_{t-1}| (0..255) on pixels whose picture did not
  change (as bench/temporal_flicker.py: grey change < 3 at a 1/4 downscale);
- carry / infer ms: the skipping chain's median CPU on a carried and on an inferred frame.

    taskset -c 1 .venv/bin/python bench/still_skip.py [--frames 240] [--threads 1] [VIDEO ...]

(VIDEO: names in ../shared/data/video; default the presenter and walking videos.)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from _needs import need, run

from pixcam.chain.effects import Effects, EffectsSettings
from pixcam.config import load_config

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "data" / "video"

STALE_IOU = 0.98
FLICKER_STILL = 3  # grey levels at 1/4 scale: below this the picture did not change


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ma, mb = a >= 128, b >= 128
    union = np.count_nonzero(ma | mb)
    return 1.0 if union == 0 else np.count_nonzero(ma & mb) / union


def still_flicker(
    grey: np.ndarray, prev_grey: np.ndarray, a: np.ndarray, prev_a: np.ndarray
) -> float:
    """Mean alpha change on the pixels whose picture did not change (0 when there are none)."""
    h, w = a.shape
    change = cv2.resize(cv2.absdiff(grey, prev_grey), (w, h), interpolation=cv2.INTER_NEAREST)
    still = change < FLICKER_STILL
    diff = cv2.absdiff(a, prev_a)
    return float(diff[still].mean()) if still.any() else 0.0


def measure(path: Path, frames: int, threads: int) -> dict[str, float]:
    from pixcam.chain.segment import load_segmenter

    cfg = load_config(None).with_values({"model.threads": threads})
    seg = load_segmenter(*EffectsSettings.from_config(cfg).model)  # the configured preset
    every = Effects(EffectsSettings.from_config(cfg.with_values({"model.skip_still": False})), seg)
    skip = Effects(EffectsSettings.from_config(cfg.with_values({"model.skip_still": True})), seg)
    carried: list[bool] = []
    cpu = {"every": 0.0, "skip": 0.0}
    ious: list[float] = []
    frame_cpu: dict[bool, list[float]] = {True: [], False: []}  # skipping chain, by carried
    flicker: dict[str, list[float]] = {"every": [], "skip": []}
    prev: dict[str, np.ndarray] = {}
    prev_grey = None
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
            if name == "skip":
                frame_cpu["carry" in stages].append(time.process_time() - c)
        carried.append("carry" in stages)
        # A bench reads the chains' last refined alpha (its full-size picture).
        alphas = {"every": every._alpha.full, "skip": skip._alpha.full}  # noqa: SLF001
        ious.append(iou(alphas["every"], alphas["skip"]))
        grey = cv2.cvtColor(cv2.resize(frame, None, fx=0.25, fy=0.25), cv2.COLOR_BGR2GRAY)
        for name, a in alphas.items():
            if prev_grey is not None:
                flicker[name].append(still_flicker(grey, prev_grey, a, prev[name]))
            prev[name] = a.copy()
        prev_grey = grey
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
        "flicker_every": float(np.mean(flicker["every"])),
        "flicker_skip": float(np.mean(flicker["skip"])),
        "carry_ms": 1000 * float(np.median(frame_cpu[True])) if frame_cpu[True] else 0.0,
        "infer_ms": 1000 * float(np.median(frame_cpu[False])) if frame_cpu[False] else 0.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("videos", nargs="*", default=["presenter-1280x720.mp4", "walking-640x360.mp4"])
    args = ap.parse_args()
    print(
        f"{'video':<26}{'frames':>7}{'carried':>9}{'CPU ratio':>11}{'IoU mean':>10}"
        f"{'IoU min':>9}{'lag':>5}{'flicker every/skip':>20}{'carry/infer ms':>16}"
    )
    for name in args.videos:
        path = need(VIDEOS / name, "the video")
        r = measure(path, args.frames, args.threads)
        print(
            f"{path.stem:<26}{r['frames']:>7}{r['carried']:>9.0%}{r['cpu_ratio']:>11.2f}"
            f"{r['iou_mean']:>10.3f}{r['iou_min']:>9.3f}{r['lag']:>5}"
            f"{r['flicker_every']:>13.3f} / {r['flicker_skip']:.3f}"
            f"{r['carry_ms']:>9.1f} / {r['infer_ms']:.1f}"
        )
    print(f"lag = longest run of carried frames with IoU < {STALE_IOU} against every-frame masks")
    return 0


if __name__ == "__main__":
    run(main)
