"""A frame's area halvings, each made once per frame and shared by every stage.

The network input, the refiner's guide and the blurred background all start by halving the
full frame with INTER_AREA (OpenCV's fast path, exact at 2×); made once, the full-resolution
pass that each of them paid is paid once. Every level is BGR. Of an I420 frame the first level
asked for comes straight from its planes (`I420.reduced_bgr`: at 1080p the network's input
needs only level 2, so nothing is made at 960×540), and the full-size BGR picture is made only
if a stage asks for it.
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
        self._levels: dict[int, np.ndarray] = {}
        if isinstance(image, I420):
            self._i420: I420 | None = image
        else:
            self._i420 = None
            self._levels[0] = image

    @property
    def base(self) -> np.ndarray:
        return self.level(0)

    def level(self, k: int) -> np.ndarray:
        img = self._levels.get(k)
        if img is not None:
            return img
        finer = max((j for j in self._levels if j < k), default=None)
        if self._i420 is not None and (finer is None or (finer == 0 and k > 0)):
            # From the planes: never through a full-size BGR picture.
            img = self._i420.to_bgr() if k == 0 else self._i420.reduced_bgr(k)
        else:
            assert finer is not None  # a BGR pyramid always has level 0
            img = self._levels[finer]
            for j in range(finer + 1, k + 1):
                size = (max(1, img.shape[1] // 2), max(1, img.shape[0] // 2))
                img = self._levels[j] = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        self._levels[k] = img
        return img

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
