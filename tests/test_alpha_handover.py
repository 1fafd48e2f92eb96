"""The refine → compose hand-over: the refiner's small alpha beside the full one, read by the
compositor for the box, the half (U, V) and the blur's alpha; the same picture as before."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pixcam.chain.compose import AlphaLevels, ComposeSettings, Compositor
from pixcam.chain.refine import Refiner, RefineSettings, upscale_alpha
from pixcam.i420 import I420, halved


def blob(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A small alpha: 0 around a random rectangle of random values (it may touch the edges)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    small = np.zeros(shape, np.uint8)
    x0, y0 = rng.integers(0, w), rng.integers(0, h)
    x1, y1 = rng.integers(x0, w + 1), rng.integers(y0, h + 1)
    small[y0:y1, x0:x1] = rng.integers(0, 256, (y1 - y0, x1 - x0))
    return small


@pytest.mark.parametrize(
    ("size", "small_size"),
    [
        ((1280, 720), (320, 180)),
        ((1920, 1080), (320, 180)),
        ((640, 480), (160, 120)),
        ((1000, 600), (320, 180)),
    ],  # fmt: skip
)
def test_upscale_alpha_is_the_whole_resize(
    size: tuple[int, int], small_size: tuple[int, int]
) -> None:
    for seed in range(40):
        small = blob((small_size[1], small_size[0]), seed)
        whole = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(upscale_alpha(small, size), whole), seed
    empty = np.zeros((small_size[1], small_size[0]), np.uint8)
    assert not upscale_alpha(empty, size).any()


def test_refiner_hands_over_the_alpha_it_upscaled() -> None:
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (720, 1280, 3), np.uint8)
    prob = np.zeros((180, 320), np.float32)
    cv2.circle(prob, (160, 120), 60, 1.0, -1)
    alpha = Refiner(RefineSettings(smoothing=0)).refine_alpha(frame, prob)
    assert alpha.full.shape == (720, 1280)
    resized = cv2.resize(alpha.small, (1280, 720), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(alpha.full, resized)
    assert alpha.full[480, 640] == 255 and alpha.full[10, 10] == 0


@pytest.mark.parametrize("seed", range(12))
def test_levels_from_the_small_alpha_match_the_full_one(seed: int) -> None:
    small = blob((180, 320), seed)
    full = upscale_alpha(small, (1920, 1080))
    levels = AlphaLevels(full, small)
    assert np.array_equal(levels.half, halved(full, 1))
    x, y, w, h = levels.box()
    ex, ey, ew, eh = cv2.boundingRect(full)
    if ew and eh:  # holds every alpha > 0, at most a small pixel (6 px) and the slack wider
        assert x <= ex and y <= ey and x + w >= ex + ew and y + h >= ey + eh
        assert ex - x <= 8 and ey - y <= 8 and x + w - ex - ew <= 8 and y + h - ey - eh <= 8
    else:
        assert not levels.half.any()


def test_handed_over_alpha_composes_the_same_picture() -> None:
    """A colour background: the I420 blend with the small alpha is the blend without it, to
    the bit; with the blur (whose weight comes from the small alpha) within a grey level on
    average."""
    rng = np.random.default_rng(5)
    bgr = cv2.GaussianBlur(rng.integers(0, 256, (720, 1280, 3), np.uint8), (0, 0), 3)
    frame = I420.from_bgr(bgr)
    small = np.zeros((180, 320), np.uint8)
    cv2.ellipse(small, (170, 130), (60, 90), 0, 0, 360, 255, -1)
    small = cv2.GaussianBlur(small, (0, 0), 1.0)
    full = upscale_alpha(small, (1280, 720))
    colour = Compositor(ComposeSettings(background="color"))
    without = colour.compose(frame, full)
    with_small = colour.compose(frame, full, small=small)
    assert np.array_equal(without.data, with_small.data)
    blur = Compositor(ComposeSettings(background="blur"))
    a, b = blur.compose(frame, full).data, blur.compose(frame, full, small=small).data
    assert cv2.absdiff(a, b).mean() < 0.5


def test_an_odd_halving_keeps_the_picture_in_place() -> None:
    """240×135 → 120×67 (a 1080p frame's level 4): a vertical ramp stays within two levels
    of the area mean, its bottom row included (no row dropped, nothing shifted)."""
    ramp = np.repeat(np.linspace(0, 255, 135, dtype=np.float32)[:, None], 240, 1)
    plane = ramp.astype(np.uint8)
    got = halved(plane, 1)
    assert got.shape == (67, 120)
    area = cv2.resize(plane, (120, 67), interpolation=cv2.INTER_AREA)
    assert int(cv2.absdiff(got, area).max()) <= 2
