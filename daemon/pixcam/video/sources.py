"""Frame sources: a physical camera (OpenCV, V4L2) or a video file, newest frame only.

Every source runs one capture thread that overwrites a single slot with the newest frame, so a
slow consumer drops frames instead of building a queue: latency never grows. `read()` hands out
each frame at most once and raises `SourceError` once the device has failed for good (unplugged,
read errors); the pipeline then shows a placeholder and reopens with backoff.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pixcam import images, paths
from pixcam.errors import PixcamError
from pixcam.i420 import Frame
from pixcam.modes import STILL_SUFFIXES
from pixcam.video import mjpg
from pixcam.video.devices import holders, list_cameras, not_a_video_device, video_index

log = logging.getLogger("pixcam.video.sources")

# OpenCV's V4L2 backend waits 10 s in select() for each frame of a stalled camera, during which
# the capture thread can neither report the fault nor release the device. It reads this once,
# at the first camera read (not at import), and has no CAP_PROP for it on V4L2.
os.environ.setdefault("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT", "2")

# A camera that fails this many reads in a row is treated as gone (about 1 s at 30 fps).
MAX_READ_FAILURES = 30
# How long the first frame may take: a busy or broken device never delivers one.
FIRST_FRAME_TIMEOUT_S = 5.0
# Smaller frames leave nothing for the network and the blur's downscales to work on.
MIN_FRAME_SIDE = 32
# Longer side over shorter side: past it the network's few output rows no longer match the
# frame (a 3000×48 video failed every frame); the widest camera formats are 32:9, about 3.6.
MAX_ASPECT = 16
# MJPG frames bigger than 1080p are decoded on the capture thread, beside the chain working
# on the previous frame (libjpeg-turbo releases the GIL): at 4K the decode alone is about
# half a frame interval, so decoded by the consumer it caps the rate at ~20 fps on two cores.
# Smaller ones (and big ones while the consumer is behind) are decoded when taken, so a frame
# the consumer was too slow for costs nothing.
DECODE_AHEAD_PIXELS = 1920 * 1080


class SourceError(PixcamError):
    """The source stopped delivering frames (device unplugged, read errors, busy)."""


@dataclass(frozen=True)
class SourceSpec:
    """What to open: a camera (`device`) or, when `path` is set, a video file."""

    device: str | int = "auto"
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    mjpg: bool = True
    path: str | None = None
    # File only: start over at the end (camera emulation) or stop there (offline rendering).
    loop: bool = True
    # File only: pace at the file's fps and drop frames like a camera (True), or hand out every
    # frame in order and wait for the consumer (False; offline rendering, tests, benchmarks).
    realtime: bool = True


class Source:
    """A capture thread filling a newest-frame slot: the contract every source keeps.

    - `name`, `width`, `height`, `fps`: what the device or file granted, set when it opens
      (before `start()`); `fps` 0 means unknown (the runner then uses the configured rate).
      A source that cannot open raises `SourceError` (a `PixcamError`) with the fix.
    - Consumer side, one consumer thread: `read(timeout, size)` returns the newest frame not
      yet returned (each frame at most once; older ones are dropped, never queued), or None
      when none came within `timeout`. It raises `SourceError` once the source failed for
      good (unplugged, read errors: every later read raises it too) and `EOFError` at the end
      of a non-looping file. `last_capture_t` is the capture time of the frame just read.
    - `close()`: stops and joins the capture thread, then `release()`s the device; once (a
      second call does nothing). It may block while a read inside the driver finishes.
    - Producer side, for subclasses: `capture()` is the thread's loop, ending once
      `stopping` is set; it calls `publish(frame)`, `fail(message)` or `end()`.
    """

    name: str = "source"
    width: int = 0
    height: int = 0
    fps: float = 0.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._raw = False  # the slot holds undecoded MJPG (decoded only when taken)
        self._stamp = 0.0  # time.monotonic() when the frame in the slot was captured
        self.last_capture_t = 0.0  # capture time of the frame `read()` returned last
        self._size: tuple[int, int] | None = None  # the size `read()` was last asked for
        self._seq = 0  # sequence number of the frame in the slot
        self._taken = 0  # sequence number of the last frame handed out
        self._error: SourceError | None = None
        self._ended = False
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Lock-step mode: the producer waits until the consumer took the frame (no drops).
        self._lockstep = False
        self._closed = False  # close() ran: a second call does nothing

    # ----------------------------------------------------------------- consumer side
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.capture, name=f"capture {self.name}", daemon=True
        )
        self._thread.start()

    def read(self, timeout: float = 1.0, size: tuple[int, int] | None = None) -> Frame | None:
        """The newest frame not yet returned, waiting up to `timeout` s; None if none came.
        A camera's MJPG comes decoded to I420 (`mjpg.decode_frame`), everything else BGR.
        `size` (w, h): the picture is shown that big, so an MJPG frame larger than that is
        decoded at a reduced scale that still covers it (`mjpg.decode_reduced`).

        Raises `SourceError` when the source has failed, and `EOFError` at the end of a
        non-looping file.
        """
        deadline = time.monotonic() + timeout
        self._size = size
        with self._cond:
            while self._seq == self._taken:
                if self._error is not None:
                    raise self._error
                if self._ended:
                    raise EOFError(self.name)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            self._taken = self._seq
            frame, raw = self._frame, self._raw
            self.last_capture_t = self._stamp
            self._cond.notify_all()  # wakes a lock-step producer
        # Decoded here, by the consumer: a frame the consumer was too slow for costs nothing.
        if raw and isinstance(frame, np.ndarray):
            return mjpg.decode_frame(frame, size)
        return frame

    @property
    def failed(self) -> bool:
        return self._error is not None

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
        self.stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            # No timeout: releasing the capture while its thread is still inside a read
            # is what OpenCV aborts on; the read ends within the V4L2 select timeout.
            self._thread.join()
        self.release()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- producer side
    # A source is a subclass that implements `capture()` (the capture thread's loop, which
    # ends once `stopping` is set) with `publish`, `fail` and `end`, and `release()`.
    def publish(self, frame: np.ndarray, raw: bool = False) -> None:
        """`raw`: `frame` is one MJPG buffer, decoded when taken (or here, when big)."""
        stamp = time.monotonic()
        # Only while the consumer keeps up (took the last frame): behind, it would skip most.
        keeping_up = self._seq == self._taken
        published: Frame = frame
        if raw and keeping_up and self.width * self.height > DECODE_AHEAD_PIXELS:
            decoded = mjpg.decode_frame(frame, self._size)
            if decoded is not None:  # else the consumer's decode fails and says so
                published, raw = decoded, False
        with self._cond:
            if self._lockstep:
                while self._seq != self._taken and not self.stopping.is_set():
                    self._cond.wait(0.1)
            self._frame, self._raw, self._stamp = published, raw, stamp
            self._seq += 1
            self._cond.notify_all()

    def fail(self, message: str) -> None:
        log.warning("%s", message)
        with self._cond:
            self._error = SourceError(message)
            self._cond.notify_all()

    def end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def capture(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def release(self) -> None:
        pass


# --------------------------------------------------------------------------- cameras
def _fourcc_str(value: float) -> str:
    v = int(value)
    return "".join(chr((v >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00") or "?"


class CameraSource(Source):
    """A physical camera through OpenCV's V4L2 backend."""

    def __init__(self, spec: SourceSpec, device: str) -> None:
        super().__init__()
        self.spec = spec
        self.name = device
        self._cap = self._open(spec, device)

    @staticmethod
    def _open(spec: SourceSpec, device: str) -> cv2.VideoCapture:
        if not os.path.exists(device):
            raise SourceError(f"camera {device} does not exist; use --input FILE to use a video")
        if not os.access(device, os.R_OK | os.W_OK):
            raise SourceError(
                f"no permission to open {device}; add yourself to the 'video' group "
                "(sudo usermod -aG video $USER) and log in again"
            )
        index = video_index(device)
        cap = cv2.VideoCapture(index if index is not None else device, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            other = not_a_video_device(device)
            if other:  # /dev/null "in use by" every shell would be no help
                raise SourceError(
                    f"camera {device} is {other}, not a video device; give auto, a camera index "
                    "such as 0 or a device path such as /dev/video0"
                )
            raise SourceError(f"camera {device} could not be opened{_busy_hint(device)}")
        # MJPG first: many drivers only honour the FOURCC when it is set before the geometry,
        # and YUYV gives 5-10 fps at 720p/1080p over USB 2.
        if spec.mjpg and spec.height >= 720:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, spec.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, spec.height)
        cap.set(cv2.CAP_PROP_FPS, spec.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # driver-side queue as short as possible too
        # MJPG arrives undecoded (OpenCV then hands out the JPEG bytes as one row): our own
        # decode is about twice as fast (mjpg.py) and skips the frames nobody takes.
        if spec.mjpg and _fourcc_str(cap.get(cv2.CAP_PROP_FOURCC)) == "MJPG":
            cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        return cap

    def start(self) -> None:
        cap = self._cap
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or self.spec.fps
        log.info(
            "camera %s: asked %dx%d@%g%s, granted %dx%d@%g %s",
            self.name,
            self.spec.width,
            self.spec.height,
            self.spec.fps,
            " MJPG" if self.spec.mjpg and self.spec.height >= 720 else "",
            self.width,
            self.height,
            self.fps,
            _fourcc_str(cap.get(cv2.CAP_PROP_FOURCC)),
        )
        super().start()

    def capture(self) -> None:
        failures = 0
        got_any = False
        started = time.monotonic()
        while not self.stopping.is_set():
            ok, frame = self._cap.read()
            # A raw MJPG frame is one row of bytes; a driver that ignored CONVERT_RGB=0 gives BGR.
            raw = ok and frame is not None and frame.ndim == 2 and frame.shape[0] == 1
            if ok and frame is not None and (frame.ndim == 3 or raw):
                failures = 0
                got_any = True
                self.publish(frame, raw=raw)
                continue
            failures += 1
            if not got_any and time.monotonic() - started > FIRST_FRAME_TIMEOUT_S:
                self.fail(f"camera {self.name} gives no frames{_busy_hint(self.name)}")
                return
            if not os.path.exists(self.name):
                self.fail(f"camera {self.name} was unplugged")
                return
            if got_any and failures >= MAX_READ_FAILURES:
                self.fail(f"camera {self.name}: {failures} read errors in a row")
                return
            time.sleep(0.03)

    def release(self) -> None:
        self._cap.release()


def _busy_hint(device: str) -> str:
    users = holders(device)
    if users:
        return f": it is busy, in use by {', '.join(users)}; close that application"
    return ": is another application using it?"


# ------------------------------------------------------------------------ video files
class FileSource(Source):
    """A video file that behaves like a camera: paced at its own fps, looping, newest only."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__()
        assert spec.path is not None
        self.spec = spec
        self.name = spec.path
        paths.check_file(spec.path, "input video")  # missing, a folder, a FIFO...: said so
        if Path(spec.path).suffix.lower() in STILL_SUFFIXES:
            images.check_size(Path(spec.path), "input")  # before OpenCV decodes a bomb
        self._cap = cv2.VideoCapture(spec.path)
        ok, first = self._cap.read() if self._cap.isOpened() else (False, None)
        if not ok or first is None:
            self._cap.release()
            raise PixcamError(f"input {spec.path} is not a video OpenCV can decode")
        self._first: np.ndarray | None = first
        self.height, self.width = first.shape[:2]
        if min(self.width, self.height) < MIN_FRAME_SIDE:
            self._cap.release()
            raise PixcamError(
                f"input {spec.path} is {self.width}×{self.height} pixels; pixcam needs frames "
                f"of at least {MIN_FRAME_SIDE}×{MIN_FRAME_SIDE}"
            )
        if max(self.width, self.height) > MAX_ASPECT * min(self.width, self.height):
            self._cap.release()
            raise PixcamError(
                f"input {spec.path} is {self.width}×{self.height} pixels; pixcam needs frames "
                f"at most {MAX_ASPECT} times as wide as high (or as high as wide)"
            )
        fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        self.fps = fps if 1.0 <= fps <= 240.0 else 30.0
        self._lockstep = not spec.realtime

    def capture(self) -> None:
        period = 1.0 / self.fps
        next_t = time.monotonic()
        frame, self._first = self._first, None
        # The first frame, until a second one comes (a copy: the consumer owns what it gets).
        only = frame.copy() if frame is not None else None
        still: np.ndarray | None = None  # a one-frame file (a picture) that loops
        while not self.stopping.is_set():
            if frame is None and still is not None:
                frame = still.copy()  # repeated, not decoded again for every frame
            if frame is None:
                ok, frame = self._cap.read()
                if ok and frame is not None:
                    only = None
                elif not self.spec.loop:
                    self.end()
                    return
                elif only is not None:
                    still, frame = only, only.copy()
                else:
                    # Reopen rather than seek: seeking to 0 is unreliable for some containers.
                    self._cap.release()
                    self._cap = cv2.VideoCapture(self.name)
                    ok, frame = self._cap.read()
                    if not ok or frame is None:
                        self.fail(f"input {self.name} could not be read again")
                        return
            if self.spec.realtime:
                delay = next_t - time.monotonic()
                if delay > 0:
                    self.stopping.wait(delay)
                # Never try to catch up after a stall: a camera would not either.
                next_t = max(next_t + period, time.monotonic() - period)
            self.publish(frame)
            frame = None

    def release(self) -> None:
        self._cap.release()


# --------------------------------------------------------------------------- opening
def open_source(spec: SourceSpec) -> Source:
    """Open (and start) the camera or file described by `spec`.

    Raises `PixcamError` with a one-line fix when there is no camera, it is busy or missing.
    """
    if spec.path:
        src: Source = FileSource(spec)
    else:
        src = _open_camera(spec)
    src.start()
    return src


def _open_camera(spec: SourceSpec) -> CameraSource:
    device = str(spec.device).strip()
    if device.isdigit():
        return CameraSource(spec, f"/dev/video{device}")
    if device != "auto":
        return CameraSource(spec, device)
    cameras = list_cameras()
    if not cameras:
        raise SourceError(
            "no camera found (no /dev/video* capture device); "
            "use --input FILE to run on a video file instead"
        )
    errors = []
    for cam in cameras:
        # UVC cameras add a metadata-only node that does not open for capture: the first
        # node that really opens is the camera.
        try:
            return CameraSource(spec, cam)
        except SourceError as exc:
            errors.append(str(exc))
    raise SourceError(
        f"no camera could be opened ({'; '.join(errors)}); use --input FILE to use a video"
    )
