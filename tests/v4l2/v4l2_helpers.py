"""Feeding and reading real v4l2loopback devices with real programs (ffmpeg, OpenCV).

Timing rules for the VM (software emulation, 12-22x slower than the host): every wait is a
deadline for something to *happen*, never an assertion on how fast it happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from pixcam.video import v4l2caps

REPO = Path(__file__).resolve().parents[2]
VIDEO = REPO.parent / "shared" / "data" / "video" / "sitting-outdoors-640x360.mp4"
WIDTH, HEIGHT, FPS = 320, 240, 15
# Centre 4:3 crop of the 16:9 clip, where the sitting person is.
CROP = "crop=480:360,scale=320:240"
# Generous: TCG ffmpeg/python start-up alone takes seconds.
OPEN_DEADLINE_S = 90.0


def make_raw_clip(
    dest: Path, frames: int = 45, video: Path = VIDEO, vf: str = CROP, start_s: float = 0.0
) -> Path:
    """`frames` frames of `video` from `start_s`, filtered by `vf` (default: the 320x240 crop),
    as raw YUYV (cheap to loop in the VM)."""
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-ss", str(start_s),
         "-i", str(video), "-frames:v", str(frames), "-vf", vf, "-pix_fmt", "yuyv422",
         "-f", "rawvideo", str(dest)],
        check=True,
    )  # fmt: skip
    return dest


def raw_frames_bgr(raw: Path) -> np.ndarray:
    """The raw YUYV clip as N x H x W x 3 BGR, the exact pictures the camera feed carries."""
    data = np.fromfile(raw, np.uint8).reshape(-1, HEIGHT, WIDTH, 2)
    return np.stack([cv2.cvtColor(f, cv2.COLOR_YUV2BGR_YUYV) for f in data])


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def _stamp_lines(pipe: IO[bytes], log: Path) -> None:
    """Copy `pipe` to `log`, each line prefixed with this VM's time.monotonic() (the clock
    the tests time things with)."""
    with log.open("wb") as out:
        for line in pipe:
            out.write(f"{time.monotonic():10.2f} ".encode() + line)
            out.flush()


@contextlib.contextmanager
def background(
    argv: list[str], log: Path, env: dict[str, str] | None = None, stamp: bool = False
) -> Iterator[Proc]:
    """Run `argv` for the duration of the block, output to `log` (each line prefixed with
    time.monotonic() with `stamp`); stopped with SIGINT, then SIGKILL, so the device is
    released before the next test."""
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv, stdout=subprocess.PIPE if stamp else out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )  # fmt: skip
    if stamp:
        assert popen.stdout is not None
        threading.Thread(target=_stamp_lines, args=(popen.stdout, log), daemon=True).start()
    proc = Proc(popen, log)
    try:
        yield proc
    finally:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGINT)
            try:
                popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()


def writable(device: str) -> None:
    """Make an idle loopback an output device again if the last writer left it neither.
    v4l2loopback 0.12.7 takes back its OUTPUT side only when a writer that called STREAMON
    closes; ffmpeg writes with write() and never does, so after its feed the node offers
    neither side (caps 0x5200000), and the next ffmpeg's VIDIOC_G_FMT fails with EINVAL
    ("Could not write header"). A STREAMON on OUTPUT (refused: no format yet) marks this
    opener the writer, and its close gives the OUTPUT side back."""
    info = v4l2caps.query(device)
    if info.can_capture or info.can_output:
        return
    fd = os.open(device, os.O_RDWR)
    try:
        with contextlib.suppress(OSError):
            v4l2caps.stream_on(fd, v4l2caps.BUF_TYPE_VIDEO_OUTPUT)
    finally:
        os.close(fd)
    v4l2caps.query(device)  # the caps the kernel checks each ioctl against, refreshed


def feed(
    raw: Path, device: str, log: Path, size: tuple[int, int] = (WIDTH, HEIGHT)
) -> contextlib.AbstractContextManager[Proc]:
    """ffmpeg plays the raw clip (`size` pixels) in a loop into `device`: the "physical
    camera"."""
    writable(device)
    return background(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
         "-f", "rawvideo", "-pix_fmt", "yuyv422", "-s", f"{size[0]}x{size[1]}",
         "-framerate", str(FPS), "-i", str(raw), "-f", "v4l2", device],
        log,
    )  # fmt: skip


def read_opencv(device: str, count: int, deadline_s: float = OPEN_DEADLINE_S) -> list[np.ndarray]:
    """`count` frames through OpenCV's V4L2 backend, the way browsers' camera stacks open it.

    With exclusive_caps=1 the node is not a capture device until its writer streams, so opening
    is retried until the deadline; so is a read that timed out (OpenCV gives up after 10 s
    without a frame), the way a video call app reopens a stalled camera.
    """
    end = time.monotonic() + deadline_s
    frames: list[np.ndarray] = []
    while len(frames) < count:
        if time.monotonic() > end:
            raise AssertionError(
                f"OpenCV read {len(frames)}/{count} frames from {device} in {deadline_s:.0f} s"
            )
        cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
        try:
            while cap.isOpened() and len(frames) < count:
                ok, frame = cap.read()
                if not ok:
                    break
                frames.append(frame)
        finally:
            cap.release()
        if len(frames) < count:
            time.sleep(0.5)
    return frames


def read_ffmpeg(
    device: str, count: int, width: int, height: int, deadline_s: float = OPEN_DEADLINE_S
) -> list[np.ndarray]:
    """`count` BGR frames through ffmpeg's v4l2 demuxer, retried while the device is not yet a
    capture device ("Not a video capture device")."""
    end = time.monotonic() + deadline_s
    last = ""
    while time.monotonic() < end:
        res = subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "v4l2", "-i", device,
             "-frames:v", str(count), "-f", "rawvideo", "-pix_fmt", "bgr24", "-"],
            capture_output=True, timeout=max(10.0, end - time.monotonic()) + 60, check=False,
        )  # fmt: skip
        size = width * height * 3
        if res.returncode == 0 and res.stdout and len(res.stdout) % size == 0:
            frames = np.frombuffer(res.stdout, np.uint8).reshape(-1, height, width, 3)
            return list(frames)
        errs = res.stderr.decode(errors="replace").strip().splitlines()
        last = errs[-1] if errs else f"{len(res.stdout)} bytes: not whole {width}x{height} frames"
        time.sleep(0.5)
    raise AssertionError(f"ffmpeg could not read {device} within {deadline_s:.0f} s: {last}")


def best_match_mad(frame: np.ndarray, refs: np.ndarray) -> float:
    """Mean absolute difference to the closest reference frame."""
    diffs = np.abs(refs.astype(np.int16) - frame.astype(np.int16)).mean(axis=(1, 2, 3))
    return float(diffs.min())


def wait_for(
    predicate: Callable[[], bool], deadline_s: float, what: str, step: float = 0.5
) -> None:
    end = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what}")
        time.sleep(step)


MEASURED: list[str] = []


def measured(line: str) -> None:
    """Keep a figure a test measured; conftest prints them all at the end of the run (and
    `-s` shows each one as it comes)."""
    MEASURED.append(line)
    print(line, flush=True)


def advertised_fps(device: str) -> float:
    """The frame rate a consumer of `device` is told: VIDIOC_G_PARM on the capture side, as
    OBS sizes its timeouts from it."""
    from pixcam.video import v4l2caps

    fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
    try:
        return v4l2caps.get_frame_rate(fd, v4l2caps.BUF_TYPE_VIDEO_CAPTURE)
    finally:
        os.close(fd)
