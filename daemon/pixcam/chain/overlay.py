"""Drawing segmentations the way the BodyPix seed does: toMask, toColoredPartMask, drawMask."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pixcam.parts import RAINBOW

Colour = tuple[int, int, int, int]  # R, G, B, A (0..255), as the seed's {r, g, b, a}


def to_mask(
    person: np.ndarray,
    foreground: Colour = (0, 0, 0, 0),
    background: Colour = (0, 0, 0, 255),
    mask_background: bool = True,
) -> np.ndarray:
    """RGBA image from a 0/1 person mask: the background (or, with `mask_background=False`,
    the person) gets `background`'s colour, the rest `foreground`'s."""
    colour_where = person == 0 if mask_background else person != 0
    out = np.empty((*person.shape, 4), dtype=np.uint8)
    out[:] = foreground
    out[colour_where] = background
    return out


def to_colored_part_mask(
    part_ids: np.ndarray, palette: Sequence[tuple[int, int, int]] = RAINBOW
) -> np.ndarray:
    """RGBA image: each part in its palette colour, opaque; outside the person transparent."""
    lut = np.zeros((len(palette) + 1, 4), dtype=np.uint8)
    lut[1:, :3] = palette
    lut[1:, 3] = 255
    return lut[part_ids + 1]


def draw_mask(image_bgr: np.ndarray, mask_rgba: np.ndarray, opacity: float = 0.7) -> np.ndarray:
    """The image with the RGBA mask drawn on top at `opacity` (times each pixel's own alpha)."""
    alpha = mask_rgba[..., 3:4].astype(np.float32) * (opacity / 255.0)
    colour = cv2.cvtColor(mask_rgba[..., :3], cv2.COLOR_RGB2BGR).astype(np.float32)
    out = image_bgr.astype(np.float32) * (1.0 - alpha) + colour * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
