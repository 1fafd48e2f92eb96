"""Reading still images safely: the size comes from the file header before anything is decoded.

A 1 MB PNG can declare 20000×20000 pixels (a decompression bomb): decoding it costs gigabytes
and tens of seconds, and past 2^30 pixels OpenCV raises instead of returning None. Pillow's
`Image.open` parses only the header (PNG IHDR, JPEG SOF, WebP, BMP, TIFF IFD, PNM...), so the
pixel count is checked first and OpenCV decodes only what is within the limit. Background
images and `pixcam segment` inputs both come through `read_image`.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, TiffImagePlugin, UnidentifiedImageError

from pixcam import paths
from pixcam.errors import PixcamError
from pixcam.native import native_stderr_to_log

log = logging.getLogger(__name__)

# 64 MP: above an 8K photo (33 MP); the float maps of a segmentation alone need gigabytes
# beyond it, and a background is scaled down to the frame anyway.
MAX_PIXELS = 64_000_000


def header_size(path: Path, what: str = "image") -> tuple[int, int]:
    """(width, height) as declared by the file header; PixcamError if it isn't an image (or
    is no file at all: a folder, a FIFO that would block the read, a device, a symlink loop)."""
    paths.check_file(path, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.size
    except Image.DecompressionBombError:
        # Pillow's own guard (over twice its 89 MP default) fires before we see the size.
        raise PixcamError(
            f"{what} {path} is over the {MAX_PIXELS // 1_000_000} megapixel limit; "
            "scale it down first"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        # SyntaxError/ValueError: some Pillow plugins raise them for a damaged header.
        size = _tiff_size(path)  # a TIFF whose pixel type Pillow lacks (e.g. float RGB)
        if size is not None:
            return size
        raise PixcamError(
            f"{what} {path} is not an image pixcam can read (or it is damaged): "
            "use PNG, JPEG, WebP, BMP or TIFF"
        ) from None


def _tiff_size(path: Path) -> tuple[int, int] | None:
    """Width and length from a TIFF's first directory, whatever its pixel type."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if head[:4] not in (b"II*\0", b"MM\0*"):
                return None
            ifd = TiffImagePlugin.ImageFileDirectory_v2(head)
            f.seek(ifd.next)
            ifd.load(f)
            return int(ifd[256]), int(ifd[257])
    except Exception:  # damaged: not an image we can size
        return None


def check_size(path: Path, what: str = "image", max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """The header's (width, height), or PixcamError naming the limit when it is too large."""
    w, h = header_size(path, what)
    if w * h > max_pixels:
        raise PixcamError(
            f"{what} {path} is {w}×{h} pixels, over the {max_pixels // 1_000_000} megapixel "
            "limit; scale it down first"
        )
    return w, h


_REDUCED_COLOUR: tuple[tuple[int, int], ...] = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)


def _reduced_colour(width: int, height: int, cover: tuple[int, int]) -> int:
    for factor, flag in _REDUCED_COLOUR:
        if width // factor >= cover[0] and height // factor >= cover[1]:
            return flag
    return cv2.IMREAD_COLOR


def read_image(
    path: Path,
    what: str = "image",
    flags: int = cv2.IMREAD_UNCHANGED,
    max_pixels: int = MAX_PIXELS,
    cover: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decode `path` with OpenCV after checking its header size; one-line PixcamError on any
    problem (missing, not a file, empty, not an image, too large, damaged).

    With `cover=(w, h)` (colour only) a large image is decoded at 1/2, 1/4 or 1/8 scale as
    long as it still covers w×h: a JPEG then decodes that much faster and smaller.
    """
    if paths.check_file(path, what) == 0:
        raise PixcamError(f"{what} {path} is empty")
    width, height = check_size(path, what, max_pixels)
    if cover is not None and flags == cv2.IMREAD_COLOR:
        flags = _reduced_colour(width, height, cover)
    with native_stderr_to_log() as said:  # libpng's and libjpeg's complaints, not ours
        try:
            image = cv2.imread(str(path), flags)
        except cv2.error:
            image = None
    if image is None or image.size == 0:
        raise PixcamError(
            f"{what} {path} is not an image pixcam can read (or it is damaged): "
            "use PNG, JPEG, WebP, BMP or TIFF"
        )
    if said:  # decoded despite damage (a cut JPEG comes out grey below the cut)
        log.warning("%s %s is damaged (%s); using what could be decoded", what, path, said[0])
    if flags == cv2.IMREAD_UNCHANGED:  # OpenCV turns the picture upright for every other flag
        image = upright(image, exif_orientation(path))
    return image


EXIF_ORIENTATION = 0x0112  # how a viewer turns the stored pixels to show the picture upright


def exif_orientation(path: Path) -> int:
    """The file's EXIF orientation, 1 (as stored) when it has none or it cannot be read."""
    try:
        with Image.open(path) as img:
            value = img.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # a damaged EXIF block: the pixels as stored, like a viewer that skips it
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """`image` as a viewer shows it for EXIF `orientation` (2-8 flip and/or turn it)."""
    if orientation == 2:
        return cv2.flip(image, 1)
    if orientation == 3:
        return cv2.rotate(image, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(image, 0)
    if orientation == 5:
        return cv2.transpose(image)
    if orientation == 6:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.flip(cv2.transpose(image), -1)
    if orientation == 8:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return image
