"""A webcam's MJPG frame → BGR, at about half the cost of OpenCV's own decode.

OpenCV decodes with libjpeg-turbo's accurate integer IDCT and smooth chroma upsampling.
`simplejpeg` (the same libjpeg-turbo) exposes its fast IDCT and plain chroma upsampling:
measured on one core, presenter video encoded at quality 90, 0.49× OpenCV's time at 720p and
0.62× at 1080p and 4K, for a mean difference under one grey level (camera noise is larger).
Without simplejpeg, or when it refuses a frame, OpenCV decodes it.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from pixcam.i420 import I420, Frame
from pixcam.native import native_stderr_to_log
from pixcam.video import yuvjpeg

log = logging.getLogger("pixcam.video.mjpg")

try:
    import simplejpeg
except ImportError:  # pragma: no cover - a declared dependency; OpenCV still works
    simplejpeg = None


def _buffer(jpeg: np.ndarray | bytes) -> np.ndarray:
    """One flat uint8 buffer (OpenCV's V4L2 backend hands a raw frame out as one 1×N row)."""
    return np.frombuffer(jpeg, np.uint8) if isinstance(jpeg, bytes) else jpeg.reshape(-1)


def _simplejpeg(buf: np.ndarray, **options: int) -> np.ndarray | None:
    """simplejpeg's fast decode; a frame with damage libjpeg can get over (a webcam sends one
    now and then) decoded anyway, as OpenCV would, but without libjpeg's warning on stderr
    (simplejpeg keeps libjpeg's messages to itself). None when even that fails."""
    kwargs = {"colorspace": "BGR", "fastdct": True, "fastupsample": True, **options}
    try:
        return simplejpeg.decode_jpeg(buf, **kwargs)
    except ValueError as exc:
        log.debug("fast MJPG decode: damaged frame (%s)", exc)
    try:
        return simplejpeg.decode_jpeg(buf, strict=False, **kwargs)
    except ValueError as exc:
        log.debug("fast MJPG decode refused a frame (%s); OpenCV tries", exc)
        return None


def _opencv(buf: np.ndarray) -> np.ndarray | None:
    """OpenCV's decode, libjpeg's messages routed into the log (rare: simplejpeg failed)."""
    with native_stderr_to_log():
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def decode(jpeg: np.ndarray | bytes) -> np.ndarray | None:
    """BGR uint8 H×W×3 from one JPEG buffer; None when the data is not a readable JPEG."""
    buf = _buffer(jpeg)
    if simplejpeg is not None:
        img = _simplejpeg(buf)
        if img is not None:
            return img
    return _opencv(buf)


def decode_reduced(jpeg: np.ndarray | bytes, width: int, height: int) -> np.ndarray | None:
    """BGR at `width`×`height` from a JPEG at least that big (a smaller one comes out whole);
    None when the data is not a readable JPEG.

    Decoded at the smallest of libjpeg-turbo's DCT-domain scales 1/2, 1/4, 1/8 that still
    covers the size (they skip most of the inverse DCT and colour conversion, with SIMD; the
    n/8 scales between them have none and cost more than 1/2), then one bilinear step of less
    than 2× (which does not alias; INTER_AREA's general path costs 4× that). The entropy
    decoding is the same work at any scale, so the saving is in the rest
    (docs/live-costs.md#decode-and-blend-figures)."""
    buf = _buffer(jpeg)
    img = None
    if simplejpeg is not None:
        try:
            jh, jw = simplejpeg.decode_jpeg_header(buf)[:2]
        except ValueError as exc:
            log.debug("reduced MJPG decode refused a frame (%s); OpenCV tries", exc)
        else:
            scale = yuvjpeg.covering_scale(jw, jh, (width, height))
            img = _simplejpeg(buf, min_width=-(-jw // scale), min_height=-(-jh // scale))
    if img is None:
        img = _opencv(buf)
    if img is None or img.shape[1] < width or img.shape[0] < height:
        return img
    if (img.shape[1], img.shape[0]) == (width, height):
        return img
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)


def decode_frame(jpeg: np.ndarray | bytes, size: tuple[int, int] | None = None) -> Frame | None:
    """One camera MJPG buffer as the chain takes it: I420, the virtual camera's own format
    (so the sink converts nothing and the compositor blends half the bytes); BGR for an odd
    frame size, which I420 cannot hold; None when the data is not a readable JPEG.
    Straight to planes where the system has TurboJPEG (`yuvjpeg`), else through BGR.
    `size` (w, h): the picture is shown that big; a larger JPEG is decoded at a reduced
    scale (`decode_reduced_frame`)."""
    if size is not None and _larger_than(jpeg, size):
        return decode_reduced_frame(jpeg, *size)
    if yuvjpeg.available():
        planar = yuvjpeg.decode(_buffer(jpeg))
        if planar is not None:
            return planar
    bgr = decode(jpeg)
    if bgr is None or bgr.shape[0] % 2 or bgr.shape[1] % 2:
        return bgr
    return I420.from_bgr(bgr)


def decode_reduced_frame(jpeg: np.ndarray | bytes, width: int, height: int) -> Frame | None:
    """`decode_reduced` for the chain: planar (I420) where `yuvjpeg` can and the size is even,
    so a big camera's frames skip the colour conversion, the compositor blends half the bytes
    and the sink converts nothing; else BGR."""
    if yuvjpeg.available() and width % 2 == 0 and height % 2 == 0:
        planar = yuvjpeg.decode(_buffer(jpeg), (width, height))
        if planar is not None:
            if planar.width < width or planar.height < height:
                return planar  # smaller than asked: whole, as decode_reduced does
            if (planar.width, planar.height) == (width, height):
                return planar
            return planar.resized(width, height)
    return decode_reduced(jpeg, width, height)


def _larger_than(jpeg: np.ndarray | bytes, size: tuple[int, int]) -> bool:
    """Whether the JPEG's picture is wider or taller than `size` (w, h), from its header."""
    if simplejpeg is None:  # pragma: no cover - a declared dependency
        return False
    buf = _buffer(jpeg)
    try:
        h, w = simplejpeg.decode_jpeg_header(buf)[:2]
    except ValueError:
        return False  # not readable: the decode says so
    return bool(w > size[0] or h > size[1])
