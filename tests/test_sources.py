"""Sources: video files (every frame / paced), newest-frame-only slot, camera errors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import VIDEOS, need, read_video
from pixcam.errors import PixcamError
from pixcam.video import devices, sources
from pixcam.video.sources import Source, SourceError, SourceSpec, open_source


@pytest.fixture
def small_video() -> Path:
    return need(VIDEOS / "walking-640x360.mp4", "test video")


def test_file_source_every_frame_in_order_then_eof(small_video: Path) -> None:
    expected = read_video(small_video)
    with open_source(SourceSpec(path=str(small_video), loop=False, realtime=False)) as src:
        assert (src.width, src.height) == (640, 360)
        assert 1 <= src.fps <= 240
        got = []
        with pytest.raises(EOFError):
            while True:
                frame = src.read(timeout=5.0)
                assert frame is not None, "lock-step file source stalled"
                got.append(frame)
    assert len(got) == len(expected)
    for i in (0, len(got) // 2, len(got) - 1):
        np.testing.assert_array_equal(got[i], expected[i])


def test_file_source_loops(small_video: Path) -> None:
    n = len(read_video(small_video))
    first = read_video(small_video, 1)[0]
    with open_source(SourceSpec(path=str(small_video), loop=True, realtime=False)) as src:
        frames = [src.read(timeout=5.0) for _ in range(n + 1)]
    assert all(f is not None for f in frames)
    np.testing.assert_array_equal(frames[n], first)  # frame n+1 is frame 1 again


def test_realtime_file_source_drops_old_frames(small_video: Path) -> None:
    """A paced source keeps running while nobody reads; the reader gets the newest frame."""
    expected = read_video(small_video, 40)
    with open_source(SourceSpec(path=str(small_video), loop=True, realtime=True)) as src:
        assert src.read(timeout=5.0) is not None
        deadline = time.monotonic() + 30.0
        while src._seq < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        frame = src.read(timeout=5.0)
        taken = src._taken
    assert taken >= 6, "the paced source produced no frames"
    # Frames 2..taken-1 were skipped, not queued: we got the newest one.
    np.testing.assert_array_equal(frame, expected[taken - 1])


class _Numbered(Source):
    """Publishes on demand, for testing the newest-frame slot without threads or timing."""

    def capture(self) -> None:
        pass


def test_newest_frame_only_and_each_frame_once() -> None:
    src = _Numbered()
    for i in range(5):
        src.publish(np.full((2, 2, 3), i, np.uint8))
    assert src.read(timeout=0)[0, 0, 0] == 4  # the older four were overwritten, not queued
    assert src.read(timeout=0) is None  # the same frame is never handed out twice
    src.publish(np.full((2, 2, 3), 9, np.uint8))
    assert src.read(timeout=0)[0, 0, 0] == 9


def test_failed_source_raises_after_last_frame() -> None:
    src = _Numbered()
    src.fail("camera /dev/video0 was unplugged")
    with pytest.raises(SourceError, match="unplugged"):
        src.read(timeout=0)


def test_missing_or_undecodable_input_file(tmp_path: Path) -> None:
    with pytest.raises(PixcamError, match="does not exist"):
        open_source(SourceSpec(path=str(tmp_path / "nope.mp4")))
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    with pytest.raises(PixcamError, match="not a video"):
        open_source(SourceSpec(path=str(junk)))


def test_no_camera_is_one_line_pointing_to_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "list_cameras", lambda: [])
    with pytest.raises(SourceError) as info:
        open_source(SourceSpec(device="auto"))
    msg = str(info.value)
    assert "no camera" in msg and "--input" in msg and "\n" not in msg


def test_named_camera_missing(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist.*--input"):
        open_source(SourceSpec(device=str(tmp_path / "video7")))


def _fake_v4l(tmp_path: Path) -> tuple[Path, Path]:
    """/dev and /sys/class/video4linux with a USB camera (video0) and a loopback (video10)."""
    dev, sysfs = tmp_path / "dev", tmp_path / "sys" / "class" / "video4linux"
    dev.mkdir()
    sysfs.mkdir(parents=True)
    targets = {
        "video0": tmp_path / "sys/devices/pci0000:00/usb1/1-1/video4linux/video0",
        "video10": tmp_path / "sys/devices/virtual/video4linux/video10",
        "video2": tmp_path / "sys/devices/pci0000:00/usb1/1-2/video4linux/video2",
    }
    for name, target in targets.items():
        target.mkdir(parents=True)
        (sysfs / name).symlink_to(target)
        (dev / name).touch()
    return dev, sysfs


def test_list_cameras_skips_loopbacks_in_numeric_order(tmp_path: Path) -> None:
    dev, sysfs = _fake_v4l(tmp_path)
    assert devices.list_cameras(dev, sysfs) == [str(dev / "video0"), str(dev / "video2")]


class _RecordingCapture:
    """Stands in for cv2.VideoCapture: records the order of set() calls."""

    calls: list[int] = []

    def __init__(self, *args: object) -> None:
        type(self).calls = []
        self.values: dict[int, float] = {}

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def set(self, prop: int, value: float) -> bool:
        type(self).calls.append(prop)
        self.values[prop] = value
        return True

    def get(self, prop: int) -> float:
        return self.values.get(prop, 0.0)

    def release(self) -> None:
        pass


@pytest.mark.parametrize(("height", "mjpg_expected"), [(720, True), (1080, True), (480, False)])
def test_mjpg_is_set_before_the_geometry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, height: int, mjpg_expected: bool
) -> None:
    node = tmp_path / "video0"
    node.touch()
    monkeypatch.setattr(sources.cv2, "VideoCapture", _RecordingCapture)
    spec = SourceSpec(device=str(node), width=height * 16 // 9, height=height, mjpg=True)
    sources.CameraSource._open(spec, str(node))
    calls = _RecordingCapture.calls
    assert (cv2.CAP_PROP_FOURCC in calls) == mjpg_expected
    if mjpg_expected:
        assert calls.index(cv2.CAP_PROP_FOURCC) < calls.index(cv2.CAP_PROP_FRAME_WIDTH)
    # A granted MJPG comes undecoded, for the faster decode in mjpg.py.
    assert (cv2.CAP_PROP_CONVERT_RGB in calls) == mjpg_expected
    assert cv2.CAP_PROP_FRAME_HEIGHT in calls and cv2.CAP_PROP_FPS in calls


class _DyingCapture:
    """Delivers `good` frames, then fails every read (a camera pulled out mid-stream)."""

    def __init__(self, good: int) -> None:
        self.good = good

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.good > 0:
            self.good -= 1
            return True, np.zeros((4, 4, 3), np.uint8)
        return False, None

    def release(self) -> None:
        pass


def _camera_with(cap: _DyingCapture, node: Path) -> sources.CameraSource:
    src = sources.CameraSource.__new__(sources.CameraSource)
    Source.__init__(src)
    src.spec, src.name, src._cap = SourceSpec(), str(node), cap
    return src


def test_unplugged_camera_fails_with_clear_error(tmp_path: Path) -> None:
    node = tmp_path / "video0"
    node.touch()
    src = _camera_with(_DyingCapture(good=3), node)
    os.unlink(node)  # the node vanishes the moment the camera is unplugged
    src.capture()
    with pytest.raises(SourceError, match="unplugged"):
        while src.read(timeout=0) is not None:
            pass


def test_camera_read_errors_fail_after_a_streak(tmp_path: Path, monkeypatch) -> None:
    node = tmp_path / "video0"
    node.touch()
    monkeypatch.setattr(sources.time, "sleep", lambda s: None)
    src = _camera_with(_DyingCapture(good=2), node)
    src.capture()
    with pytest.raises(SourceError, match="read errors"):
        while src.read(timeout=0) is not None:
            pass


def test_busy_hint_names_the_process_holding_the_device(tmp_path: Path) -> None:
    import subprocess
    import sys

    node = tmp_path / "video0"
    node.touch()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"f = open({str(node)!r}); print('ok', flush=True); input()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        hint = sources._busy_hint(str(node))
        assert f"({holder.pid})" in hint and "busy" in hint
    finally:
        holder.kill()
        holder.wait()
    assert "another application" in sources._busy_hint(str(node))


# --------------------------------------------------------------------------- raw MJPG
class _RawMjpgSource(Source):
    """Publishes JPEG buffers the way OpenCV's V4L2 backend returns them with CONVERT_RGB=0."""

    name = "raw"

    def __init__(self, buffers: list[np.ndarray]) -> None:
        super().__init__()
        self._buffers = buffers
        self._lockstep = True

    def capture(self) -> None:
        for buf in self._buffers:
            self.publish(buf.reshape(1, -1), raw=True)
        self.end()


