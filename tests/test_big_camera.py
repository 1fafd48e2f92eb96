"""A camera bigger than the virtual camera: [output] height, and MJPG decoded at reduced scale."""

from __future__ import annotations

import threading
import time
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import wait_until
from fakes import FakePipeline, cfg_with
from pixcam.i420 import I420, Frame, as_bgr
from pixcam.runner.pipeline import output_size
from pixcam.video import mjpg, sources, yuvjpeg
from pixcam.video.sources import Source, SourceSpec

BIG_W, BIG_H = 640, 480


def picture() -> np.ndarray:
    """Smooth gradients with a square: what a camera sees, not noise JPEG cannot keep."""
    y, x = np.mgrid[0:BIG_H, 0:BIG_W]
    img = np.dstack([x * 255 // BIG_W, y * 255 // BIG_H, (x + y) * 255 // (BIG_W + BIG_H)])
    img = img.astype(np.uint8)
    img[100:300, 200:400] = (30, 200, 90)
    return img


def jpeg() -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", picture(), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf


@pytest.mark.parametrize("asked", [(320, 240), (300, 200), (160, 120), (427, 320), (80, 60)])
def test_reduced_decode_gives_the_size_asked(asked: tuple[int, int]) -> None:
    small = mjpg.decode_reduced(jpeg(), *asked)
    assert small is not None and (small.shape[1], small.shape[0]) == asked
    # The same picture as a full decode scaled down (within JPEG and filter differences).
    full = cv2.resize(mjpg.decode(jpeg()), asked, interpolation=cv2.INTER_AREA)
    assert cv2.absdiff(small, full).mean() < 3


@pytest.mark.parametrize("sampling", ["420", "422"])
@pytest.mark.parametrize("asked", [(320, 240), (300, 200), (160, 120), (80, 60), (427, 320)])
def test_reduced_frame_is_planar_at_the_size_asked(asked: tuple[int, int], sampling: str) -> None:
    """For the chain: I420 at a DCT scale (then a bilinear step), so no colour conversion;
    an odd size, which I420 cannot hold, comes in BGR. The colours are the BGR decode's."""
    factor = {
        "420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
        "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
    }
    params = [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor[sampling]]
    ok, data = cv2.imencode(".jpg", picture(), params)
    assert ok
    got = mjpg.decode_reduced_frame(data, *asked)
    assert got is not None and got.shape == (asked[1], asked[0], 3)
    planar = yuvjpeg.available() and asked[0] % 2 == 0
    assert isinstance(got, I420) == planar
    want = mjpg.decode_reduced(data, *asked)
    assert want is not None and cv2.absdiff(as_bgr(got), want).mean() < 2


def test_reduced_decode_never_upscales_and_rejects_garbage() -> None:
    full = mjpg.decode_reduced(jpeg(), 4 * BIG_W, 4 * BIG_H)
    assert full is not None and full.shape == (BIG_H, BIG_W, 3)
    assert mjpg.decode_reduced(b"not a jpeg", 10, 10) is None
    whole = mjpg.decode_reduced_frame(jpeg(), 4 * BIG_W, 4 * BIG_H)
    assert whole is not None and whole.shape == (BIG_H, BIG_W, 3)
    assert mjpg.decode_reduced_frame(b"not a jpeg", 10, 10) is None


@pytest.mark.parametrize(
    ("camera", "height", "out"),
    [
        ((3840, 2160), 1080, (1920, 1080)),
        ((3840, 2160), 0, (3840, 2160)),
        ((1280, 720), 1080, (1280, 720)),  # never up
        ((1280, 720), 481, (854, 480)),  # even sides for I420, the camera's aspect
    ],
)
def test_output_size(camera: tuple[int, int], height: int, out: tuple[int, int]) -> None:
    assert output_size(*camera, height) == out


class MjpgCamera(Source):
    """A camera handing out undecoded MJPG frames, as CameraSource does."""

    name, width, height, fps = "/dev/fake-mjpg", BIG_W, BIG_H, 30.0

    def capture(self) -> None:
        data = jpeg().reshape(1, -1)
        while not self.stopping.wait(0.01):
            self.publish(data, raw=True)


def test_a_smaller_output_gets_frames_decoded_at_its_size(monkeypatch: Any) -> None:
    asked: list[tuple[int, int]] = []
    reduced = mjpg.decode_reduced_frame

    def spy(data: Any, w: int, h: int) -> Frame | None:
        asked.append((w, h))
        return reduced(data, w, h)

    monkeypatch.setattr(mjpg, "decode_reduced_frame", spy)

    def open_camera(_spec: SourceSpec) -> Source:
        cam = MjpgCamera()
        cam.start()
        return cam

    cfg = cfg_with(effects={"background": "none"}, output={"height": 240})
    with FakePipeline(cfg, cameras=open_camera, source=SourceSpec(device="/dev/fake-mjpg")) as p:
        wait_until(lambda: len(p.frames) >= 3, "three frames out")
    sink = p.sink
    assert (sink.width, sink.height) == (320, 240)
    assert {f.shape for f in sink.frames} == {(240, 320, 3)}
    assert asked and set(asked) == {(320, 240)}


def test_big_frames_are_decoded_on_the_capture_thread(monkeypatch: Any) -> None:
    threads: list[str] = []
    reduced = mjpg.decode_reduced_frame

    def spy(data: Any, w: int, h: int) -> Frame | None:
        threads.append(threading.current_thread().name)
        return reduced(data, w, h)

    monkeypatch.setattr(mjpg, "decode_reduced_frame", spy)
    monkeypatch.setattr(sources, "DECODE_AHEAD_PIXELS", BIG_W * BIG_H - 1)
    cam = MjpgCamera()
    cam.start()
    shapes: list[tuple[int, ...]] = []
    try:
        # The first frames may come whole: the capture thread learns the size from read().
        deadline = time.monotonic() + 10
        while (240, 320, 3) not in shapes and time.monotonic() < deadline:
            frame = cam.read(size=(320, 240))
            if frame is not None:
                shapes.append(frame.shape)
    finally:
        cam.close()
    assert (240, 320, 3) in shapes
    assert any(name.startswith("capture") for name in threads)
