"""The product's alpha on the dev photos, averaged over a few placements of each photo.

The selfie model's mask moves with its square by a pixel (docs/cut.md), so one set of photos
measures a change to the fused presets only to about ±0.003 IoU. Here every dev photo is
mirror-padded by a few pixels at the left and top (which moves BodyPix's grid and the square
against the person), segmented as `pixcam segment --alpha` does (the photo read the same way,
the configured refine settings, single-image mode), and its alpha cropped back to the photo;
the scores (`boundary_error.py`'s, and `band_colour.py`'s contrast colour) are printed per
placement and as the mean over all of them. Compare two code versions by running each
version's copy of this script.

    .venv/bin/python bench/studies/placements.py [--quality balanced] [--limit N]
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
from band_colour import band_error, contrast_colour, hex_colour  # noqa: E402
from boundary_error import DEV, boundary_band, load_dev, scores  # noqa: E402

from pixcam.chain.compose import ComposeSettings, Compositor  # noqa: E402
from pixcam.chain.effects import EffectsSettings  # noqa: E402
from pixcam.chain.segment import load_segmenter  # noqa: E402
from pixcam.config import load_config  # noqa: E402
from pixcam.tools.segment_cli import live_alpha, read_image  # noqa: E402

# (dx, dy): pixels mirrored in at the left and the top
PLACEMENTS = ((0, 0), (2, 0), (0, 2), (2, 2), (4, 0), (0, 4))
COLUMNS = ("IoU", "upper", "MAE8", "halo8", "colour")


def colour_error(image: np.ndarray, truth: np.ndarray, alpha: np.ndarray) -> float:
    """`band_colour.py`'s contrast row for one photo."""
    bgr = contrast_colour(image, truth)
    reference = np.where(truth[..., None], image, bgr[None, None, :]).astype(np.uint8)
    compositor = Compositor(ComposeSettings(background="color", color=hex_colour(bgr)))
    return band_error(compositor.compose(image, alpha), reference, boundary_band(truth, 8))


def row(results: list[tuple[bool, dict[str, float]]]) -> list[float]:
    upper = [r["IoU"] for u, r in results if u]
    means = [statistics.fmean(r[k] for _, r in results) for k in ("IoU", "MAE8", "halo8")]
    colour = statistics.fmean(r["colour"] for _, r in results)
    return [means[0], statistics.fmean(upper) if upper else float("nan"), *means[1:], colour]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quality", default="balanced", help="a `[model] quality` preset")
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos")
    args = ap.parse_args()
    need(DEV, "the dev photos")
    cv2.setNumThreads(1)
    seg = load_segmenter(None, threads=1, quality=args.quality)
    refine = EffectsSettings.from_config(load_config()).refine
    samples = list(load_dev(args.limit))
    photos = {s.name: read_image(DEV / "images" / f"{s.name}.jpg") for s in samples}
    print(f"{args.quality}, {len(samples)} photos".ljust(30) + "".join(f"{c:>9}" for c in COLUMNS))
    every: list[tuple[bool, dict[str, float]]] = []
    for dx, dy in PLACEMENTS:
        results = []
        for s in samples:
            image = photos[s.name]
            padded = cv2.copyMakeBorder(image, dy, 0, dx, 0, cv2.BORDER_REFLECT_101)
            alpha = np.ascontiguousarray(live_alpha(seg, padded, refine)[dy:, dx:])
            score = scores(alpha, s.truth)
            score["colour"] = colour_error(image, s.truth, alpha)
            results.append((s.upper_body, score))
        every += results
        print(f"mirrored in {dx} px left, {dy} px top".ljust(30) + _cells(row(results)))
    print(f"mean of {len(PLACEMENTS)} placements".ljust(30) + _cells(row(every)))
    return 0


def _cells(values: list[float]) -> str:
    return "".join(f"{v:9.4f}" for v in values)


if __name__ == "__main__":
    run(main)
