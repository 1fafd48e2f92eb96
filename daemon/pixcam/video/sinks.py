"""Frame sinks: the v4l2loopback virtual camera (pyvirtualcam) or a video file.

The device edge is thin on purpose, like pyvirtualcam's own layout: `pick_output_device` reads
sysfs to choose and check the loopback node, `_open_pyvirtualcam` is the only line that touches
pyvirtualcam, and everything it raises is turned into a one-line `SinkError` with the fix.
pyvirtualcam only prints write errors to stderr, so `VirtualCameraSink` checks on its own that
its device and its file descriptor are still alive.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar, overload

import cv2
import numpy as np

from pixcam import paths
from pixcam.errors import PixcamError
from pixcam.i420 import I420, Frame, as_bgr, as_i420
from pixcam.native import native_stderr_to_log
from pixcam.video import keeper, v4l2caps
from pixcam.video.devices import MODPROBE_OPTS, SYSFS_V4L, holders, list_video_nodes, own_fds

log = logging.getLogger("pixcam.video.sinks")

MODPROBE_FIX = f"sudo modprobe v4l2loopback {MODPROBE_OPTS}"
SYSFS_MODULE = Path(v4l2caps.LOOPBACK_MODULE)
HEALTH_CHECK_PERIOD_S = 1.0
DISK_CHECK_PERIOD_S = 1.0  # how often a file sink looks at its disk's free space
# A file sink stops below this much free space: FFmpeg writes in 32 KiB blocks, and the
# file's index still has to be written at the end.
MIN_FREE_BYTES = 64 * 1024
T = TypeVar("T")


class SinkError(PixcamError):
    """The output cannot be opened or stopped accepting frames."""


@dataclass(frozen=True)
class SinkSpec:
    """Where frames go: a video file when `path` is set, else the virtual camera of
    `backend` ("v4l2loopback" on `device`, "pipewire", "both" or "auto")."""

    device: str = "auto"
    path: str | None = None
    backend: str = "v4l2loopback"


class _SetOnce(Generic[T]):
    """A sink attribute given once, when the sink opens (`self.width = ...` in `__init__`),
    and read-only from then on: AttributeError on a second assignment."""

    def __init__(self, default: T) -> None:
        self._default = default
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _SetOnce[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> T | _SetOnce[T]:
        if obj is None:
            return self
        value: T = obj.__dict__.get(self._name, self._default)
        return value

    def __set__(self, obj: object, value: T) -> None:
        if self._name in obj.__dict__:
            raise AttributeError(f"{type(obj).__name__}.{self._name} is read-only once open")
        obj.__dict__[self._name] = value


class Sink(ABC):
    """What the runner writes to: the contract every sink keeps.

    - `name`, `width`, `height`, `fps`: what the sink was granted when it opened (the device
      or file, the frame size, the rate it advertises). Set once in `__init__`, read-only
      after that (`fps` changes only through `retime`). A sink that cannot open raises
      `SinkError` from its constructor, with the fix in one line.
    - `send(frame)`: frames are exactly `width × height`, BGR (uint8 H×W×3) or `I420`; each
      sink converts what is not its own format. It may raise `SinkError` only, and only when
      the output stopped accepting frames (the device went away, the disk is full, the sink
      is closed, a frame of the wrong shape); anything else is a bug. The outlet then closes
      a `reopenable` sink and opens a new one every few seconds while the stream goes on
      (that frame is dropped); a sink that is not reopenable ends the run with its message.
      Sends come from one thread at a time (the outlet's send loop): no locking needed.
    - `retime(fps)`: the rate changed; the sink advertises the new one from then on.
    - `close()`: releases the output; the first call does the work, later ones nothing. It
      may raise `SinkError` once, when what was written turns out broken (a file sink reads
      its file back); `send` after `close` raises `SinkError`.
    """

    name = _SetOnce("sink")
    width = _SetOnce(0)
    height = _SetOnce(0)
    fps = _SetOnce(0.0)
    # A virtual camera can come back (module reloaded); a file that failed stays failed.
    reopenable: bool = False

    @abstractmethod
    def send(self, frame: Frame) -> None:
        """Write one frame (see the class's contract)."""

    def retime(self, fps: float) -> None:
        """Advertise `fps` from now on (a sink that advertises nothing just records it)."""
        self.__dict__["fps"] = fps

    def close(self) -> None:
        """Release the output (see the class's contract): nothing to do here."""
        return

    def check_shape(self, frame: Frame) -> None:
        if isinstance(frame, I420):
            if (frame.width, frame.height) != (self.width, self.height):
                raise SinkError(
                    f"{self.name} takes {self.width}x{self.height} frames, "
                    f"got I420 {frame.width}x{frame.height}"
                )
        elif frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise SinkError(
                f"{self.name} takes {self.width}x{self.height} BGR uint8 frames, "
                f"got shape {frame.shape} {frame.dtype}"
            )

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------- device choice
def pick_output_device(
    device: str = "auto", sysfs: Path = SYSFS_V4L, module: Path = SYSFS_MODULE
) -> str:
    """The loopback node to write to: `device`, or for "auto" the one labelled pixcam, else
    the first loopback. Raises `SinkError` with the modprobe fix when there is none."""
    nodes = list_video_nodes(sysfs)
    device = str(device).strip()
    if device == "auto":
        loops = [n for n in nodes if n.loopback]
        if not loops:
            if module.exists():
                raise SinkError(
                    "v4l2loopback is loaded but has no device; reload it: "
                    f"sudo modprobe -r v4l2loopback && {MODPROBE_FIX}"
                )
            raise SinkError(f"no virtual camera: v4l2loopback is not loaded; run: {MODPROBE_FIX}")
        for n in loops:
            if "pixcam" in n.label.lower():
                return n.path
        return loops[0].path
    if device.isdigit():
        device = f"/dev/video{device}"
    node = next((n for n in nodes if n.path == device), None)
    if node is None:
        # Not in sysfs: either missing or sysfs is not what we think; let the open decide.
        if not os.path.exists(device):
            raise SinkError(
                f"virtual camera {device} does not exist; create it with: {MODPROBE_FIX}"
            )
        return device
    if not node.loopback:
        raise SinkError(
            f"{device} ({node.label or 'unknown'}) is not a v4l2loopback device; "
            f"choose the loopback with --output-device, or create one: {MODPROBE_FIX}"
        )
    return device


# --------------------------------------------------------------------- virtual camera
class _Backend(Protocol):
    def send(self, frame: np.ndarray) -> None: ...
    def close(self) -> None: ...


BackendFactory = Callable[[int, int, float, str], _Backend]


def _open_pyvirtualcam(width: int, height: int, fps: float, device: str) -> _Backend:
    import pyvirtualcam

    # I420 in: the chain's frames mostly are I420 already (`to_device`).
    return pyvirtualcam.Camera(
        width, height, fps, fmt=pyvirtualcam.PixelFormat.I420, device=device, backend="v4l2loopback"
    )


def to_device(frame: Frame) -> np.ndarray:
    """The buffer the virtual camera is sent: I420 as pyvirtualcam takes it, (H·3/2)×W."""
    return as_i420(frame).data


def _is_loopback(device: str, sysfs: Path) -> bool:
    """sysfs first (no open needed), then the driver name from VIDIOC_QUERYCAP."""
    node = next((n for n in list_video_nodes(sysfs) if n.path == device), None)
    if node is not None and node.loopback:
        return True
    try:
        return v4l2caps.query(device).is_loopback
    except OSError:
        return False


def _explain_open_error(device: str, exc: BaseException, is_loopback: bool) -> SinkError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if "permission" in low:
        return SinkError(
            f"no permission to write {device}; run: sudo usermod -aG video $USER, then log in again"
        )
    # Under exclusive_caps=1 a loopback that already has a writer offers CAPTURE only, so
    # pyvirtualcam reports "not a video output device" for what is really a busy device.
    if "busy" in low or "already in use" in low or ("not a video output" in low and is_loopback):
        users = holders(device)
        who = f" ({', '.join(users)})" if users else ""
        return SinkError(
            f"virtual camera {device} is busy: another program writes to it{who}; stop it "
            "or pick another loopback (--output-device; two loopbacks: "
            "sudo modprobe v4l2loopback devices=2 exclusive_caps=1 card_label=pixcam)"
        )
    if "not a v4l2 device" in low or "not a video output" in low or "not be queried" in low:
        return SinkError(
            f"{device} is not a v4l2loopback output; choose the loopback with --output-device, "
            f"or create one: {MODPROBE_FIX}"
        )
    if "does not exist" in low or "no v4l2 loopback" in low:
        return SinkError(f"virtual camera {device} does not exist; create it with: {MODPROBE_FIX}")
    if "backend" in low and "v4l2loopback" not in low:
        return SinkError(f"pyvirtualcam has no v4l2loopback backend here ({text})")
    return SinkError(f"virtual camera {device} could not be opened: {text}")


class VirtualCameraSink(Sink):
    """v4l2loopback through pyvirtualcam, opened once and kept open for the process lifetime."""

    reopenable = True

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        device: str = "auto",
        *,
        backend: BackendFactory = _open_pyvirtualcam,
        sysfs: Path = SYSFS_V4L,
        module: Path = SYSFS_MODULE,
    ) -> None:
        path = pick_output_device(device, sysfs, module)
        # The keeper (if it holds the device since start-up) closes first: v4l2loopback takes
        # one writer at a time.
        keeper.release()
        before = own_fds(path)
        try:
            self._cam: _Backend | None = backend(width, height, fps, path)
        except PixcamError:
            raise
        except Exception as exc:
            # pyvirtualcam does not close its fd when a check after open() fails; a sink
            # that is retried every few seconds would run out of descriptors.
            for fd in own_fds(path) - before:
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise _explain_open_error(path, exc, _is_loopback(path, sysfs)) from None
        self.name, self.width, self.height, self.fps = path, width, height, fps
        # Remember the device number and our fd: a reloaded module makes a new node with the
        # same name, and the old fd then points at a deleted inode.
        self._rdev = _rdev(path)
        self._fds = own_fds(path) - before
        log.debug("virtual camera %s: watching fd %s", path, sorted(self._fds) or "none found")
        for fd in self._fds:
            _claim_writer(fd)
        self._advertise(fps)
        self._next_check = time.monotonic() + HEALTH_CHECK_PERIOD_S
        log.info("virtual camera %s: %dx%d@%g I420", path, width, height, fps)

    def send(self, frame: Frame) -> None:
        if self._cam is None:
            raise SinkError(f"virtual camera {self.name} is closed")
        self.check_shape(frame)
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + HEALTH_CHECK_PERIOD_S
            self.check()
            self._keep_rate()
        try:
            self._cam.send(to_device(frame))
        except Exception as exc:
            raise SinkError(f"virtual camera {self.name} rejected a frame: {exc}") from None

    def retime(self, fps: float) -> None:
        super().retime(fps)
        self._advertise(fps)

    def _advertise(self, fps: float) -> None:
        """Set the device's frame interval to the rate pixcam writes (pyvirtualcam sets none:
        readers would see v4l2loopback's 30 fps, and those that trust it, like OBS, give up
        after 5 frame times of a slower stream)."""
        for fd in self._fds:
            try:
                took = v4l2caps.set_frame_rate(fd, v4l2caps.BUF_TYPE_VIDEO_OUTPUT, fps)
            except OSError as exc:  # an old driver without it: readers see its default
                log.debug("VIDIOC_S_PARM %g fps on %s: %s", fps, self.name, exc)
            else:
                log.debug("virtual camera %s advertises %g fps", self.name, took)

    def _keep_rate(self) -> None:
        """Advertise the rate again if a reader changed it: v4l2loopback keeps one frame
        interval for both sides, and OpenCV, for one, asks for 30 fps as it opens."""
        for fd in self._fds:
            try:
                told = v4l2caps.get_frame_rate(fd, v4l2caps.BUF_TYPE_VIDEO_OUTPUT)
            except OSError:
                return  # no rate ioctls here (see _advertise)
            if abs(told - self.fps) > 0.01:
                self._advertise(self.fps)
                return

    def check(self) -> None:
        """Raise `SinkError` if the device went away (module unloaded, node replaced)."""
        gone = SinkError(
            f"virtual camera {self.name} disappeared (v4l2loopback unloaded?); "
            f"load it again: {MODPROBE_FIX}"
        )
        if _rdev(self.name) != self._rdev:
            raise gone
        for fd in self._fds:
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                raise gone from None
            if target.endswith("(deleted)"):
                raise gone

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.close()
            except Exception as exc:  # closing a vanished device must not mask the real error
                log.debug("closing %s: %s", self.name, exc)


def _claim_writer(fd: int) -> None:
    """STREAMON on pyvirtualcam's fd, which only ever write()s.

    v4l2loopback before 0.13 with exclusive_caps=1 gives the OUTPUT capability back on close
    only to an opener that did STREAMON (v4l2loopback issues #442/#470); without it the device
    refuses every later writer, so a restarted pixcam would fail until the module is reloaded.
    """
    try:
        v4l2caps.stream_on(fd, v4l2caps.BUF_TYPE_VIDEO_OUTPUT)
    except OSError as exc:  # newer drivers may refuse it without buffers; harmless then
        log.debug("VIDIOC_STREAMON on fd %d: %s", fd, exc)


def _rdev(path: str) -> int | None:
    try:
        return os.stat(path).st_rdev
    except OSError:
        return None


# ------------------------------------------------------------------------- video file
class FileSink(Sink):
    """An mp4 file written with OpenCV's mp4v encoder.

    OpenCV's VideoWriter reports no write error: on a full disk it goes on "writing", and the
    file ends without its index (the moov atom), unplayable. So the sink watches the free space
    of its disk (before the first frame and once a second: one statvfs) and reads the file's
    header back after closing it; either failing is a `SinkError`, and the partial file, which
    no player can open, is removed rather than left to keep the disk full.
    """

    def __init__(self, path: str, width: int, height: int, fps: float) -> None:
        parent = os.path.dirname(os.path.abspath(path))
        if paths.too_long(path):
            raise SinkError(str(paths.name_error(path, "cannot write video")))
        if not os.path.isdir(parent):
            raise SinkError(f"cannot write {path}: folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise SinkError(f"cannot write {path}: folder {parent} is read-only for pixcam")
        self._path, self._folder = path, parent
        self._check_space(before=True)
        fourcc = cv2.VideoWriter.fourcc(*"mp4v")
        with native_stderr_to_log():
            self._writer: cv2.VideoWriter | None = cv2.VideoWriter(
                path, fourcc, float(fps or 30.0), (width, height)
            )
        if not self._writer.isOpened():
            raise SinkError(f"cannot write video {path}: use a writable .mp4 path")
        self.name, self.width, self.height, self.fps = path, width, height, fps
        self.frames = 0
        self._next_check = time.monotonic() + DISK_CHECK_PERIOD_S

    def send(self, frame: Frame) -> None:
        if self._writer is None:
            raise SinkError(f"output {self.name} is closed")
        self.check_shape(frame)
        self._writer.write(as_bgr(frame))
        self.frames += 1
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + DISK_CHECK_PERIOD_S
            self._check_space()

    def _check_space(self, before: bool = False) -> None:
        try:
            st = os.statvfs(self._folder)
        except OSError:
            return  # nothing to watch on: the read-back at close still checks the file
        # root may fill the blocks the file system keeps back; anyone else stops before them.
        blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail
        free = blocks * st.f_frsize
        if free < MIN_FREE_BYTES:
            self._fail(f"the disk is full ({free // 1024} KiB free in {self._folder})", before)

    def _fail(self, why: str, before: bool = False) -> None:
        writer, self._writer = getattr(self, "_writer", None), None
        if writer is not None:
            with native_stderr_to_log():
                writer.release()
        if before:
            raise SinkError(f"cannot write video {self._path}: {why}; free some space first")
        with contextlib.suppress(OSError):
            os.unlink(self._path)
        raise SinkError(
            f"writing video {self._path} failed: {why}; the unplayable partial file was removed"
        )

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        with native_stderr_to_log():
            writer.release()
        if self.frames:
            self._read_back()
        log.info("wrote %d frames to %s", self.frames, self.name)

    def _read_back(self) -> None:
        """SinkError unless the closed file opens and holds every frame written."""
        with native_stderr_to_log():
            cap = cv2.VideoCapture(self._path)
            found = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
            cap.release()
        if found >= self.frames:
            return
        with contextlib.suppress(OSError):
            st = os.statvfs(self._folder)
            free = st.f_bfree * st.f_frsize
            if free < MIN_FREE_BYTES:
                self._fail(f"the disk is full ({free // 1024} KiB free in {self._folder})")
        self._fail(f"read back, the file holds {found} of the {self.frames} frames written")


def open_sink(spec: SinkSpec, width: int, height: int, fps: float) -> Sink:
    """Open the file or virtual camera of `spec` at this size and rate."""
    if spec.path:
        return FileSink(spec.path, width, height, fps)
    if spec.backend != "v4l2loopback":
        from pixcam.video import outputs  # the PipeWire camera, and fan-out to both

        return outputs.open_backend(spec.backend, spec.device, width, height, fps)
    return VirtualCameraSink(width, height, fps, spec.device)
