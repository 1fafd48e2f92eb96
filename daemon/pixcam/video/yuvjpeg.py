"""A webcam's MJPG frame straight to I420, when the system has libjpeg-turbo's TurboJPEG library.

A JPEG holds Y'CbCr: decoding it to planes skips libjpeg's colour conversion and chroma
upsampling, and the chain's I420 then needs no BGR→I420 conversion either. The planes keep
JPEG's full range (`I420.full_range`): the mapping to video's limited range is left to where
a pixel reaches the output (the person's box in the blend, the sink), which spares mapping the
background's pixels (the background replaces them). The planar decode is about 1.5 ms less
per 1080p frame than a BGR decode plus `I420.from_bgr`
(docs/live-costs.md#decode-and-blend-figures).

simplejpeg has no planar decode, so this binds the four TurboJPEG calls it needs with ctypes
(`libturbojpeg.so.0`, Debian/Ubuntu package libturbojpeg0; its 2.x API, which 3.x keeps). Where
the library is missing, or for a JPEG it does not take (other than 4:2:0 or 4:2:2), `decode`
returns None and `mjpg.decode_frame` takes the BGR way.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

import cv2
import numpy as np

from pixcam.i420 import I420

log = logging.getLogger("pixcam.video.yuvjpeg")

_TJSAMP_422, _TJSAMP_420 = 1, 2
_TJFLAG_FASTDCT = 2048  # the fast IDCT, as simplejpeg's fastdct=True


def _load() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("turbojpeg") or "libturbojpeg.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    c_int_p = ctypes.POINTER(ctypes.c_int)
    lib.tjInitDecompress.restype = ctypes.c_void_p
    lib.tjInitDecompress.argtypes = []
    lib.tjDecompressHeader3.restype = ctypes.c_int
    lib.tjDecompressHeader3.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_ulong,
        c_int_p,
        c_int_p,
        c_int_p,
        c_int_p,
    ]
    lib.tjDestroy.restype = ctypes.c_int
    lib.tjDestroy.argtypes = [ctypes.c_void_p]
    lib.tjDecompressToYUVPlanes.restype = ctypes.c_int
    lib.tjDecompressToYUVPlanes.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_int,
        c_int_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    return lib


_lib = _load()
_local = threading.local()  # a TurboJPEG handle is not to be shared between threads


def available() -> bool:
    return _lib is not None


class _Handle:
    """One thread's decompressor, destroyed with the thread's locals when the thread ends."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self.value: int | None = lib.tjInitDecompress()

    def __del__(self) -> None:
        if self.value:
            self._lib.tjDestroy(self.value)
            self.value = None


def _handle() -> int | None:
    h: _Handle | None = getattr(_local, "handle", None)
    if h is None and _lib is not None:
        h = _local.handle = _Handle(_lib)
    return h.value if h is not None else None


def rows_halved(plane: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The mean of each pair of rows (4:2:2 chroma → 4:2:0) into `dst`: INTER_AREA's result,
    pixel for pixel, but a (1, 2) INTER_AREA takes OpenCV's general path, about 20× slower
    (docs/live-costs.md#decode-and-blend-figures)."""
    return cv2.addWeighted(plane[0::2], 0.5, plane[1::2], 0.5, 0.0, dst=dst)


def decode(jpeg: np.ndarray, cover: tuple[int, int] | None = None) -> I420 | None:
    """`jpeg` (one contiguous uint8 buffer) as I420 in full range; None when this way cannot
    decode it (no library, a subsampling other than 4:2:0/4:2:2, an odd size, bad data).
    `cover` (w, h): decoded at the smallest of libjpeg-turbo's DCT scales 1/2, 1/4, 1/8 that
    still covers that size (most of the inverse DCT skipped), as `mjpg.decode_reduced` does
    for BGR; the picture's own size when it is not larger."""
    handle = _handle()
    if _lib is None or not handle:
        return None
    buf = np.ascontiguousarray(jpeg.reshape(-1))
    w, h, samp, space = (ctypes.c_int() for _ in range(4))
    src, size = buf.ctypes.data, buf.size
    if _lib.tjDecompressHeader3(handle, src, size, w, h, samp, space) != 0:
        return None
    width, height, sub = w.value, h.value, samp.value
    scale = 1 if cover is None else covering_scale(width, height, cover)
    width, height = -(-width // scale), -(-height // scale)
    if sub not in (_TJSAMP_420, _TJSAMP_422) or width % 2 or height % 2:
        return None
    out = I420.empty(width, height, full_range=True)
    y, u, v = out.planes
    if sub == _TJSAMP_420:
        cu, cv_ = u, v
    else:  # 4:2:2 chroma is full height: decoded beside, then halved vertically
        cu, cv_ = (np.empty((height, width // 2), np.uint8) for _ in range(2))
    planes = (ctypes.c_void_p * 3)(y.ctypes.data, cu.ctypes.data, cv_.ctypes.data)
    strides = (ctypes.c_int * 3)(width, width // 2, width // 2)
    # TurboJPEG scales to the largest of its factors that fits the size it is given. Scaled,
    # the fast IDCT is not used: at 1/2 it left 4:2:0 chroma at twice its contrast
    # (libjpeg-turbo 2.1.5; the accurate one is right at every scale).
    flags = _TJFLAG_FASTDCT if scale == 1 else 0
    if _lib.tjDecompressToYUVPlanes(handle, src, size, planes, width, strides, height, flags):
        return None
    if sub == _TJSAMP_422:
        rows_halved(cu, u)
        rows_halved(cv_, v)
    return out


def covering_scale(width: int, height: int, cover: tuple[int, int]) -> int:
    """The largest DCT scale denominator (1, 2, 4, 8) at which the JPEG still covers `cover`."""
    scale = 1
    while scale < 8 and width // (2 * scale) >= cover[0] and height // (2 * scale) >= cover[1]:
        scale *= 2
    return scale
