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

log = logging.getLogger("pixcam.mjpg")

try:
    import simplejpeg
except ImportError:  # pragma: no cover - a declared dependency; OpenCV still works
    simplejpeg = None


def decode(jpeg: np.ndarray | bytes) -> np.ndarray | None:
    """BGR uint8 H×W×3 from one JPEG buffer; None when the data is not a readable JPEG."""
    # OpenCV's V4L2 backend hands a raw frame out as one 1×N row.
    buf = np.frombuffer(jpeg, np.uint8) if isinstance(jpeg, bytes) else jpeg.reshape(-1)
    if simplejpeg is not None:
        try:
            return simplejpeg.decode_jpeg(buf, colorspace="BGR", fastdct=True, fastupsample=True)
        except ValueError as exc:
            log.debug("fast MJPG decode refused a frame (%s); OpenCV tries", exc)
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def decode_reduced(jpeg: np.ndarray | bytes, width: int, height: int) -> np.ndarray | None:
    """BGR of at least `width`×`height` (when the JPEG is that big), decoded at the smallest
    of libjpeg-turbo's DCT-domain scales (n/8) that still covers it; None when unreadable.

    A 4K camera into a 1080p virtual camera: the 1/2-scale decode skips most of the inverse
    DCT and the colour conversion of the pixels nobody shows, and the chain then runs on a
    quarter of the pixels. The entropy decoding is the same work at any scale, so the decode
    itself only gets about a quarter cheaper (see docs/design.md, "Big cameras")."""
    buf = np.frombuffer(jpeg, np.uint8) if isinstance(jpeg, bytes) else jpeg.reshape(-1)
    if simplejpeg is not None:
        try:
            return simplejpeg.decode_jpeg(
                buf,
                colorspace="BGR",
                fastdct=True,
                fastupsample=True,
                min_width=width,
                min_height=height,
            )
        except ValueError as exc:
            log.debug("reduced MJPG decode refused a frame (%s); OpenCV tries", exc)
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)
