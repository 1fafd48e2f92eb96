"""What the body-part effects add per frame, per effect.

    .venv/bin/python bench/partfx_bench.py [VIDEO] [--frames 60] [--repeats 2] [--threads 1]
        [--model NAME]

Two costs, measured on the same frames in one run (medians; the machine is shared, so compare
numbers from one run only):

- reading the part heatmaps: `seg.run(frame, parts=True)` minus `parts=False`, paired per frame
  with the order alternated, so drift in machine load cancels;
- the "parts" stage of `effects.Effects` (the chain the pipeline runs) for each effect, on the
  camera's own background (background "none"), so it includes what the pipeline does there.

`pixcam bench pipeline --parts` times the same effects within the whole frame. Everything here
runs on one thread (`cv2.setNumThreads(1)`, one XNNPACK thread) unless told otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from _needs import need, run

from pixcam.chain.effects import Effects, EffectsSettings
from pixcam.chain.partfx import PartSettings
from pixcam.chain.segment import load_segmenter
from pixcam.config import Config

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared/data/video/presenter-1280x720.mp4"

MODES: dict[str, PartSettings] = {
    "view": PartSettings(view=True),
    "blur face": PartSettings(privacy="blur"),
    "pixelate face": PartSettings(privacy="pixelate"),
    "blur face+hands": PartSettings(privacy="blur", privacy_parts=("face", "hands")),
    "view + blur face": PartSettings(view=True, privacy="blur"),
}


def read_frames(video: Path, count: int, skip: int = 0) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(video))
    frames: list[np.ndarray] = []
    try:
        for i in range(skip + count):
            ok, frame = capture.read()
            if not ok:
                break
            if i >= skip:
                frames.append(frame)
    finally:
        capture.release()
    if not frames:
        raise SystemExit(f"no frames read from {video}")
    return frames


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def measure(
    video: Path = DEFAULT_VIDEO,
    frames: int = 60,
    threads: int = 1,
    model: str | None = None,
    repeats: int = 2,
) -> dict[str, float]:
    """Median milliseconds per frame: "segment" (parts=False), "segment+parts", "parts read"
    (paired difference), and for each of MODES the effect alone and "+ parts read"."""
    cv2.setNumThreads(threads)
    clip = read_frames(video, frames)
    seg = load_segmenter(model, threads=threads)

    plain, with_parts, diff = [], [], []
    for _ in range(repeats):
        for i, frame in enumerate(clip):
            order = (False, True) if i % 2 else (True, False)
            took: dict[bool, float] = {}
            for parts in order:
                t0 = time.perf_counter()
                seg.run(frame, parts=parts)
                took[parts] = _ms(t0)
            plain.append(took[False])
            with_parts.append(took[True])
            diff.append(took[True] - took[False])

    result = {
        "segment": statistics.median(plain),
        "segment+parts": statistics.median(with_parts),
        "parts read": statistics.median(diff),
    }
    base = EffectsSettings.from_config(Config().with_values({"effects.background": "none"}))
    for name, settings in MODES.items():
        effects = Effects(replace(base, parts=settings), seg)
        times: list[float] = []

        def hook(stage: str, ms: float, times: list[float] = times) -> None:
            if stage == "parts":
                times.append(ms)

        for _ in range(repeats):
            effects.reset()
            for frame in clip:
                effects.process(frame, on_stage=hook)
        result[name] = statistics.median(times)
        result[f"{name} + parts read"] = result[name] + result["parts read"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default=None)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    need(args.video, "the video")
    res = measure(args.video, args.frames, args.threads, args.model, args.repeats)
    width = max(map(len, res))
    print(f"{args.video.name}, {args.frames} frames x {args.repeats}, {args.threads} thread(s)")
    for name, ms in res.items():
        print(f"  {name:<{width}}  {ms:7.2f} ms")
    return 0


if __name__ == "__main__":
    run(main)
