"""The test bench itself: an ffmpeg-fed loopback must look like a real camera to consumers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from v4l2_helpers import (
    HEIGHT,
    WIDTH,
    best_match_mad,
    feed,
    make_raw_clip,
    raw_frames_bgr,
    read_ffmpeg,
    read_opencv,
)

from pixcam.video import v4l2caps


def test_fed_loopback_is_a_camera_for_opencv_and_ffmpeg(tmp_path: Path, camera_dev: str) -> None:
    raw = make_raw_clip(tmp_path / "clip.yuyv")
    refs = raw_frames_bgr(raw)
    # Nobody writes yet: exclusive_caps=1 shows an output-only device, as Chrome would see it.
    idle = v4l2caps.query(camera_dev)
    assert idle.is_loopback and idle.can_output and not idle.can_capture, idle
    with feed(raw, camera_dev, tmp_path / "feed.log") as writer:
        frames = read_opencv(camera_dev, 10)
        assert writer.alive(), writer.tail()
        streaming = v4l2caps.query(camera_dev)
        assert streaming.can_capture and "YUYV" in streaming.capture_formats, streaming
        by_ffmpeg = read_ffmpeg(camera_dev, 5, WIDTH, HEIGHT)
    assert [f.shape for f in frames] == [(HEIGHT, WIDTH, 3)] * 10
    assert len(by_ffmpeg) == 5
    # Each frame read back is one of the clip's pictures (YUYV round trip: small differences).
    for f in [*frames, *by_ffmpeg]:
        assert best_match_mad(f, refs) < 4.0
    # And it is a moving picture, not one frame repeated (the clip plays at 15 fps).
    assert len({round(float(np.mean(f)), 2) for f in frames}) > 1
