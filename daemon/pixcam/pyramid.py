"""A frame's area halvings, each made once per frame and shared by every stage.

The network input, the refiner's guide and the blurred background all start by halving the
full frame with INTER_AREA (OpenCV's fast path, exact at 2×); made once, the full-resolution
pass that each of them paid is paid once. Every level is BGR. Of an I420 frame the first
halving comes straight from its planes (`I420.half_bgr`) and the full-size BGR picture is
made only if a stage asks for it.
"""

from __future__ import annotations

import cv2
import numpy as np

from pixcam.i420 import I420, Frame


class Pyramid:
    """Level 0 is the image itself (in BGR), level k its k-th successive 2× area halving."""

    __slots__ = ("_levels", "_i420", "size")

    def __init__(self, image: Frame) -> None:
        # (w, h) of level 0, known without converting an I420 frame.
        self.size = (image.shape[1], image.shape[0])
        if isinstance(image, I420):
            self._i420: I420 | None = image
            self._levels: list[np.ndarray | None] = [None]
        else:
            self._i420 = None
            self._levels = [image]

    @property
    def base(self) -> np.ndarray:
        return self.level(0)

    def level(self, k: int) -> np.ndarray:
        if k == 0 and self._levels[0] is None and self._i420 is not None:
            self._levels[0] = self._i420.to_bgr()
        if len(self._levels) == 1 and k >= 1 and self._i420 is not None:
            self._levels.append(self._i420.half_bgr())
        while len(self._levels) <= k:
            img = self.level(len(self._levels) - 1)
            size = (max(1, img.shape[1] // 2), max(1, img.shape[0] // 2))
            self._levels.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
        level = self._levels[k]
        assert level is not None
        return level

    def down_to(self, size: tuple[int, int]) -> np.ndarray:
        """The image at `size` (w, h): halvings while at least 2× too big, then one bilinear
        step of < 2× (which no longer aliases)."""
        k = 0
        w, h = self.size
        while w >= 2 * size[0] and h >= 2 * size[1]:
            k += 1
            w, h = max(1, w // 2), max(1, h // 2)
        img = self.level(k)
        if (img.shape[1], img.shape[0]) == size:
            return img
        return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
