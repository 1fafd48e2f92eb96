"""Shared test set-up: an isolated home for pixcam and the real models and data from ../shared.

Every test run gets its own XDG folders (config, data, runtime), so tests never touch the
user's files, and the models are installed into that data folder through the real
`pixcam models install` path, sha256 checks included.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_MODELS = SHARED / "models"
SHARED_DATA = SHARED / "data"
DEV_DATA = SHARED_DATA / "segmentation" / "dev"
VIDEOS = SHARED_DATA / "video"
IMAGES = SHARED_DATA / "images"

_HOME = Path(tempfile.mkdtemp(prefix="pixcam-test-"))
for _name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME"):
    (_HOME / _name.lower()).mkdir(mode=0o700)
    os.environ[_name] = str(_HOME / _name.lower())
os.environ.pop("PIXCAM_MODELS_DIR", None)
# The benches' default data (pixcam itself knows no developer folder): ../shared's.
os.environ.setdefault("PIXCAM_DEV_DATA", str(DEV_DATA))
os.environ.setdefault("PIXCAM_DEV_VIDEOS", str(VIDEOS))

# A shell without job control starts a background command (`pytest ... &` in a script) with
# SIGINT ignored, and every pixcam the tests start would inherit that: the Ctrl-C tests
# (test_interrupt.py, the signal storms) would then fail for the shell's sake. The tests' own
# process takes Ctrl-C again, so what they start gets Python's usual handler.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def need(path: Path, what: str) -> Path:
    """`path`, or skip the test saying which shared asset is missing."""
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (the shared assets folder is absent)")
    return path


@pytest.fixture(scope="session")
def models_installed() -> Path:
    """The real models, installed from ../shared/models into this run's data folder as
    `setup.sh` does: copied, the float x0.50 ones built from the ONNX files, the int8 ones
    made from those with the shipped calibration ranges (offline, no photos)."""
    from pixcam import models

    need(SHARED_MODELS, "shared models")
    lines = list(models.install(str(SHARED_MODELS)))
    assert not [line for line in lines if line.startswith(("FAILED", "skipped"))], lines
    return models.models_dir()


@pytest.fixture(scope="session")
def dev_data() -> Path:
    return need(DEV_DATA / "manifest.csv", "segmentation dev set").parent


@pytest.fixture
def video_path() -> Path:
    return need(VIDEOS / "doctor-desk-960x540.mp4", "test video")


def read_video(path: Path, limit: int | None = None) -> list[np.ndarray]:
    """All frames of a video file (or the first `limit`), decoded with OpenCV."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """`tmpfs(size)`: a real tmpfs of that size (mount's `size=`, e.g. "1m") mounted in the
    test's folder, for full and read-only disks; unmounted afterwards. Skips where mounting
    is not allowed (not root, a container without CAP_SYS_ADMIN)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        if shutil.which("mount") is None:
            pytest.skip("no mount command here")
        disk = tmp_path / f"disk{len(mounted)}"
        disk.mkdir()
        argv = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or 'not root'}")
        mounted.append(disk)
        return disk

    yield mount
    for disk in mounted:
        subprocess.run(["umount", "-l", str(disk)], check=False)


T = TypeVar("T")


def wait_until(pred: Callable[[], T | None], what: str = "condition", timeout: float = 20.0) -> T:
    """Poll `pred` until it returns something truthy, and return that. The deadline only
    guards against a hang; it is not a speed test."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs the real models (directly or through a fixture) is `slow`: the first
    one installs and quantizes them. So `-m "not slow"` is the quick loop."""
    for item in items:
        if "models_installed" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
