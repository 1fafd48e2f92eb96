"""pixcam.fgcolor: the edge band shows the person's colours, not the old background's."""

from __future__ import annotations

import numpy as np

from pixcam.compose import ComposeSettings, Compositor
from pixcam.fgcolor import edge_correction, push_pull


def mixed_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured reddish person on the left over a bright green wall, with a 24 px soft
    edge where the camera saw exactly alpha·person + (1 - alpha)·wall."""
    h, w = 360, 640
    rng = np.random.default_rng(1)
    person = np.full((h, w, 3), (40, 60, 200), np.float32) + rng.normal(0, 6, (h, w, 3))
    wall = np.full((h, w, 3), (60, 230, 80), np.float32)
    x = np.arange(w, dtype=np.float32)
    alpha = np.clip((320 - x) / 24 + 0.5, 0, 1)[None, :].repeat(h, 0)
    frame = alpha[..., None] * person + (1 - alpha[..., None]) * wall
    a8 = (alpha * 255 + 0.5).astype(np.uint8)
    return np.clip(frame, 0, 255).astype(np.uint8), a8, np.clip(person, 0, 255)


def test_push_pull_fills_from_the_nearest_weighted_side() -> None:
    colour = np.zeros((64, 64, 3), np.float32)
    colour[:, :16] = (10, 20, 30)
    colour[:, 48:] = (200, 100, 50)
    weight = np.zeros((64, 64), np.float32)
    weight[:, :16] = weight[:, 48:] = 1
    filled = push_pull(colour, weight)
    np.testing.assert_allclose(filled[:, 17], np.tile([10, 20, 30], (64, 1)), atol=25)
    np.testing.assert_allclose(filled[:, 46], np.tile([200, 100, 50], (64, 1)), atol=25)


def test_edge_colour_removes_the_old_background_from_the_band() -> None:
    frame, alpha, person = mixed_scene()
    new_bg = np.array((200, 40, 40), np.float32)  # blue, far from the green wall
    a = alpha.astype(np.float32)[..., None] / 255
    truth = a * person + (1 - a) * new_bg  # the person's own colours over the new background
    band = (alpha > 12) & (alpha < 243)
    errors = []
    for edge in (False, True):
        comp = Compositor(ComposeSettings(background="color", color="#2828c8", edge_colour=edge))
        out = comp.compose(frame, alpha).astype(np.float32)
        errors.append(np.abs(out - truth).mean(axis=2)[band].mean())
    assert errors[1] < 0.5 * errors[0], errors


def test_no_soft_edge_no_correction() -> None:
    frame = np.full((90, 160, 3), 128, np.uint8)
    alpha = np.zeros((90, 160), np.uint8)
    alpha[:, :80] = 255
    assert edge_correction(frame, alpha) is None
