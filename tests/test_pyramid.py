"""A frame's pyramid: a part of the frame (`region`) made from that part alone gives the
picture that reducing the whole frame and cropping it gives."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import VIDEOS, need, read_video
from pixcam.chain.pyramid import Pyramid
from pixcam.i420 import I420


@pytest.fixture(scope="module")
def frame_1080() -> np.ndarray:
    (f,) = read_video(need(VIDEOS / "presenter-1280x720.mp4", "presenter video"), 1)
    return cv2.resize(f, (1920, 1080), interpolation=cv2.INTER_LINEAR)


# The selfie model's square around the presenter at 1080p (a halving, then < 2×), one that
# fits without halving, and one at the frame's edge with odd-sized halvings.
RECTS = [(766, 68, 1778, 1080), (900, 300, 1300, 700), (1398, 0, 1920, 1030)]


@pytest.mark.parametrize("rect", RECTS)
def test_region_of_a_bgr_frame_is_the_cropped_frame_reduced(frame_1080, rect) -> None:
    x0, y0, x1, y1 = rect
    want = Pyramid(frame_1080[y0:y1, x0:x1]).down_to((256, 256))
    assert np.array_equal(Pyramid(frame_1080).region(rect, (256, 256)), want)


@pytest.mark.parametrize("rect", RECTS)
def test_region_of_an_i420_frame_is_its_level_cropped(frame_1080, rect) -> None:
    """From the planes alone, within a grey level of the way it was made before: the frame's
    level converted to BGR, cropped, then one bilinear step."""
    x0, y0, x1, y1 = rect
    frame = I420.from_bgr(frame_1080)
    got = Pyramid(frame).region(rect, (256, 256))
    k = 1 if x1 - x0 >= 512 else 0
    level = Pyramid(frame).level(k)
    want = cv2.resize(
        level[y0 >> k : y1 >> k, x0 >> k : x1 >> k], (256, 256), interpolation=cv2.INTER_LINEAR
    )
    diff = np.abs(got.astype(np.int16) - want)
    assert got.shape == want.shape == (256, 256, 3)
    # Rounding between the steps; a few saturated colours clip differently.
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 2


def test_region_crops_a_level_made_already(frame_1080) -> None:
    p = Pyramid(I420.from_bgr(frame_1080))
    level = p.level(1)
    got = p.region((766, 68, 1778, 1080), (256, 256))
    want = cv2.resize(level[34:540, 383:889], (256, 256), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("rect", RECTS)
def test_region_reuses_the_planes_a_smaller_level_halved(frame_1080, rect) -> None:
    """Once level 2 of an I420 frame is made, the square's Y comes from Y halved once (for an
    even square, exactly the square's own pixels halved) and its colour from level 2's U and V
    (half the output's resolution, as in the frame itself): the same picture but at colour
    edges."""
    frame = I420.from_bgr(frame_1080)
    p = Pyramid(frame)
    p.level(2)
    got = p.region(rect, (256, 256))
    fresh = Pyramid(frame).region(rect, (256, 256))
    diff = np.abs(got.astype(np.int16) - fresh)
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 4


def test_a_full_range_frame_gives_the_pictures_of_its_limited_range_one(frame_1080) -> None:
    """A camera's MJPG frame stays JPEG's full range: the levels and the selfie model's square
    fold the range mapping into their conversion (without it they lose contrast)."""
    ycrcb = cv2.cvtColor(frame_1080, cv2.COLOR_BGR2YCrCb)
    full = I420.empty(1920, 1080, full_range=True)
    full.y[:] = ycrcb[..., 0]
    for plane, dst in ((ycrcb[..., 2], full.u), (ycrcb[..., 1], full.v)):
        cv2.resize(plane, (960, 540), dst=dst, interpolation=cv2.INTER_AREA)
    lim = full.limited()
    for got, want in (
        (Pyramid(full).level(2), Pyramid(lim).level(2)),
        (Pyramid(full).region(RECTS[0], (256, 256)), Pyramid(lim).region(RECTS[0], (256, 256))),
    ):
        diff = np.abs(got.astype(np.int16) - want)
        assert diff.mean() < 0.6 and np.percentile(diff, 99) <= 2
