"""A frame's area halvings, each made once per frame and shared by every stage.

The network input, the refiner's guide and the blurred background all start by halving the
full frame with INTER_AREA (OpenCV's fast path, exact at 2×); made once, the full-resolution
pass that each of them paid is paid once.
"""

from __future__ import annotations

import cv2
import numpy as np


class Pyramid:
    """Level 0 is the image itself, level k its k-th successive 2× area halving."""

    __slots__ = ("_levels",)

    def __init__(self, image: np.ndarray) -> None:
        self._levels = [image]

    @property
    def base(self) -> np.ndarray:
        return self._levels[0]

    def level(self, k: int) -> np.ndarray:
        while len(self._levels) <= k:
            img = self._levels[-1]
            size = (max(1, img.shape[1] // 2), max(1, img.shape[0] // 2))
            self._levels.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
        return self._levels[k]

    def down_to(self, size: tuple[int, int]) -> np.ndarray:
        """The image at `size` (w, h): halvings while at least 2× too big, then one bilinear
        step of < 2× (which no longer aliases)."""
        k = 0
        img = self.base
        while img.shape[1] >= 2 * size[0] and img.shape[0] >= 2 * size[1]:
            k += 1
            img = self.level(k)
        if (img.shape[1], img.shape[0]) == size:
            return img
        return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
