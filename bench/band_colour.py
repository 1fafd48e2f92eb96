"""Colour error of the composite near the person's outline: what a halo costs, in numbers.

Each dev photo (../shared/data/segmentation/dev) is composited over a solid colour twice: with
the product's alpha (`pixcam segment --alpha`: the model, then the refiner in single-image
mode, default settings) through `pixcam.compose.Compositor`, and with the ground-truth mask
(the reference: the person's pixels over the new colour). The error is the mean absolute
difference (0..1, mean over B, G, R) over the pixels within ±8 px of the true outline.

Colours: `contrast` is the complement of the photo's own background near the person (where a
halo shows most), then black and white. Rows: the compositor without and with the edge-colour
correction (`ComposeSettings.edge_colour`, pixcam/fgcolor.py). Run:

    .venv/bin/python bench/band_colour.py [--limit N] [--model NAME]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "bench"))

from boundary_error import DEV, boundary_band, load_dev  # noqa: E402

from pixcam.compose import ComposeSettings, Compositor  # noqa: E402
from pixcam.refine import RefineSettings  # noqa: E402
from pixcam.segment import load_segmenter  # noqa: E402
from pixcam.segment_cli import live_alpha  # noqa: E402

ROWS = {"blend only": False, "edge colour": True}


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
    args = ap.parse_args()
    if not DEV.is_dir():
        print(f"no dev photos at {DEV}", file=sys.stderr)
        return 1
    cv2.setNumThreads(1)
    seg = load_segmenter(args.model, threads=1)
    colours = ("contrast", "black", "white")
    errors: dict[tuple[str, str], list[float]] = {(r, c): [] for r in ROWS for c in colours}
    n = 0
    for sample in load_dev(args.limit):
        image, truth = sample.image, sample.truth
        alpha = live_alpha(seg, image, RefineSettings(smoothing=0))
        band = boundary_band(truth, 8)
        fixed = {"black": np.zeros(3, np.uint8), "white": np.full(3, 255, np.uint8)}
        for cname in colours:
            bgr = contrast_colour(image, truth) if cname == "contrast" else fixed[cname]
            reference = np.where(truth[..., None], image, bgr[None, None, :]).astype(np.uint8)
            for row, edge in ROWS.items():
                comp = Compositor(
                    ComposeSettings(background="color", color=hex_colour(bgr), edge_colour=edge)
                )
                errors[(row, cname)].append(band_error(comp.compose(image, alpha), reference, band))
        n += 1
    print(f"band colour error (mean |composite - truth composite|, 0..1, ±8 px), {n} photos")
    print(f"{'':<14}" + "".join(f"{c:>10}" for c in colours))
    base = {c: statistics.fmean(errors[("blend only", c)]) for c in colours}
    for row in ROWS:
        means = [statistics.fmean(errors[(row, c)]) for c in colours]
        print(f"{row:<14}" + "".join(f"{m:10.4f}" for m in means))
    after = [statistics.fmean(errors[("edge colour", c)]) for c in colours]
    change = [100 * (a / base[c] - 1) for a, c in zip(after, colours, strict=True)]
    print(f"{'change':<14}" + "".join(f"{v:9.1f}%" for v in change))
    return 0


if __name__ == "__main__":
    sys.exit(main())