def test_raw_mjpg_is_decoded_when_taken_and_stamped() -> None:
    from pixcam.video import mjpg

    frame = cv2.resize(read_video(VIDEOS / "presenter-1280x720.mp4", 1)[0], (320, 180))
    jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
    # The fast decode differs from OpenCV's by less than the JPEG's own loss.
    ours = mjpg.decode(jpeg)
    assert ours is not None and ours.shape == frame.shape
    ref = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    assert cv2.absdiff(ours, ref).mean() < 1.5
    assert mjpg.decode(b"not a jpeg") is None

    src = _RawMjpgSource([jpeg, np.frombuffer(b"garbage!", np.uint8)])
    before = time.monotonic()
    src.start()
    got = src.read(timeout=2.0)
    assert got is not None and got.shape == frame.shape
    assert before <= src.last_capture_t <= time.monotonic()
    assert src.read(timeout=2.0) is None  # a corrupt frame is skipped, not an error
    with pytest.raises(EOFError):
        src.read(timeout=2.0)
    src.close()


def test_a_source_closes_once() -> None:
    """The `Source` contract: `close` stops the capture thread and releases the device once;
    a second call does nothing."""

    class Counted(Source):
        def __init__(self) -> None:
            super().__init__()
            self.name, self.width, self.height, self.fps = "counted", 8, 6, 30.0
            self.releases = 0

        def capture(self) -> None:
            while not self.stopping.wait(0.005):
                self.publish(np.zeros((6, 8, 3), np.uint8))

        def release(self) -> None:
            self.releases += 1

    source = Counted()
    source.start()
    assert source.read(timeout=5.0) is not None
    source.close()
    source.close()
    assert source.releases == 1
    assert source._thread is not None and not source._thread.is_alive()


def _not_a_camera(tmp_path: Path, kind: str) -> str:
    if kind == "a file":
        (tmp_path / "video0").write_text("not a camera")
        return str(tmp_path / "video0")
    return str(tmp_path) if kind == "a folder" else "/dev/null"


@pytest.mark.parametrize("kind", ["a file", "a folder", "a device of another kind"])
def test_a_camera_path_that_is_no_video_device_says_what_it_is(tmp_path: Path, kind: str) -> None:
    """/dev/null as the camera was "busy, in use by" every process holding it (every shell)."""
    path = _not_a_camera(tmp_path, kind)
    with pytest.raises(SourceError) as err:
        sources.CameraSource._open(SourceSpec(device=path), path)
    assert f"camera {path} is {kind}, not a video device" in str(err.value)
    assert "in use by" not in str(err.value) and "another application" not in str(err.value)
