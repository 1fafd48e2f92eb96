"""The keeper: at start-up, before numpy, OpenCV or LiteRT are imported, pixcam takes its
virtual camera back from the standard library alone when an app still watches it.

After a crash systemd starts pixcam again within seconds, but its imports alone take seconds
on a cold page cache (40 s under emulation) before the real sink writes, and Chromium ends a
track that gets no frame for 10 s; an ended track never comes back, the call shows black
until the user picks the camera again. The keeper writes the card the last run showed first
(`keeper_cache`, the exact bytes) a few times a second from a thread, and stops just before
the real sink opens the device (`release`): v4l2loopback takes one writer at a time.

It takes over only what is safe to: the cached device, still a v4l2loopback node with the
cached label and `exclusive_caps` on, that a reader holds with no writer (then it offers
CAPTURE and OUTPUT at once) at the cached size in I420. Nobody watching, another writer, any
doubt or any OSError: it stands down (logged at debug) and pixcam starts as it would without.
Stdlib only: `import pixcam.keeper` must stay cheap (tests/test_keeper.py checks it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from pixcam import keeper_cache, v4l2caps
from pixcam.keeper_cache import LastOutput

log = logging.getLogger("pixcam.keeper")

CARD_FPS = 5.0  # the idle card's rate (the pipeline's idle_fps): enough for any reader
SYSFS_EXCLUSIVE_CAPS = Path("/sys/module/v4l2loopback/parameters/exclusive_caps")


class StandDown(Exception):
    """Why the keeper leaves the device alone (not an error: pixcam starts as before)."""


class Keeper:
    """One takeover attempt on a thread: checks, then the card until `stop()`."""

    def __init__(
        self,
        wanted: str | None = None,
        cache: Path | None = None,
        exclusive_caps: Path = SYSFS_EXCLUSIVE_CAPS,
    ) -> None:
        self._wanted = _device_path(wanted)
        self._cache = cache
        self._exclusive_caps = exclusive_caps
        self._stop = threading.Event()
        self._fd: int | None = None
        self.device: str | None = None  # set once the device is held
        self.frames = 0
        self.since = 0.0  # time.monotonic() of the first card written
        self._thread = threading.Thread(target=self._run, name="pixcam keeper", daemon=True)

    def start(self) -> Keeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop writing and close the device (safe to call twice)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        try:
            last = keeper_cache.load(self._cache)
            if last is None:
                raise StandDown("no cached virtual camera from an earlier run")
            self._fd = self._take(last)
            self.device = last.device
            self.since = time.monotonic()
            log.info("keeper: holding %s with the last card until the stream opens", last.device)
            while True:
                os.write(self._fd, last.card)
                self.frames += 1
                if self._stop.wait(1.0 / CARD_FPS):
                    break
        except (StandDown, OSError) as exc:
            log.debug("keeper stands down: %s", exc)
        except Exception as exc:  # never let the keeper break a start-up
            log.debug("keeper stands down: %r", exc)
        finally:
            if self._fd is not None:
                # A STREAMON'd writer closing gives the device its OUTPUT capability back,
                # so the real sink can open it next.
                os.close(self._fd)
                self._fd = None

    def _take(self, last: LastOutput) -> int:
        """Open `last.device` as its writer, or raise StandDown/OSError saying why not."""
        if self._wanted is not None and self._wanted != last.device:
            raise StandDown(f"this run writes {self._wanted}, the last one {last.device}")
        info = v4l2caps.query(last.device)
        if not info.is_loopback or info.card != last.label:
            raise StandDown(f"{last.device} is no longer the v4l2loopback {last.label!r}")
        if not (info.can_capture and info.can_output):
            raise StandDown(f"{last.device}: no reader waits, or another writer feeds it")
        if not self._exclusive(info.loopback_index):
            raise StandDown(f"{last.device}: exclusive_caps is off, a writer can't be told apart")
        fd = os.open(last.device, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fmt = v4l2caps.get_format(fd, v4l2caps.BUF_TYPE_VIDEO_OUTPUT)
            want = (last.width, last.height, keeper_cache.PIXEL_FORMAT, len(last.card))
            if (fmt.width, fmt.height, fmt.pixelformat, fmt.sizeimage) != want:
                raise StandDown(f"{last.device} is at {fmt}, the cached card is {want[:3]}")
            # STREAMON makes this fd the device's writer: its close gives OUTPUT back (so a
            # keeper that dies with pixcam never leaves the device refusing writers).
            v4l2caps.stream_on(fd, v4l2caps.BUF_TYPE_VIDEO_OUTPUT)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _exclusive(self, index: int | None) -> bool:
        try:
            flags = self._exclusive_caps.read_text().strip().split(",")
        except OSError:
            return False
        return index is not None and index < len(flags) and flags[index] in ("Y", "1")


def _device_path(device: str | None) -> str | None:
    """The sink's spelling of an explicit device ("11" → /dev/video11); None for auto."""
    device = (device or "auto").strip()
    if device == "auto":
        return None
    return f"/dev/video{device}" if device.isdigit() else device


_current: Keeper | None = None
_lock = threading.Lock()


def start(wanted: str | None = None) -> None:
    """Start the keeper for this process (once); `wanted` = an explicit output device."""
    global _current
    with _lock:
        if _current is None:
            _current = Keeper(wanted).start()


def release() -> None:
    """The real sink is about to open the device: stop the keeper, close its fd."""
    global _current
    with _lock:
        keeper, _current = _current, None
    if keeper is None:
        return
    keeper.stop()
    if keeper.device is not None:
        log.info(
            "keeper: held %s for %.1f s with the last card (%d frames) until the stream took over",
            keeper.device, time.monotonic() - keeper.since, keeper.frames,
        )  # fmt: skip
