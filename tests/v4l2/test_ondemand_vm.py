"""On demand, on real devices: the daemon keeps the physical camera closed until a consumer
really watches the virtual camera, and a capability probe (what browsers do every few seconds)
does not start it."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2
from test_run_vm import is_composited, write_config
from v4l2_helpers import background, feed, make_raw_clip, wait_for

from pixcam.video import v4l2caps


def opened_by(pid: int, device: str) -> bool:
    """Does process `pid` hold `device` open? (/proc/PID/fd, like lsof)"""
    real = os.path.realpath(device)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == real:
                return True
        except OSError:
            continue
    return False


def probe(device: str) -> None:
    """What Chrome does to list cameras: open, ask the capabilities, close."""
    v4l2caps.query(device)


def test_camera_runs_only_while_watched(
    tmp_path: Path, camera_dev: str, pixcam_dev: str, models_installed: Path
) -> None:
    raw = make_raw_clip(tmp_path / "clip.yuyv")
    cfg = write_config(tmp_path / "config.toml", camera_dev, pixcam_dev, always_on=False)
    argv = [sys.executable, "-m", "pixcam", "daemon", "--config", str(cfg), "--no-tray",
            "--socket", str(tmp_path / "control.sock")]  # fmt: skip
    with (
        feed(raw, camera_dev, tmp_path / "feed.log"),
        background(argv, tmp_path / "pixcam.log") as pixcam,
    ):
        pid = pixcam.popen.pid

        def log() -> str:
            return pixcam.tail(60)

        # Started: it holds the virtual camera (its idle card), but not the physical camera.
        wait_for(lambda: opened_by(pid, pixcam_dev) or not pixcam.alive(), 180, "pixcam to start")
        assert pixcam.alive(), log()
        wait_for(lambda: "on demand" in log() or "can't watch" in log(), 60, "on-demand watch")
        assert not opened_by(pid, camera_dev), log()

        # Probes open and close within milliseconds: the camera must stay closed. Watched for
        # several times the 1 s start delay, sampling often enough to see a brief start.
        for _ in range(3):
            probe(pixcam_dev)
            time.sleep(0.3)
        end = time.monotonic() + 8
        while time.monotonic() < end:
            assert not opened_by(pid, camera_dev), f"a probe started the camera:\n{log()}"
            time.sleep(0.1)

        # A real consumer: the camera opens and processed frames arrive.
        cap = cv2.VideoCapture(pixcam_dev, cv2.CAP_V4L2)
        try:
            assert cap.isOpened(), "pixcam's virtual camera is not a capture device"
            processed, camera_seen = 0, False
            deadline = time.monotonic() + 240
            while processed < 3:
                assert time.monotonic() < deadline, f"no processed frames:\n{log()}"
                ok, frame = cap.read()
                assert ok, f"read failed:\n{log()}"
                camera_seen = camera_seen or opened_by(pid, camera_dev)
                processed += is_composited(frame)
            assert camera_seen and opened_by(pid, camera_dev), log()
            # A probe while someone watches does not restart the camera either.
            probe(pixcam_dev)
            for _ in range(5):
                ok, frame = cap.read()
                assert ok and is_composited(frame), log()
        finally:
            cap.release()

        # Nobody watches any more: the camera is closed again (after the stop delay).
        wait_for(lambda: not opened_by(pid, camera_dev), 120, "the camera to close")
        assert pixcam.alive(), log()
        text = log()
    # Exactly one start and one stop: neither probe cycled the camera.
    assert text.count("camera on") == 1, text
    assert text.count("camera off") == 1, text
