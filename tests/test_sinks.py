"""Sinks: loopback choice, one-line errors with the fix, failure detection, the file sink."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from pixcam.i420 import I420
from pixcam.video import sinks
from pixcam.video.devices import own_fds
from pixcam.video.sinks import (
    MODPROBE_FIX,
    FileSink,
    SinkError,
    SinkSpec,
    VirtualCameraSink,
    open_sink,
    pick_output_device,
)


def _sysfs(tmp_path: Path, nodes: dict[str, tuple[str, bool]]) -> Path:
    """A fake /sys/class/video4linux: name → (card label, is loopback)."""
    sysfs = tmp_path / "sys" / "class" / "video4linux"
    sysfs.mkdir(parents=True)
    for name, (label, loop) in nodes.items():
        parent = "virtual" if loop else "pci0000:00/usb1/1-1"
        target = tmp_path / "sys" / "devices" / parent / "video4linux" / name
        target.mkdir(parents=True)
        (target / "name").write_text(label + "\n")
        (sysfs / name).symlink_to(target)
    return sysfs


def _one_line(exc: pytest.ExceptionInfo[SinkError]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_auto_prefers_the_loopback_labelled_pixcam(tmp_path: Path) -> None:
    sysfs = _sysfs(
        tmp_path,
        {
            "video0": ("Integrated Camera", False),
            "video10": ("OBS Virtual Camera", True),
            "video11": ("pixcam", True),
        },
    )
    assert pick_output_device("auto", sysfs) == "/dev/video11"


def test_auto_takes_the_first_loopback_without_label(tmp_path: Path) -> None:
    sysfs = _sysfs(
        tmp_path,
        {"video0": ("Integrated Camera", False), "video12": ("Dummy", True), "video3": ("x", True)},
    )
    assert pick_output_device("auto", sysfs) == "/dev/video3"  # numeric order, not text order


def test_no_v4l2loopback_says_how_to_load_it(tmp_path: Path) -> None:
    sysfs = _sysfs(tmp_path, {"video0": ("Integrated Camera", False)})
    with pytest.raises(SinkError) as info:
        pick_output_device("auto", sysfs, module=tmp_path / "no-module")
    msg = _one_line(info)
    assert "not loaded" in msg and MODPROBE_FIX in msg


def test_loaded_module_without_devices(tmp_path: Path) -> None:
    module = tmp_path / "module"
    module.mkdir()
    with pytest.raises(SinkError) as info:
        pick_output_device("auto", tmp_path / "empty", module=module)
    assert "no device" in _one_line(info) and MODPROBE_FIX in str(info.value)


def test_a_real_camera_is_not_a_loopback(tmp_path: Path) -> None:
    sysfs = _sysfs(tmp_path, {"video0": ("Integrated Camera", False)})
    with pytest.raises(SinkError) as info:
        pick_output_device("0", sysfs)
    msg = _one_line(info)
    assert "/dev/video0 (Integrated Camera) is not a v4l2loopback device" in msg
    assert MODPROBE_FIX in msg


def test_named_device_missing(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="does not exist; create it with: sudo modprobe"):
        pick_output_device("/dev/video99", tmp_path / "empty")


class _FakeBackend:
    """Stands in for pyvirtualcam.Camera; opens the node like pyvirtualcam does."""

    def __init__(self, width: int, height: int, fps: float, device: str) -> None:
        self.fd = os.open(device, os.O_WRONLY)
        self.sent: list[np.ndarray] = []
        self.fail_with: Exception | None = None

    def send(self, frame: np.ndarray) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(frame)

    def close(self) -> None:
        os.close(self.fd)


def _sink_on_file(tmp_path: Path) -> tuple[VirtualCameraSink, _FakeBackend, Path]:
    node = tmp_path / "video10"
    node.touch()
    made: list[_FakeBackend] = []

    def factory(w: int, h: int, fps: float, dev: str) -> _FakeBackend:
        made.append(_FakeBackend(w, h, fps, dev))
        return made[0]

    sink = VirtualCameraSink(64, 48, 30, str(node), backend=factory, sysfs=tmp_path / "none")
    return sink, made[0], node


def test_virtual_camera_sends_and_checks_shape(tmp_path: Path) -> None:
    sink, backend, _ = _sink_on_file(tmp_path)
    # The device takes I420: an I420 frame goes out as it is, a BGR one converted.
    frame = I420.from_bgr(np.full((48, 64, 3), 7, np.uint8))
    sink.send(frame)
    assert len(backend.sent) == 1 and backend.sent[0] is frame.data
    sink.send(np.full((48, 64, 3), 7, np.uint8))
    assert np.array_equal(backend.sent[1], frame.data)
    with pytest.raises(SinkError, match="64x48"):
        sink.send(np.zeros((48, 63, 3), np.uint8))
    with pytest.raises(SinkError, match="64x48"):
        sink.send(I420.empty(62, 48))
    sink.close()


def test_write_exception_becomes_sink_error(tmp_path: Path) -> None:
    sink, backend, _ = _sink_on_file(tmp_path)
    backend.fail_with = OSError(5, "Input/output error")
    with pytest.raises(SinkError, match="rejected a frame"):
        sink.send(np.zeros((48, 64, 3), np.uint8))
    sink.close()


def test_vanished_device_is_detected(tmp_path: Path) -> None:
    """pyvirtualcam only prints write errors; the sink notices the device went away itself."""
    sink, _, node = _sink_on_file(tmp_path)
    sink.check()  # healthy
    assert sink._fds, "the sink should have found the backend's file descriptor"
    os.unlink(node)  # what `modprobe -r` / unplugging does to the node
    with pytest.raises(SinkError) as info:
        sink.check()
    assert "disappeared" in _one_line(info) and MODPROBE_FIX in str(info.value)
    sink._next_check = 0.0  # send() runs the same check (at most once a second)
    with pytest.raises(SinkError, match="disappeared"):
        sink.send(np.zeros((48, 64, 3), np.uint8))
    sink.close()


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (
            RuntimeError(
                "Virtual camera device /dev/video10 could not be configured: "
                "Device or resource busy"
            ),
            "is busy",
        ),
        (
            RuntimeError("Could not access /dev/video10 due to missing permissions. Did you ..."),
            "usermod -aG video",
        ),
        (ValueError("Device /dev/video10 is not a V4L2 device."), "is not a v4l2loopback"),
        (ValueError("Device /dev/video10 is not a video output device."), "is busy"),
        (RuntimeError("something odd\nsecond line"), "could not be opened: something odd"),
    ],
)
def test_pyvirtualcam_open_errors_are_one_line(
    tmp_path: Path, raised: Exception, expected: str
) -> None:
    def factory(*_: object) -> _FakeBackend:
        raise raised

    # video10 is a loopback in sysfs: "not a video output" then means another writer has it.
    sysfs = _sysfs(tmp_path, {"video10": ("pixcam", True)})
    with pytest.raises(SinkError) as info:
        VirtualCameraSink(64, 48, 30, "/dev/video10", backend=factory, sysfs=sysfs)
    assert expected in _one_line(info)


def test_real_pyvirtualcam_on_a_non_v4l2_device() -> None:
    """The real pyvirtualcam, on /dev/null: its error is translated, no traceback text."""
    pytest.importorskip("pyvirtualcam")
    with pytest.raises(SinkError) as info:
        VirtualCameraSink(64, 48, 30, "/dev/null")
    msg = _one_line(info)
    assert "/dev/null is not a v4l2loopback output" in msg and MODPROBE_FIX in msg


@pytest.mark.skipif(
    sinks.SYSFS_MODULE.exists(), reason="v4l2loopback is loaded here (covered by the VM test)"
)
def test_open_sink_without_v4l2loopback() -> None:
    with pytest.raises(SinkError) as info:
        open_sink(SinkSpec(), 640, 480, 30)
    assert MODPROBE_FIX in _one_line(info)


def test_file_sink_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    frames = [np.full((48, 64, 3), (i * 20) % 256, np.uint8) for i in range(12)]
    with open_sink(SinkSpec(path=str(out)), 64, 48, 24) as sink:
        for f in frames:
            sink.send(f)
        with pytest.raises(SinkError, match="64x48"):
            sink.send(np.zeros((10, 10, 3), np.uint8))
    cap = cv2.VideoCapture(str(out))
    got = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        got.append(f)
    assert len(got) == 12 and got[0].shape == (48, 64, 3)
    # mp4v is lossy; flat grey frames survive within a few levels.
    assert abs(float(got[5].mean()) - 100.0) < 6


def test_file_sink_bad_folder_is_clear(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="does not exist"):
        FileSink(str(tmp_path / "no" / "out.mp4"), 64, 48, 30)


def test_failed_open_does_not_leak_the_descriptor(tmp_path: Path) -> None:
    node = tmp_path / "video10"
    node.touch()

    def factory(w: int, h: int, fps: float, dev: str) -> _FakeBackend:
        os.open(dev, os.O_WRONLY)  # like pyvirtualcam: opened, then a check fails
        raise ValueError(f"Device {dev} is not a V4L2 device.")

    for _ in range(3):
        with pytest.raises(SinkError):
            VirtualCameraSink(64, 48, 30, str(node), backend=factory, sysfs=tmp_path / "none")
    assert own_fds(node) == set()


# ------------------------------------------------------------------ full and read-only disks
@pytest.fixture
def small_disk(tmpfs: Callable[[str], Path]) -> Path:
    """A real 1 MiB tmpfs, the size issue 23 used."""
    return tmpfs("1m")


def _noise(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)  # incompressible


def test_file_sink_stops_on_a_full_disk_and_removes_the_partial(small_disk: Path) -> None:
    rng = np.random.default_rng(1)
    out = small_disk / "out.mp4"
    sink = FileSink(str(out), 320, 240, 30)
    with pytest.raises(SinkError) as caught:
        for _ in range(300):  # ~300 MB of noise: far more than the disk takes
            sink.send(_noise(rng))
            time.sleep(0.005)  # the free space is looked at once a second
        sink.close()
    line = _one_line(caught)
    assert "disk is full" in line and "partial file was removed" in line, line
    assert not out.exists()
    sink.close()  # closing after the failure is quiet


def test_file_sink_reads_back_what_it_wrote(small_disk: Path) -> None:
    """Less than a second of frames on a disk nearly full: the free-space watch has not looked
    yet, the read-back after closing finds the file without its index."""
    rng = np.random.default_rng(2)
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (1024 * 1024 - 160 * 1024))
    out = small_disk / "out.mp4"
    sink = FileSink(str(out), 320, 240, 30)
    for _ in range(20):
        sink.send(_noise(rng))
    with pytest.raises(SinkError, match="disk is full.*partial file was removed"):
        sink.close()
    assert not out.exists() and filler.exists()


def test_file_sink_on_a_full_disk_refuses_to_start(small_disk: Path) -> None:
    (small_disk / "filler").write_bytes(b"\0" * (1024 * 1024 - 16 * 1024))
    with pytest.raises(SinkError, match="disk is full.*free some space first"):
        FileSink(str(small_disk / "out.mp4"), 64, 48, 30)
    assert not (small_disk / "out.mp4").exists()


def test_file_sink_on_a_read_only_disk_says_so(small_disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(SinkError, match="read-only"):
        FileSink(str(small_disk / "out.mp4"), 64, 48, 30)


def test_a_small_clip_on_a_small_disk_is_written_whole(small_disk: Path) -> None:
    rng = np.random.default_rng(3)
    out = small_disk / "out.mp4"
    with FileSink(str(out), 160, 120, 30) as sink:
        for _ in range(10):
            sink.send(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
    cap.release()


def test_run_onto_a_full_disk_fails_in_one_line(
    models_installed: Path, small_disk: Path, video_path: Path
) -> None:
    """Issue 23's reproduction: `pixcam run --input V --output FULL/run.mp4 --frames 150` on a
    1 MiB tmpfs exited 0 without a word and left an unplayable file."""
    out = small_disk / "run.mp4"
    argv = ["run", "--input", str(video_path), "--output", str(out), "--frames", "150"]
    done = subprocess.run(
        [sys.executable, "-m", "pixcam", *argv], capture_output=True, text=True, timeout=300
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("pixcam: writing video") and "disk is full" in lines[0]
    assert not out.exists()


# ------------------------------------------------------------------- the Sink contract
def _virtual_camera(tmp_path: Path) -> tuple[sinks.Sink, Callable[[], int]]:
    sink, backend, _ = _sink_on_file(tmp_path)
    closes = [0]
    real_close = backend.close

    def counted() -> None:
        closes[0] += 1
        real_close()

    backend.close = counted  # type: ignore[method-assign]
    return sink, lambda: closes[0]


def _file(tmp_path: Path) -> tuple[sinks.Sink, Callable[[], int]]:
    sink = FileSink(str(tmp_path / "out.mp4"), 64, 48, 30)
    return sink, lambda: int(sink._writer is None)


@pytest.mark.parametrize("make", [_virtual_camera, _file], ids=["virtual-camera", "file"])
def test_every_sink_keeps_the_contract(
    tmp_path: Path, make: Callable[[Path], tuple[sinks.Sink, Callable[[], int]]]
) -> None:
    """Granted size, rate and name read-only once open; `send` raises `SinkError` only;
    `close` once (a second call does nothing), and `send` after it raises `SinkError`."""
    sink, closed = make(tmp_path)
    assert (sink.width, sink.height, sink.fps) == (64, 48, 30) and sink.name
    for attribute, value in (("width", 32), ("height", 24), ("fps", 15.0), ("name", "x")):
        with pytest.raises(AttributeError, match="read-only"):
            setattr(sink, attribute, value)
    assert (sink.width, sink.height, sink.fps) == (64, 48, 30)
    sink.send(np.full((48, 64, 3), 90, np.uint8))
    with pytest.raises(SinkError):
        sink.send(np.zeros((10, 10, 3), np.uint8))  # the wrong size: SinkError, nothing else
    sink.retime(15.0)
    assert sink.fps == 15.0
    sink.close()
    assert closed() == 1
    sink.close()
    assert closed() == 1
    with pytest.raises(SinkError, match="closed"):
        sink.send(np.full((48, 64, 3), 90, np.uint8))


def test_a_file_sink_reads_its_file_back_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = FileSink(str(tmp_path / "out.mp4"), 64, 48, 30)
    sink.send(np.full((48, 64, 3), 90, np.uint8))
    reads: list[int] = []
    real = sink._read_back
    monkeypatch.setattr(sink, "_read_back", lambda: reads.append(1) or real())
    sink.close()
    sink.close()
    assert reads == [1]


def test_the_virtual_camera_advertises_the_rate_it_is_written_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VIDIOC_S_PARM (OUTPUT) on the writer's own fd at open and at each new rate: readers'
    VIDIOC_G_PARM then says what pixcam writes, not v4l2loopback's default 30 fps."""
    calls: list[tuple[int, int, float]] = []

    def set_frame_rate(fd: int, buf_type: int, fps: float) -> float:
        calls.append((fd, buf_type, fps))
        return fps

    monkeypatch.setattr(sinks.v4l2caps, "set_frame_rate", set_frame_rate)
    sink, backend, _ = _sink_on_file(tmp_path)
    assert calls == [(backend.fd, sinks.v4l2caps.BUF_TYPE_VIDEO_OUTPUT, 30)]
    sink.retime(15.0)
    assert calls[-1] == (backend.fd, sinks.v4l2caps.BUF_TYPE_VIDEO_OUTPUT, 15.0)
    assert sink.fps == 15.0
    # A reader asked for a rate of its own (OpenCV asks for 30 as it opens; v4l2loopback
    # keeps one interval for both sides): the next health check says 15 again.
    monkeypatch.setattr(sinks.v4l2caps, "get_frame_rate", lambda fd, buf_type: 30.0)
    monkeypatch.setattr(sinks, "HEALTH_CHECK_PERIOD_S", 0.0)
    del calls[:]
    sink._next_check = 0.0
    sink.send(np.full((48, 64, 3), 7, np.uint8))
    assert calls == [(backend.fd, sinks.v4l2caps.BUF_TYPE_VIDEO_OUTPUT, 15.0)]
    monkeypatch.setattr(sinks.v4l2caps, "get_frame_rate", lambda fd, buf_type: 15.0)
    sink.send(np.full((48, 64, 3), 7, np.uint8))
    assert len(calls) == 1  # told the truth already: nothing to do
    sink.close()


def test_a_driver_without_the_rate_ioctl_still_streams(tmp_path: Path) -> None:
    sink, backend, _ = _sink_on_file(tmp_path)  # a plain file: S_PARM fails with ENOTTY
    sink.retime(15.0)
    sink.send(np.full((48, 64, 3), 7, np.uint8))
    assert len(backend.sent) == 1 and sink.fps == 15.0
    sink.close()


@pytest.mark.parametrize(("fps", "tpf"), [(30, (1, 30)), (15, (1, 15)), (7.5, (2, 15)),
                                          (29.97, (100, 2997)), (60, (1, 60))])  # fmt: skip
def test_a_rate_becomes_a_frame_interval(fps: float, tpf: tuple[int, int]) -> None:
    assert sinks.v4l2caps.time_per_frame(fps) == tpf
