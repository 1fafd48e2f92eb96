"""Generate pixcam's bundled background images (deterministic).

Run from anywhere: `python backgrounds/generate.py [--out DIR]`. The PNGs next to this script
are its committed output; regenerate them after changing a recipe here. Every image is
painted in float RGB (0..1), blurred where it should look out of focus, then quantised to
8 bits. Large smooth gradients get a 2x2 ordered (Bayer) dither: they would band visibly in
plain 8-bit, and an ordered dither repeats, so PNG still compresses it to a few hundred KB where
random noise would cost megabytes. Busy images are quantised plainly (their detail hides
banding and the dither would double their size).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

W, H = 1920, 1080
HERE = Path(__file__).resolve().parent

Painter = Callable[[], np.ndarray]


# ------------------------------------------------------------------------------ helpers
def _grid() -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates normalised so y runs 0..1 and x keeps the aspect ratio."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    return (x + 0.5) / H, (y + 0.5) / H


def _hex(colour: str) -> np.ndarray:
    c = colour.lstrip("#")
    return np.array([int(c[i : i + 2], 16) for i in (0, 2, 4)], np.float32) / 255.0


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a + (b - a) * t[..., None]


_BAYER2 = np.array([[0, 2], [3, 1]], np.float32)


def _to_u8(rgb: np.ndarray, dither: bool) -> np.ndarray:
    """Float RGB 0..1 → uint8, optionally with a 2×2 ordered dither against banding.

    2×2 rather than 8×8: it already breaks up the 1-level steps of a slow gradient, and its
    short period keeps the PNG about 40 % smaller than a larger matrix.
    """
    offset = np.zeros((H, W, 1), np.float32)
    if dither:
        threshold = (_BAYER2 + 0.5) / 4.0 - 0.5
        offset = np.tile(threshold, (H // 2, W // 2))[..., None]
    return np.clip(np.floor(rgb * 255.0 + 0.5 + offset), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- recipes
def studio_grey() -> np.ndarray:
    """A seamless grey studio backdrop: lit behind the sitter, soft vignette, faint floor."""
    x, y = _grid()
    cx, cy = W / H / 2, 0.42
    # elliptical distance, wider than tall like a softbox pool of light
    d = np.sqrt(((x - cx) / 1.25) ** 2 + (y - cy) ** 2)
    light = 1.0 - _smoothstep(0.0, 0.95, d)
    base = _mix(_hex("#3a3d41"), _hex("#8d9096"), light**1.4)
    # the paper curving into the floor: a slightly darker, cooler band near the bottom
    floor = _smoothstep(0.78, 1.0, y) * 0.18
    base = base * (1.0 - floor[..., None]) + _hex("#2c3034") * floor[..., None]
    return base


def soft_gradient() -> np.ndarray:
    """Pastel colour field: four soft pools of neighbouring hues (blue, pink, peach, lilac).

    Neighbouring hues and mixing in linear light keep the blends clean; opposite hues mixed
    in sRGB would go muddy grey in between.
    """
    x, y = _grid()
    aspect = W / H
    pools = [
        ((0.05, 0.05), "#8fbbe0", 0.80),  # soft blue, top left
        ((aspect - 0.05, 0.10), "#f2b6c6", 0.75),  # pink, top right
        ((aspect * 0.75, 1.05), "#f7cfa0", 0.75),  # peach, bottom right
        ((0.15, 1.05), "#b7aee6", 0.80),  # lilac, bottom left
    ]
    acc = np.zeros((H, W, 3), np.float32)
    wsum = np.zeros((H, W), np.float32)
    for (px, py), colour, radius in pools:
        w = np.exp(-(((x - px) ** 2 + (y - py) ** 2) / (radius**2)) * 2.0) + 1e-4
        acc += w[..., None] * _hex(colour) ** 2.2
        wsum += w
    rgb = (acc / wsum[..., None]) ** (1 / 2.2)
    # a gentle diagonal light so the field is not flat
    shade = 0.94 + 0.08 * (1.0 - (x / aspect + y) / 2.0)
    return rgb * shade[..., None]


def bokeh() -> np.ndarray:
    """Warm night bokeh: out-of-focus discs of light over a dark blue-brown ground."""
    rng = np.random.default_rng(20240617)
    x, y = _grid()
    ground = _mix(_hex("#1b1a24"), _hex("#2a1e1a"), _smoothstep(0.0, 1.0, y))
    # a faint glow across the middle, like a street far behind
    glow = np.exp(-(((y - 0.55) / 0.28) ** 2)) * 0.10
    rgb = ground + glow[..., None] * _hex("#ffb070")
    palette = [_hex(c) for c in ("#ffc46b", "#ff9a4d", "#ffe2a8", "#f7d08a", "#8fb6ff", "#ff7a5c")]
    light = np.zeros((H, W, 3), np.float32)
    # two depth layers: many small far discs, fewer big near ones blurred more
    for count, rmin, rmax, sigma, strength in ((60, 8, 24, 2.5, 0.50), (18, 45, 110, 7.0, 0.22)):
        layer = np.zeros((H, W, 3), np.float32)
        for _ in range(count):
            # 1/4-pixel precision (shift=2) so small discs stay round
            cx = int(rng.uniform(-0.05, 1.05) * W * 4)
            # bias the lights towards a band through the middle of the frame
            cy = int(np.clip(rng.normal(0.5, 0.2), 0.02, 0.98) * H * 4)
            r = rng.uniform(rmin, rmax)
            colour = palette[rng.integers(len(palette))] * rng.uniform(0.5, 1.0)
            disc = np.zeros((H, W), np.float32)
            cv2.circle(disc, (cx, cy), int(r * 4), 1.0, -1, cv2.LINE_AA, 2)
            # a faintly brighter rim, the mark of a real out-of-focus highlight
            rim = np.zeros((H, W), np.float32)
            cv2.circle(rim, (cx, cy), int(r * 4 * 0.94), 1.0, max(2, int(r * 0.12)), cv2.LINE_AA, 2)
            layer += (disc + rim * 0.25)[..., None] * colour
        light += _blur(layer, sigma) * strength
    # screen blend: lights add up but never clip harshly
    return 1.0 - (1.0 - rgb) * (1.0 - np.clip(light, 0.0, 1.0))


def warm_office() -> np.ndarray:
    """An abstract, heavily defocused warm room: window light, shelves, a plant, a lamp."""
    rng = np.random.default_rng(7)
    x, y = _grid()
    aspect = W / H
    wall = _mix(_hex("#c9ad8c"), _hex("#8a6f55"), _smoothstep(0.0, 1.0, x / aspect * 0.8 + y * 0.3))
    img = wall.copy()

    def rect(x0: float, y0: float, x1: float, y1: float, colour: str, alpha: float = 1.0) -> None:
        m = np.zeros((H, W), np.float32)
        cv2.rectangle(m, (int(x0 * W), int(y0 * H)), (int(x1 * W), int(y1 * H)), 1.0, -1)
        img[:] = _mix(img, np.broadcast_to(_hex(colour), img.shape), m * alpha)

    # window on the left: bright, slightly cool daylight, with mullions
    rect(0.04, 0.08, 0.30, 0.72, "#f4efe6")
    rect(0.165, 0.08, 0.175, 0.72, "#b59a7c")
    rect(0.04, 0.38, 0.30, 0.395, "#b59a7c")
    # bookshelf on the right: dark wood and book spines of muted colours
    rect(0.62, 0.12, 0.95, 0.92, "#5a4232")
    spines = ["#8c3b2e", "#2f4f5f", "#c49a4a", "#6b7a4b", "#d8cbb4", "#45384a", "#a5643c"]
    for shelf_y in (0.18, 0.38, 0.58):
        bx = 0.635
        while bx < 0.93:
            bw = rng.uniform(0.008, 0.02)
            top = shelf_y + rng.uniform(0.0, 0.05)
            rect(bx, top, min(bx + bw, 0.935), shelf_y + 0.16, spines[rng.integers(len(spines))])
            bx += bw + 0.002
    # a floor lamp's warm pool of light between them
    lamp = np.exp(-(((x - aspect * 0.47) ** 2) / 0.05 + ((y - 0.28) ** 2) / 0.06))
    img = img + lamp[..., None] * _hex("#ffc680") * 0.28
    # a plant: a cluster of green blobs in front of the window's lower corner
    plant = np.zeros((H, W), np.float32)
    for _ in range(26):
        px = rng.normal(0.33, 0.035) * W
        py = rng.normal(0.62, 0.08) * H
        cv2.ellipse(
            plant,
            (int(px), int(py)),
            (int(rng.uniform(20, 60)), int(rng.uniform(8, 22))),
            rng.uniform(0, 180),
            0,
            360,
            1.0,
            -1,
        )
    img = _mix(img, np.broadcast_to(_hex("#3f6b3a"), img.shape), plant * 0.9)
    rect(0.31, 0.70, 0.36, 0.86, "#9a5a3a")  # its terracotta pot
    # desk edge along the bottom
    rect(0.0, 0.86, 1.0, 1.0, "#4a3526")
    # defocus everything like a shallow depth of field, then add the window's bloom
    img = _blur(img, 28.0)
    bloom = _blur(np.clip(img - 0.85, 0.0, 1.0), 60.0)
    return np.clip(img + bloom * 1.5, 0.0, 1.0)


RECIPES: dict[str, Painter] = {
    "studio-grey.png": studio_grey,
    "soft-gradient.png": soft_gradient,
    "bokeh-lights.png": bokeh,
    "warm-office.png": warm_office,
}
DITHER = {"studio-grey.png", "soft-gradient.png", "bokeh-lights.png"}


def render(name: str) -> Image.Image:
    rgb = RECIPES[name]().astype(np.float32)
    return Image.fromarray(_to_u8(np.clip(rgb, 0.0, 1.0), name in DITHER), "RGB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: here)")
    ap.add_argument("names", nargs="*", help="only these images (default: all)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or RECIPES:
        path = args.out / name
        # no metadata, fixed compression: identical bytes on every run
        render(name).save(path, format="PNG", optimize=True)
        print(f"{path}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
