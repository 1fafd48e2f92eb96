"""`bash setup.sh`, the README's first command: its run step on a machine without ../shared."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO, read_video
from pixcam.video.devices import list_cameras


def _clone_without_shared(root: Path) -> Path:
    """A clone of the repository for the run step: setup.sh itself, the installed .venv and
    the bundled pictures, in a folder that has no ../shared beside it."""
    clone = root / "pixcam"
    clone.mkdir()
    shutil.copy(REPO / "setup.sh", clone)
    for name in (".venv", "backgrounds"):
        (clone / name).symlink_to(REPO / name)
    assert not (root / "shared").exists()
    return clone


def test_run_step_without_camera_or_shared_renders_a_bundled_demo(
    models_installed: Path, tmp_path: Path
) -> None:
    if list_cameras():
        pytest.skip("a camera is present: setup.sh would start the live camera")
    clone = _clone_without_shared(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PIXCAM_DEMO_VIDEO"}
    proc = subprocess.run(
        ["bash", str(clone / "setup.sh"), "--run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("setup: wrote out/demo-blur.mp4") and "pixcam run" in last, last
    got = read_video(clone / "out" / "demo-blur.mp4")
    picture = cv2.imread(str(REPO / "backgrounds" / "warm-office.png"))
    assert len(got) == 90 and got[0].shape == picture.shape
    # The picture came through the pipeline (no person: all background, blurred, and it is
    # out of focus already), not the placeholder a failing stream shows.
    diff = np.abs(got[-1].astype(np.int16) - picture).mean()
    assert diff < 6, diff
