"""Colour error of the composite near the person's outline: what a halo costs, in numbers.

Each dev photo (../shared/data/segmentation/dev) is composited over a solid colour twice: with
the product's alpha (`pixcam segment --alpha`: the model, then the refiner in single-image
mode, default settings) through `pixcam.chain.compose.Compositor`, and with the ground-truth mask
(the reference: the person's pixels over the new colour). The error is the mean absolute
difference (0..1, mean over B, G, R) over the pixels within ±8 px of the true outline.

Colours: `contrast` is the complement of the photo's own background near the person (where a
halo shows most), then black and white. Rows: one per alpha source: the default model and
refine settings computed here, or `--alphas DIR` (repeatable), the files `pixcam segment
--out-dir DIR --alpha` wrote. The last column compares each row with the first.

    .venv/bin/python bench/studies/band_colour.py [--limit N] [--model NAME] [--alphas DIR ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "bench"))

from _needs import need, run  # noqa: E402
from boundary_error import DEV, boundary_band, load_dev  # noqa: E402

from pixcam.chain.compose import ComposeSettings, Compositor  # noqa: E402
from pixcam.chain.refine import RefineSettings  # noqa: E402
from pixcam.chain.segment import load_segmenter  # noqa: E402
from pixcam.tools.segment_cli import live_alpha  # noqa: E402


def hex_colour(bgr: np.ndarray) -> str:
    b, g, r = (int(v) for v in bgr)
    return f"#{r:02x}{g:02x}{b:02x}"


def contrast_colour(image: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The complement of the mean background colour within 30 px of the person."""
    near = cv2.dilate(truth.astype(np.uint8), np.ones((61, 61), np.uint8)).astype(bool) & ~truth
    mean = image[near].mean(axis=0) if near.any() else np.full(3, 128.0)
    return (255 - mean).round().astype(np.uint8)


def band_error(composite: np.ndarray, reference: np.ndarray, band: np.ndarray) -> float:
    diff = cv2.absdiff(composite, reference)[band]
    return float(diff.mean() / 255)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos")
    ap.add_argument("--model", default=None, help="model name (default: the project's)")
    ap.add_argument("--alphas", type=Path, action="append", help="DIR/NAME.alpha.png files")
    args = ap.parse_args()
    need(DEV, "the dev photos")
    cv2.setNumThreads(1)
    seg = None if args.alphas else load_segmenter(args.model, threads=1)
    rows = [d.name for d in args.alphas] if args.alphas else ["default"]
    colours = ("contrast", "black", "white")
    errors: dict[tuple[str, str], list[float]] = {(r, c): [] for r in rows for c in colours}
    fixed = {"black": np.zeros(3, np.uint8), "white": np.full(3, 255, np.uint8)}
    n = 0
    for sample in load_dev(args.limit):
        image, truth = sample.image, sample.truth
        if seg is not None:
            alphas = {"default": live_alpha(seg, image, RefineSettings(smoothing=0))}
        else:
            alphas = {
                d.name: cv2.imread(str(d / f"{sample.name}.alpha.png"), cv2.IMREAD_GRAYSCALE)
                for d in args.alphas
            }
        band = boundary_band(truth, 8)
        for cname in colours:
            bgr = contrast_colour(image, truth) if cname == "contrast" else fixed[cname]
            reference = np.where(truth[..., None], image, bgr[None, None, :]).astype(np.uint8)
            compositor = Compositor(ComposeSettings(background="color", color=hex_colour(bgr)))
            for src, alpha in alphas.items():
                out = compositor.compose(image, alpha)
                errors[(src, cname)].append(band_error(out, reference, band))
        n += 1
    width = max(16, *(len(r) + 1 for r in rows))
    print(f"band colour error (mean |composite - truth composite|, 0..1, ±8 px), {n} photos")
    print(f"{'':<{width}}" + "".join(f"{c:>10}" for c in colours) + "   contrast vs first row")
    first = statistics.fmean(errors[(rows[0], "contrast")])
    for row in rows:
        means = [statistics.fmean(errors[(row, c)]) for c in colours]
        change = 100 * (means[0] / first - 1)
        print(f"{row:<{width}}" + "".join(f"{m:10.4f}" for m in means) + f"{change:+10.1f} %")
    return 0


if __name__ == "__main__":
    run(main)
