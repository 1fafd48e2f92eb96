"""Per-frame cost of the refine and compose stages at 720p and 1080p, 1 and 2 OpenCV threads.

Uses a real frame (../shared/data/video/presenter-1280x720.mp4, upscaled for 1080p) and its
real person probability when the segmenter and model are installed, else a synthetic
probability (a blurred ellipse): refine's cost does not depend on the mask's content. Prints
the median wall and process-CPU ms over `--frames` calls; on a shared machine quote the CPU
column for cost and compare rows within one run. `time_refine()` and `time_compose()` can be
imported. With a model installed, the last row is the whole chain as the pipeline runs it
(`effects.Effects`, default settings), for scale.

    .venv/bin/python bench/stages.py [--frames 60] [--sizes 720p,1080p] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from _needs import run

from pixcam.chain.compose import ComposeSettings, Compositor
from pixcam.chain.effects import Effects, EffectsSettings
from pixcam.chain.refine import Refiner, RefineSettings, probability_size
from pixcam.chain.segment import load_segmenter
from pixcam.config import Config
from pixcam.models import ModelNotInstalled

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
BG_IMAGE = SHARED / "images" / "girl-919048_1280.jpg"
BG_VIDEO = SHARED / "video" / "doctor-desk-960x540.mp4"


def median_ms(fn: Callable[[], object], frames: int, warmup: int = 5) -> tuple[float, float]:
    """Median (wall, process-CPU) ms per call. On a shared, loaded machine the CPU time is
    the steadier estimate of cost; wall time shows what 2 threads actually buy."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(frames):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def test_frame(size: tuple[int, int]) -> np.ndarray:
    cap = cv2.VideoCapture(str(SHARED / "video" / "presenter-1280x720.mp4"))
    ok, frame = cap.read()
    cap.release()
    if not ok:  # no shared data: a textured stand-in
        frame = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)


def probability(frame: np.ndarray) -> np.ndarray:
    """Person probability at the size the chain asks for: the real segmenter's if available."""
    fh, fw = frame.shape[:2]
    try:
        out = load_segmenter(None, threads=1).run(frame)
        return out.person_probability(size=probability_size(fw, fh, out.cell))
    except ModelNotInstalled:  # any plausible mask costs the same
        w, h = probability_size(fw, fh, math.inf)
        prob = np.zeros((h, w), np.float32)
        cv2.ellipse(prob, (w // 2, h), (w // 4, int(h * 0.8)), 0, 0, 360, 1.0, -1)
        return cv2.GaussianBlur(prob, (0, 0), 2)


def time_refine(frame: np.ndarray, prob_small: np.ndarray, frames: int = 60) -> tuple[float, float]:
    """Median ms of `Refiner.refine` with the default settings (smoothing on, state kept)."""
    refiner = Refiner(RefineSettings())
    return median_ms(lambda: refiner.refine(frame, prob_small), frames)


def time_compose(
    frame: np.ndarray, alpha: np.ndarray, settings: ComposeSettings, frames: int = 60
) -> tuple[float, float]:
    """Median ms of `Compositor.compose`; a background video advances one frame per call."""
    fake_now = [0.0]

    def clock() -> float:
        fake_now[0] += 1 / 30  # a 30 fps camera: a video background decodes on most calls
        return fake_now[0]

    comp = Compositor(settings, clock=clock)
    try:
        return median_ms(lambda: comp.compose(frame, alpha), frames)
    finally:
        comp.close()


def time_chain(frame: np.ndarray, frames: int = 60) -> tuple[float, float] | None:
    """Median ms of the whole chain with the default settings; None without a model."""
    try:
        seg = load_segmenter(None, threads=1)
    except ModelNotInstalled:  # the stage rows still stand
        return None
    effects = Effects(EffectsSettings.from_config(Config()), seg)
    return median_ms(lambda: effects.process(frame), frames)


def naive_float_blur_compose(frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Reference only: the straightforward float compositor the real one replaces."""
    a = alpha.astype(np.float32)[..., None] / 255
    f = frame.astype(np.float32)
    den = cv2.GaussianBlur(1 - a, (0, 0), 18)[..., None] + 1e-3
    bg = cv2.GaussianBlur(f * (1 - a), (0, 0), 18) / den
    return (f * a + bg * (1 - a)).astype(np.uint8)


def compose_cases() -> dict[str, ComposeSettings]:
    cases = {
        "compose blur 40": ComposeSettings(background="blur", blur_strength=40),
        "compose blur 100": ComposeSettings(background="blur", blur_strength=100),
        "compose blur 10": ComposeSettings(background="blur", blur_strength=10),
        "compose color": ComposeSettings(background="color"),
        "compose none": ComposeSettings(background="none"),
        "compose none+mirror": ComposeSettings(background="none", mirror=True),
        "compose blur 40+mirror": ComposeSettings(blur_strength=40, mirror=True),
    }
    if BG_IMAGE.is_file():
        cases["compose image"] = ComposeSettings(background="image", image=str(BG_IMAGE))
    if BG_VIDEO.is_file():
        cases["compose video 960x540"] = ComposeSettings(background="video", video=str(BG_VIDEO))
    return cases


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--sizes", default=",".join(SIZES), help="of " + ", ".join(SIZES))
    ap.add_argument("--threads", default="1,2", help="OpenCV thread counts")
    args = ap.parse_args()
    if unknown := set(args.sizes.split(",")) - set(SIZES):
        ap.error(f"--sizes: {', '.join(sorted(unknown))} unknown; use {', '.join(SIZES)}")
    sizes = {s: SIZES[s] for s in args.sizes.split(",")}
    threads_list = [int(t) for t in args.threads.split(",")]
    rows: dict[str, dict[str, tuple[float, float]]] = {}
    for label, (w, h) in sizes.items():
        frame = test_frame((w, h))
        prob_small = probability(frame)
        alpha = Refiner(RefineSettings(smoothing=0)).refine(frame, prob_small)
        for threads in threads_list:
            cv2.setNumThreads(threads)
            col = f"{label} {threads}t"
            refine_ms = time_refine(frame, prob_small, args.frames)
            rows.setdefault("refine (default)", {})[col] = refine_ms
            for name, settings in compose_cases().items():
                rows.setdefault(name, {})[col] = time_compose(frame, alpha, settings, args.frames)
            # The blend only covers the box around alpha > 0: worst case, the whole frame.
            wide = alpha.copy()
            wide[0, 0] = wide[-1, -1] = 1
            for name in ("compose blur 40", "compose color"):
                rows.setdefault(name + " (full box)", {})[col] = time_compose(
                    frame, wide, compose_cases()[name], args.frames
                )
            rows.setdefault("naive float blur (ref)", {})[col] = median_ms(
                lambda f=frame, a=alpha: naive_float_blur_compose(f, a), max(2, args.frames // 4)
            )
            chain = time_chain(frame, args.frames)
            if chain is not None:
                rows.setdefault("chain (Effects)", {})[col] = chain
    cols = [f"{s} {t}t" for s in sizes for t in threads_list]
    print(f"median ms per frame over {args.frames} calls, wall / process CPU")
    print(f"{'stage':<24}" + "".join(f"{c:>14}" for c in cols))
    for name, vals in rows.items():
        print(f"{name:<24}" + "".join(f"{vals[c][0]:7.2f}/{vals[c][1]:<6.2f}" for c in cols))
    return 0


if __name__ == "__main__":
    run(main)
