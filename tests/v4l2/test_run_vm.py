"""`pixcam run` between two real v4l2loopback devices, read back by real consumers.

ffmpeg plays a clip of a sitting person into the "Camera" loopback; pixcam reads it through
OpenCV/V4L2 like any webcam, replaces the background with pure magenta and writes the
"pixcam" loopback through pyvirtualcam; OpenCV and ffmpeg then read that device as a video
call would.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from v4l2_helpers import (
    FPS,
    HEIGHT,
    WIDTH,
    advertised_fps,
    background,
    feed,
    make_raw_clip,
    measured,
    read_ffmpeg,
    read_opencv,
    wait_for,
)

MAGENTA_BGR = np.array([255, 0, 255], np.int16)
# Regions of the 320x240 centre crop (checked on the clip): the sky/hillside above and left
# of the person, and the middle of the person's jacket.
BACKGROUND_BOXES = [(slice(0, 30), slice(0, WIDTH)), (slice(0, HEIGHT - 40), slice(0, 50))]
PERSON_BOX = (slice(110, 170), slice(130, 190))


def magenta_share(frame: np.ndarray, box: tuple[slice, slice]) -> float:
    """Share of pixels in `box` that are the background colour (after I420/YUYV round trips)."""
    dist = np.abs(frame[box].astype(np.int16) - MAGENTA_BGR).sum(axis=2)
    return float((dist < 90).mean())


def is_composited(frame: np.ndarray) -> bool:
    """A processed frame: background replaced, person kept (not an idle or starting card)."""
    return (
        all(magenta_share(frame, b) > 0.9 for b in BACKGROUND_BOXES)
        and magenta_share(frame, PERSON_BOX) < 0.1
    )


def write_config(
    path: Path,
    camera: str,
    output: str,
    *,
    always_on: bool,
    size: tuple[int, int] = (WIDTH, HEIGHT),
) -> Path:
    path.write_text(
        f"""[camera]
device = "{camera}"
width = {size[0]}
height = {size[1]}
fps = {FPS}
mjpg = false

[model]
# Software emulation runs BodyPix ~100x slower than the host: 0.75 s per frame at 161 px
# (5-10 s at the default 481), still a clean mask for this close-up person.
internal_resolution = 161
# Auto-tune would take emulation's seconds per frame for a slow machine and reload the model
# at lower resolutions, each reload costing more emulated CPU; these tests are not about it.
auto_tune = false

[output]
device = "{output}"

[effects]
background = "color"
color = "#ff00ff"

[daemon]
always_on = {"true" if always_on else "false"}
tray = false
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def raw_clip(tmp_path: Path) -> Path:
    return make_raw_clip(tmp_path / "clip.yuyv")


def test_run_replaces_background_for_opencv_and_ffmpeg(
    tmp_path: Path, raw_clip: Path, camera_dev: str, pixcam_dev: str, models_installed: Path
) -> None:
    cfg = write_config(tmp_path / "config.toml", camera_dev, pixcam_dev, always_on=True)
    with (
        feed(raw_clip, camera_dev, tmp_path / "feed.log") as camera,
        background(
            [sys.executable, "-m", "pixcam", "-v", "run", "--config", str(cfg)],
            tmp_path / "pixcam.log",
        ) as pixcam,
    ):
        # The rate a consumer is told is the one pixcam writes: the camera's (v4l2loopback
        # says 30 fps unless the writer sets it). Read as soon as the sink is open, before
        # any other reader could ask for a rate of its own.
        opened = re.compile(rf"virtual camera {re.escape(pixcam_dev)}: \d+x\d+@([\d.]+) I420")
        wait_for(lambda: opened.search(pixcam.tail(200)) is not None, 240, "the sink to open")
        match = opened.search(pixcam.tail(200))
        assert match is not None
        writes = float(match.group(1))
        told = advertised_fps(pixcam_dev)
        measured(f"advertised rate: pixcam writes {writes:g} fps, G_PARM says {told:g} fps")
        assert told == pytest.approx(writes, rel=1e-3) and writes == FPS, pixcam.tail()
        # pixcam holds its virtual camera before its model is loaded, showing a "starting"
        # card meanwhile: read batches until processed frames arrive.
        end = time.monotonic() + 240
        try:
            frames = read_opencv(pixcam_dev, 12, deadline_s=240)
            while sum(map(is_composited, frames)) < 5 and time.monotonic() < end:
                frames = read_opencv(pixcam_dev, 12, deadline_s=end - time.monotonic())
        except AssertionError as exc:
            raise AssertionError(f"{exc}; pixcam log:\n{pixcam.tail(40)}") from None
        assert pixcam.alive(), pixcam.tail()
        assert camera.alive(), camera.tail()
        by_ffmpeg = read_ffmpeg(pixcam_dev, 3, WIDTH, HEIGHT)
        assert pixcam.alive(), pixcam.tail()
        # OpenCV asks for 30 fps as it opens, and v4l2loopback keeps one interval for both
        # sides: pixcam says its rate again within its next health check (1 s).
        reread, t0 = advertised_fps(pixcam_dev), time.monotonic()
        wait_for(lambda: abs(advertised_fps(pixcam_dev) - writes) < 0.01, 30, "the rate again")
        measured(
            f"advertised rate just after OpenCV and ffmpeg read: {reread:g} fps, "
            f"{writes:g} again {time.monotonic() - t0:.1f} s on"
        )
    assert {f.shape for f in frames} == {(HEIGHT, WIDTH, 3)}
    done = [f for f in frames if is_composited(f)]
    assert len(done) >= 5, (
        f"{len(done)}/{len(frames)} OpenCV frames had the background replaced; "
        f"background magenta {[round(magenta_share(frames[-1], b), 2) for b in BACKGROUND_BOXES]},"
        f" person magenta {magenta_share(frames[-1], PERSON_BOX):.2f}; log:\n{pixcam.tail()}"
    )
    # By the time ffmpeg reads, pixcam streams processed frames only.
    assert all(is_composited(f) for f in by_ffmpeg), [
        (magenta_share(f, BACKGROUND_BOXES[0]), magenta_share(f, PERSON_BOX)) for f in by_ffmpeg
    ]
