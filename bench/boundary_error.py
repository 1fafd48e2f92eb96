"""Boundary error of the mask: raw upsampled probability vs `pixcam.chain.refine.Refiner`.

On the dev photos (../shared/data/segmentation/dev) with their ground-truth person masks, it
measures near the true person outline, where the halo lives:

- MAE8: mean |alpha - truth| (0..1) over pixels within ±8 px of the true boundary;
- MAE3%: the same in a band of ±3 % of the image's short side;
- IoU: intersection over union of (alpha ≥ 0.5) with the truth, over the whole image;
- bIoU: the same IoU restricted to the ±8 px band (boundary IoU);
- halo8: mean alpha (0..1) on true background within 8 px of the person: the visible halo.

Probability sources (--source):
- `degraded` (default, no model needed): the truth grown by 2 px, downsampled to 1/16 with
  INTER_AREA and blurred: the blocky, slightly too wide soft map of a stride-16 network;
- `model`: the real segmenter (`pixcam.chain.segment.load_segmenter`, 1 thread).

Rows: `raw-soft` (bilinear-upsampled probability used as alpha), `raw-thresh` (same,
thresholded at 0.5), and the refiner with a few settings. With `--alphas DIR` (repeatable) the
rows are instead the product's own alphas, as `pixcam segment --out-dir DIR --alpha` wrote
them (DIR/NAME.alpha.png), e.g. for one preset or config each. Run:

    .venv/bin/python bench/boundary_error.py [--source model] [--work-scale 4] [--limit N]
    .venv/bin/python bench/boundary_error.py --alphas out/balanced --alphas out/best
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from _needs import need, run

from pixcam.chain.refine import Refiner, RefineSettings, probability_size

REPO = Path(__file__).resolve().parents[1]
DEV = REPO.parent / "shared" / "data" / "segmentation" / "dev"


@dataclass
class Sample:
    name: str
    image: np.ndarray
    truth: np.ndarray  # bool H×W
    upper_body: bool


def load_dev(limit: int | None = None) -> Iterator[Sample]:
    with open(DEV / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows[:limit]:
        image = cv2.imread(str(DEV / "images" / f"{row['name']}.jpg"), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(DEV / "masks" / f"{row['name']}.png"), cv2.IMREAD_GRAYSCALE)
        yield Sample(row["name"], image, mask > 127, row["upper_body_framing"] == "1")


def degrade(truth: np.ndarray, stride: int = 16, grow: int = 2) -> np.ndarray:
    """A network-like probability on its output grid: the truth grown by `grow` px (BodyPix
    over-extends the person a little), area-downsampled to 1/stride and blurred."""
    h, w = truth.shape
    t = truth.astype(np.uint8)
    if grow:
        t = cv2.dilate(t, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
    grid = cv2.resize(
        t.astype(np.float32),
        (max(2, round(w / stride)), max(2, round(h / stride))),
        interpolation=cv2.INTER_AREA,
    )
    return cv2.GaussianBlur(grid, (0, 0), 0.7)


def boundary_band(truth: np.ndarray, width: float) -> np.ndarray:
    """Pixels within `width` px of the boundary between truth and not-truth."""
    t = truth.astype(np.uint8)
    inside = cv2.distanceTransform(t, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - t, cv2.DIST_L2, 5)
    # Distance to the other side: ≤ width on either side of the outline.
    return ((inside > 0) & (inside <= width)) | ((outside > 0) & (outside <= width))


def scores(alpha_u8: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    a = alpha_u8.astype(np.float32) / 255
    t = truth.astype(np.float32)
    band8 = boundary_band(truth, 8)
    band_rel = boundary_band(truth, 0.03 * min(truth.shape))
    err = np.abs(a - t)
    fg = alpha_u8 >= 128

    def iou(region: np.ndarray) -> float:
        union = ((fg | truth) & region).sum()
        return float(((fg & truth) & region).sum() / union) if union else 1.0

    return {
        "MAE8": float(err[band8].mean()),
        "MAE3%": float(err[band_rel].mean()),
        "IoU": iou(np.ones_like(truth)),
        "bIoU": iou(band8),
        "halo8": float(a[band8 & ~truth].mean()),
    }


ProbFn = Callable[[np.ndarray, tuple[int, int]], np.ndarray]


def degraded_source(sample: Sample) -> ProbFn:
    grid = degrade(sample.truth)
    return lambda _img, size: cv2.resize(grid, size, interpolation=cv2.INTER_LINEAR)


def model_source() -> Callable[[Sample], ProbFn]:
    from pixcam.chain.segment import load_segmenter

    seg = load_segmenter(None, threads=1)

    def make(sample: Sample) -> ProbFn:
        out = seg.run(sample.image)
        return lambda _img, size: out.person_probability(size=size)

    return make


def methods() -> dict[str, RefineSettings | None]:
    return {
        "raw-soft": None,
        "raw-thresh": None,
        "refine feather=0": RefineSettings(smoothing=0, feather=0),
        "refine feather=6": RefineSettings(smoothing=0, feather=6),
        "no-edge feather=0": RefineSettings(smoothing=0, feather=0, edge_aware=False),
    }


def evaluate(samples: list[Sample], source: Callable[[Sample], ProbFn], work_scale: int) -> None:
    results: dict[str, list[tuple[bool, dict[str, float]]]] = {m: [] for m in methods()}
    for sample in samples:
        h, w = sample.image.shape[:2]
        prob_at = source(sample)
        full = prob_at(sample.image, (w, h))
        # These sources are as coarse as BodyPix: no finer than the refiner's grid (a larger
        # probability would be taken for a fine model's outline).
        gw, gh = probability_size(w, h, math.inf)
        sw, sh = max(8, round(w / work_scale)), max(8, round(h / work_scale))
        small = prob_at(sample.image, (min(gw, sw), min(gh, sh)))
        for name, settings in methods().items():
            if name == "raw-soft":
                alpha = np.clip(full * 255 + 0.5, 0, 255).astype(np.uint8)
            elif name == "raw-thresh":
                alpha = np.where(full >= 0.5, 255, 0).astype(np.uint8)
            else:
                alpha = Refiner(settings).refine(sample.image, small)
            results[name].append((sample.upper_body, scores(alpha, sample.truth)))
    print_table(results, len(samples))


def evaluate_dirs(samples: list[Sample], dirs: list[Path]) -> None:
    results: dict[str, list[tuple[bool, dict[str, float]]]] = {d.name: [] for d in dirs}
    for sample in samples:
        for d in dirs:
            alpha = cv2.imread(str(d / f"{sample.name}.alpha.png"), cv2.IMREAD_GRAYSCALE)
            if alpha is None or alpha.shape != sample.truth.shape:
                raise SystemExit(f"{d}/{sample.name}.alpha.png is missing or the wrong size")
            results[d.name].append((sample.upper_body, scores(alpha, sample.truth)))
    print_table(results, len(samples))


def print_table(results: dict[str, list[tuple[bool, dict[str, float]]]], n: int) -> None:
    keys = ["MAE8", "MAE3%", "IoU", "bIoU", "halo8"]
    n_ub = sum(ub for ub, _ in next(iter(results.values())))
    width = max(20, *(len(k) + 1 for k in results))
    print(f"{'method':<{width}}" + "".join(f"{k:>8}" for k in keys) + " | upper-body subset")
    print(f"{'(mean over images)':<{width}}" + f"{'all ' + str(n):>40} | {'n=' + str(n_ub):>8}")
    for name, rows in results.items():
        all_means = [statistics.fmean(r[k] for _, r in rows) for k in keys]
        ub_means = [statistics.fmean(r[k] for ub, r in rows if ub) for k in keys] if n_ub else []
        line = f"{name:<{width}}" + "".join(f"{v:8.4f}" for v in all_means)
        print(line + " | " + "".join(f"{v:8.4f}" for v in ub_means))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=["degraded", "model"], default="degraded")
    ap.add_argument("--work-scale", type=int, default=4, help="frame / working-grid size ratio")
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos")
    ap.add_argument("--alphas", type=Path, action="append", help="score DIR/NAME.alpha.png")
    args = ap.parse_args()
    need(DEV, "the dev photos")
    cv2.setNumThreads(1)
    samples = list(load_dev(args.limit))
    if args.alphas:
        print(f"alphas from {', '.join(map(str, args.alphas))}, photos={len(samples)}")
        evaluate_dirs(samples, args.alphas)
        return 0
    source = degraded_source if args.source == "degraded" else model_source()
    print(f"source={args.source} work-scale=1/{args.work_scale} photos={len(samples)}")
    evaluate(samples, source, args.work_scale)
    return 0


if __name__ == "__main__":
    run(main)
