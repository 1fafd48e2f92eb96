"""Labels carried by the picture's motion and the colours each person wears
(chain/labelflow.py), on synthetic pictures."""

from __future__ import annotations

import numpy as np

from pixcam.chain.labelflow import Colours, LabelFlow

W, H = 160, 90


def texture(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """Blurred noise: texture the flow can follow."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1), dtype=np.uint8)
    return np.kron(g, np.ones((4, 4), np.uint8))[:h, :w].copy()


def scene(x: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A still textured person (you, columns 20..70) and another (30 px wide) at column `x`:
    the grey picture and the two masks."""
    grey = texture(1)
    mine = np.zeros((H, W), bool)
    mine[20:, 20:70] = True
    theirs = np.zeros((H, W), bool)
    theirs[10:, x : x + 30] = True
    grey = grey.copy()
    grey[theirs] = np.roll(texture(2), x, axis=1)[theirs]
    return grey, mine, theirs


def test_nothing_is_carried_before_a_frame_was_kept() -> None:
    assert LabelFlow().carry(texture(1)) is None


def test_each_person_is_carried_with_their_own_motion() -> None:
    flow = LabelFlow()
    grey, mine, theirs = scene(100)
    flow.keep(grey, mine, theirs)
    grey2, mine2, theirs2 = scene(96)  # they moved 4 px left, you stayed
    carried = flow.carry(grey2)
    assert carried is not None and carried.them is not None and carried.you is not None
    # Back to the last frame: 4 px right (DIS ultrafast finds most of it at this size).
    assert 2.0 < float(carried.them[0]) < 5.0
    assert np.hypot(*carried.you) < 0.5
    # Their carried pixels lie on them now, yours on you.
    assert np.count_nonzero(carried.theirs & theirs2) > 0.5 * np.count_nonzero(theirs2)
    assert np.count_nonzero(carried.theirs & mine2) == 0
    assert np.count_nonzero(carried.mine & theirs2) == 0


def test_forget_drops_the_last_frame() -> None:
    flow = LabelFlow()
    grey, mine, theirs = scene(100)
    flow.keep(grey, mine, theirs)
    flow.forget()
    assert flow.carry(grey) is None


def test_colours_tell_who_wears_what() -> None:
    bgr = np.zeros((H, W, 3), np.uint8)
    bgr[:, :80] = (240, 240, 240)  # a white coat
    bgr[:, 80:] = (90, 120, 140)  # a brown shirt
    mine = np.zeros((H, W), bool)
    mine[:, :80] = True
    colours = Colours()
    bins = Colours.bins(bgr)
    assert colours.ratio(bins) is None  # nothing learnt yet
    colours.learn(bins, mine, ~mine)
    ratio = colours.ratio(bins)
    assert ratio is not None
    assert ratio[:, :80].min() > 0 > ratio[:, 80:].max()
    colours.forget()
    assert colours.ratio(bins) is None
