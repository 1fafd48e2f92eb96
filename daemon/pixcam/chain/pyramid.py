"""A frame's area halvings, each made once per frame and shared by every stage.

The network input, the refiner's guide and the blurred background all start by halving the
full frame with INTER_AREA (OpenCV's fast path, exact at 2×); made once, the full-resolution
pass that each of them paid is paid once. Every level is BGR. Of an I420 frame the first level
asked for comes straight from its planes (halved, then converted: at 1080p the network's input
needs only level 2, so nothing is made at 960×540), and the full-size BGR picture is made only
if a stage asks for it. A part of the frame (`region`: the selfie model's square around the
person) is made from that part's pixels alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import cv2
import numpy as np

from pixcam.i420 import I420, Frame, halved, yuv_to_bgr

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in level-0 (frame) pixels
T = TypeVar("T")


class Pyramid:
    """Level 0 is the image itself (in BGR), level k its k-th successive 2× area halving."""

    __slots__ = ("_levels", "_i420", "_luma", "_chroma", "size")

    def __init__(self, image: Frame) -> None:
        # (w, h) of level 0, known without converting an I420 frame.
        self.size = (image.shape[1], image.shape[0])
        self._levels: dict[int, np.ndarray] = {}
        # An I420 frame's planes at level k (Y halved k times, U and V k - 1 times), each
        # halving kept: the selfie model's square is cropped from those the network input's
        # level passed through.
        self._luma: dict[int, np.ndarray] = {}
        self._chroma: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if isinstance(image, I420):
            self._i420: I420 | None = image
            self._luma[0] = image.y
            self._chroma[1] = image.u, image.v
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
            img = self._i420.to_bgr() if k == 0 else self._from_planes(self._i420, k)
        else:
            assert finer is not None  # a BGR pyramid always has level 0
            img = self._levels[finer]
            for j in range(finer + 1, k + 1):
                img = self._levels[j] = halved(img, 1)
        self._levels[k] = img
        return img

    def down_to(self, size: tuple[int, int]) -> np.ndarray:
        """The image at `size` (w, h): halvings while at least 2× too big, then one bilinear
        step of < 2× (which no longer aliases)."""
        return _fit(self.level(_halvings(self.size, size)), size)

    def region(self, rect: Box, size: tuple[int, int]) -> np.ndarray:
        """The part `rect` of the image in BGR at `size` (w, h), reduced as `down_to` reduces
        the whole (to within 2^k pixels of `rect` at halving k). A level made already is
        cropped; otherwise only the part's own pixels are halved, and an I420 frame's planes
        are converted at `size`: at 1080p the selfie model's square costs under half of what
        cropping a converted 960×540 level did (docs/live-costs.md). Even corners keep the
        chroma aligned."""
        x0, y0, x1, y1 = rect
        k = _halvings((x1 - x0, y1 - y0), size)
        made = self._levels.get(k)
        if made is not None:
            return _fit(_crop(made, rect, k), size)
        if self._i420 is None:
            return _fit(halved(_crop(self._levels[0], rect, 0), k), size)
        j = max(i for i in self._luma if i <= k)  # the finest Y halving made already
        y = halved(_crop(self._luma[j], rect, j), k - j)
        # Colour at half the output's resolution will do, as in the frame itself: from level
        # k + 1's chroma when made (small and in cache), else from the finest made.
        c = max(i for i in self._chroma if i <= k + 1)
        u, v = (halved(_crop(p, rect, c), max(0, k - c)) for p in self._chroma[c])
        return yuv_to_bgr(_fit(y, size), _fit(u, size), _fit(v, size), self._i420.full_range)

    def _from_planes(self, frame: I420, k: int) -> np.ndarray:
        """Level k ≥ 1 of an I420 frame: Y halved k times, U and V k - 1 times (at k = 1 as
        they are), converted at the small size (a quarter of a full conversion at k = 1)."""
        y = _kept_halving(self._luma, k, lambda y: halved(y, 1))
        u, v = _kept_halving(self._chroma, k, lambda uv: (halved(uv[0], 1), halved(uv[1], 1)))
        return yuv_to_bgr(y, u, v, frame.full_range)


def _kept_halving(kept: dict[int, T], k: int, halve: Callable[[T], T]) -> T:
    """Level k of `kept` (levels made so far), halving from the finest one below and keeping
    each level on the way."""
    j = max(i for i in kept if i <= k)
    item = kept[j]
    for i in range(j + 1, k + 1):
        item = kept[i] = halve(item)
    return item


def _crop(img: np.ndarray, rect: Box, k: int) -> np.ndarray:
    """`rect` (level-0 pixels) on level k: its corners halved k times, at least one pixel."""
    x0, y0, x1, y1 = (c >> k for c in rect)
    return img[y0 : max(y0 + 1, y1), x0 : max(x0 + 1, x1)]


def _halvings(have: tuple[int, int], size: tuple[int, int]) -> int:
    """How many 2× halvings of `have` (w, h) stay at least `size`."""
    k = 0
    w, h = have
    while w >= 2 * size[0] and h >= 2 * size[1]:
        k += 1
        w, h = max(1, w // 2), max(1, h // 2)
    return k


def _fit(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`img` at `size` (w, h): itself, or one bilinear step."""
    if (img.shape[1], img.shape[0]) == size:
        return img
    return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
