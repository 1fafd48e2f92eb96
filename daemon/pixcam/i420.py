"""The virtual camera's own picture format, I420, as a frame type the chain can carry.

A frame is either BGR (H×W×3 uint8, what OpenCV, files and the part effects use) or `I420`:
full-resolution Y, half-resolution U and V, BT.601, in one buffer laid out as pyvirtualcam
and OpenCV take it ((H·3/2)×W). Video's limited range (Y 16..235) unless `full_range`: a
camera's MJPG is decoded as JPEG holds it (0..255) and mapped to limited range only where a
pixel of it reaches the output (the person's box in the blend; `limited()` for the sink), so
the background's pixels, which the blurred background replaces, are never mapped.

A webcam's MJPG is YCbCr already, so a camera frame kept in I420 from the decode to the sink
is never converted to BGR and back at full resolution: the compositor blends 1.5 bytes a pixel
instead of 3 and the sink converts nothing. Only the small pictures the network, the refiner
and the blur work on are made in BGR, from area-halved planes (`pyramid.Pyramid`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import cv2
import numpy as np

# BT.601 limited range Y'CbCr → B, G, R (OpenCV's own I420 coefficients), for `yuv_to_bgr`.
_YUV_TO_BGR = np.array(
    [
        [1.164, 2.018, 0.0, -1.164 * 16 - 2.018 * 128],
        [1.164, -0.391, -0.813, -1.164 * 16 + (0.391 + 0.813) * 128],
        [1.164, 0.0, 1.596, -1.164 * 16 - 1.596 * 128],
    ],
    np.float32,
)
# Full range (JPEG) → limited range (video): y' = 16 + y·219/255, c' = 128 + (c-128)·224/255,
# as (scale, offset) for one `cv2.convertScaleAbs` a plane.
Y_TO_LIMITED = (219 / 255, 16.0)
C_TO_LIMITED = (224 / 255, 128 * (1 - 224 / 255))
# `_YUV_TO_BGR` of the full-range values: the range mapping folded into the matrix, so a small
# picture made from full-range planes costs nothing more.
_SCALES = np.array([Y_TO_LIMITED[0], C_TO_LIMITED[0], C_TO_LIMITED[0]], np.float32)
_OFFSETS = np.array([Y_TO_LIMITED[1], C_TO_LIMITED[1], C_TO_LIMITED[1]], np.float32)
_FULL_YUV_TO_BGR = np.hstack(
    [_YUV_TO_BGR[:, :3] * _SCALES, _YUV_TO_BGR[:, 3:] + (_YUV_TO_BGR[:, :3] @ _OFFSETS)[:, None]]
).astype(np.float32)
# Its inverse: B, G, R → Y', Cb, Cr, for small pictures of odd size (`upscaled`).
_BGR_TO_YUV = np.array(
    [
        [0.098, 0.504, 0.257, 16.0],
        [0.439, -0.291, -0.148, 128.0],
        [-0.071, -0.368, 0.439, 128.0],
    ],
    np.float32,
)


@dataclass(frozen=True, eq=False)
class I420:
    """One picture in I420; `data` is the whole (H·3/2)×W buffer, `y`, `u`, `v` views of it.
    `full_range`: JPEG's 0..255 values rather than video's limited range."""

    data: np.ndarray
    full_range: bool = False

    def __post_init__(self) -> None:
        d = self.data
        if d.dtype != np.uint8 or d.ndim != 2 or d.shape[0] % 3 or d.shape[1] % 2:
            raise ValueError(f"an I420 buffer is (H·3/2)×W uint8 with even sides, got {d.shape}")
        if not d.flags.c_contiguous:
            raise ValueError("an I420 buffer must be contiguous")

    @classmethod
    def empty(cls, width: int, height: int, full_range: bool = False) -> I420:
        return cls(np.empty((height * 3 // 2, width), np.uint8), full_range)

    @classmethod
    def from_bgr(cls, bgr: np.ndarray) -> I420:
        return cls(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420))

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    @property
    def height(self) -> int:
        return int(self.data.shape[0] * 2 // 3)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape a BGR frame of this picture has: code that asks `frame.shape[:2]` for the
        size works on either kind."""
        return self.height, self.width, 3

    @property
    def y(self) -> np.ndarray:
        return self.data[: self.height]

    def _chroma(self, k: int) -> np.ndarray:
        w, h = self.width, self.height
        n = (w // 2) * (h // 2)
        flat = self.data.reshape(-1)
        return flat[w * h + k * n : w * h + (k + 1) * n].reshape(h // 2, w // 2)

    @property
    def u(self) -> np.ndarray:
        return self._chroma(0)

    @property
    def v(self) -> np.ndarray:
        return self._chroma(1)

    @property
    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.y, self.u, self.v

    def limited(self) -> I420:
        """The picture in limited range: itself, or mapped into a new buffer (one pass)."""
        if not self.full_range:
            return self
        out = I420.empty(self.width, self.height)
        for src, dst, chroma in zip(self.planes, out.planes, (False, True, True), strict=True):
            to_limited(src, dst, chroma)
        return out

    def to_bgr(self) -> np.ndarray:
        # OpenCV's I420 conversion takes limited range only.
        return cv2.cvtColor(self.limited().data, cv2.COLOR_YUV2BGR_I420)

    def resized(self, width: int, height: int) -> I420:
        """Scaled to `width`×`height` (even) plane by plane, bilinear: for steps of less than
        2×, which do not alias."""
        out = I420.empty(width, height, self.full_range)
        for src, dst in zip(self.planes, out.planes, strict=True):
            cv2.resize(src, (dst.shape[1], dst.shape[0]), dst=dst, interpolation=cv2.INTER_LINEAR)
        return out

    def flipped(self) -> I420:
        """Mirrored left to right, plane by plane."""
        out = I420.empty(self.width, self.height, self.full_range)
        for src, dst in zip(self.planes, out.planes, strict=True):
            cv2.flip(src, 1, dst=dst)
        return out


def yuv_to_bgr(y: np.ndarray, u: np.ndarray, v: np.ndarray, full_range: bool) -> np.ndarray:
    """Y', Cb, Cr planes of one size (a reduced picture's) in BGR; of full-range planes with
    the range mapping folded into the matrix, so it costs nothing more."""
    return cv2.transform(cv2.merge([y, u, v]), _FULL_YUV_TO_BGR if full_range else _YUV_TO_BGR)


def to_limited(plane: np.ndarray, dst: np.ndarray, chroma: bool) -> np.ndarray:
    """A full-range plane mapped to limited range into `dst` (which may be `plane`)."""
    scale, offset = C_TO_LIMITED if chroma else Y_TO_LIMITED
    return cv2.convertScaleAbs(plane, dst=dst, alpha=scale, beta=offset)


def halved(plane: np.ndarray, times: int) -> np.ndarray:
    """`plane` area-halved `times` times: OpenCV's 2× INTER_AREA is a fast path, a 4× one
    is not (at 1080p one 4× step costs 8× two 2× steps). Nor is an odd size's (a 1080p
    frame's 240×135 level into 120×67: 0.29 ms); there a bilinear step, which at a scale just
    over 2 averages the two nearest rows or columns as the area mean does, takes 0.04 ms."""
    for _ in range(times):
        h, w = plane.shape[:2]
        even = h % 2 == 0 and w % 2 == 0
        plane = cv2.resize(
            plane,
            (max(1, w // 2), max(1, h // 2)),
            interpolation=cv2.INTER_AREA if even else cv2.INTER_LINEAR,
        )
    return plane


def upscaled(small_bgr: np.ndarray, width: int, height: int) -> I420:
    """A small BGR picture stretched (bilinear) to a `width`×`height` I420 frame: converted at
    its small size, then Y scaled to the full size and U, V to half."""
    yuv = cv2.split(cv2.transform(small_bgr, _BGR_TO_YUV))
    out = I420.empty(width, height)
    for plane, dst in zip(yuv, out.planes, strict=True):
        size = (dst.shape[1], dst.shape[0])
        cv2.resize(plane, size, dst=dst, interpolation=cv2.INTER_LINEAR)
    return out


# What flows from the source through the chain to the sink.
Frame = Union[np.ndarray, I420]  # noqa: UP007 - a runtime alias, usable in isinstance-free hints


def as_bgr(frame: Frame) -> np.ndarray:
    """The frame in BGR (converted once when it is I420) for what works in BGR only."""
    return frame.to_bgr() if isinstance(frame, I420) else frame


def as_i420(frame: Frame) -> I420:
    """The frame in I420 as the virtual camera takes it (limited range), converted once when
    it is BGR or full range."""
    return frame.limited() if isinstance(frame, I420) else I420.from_bgr(frame)
