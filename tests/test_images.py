"""Image loading: the size is checked from the file header, so a decompression bomb is refused
before anything is decoded (issue 15, fault 2)."""

from __future__ import annotations

import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from pixcam import images
from pixcam.chain import compose
from pixcam.errors import PixcamError


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, width: int, height: int, *, whole: bool = True) -> Path:
    """A grey PNG of `width`×`height` black pixels: a few hundred kB that decode to w·h bytes.

    `whole=False` writes only the header and a token of data (for sizes nothing can decode).
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    packer = zlib.compressobj(9)
    row_block = (b"\0" + bytes(width)) * 64
    data = b""
    if whole:
        for _ in range(height // 64):
            data += packer.compress(row_block)
        data += packer.compress((b"\0" + bytes(width)) * (height % 64))
    else:
        data += packer.compress(b"\0" + bytes(min(width, 4096)))
    data += packer.flush()
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
    )
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 9000×9000 = 81 MP: over the 64 MP limit, decodable (so the old code took it).
    return png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png", 9000, 9000)


def test_a_bomb_is_refused_from_its_header_without_decoding(bomb: Path) -> None:
    assert bomb.stat().st_size < 1_000_000
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(PixcamError) as err:
            images.read_image(bomb, "background image")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    took = time.perf_counter() - t0
    assert str(err.value) == (
        f"background image {bomb} is 9000×9000 pixels, over the 64 megapixel limit; "
        "scale it down first"
    )
    assert peak < 5_000_000  # nothing near the 81 MB of pixels was allocated
    assert took < 2.0, took  # a decode takes seconds; the header read is instant


def test_over_two_to_the_30_pixels_is_one_line_not_a_cv2_error(tmp_path: Path) -> None:
    huge = png_bomb(tmp_path / "giga.png", 40000, 30000, whole=False)
    with pytest.raises(PixcamError, match=r"giga.png is over the 64 megapixel limit; scale it"):
        images.read_image(huge)  # Pillow's own guard fires first; same line


def test_background_image_bomb_leaves_the_previous_background(bomb: Path) -> None:
    frame = np.full((72, 128, 3), 90, np.uint8)
    alpha = np.zeros((72, 128), np.uint8)
    comp = compose.Compositor(compose.ComposeSettings(background="color", color="#ff0000"))
    with pytest.raises(PixcamError, match="megapixel limit"):
        comp.update(background="image", image=str(bomb))
    assert comp.settings.background == "color"
    assert tuple(comp.compose(frame, alpha)[0, 0]) == (0, 0, 255)


def test_images_within_the_limit_still_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    picture = rng.integers(0, 255, (50, 60, 3), np.uint8)
    for name, data in [
        ("p.png", picture),
        ("p.jpg", picture),
        ("p.webp", picture),
        ("p.bmp", picture),
        ("p.tif", picture),
        ("f.tiff", picture.astype(np.float32) / 255),  # a pixel type Pillow can't open
        ("w.png", picture.astype(np.uint16) * 257),
    ]:
        path = tmp_path / name
        assert cv2.imwrite(str(path), data)
        assert images.header_size(path) == (60, 50), name
        assert images.read_image(path).shape[:2] == (50, 60), name


def test_a_large_colour_image_is_decoded_only_as_large_as_needed(tmp_path: Path) -> None:
    path = tmp_path / "large.jpg"
    rng = np.random.default_rng(2)
    assert cv2.imwrite(str(path), rng.integers(0, 255, (1200, 2000, 3), np.uint8))
    image = images.read_image(path, flags=cv2.IMREAD_COLOR, cover=(480, 270))
    assert image.shape == (300, 500, 3)  # 1/4: still covers 480×270; 1/8 would not
    assert images.read_image(path, flags=cv2.IMREAD_COLOR, cover=(1920, 1080)).shape[:2] == (
        1200,
        2000,
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"this is not a picture\n", "is not an image pixcam can read"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "is not an image pixcam can read"),  # damaged
    ],
)
def test_bad_files_are_one_line(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PixcamError, match=message) as err:
        images.read_image(path)
    assert "\n" not in str(err.value)


def test_a_damaged_camera_frame_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    """A webcam's MJPG frame with recoverable damage is decoded (as OpenCV would) without
    libjpeg's "Corrupt JPEG data" / "Premature end of JPEG file" on stderr; a hopeless one
    gives None, silently too."""
    from pixcam.video import mjpg

    picture = np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", picture)[1].tobytes()
    capfd.readouterr()
    cut = mjpg.decode(jpeg[: len(jpeg) // 2])
    reduced = mjpg.decode_reduced(jpeg[: len(jpeg) // 2], 64, 48)
    hopeless = mjpg.decode(jpeg[:200])
    assert cut is not None and cut.shape == (96, 128, 3)
    assert reduced is not None and reduced.shape == (48, 64, 3)
    assert hopeless is None
    assert capfd.readouterr().err == ""
