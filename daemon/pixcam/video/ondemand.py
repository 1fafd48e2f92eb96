"""Run the camera only while some application watches the virtual camera.

How we know: inotify on the v4l2loopback device node. Every `open()` of the node gives
IN_OPEN and every last `close()` of that file description gives IN_CLOSE_WRITE or
IN_CLOSE_NOWRITE, so opens minus closes = how many file descriptions other programs hold.
inotify is called through ctypes on libc (three functions, stable since Linux 2.6.27) rather
than a PyPI package: no extra dependency, no compiled wheel, nothing to go stale.

Our own writer must not count: the daemon opens the virtual camera *first* and starts
watching afterwards, so its open is never seen; the starting count comes from a scan of
/proc/*/fd that skips our own process (which also catches an app already watching when
pixcam starts). An inotify queue overflow (events lost) triggers the same rescan.

Debounce ("start late, stop late"): browsers and Discord open the device every few seconds
just to read its capabilities and close it again within milliseconds. If each probe started
the camera, its light would flash and the camera would spend seconds opening for nothing. So:
- the camera starts only once a consumer has kept the device open for `start_delay` (1 s;
  a probe lasts milliseconds, a real call holds the device for minutes). The consumer sees
  the idle card for that second, which is no worse than a real camera warming up;
- it stops only after nobody has watched for `stop_delay` (3 s), so an app that closes and
  reopens to renegotiate the format, or a quick page reload, does not cycle the camera.

Drift repair: while someone seems to watch, /proc is re-counted every `resync_interval`
(5 s) and a stable disagreement (two scans in a row) wins. That heals a count thrown off by
our own writer reopening the device (v4l2loopback reloaded) or by events we missed, so the
camera can't stay on for nobody. It assumes consumers run as our user (or /proc shows them);
a /proc scan alone can't replace inotify: an open is notified before its fd appears there.

`Debouncer` is the pure state machine (time passed in, so it is tested without sleeping);
`OnDemand` feeds it from the inotify thread and calls `on_active()` / `on_idle()`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from pixcam.video.devices import count_openers

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

# <sys/inotify.h>
IN_OPEN = 0x00000020
IN_CLOSE_WRITE = 0x00000008
IN_CLOSE_NOWRITE = 0x00000010
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then `len` bytes of name)

START_DELAY_S = 1.0
STOP_DELAY_S = 3.0
RESYNC_S = 5.0
W = TypeVar("W", bound="ConsumerWatch")


# ------------------------------------------------------------------------------ inotify
class Inotify:
    """A minimal inotify watch on one path for open/close events."""

    MASK = IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_DELETE_SELF | IN_MOVE_SELF

    def __init__(self, path: PathLike) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.path = os.fspath(path)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        wd = libc.inotify_add_watch(fd, os.fsencode(self.path), self.MASK)
        if wd < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"inotify_add_watch {self.path}: {os.strerror(err)}", self.path)
        self.fd = fd

    def read(self, timeout: float | None, wake_fd: int | None = None) -> list[int] | None:
        """Event masks that arrived within `timeout` s ([] on timeout or when `wake_fd`
        became readable), None once closed."""
        if self.fd < 0:
            return None
        fds = [self.fd] if wake_fd is None else [self.fd, wake_fd]
        try:
            ready, _, _ = select.select(fds, [], [], timeout)
        except (OSError, ValueError):  # closed under us by close()
            return None
        if self.fd not in ready:
            return []
        try:
            data = os.read(self.fd, 64 * 1024)
        except BlockingIOError:
            return []
        except OSError as exc:
            if exc.errno == errno.EBADF:
                return None
            raise
        masks: list[int] = []
        offset = 0
        while offset + _EVENT.size <= len(data):
            _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            masks.append(mask)
            offset += _EVENT.size + length
        return masks

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


# ---------------------------------------------------------------------------- debouncer
class Debouncer:
    """ "Someone is watching" with hysteresis; all times are `time.monotonic()` seconds.

    `update(watching, now)` reports raw state changes; `poll(now)` returns "active",
    "idle" or None when the debounced state flips. `deadline()` is when `poll` should be
    called next (None: nothing pending).
    """

    def __init__(
        self, start_delay: float = START_DELAY_S, stop_delay: float = STOP_DELAY_S
    ) -> None:
        self.start_delay = start_delay
        self.stop_delay = stop_delay
        self.active = False
        self._watching = False
        self._since = 0.0  # when `_watching` last changed

    def update(self, watching: bool, now: float) -> str | None:
        if watching != self._watching:
            self._watching = watching
            self._since = now
        return self.poll(now)

    def deadline(self) -> float | None:
        if self._watching and not self.active:
            return self._since + self.start_delay
        if not self._watching and self.active:
            return self._since + self.stop_delay
        return None

    def poll(self, now: float) -> str | None:
        due = self.deadline()
        if due is None or now < due:
            return None
        self.active = self._watching
        return "active" if self.active else "idle"


# ----------------------------------------------------------------------------- watchers
class ConsumerWatch:
    """What every watcher shares (the loopback's opens here, PipeWire's links in
    `pipewire_links`): a consumer count fed to a `Debouncer`, whose flips call `on_active()` /
    `on_idle()` on the watcher's thread (exceptions logged, never fatal), and an event counter
    tests wait on instead of time."""

    device: str  # what is watched, as `status` names it

    def __init__(
        self,
        on_active: Callable[[], None],
        on_idle: Callable[[], None],
        start_delay: float,
        stop_delay: float,
    ) -> None:
        self._on_active = on_active
        self._on_idle = on_idle
        self._debounce = Debouncer(start_delay, stop_delay)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._events = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def count(self) -> int:
        """Consumers right now (raw, not debounced)."""
        raise NotImplementedError

    @property
    def active(self) -> bool:
        """The debounced state: True while the camera should run."""
        return self._debounce.active

    @property
    def events(self) -> int:
        """Events handled so far (lets tests wait for processing, not for time)."""
        return self._events

    def wait_events(self, n: int, timeout: float = 10.0) -> bool:
        """Block until at least `n` events were handled; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._events >= n, timeout)

    def status(self) -> dict[str, object]:
        """What `pixcam status` shows of the watcher."""
        return {
            "device": self.device,
            "watchers": self.count,
            "active": self.active,
            "events": self._events,
            "watching": self._thread is not None,
        }

    def start(self: W) -> W:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: W) -> W:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _react(self, now: float) -> None:
        change = self._debounce.update(self.count > 0, now)
        if change is None:
            return
        log.info("on demand: %s, camera %s", self._who(), "on" if change == "active" else "off")
        callback = self._on_active if change == "active" else self._on_idle
        try:
            callback()
        except Exception:
            log.exception("on demand %s callback", change)

    def _who(self) -> str:
        """Who watches, for the log line."""
        raise NotImplementedError

    def _log_watching(self, what: str) -> None:
        """The log line of a start: what is watched, and the delays that debounce it."""
        log.info(
            "on demand: watching %s; camera starts after %g s of use, "
            "stops %g s after the last one leaves",
            what,
            self._debounce.start_delay,
            self._debounce.stop_delay,
        )


class OnDemand(ConsumerWatch):
    """Watches `device` and calls `on_active()` / `on_idle()` (debounced) from a thread.

    Start it *after* our own writer has opened the device. Callbacks run on the watcher
    thread; exceptions in them are logged, never fatal.
    """

    def __init__(
        self,
        device: PathLike,
        on_active: Callable[[], None],
        on_idle: Callable[[], None],
        *,
        start_delay: float = START_DELAY_S,
        stop_delay: float = STOP_DELAY_S,
        resync_interval: float | None = RESYNC_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(on_active, on_idle, start_delay, stop_delay)
        self.device = os.fspath(device)
        self._resync_interval = resync_interval
        self._last_resync = 0.0
        self._disagree: int | None = None  # /proc's count, waiting for a second opinion
        self._resyncs = 0
        self._clock = clock
        self._count = 0
        self._inotify: Inotify | None = None
        self._wake_r, self._wake_w = -1, -1  # wakes the thread's select() on stop()

    # ---- public state
    @property
    def count(self) -> int:
        """Consumers holding the device open right now (raw, not debounced)."""
        return self._count

    def wait_resyncs(self, n: int, timeout: float = 10.0) -> bool:
        """Block until at least `n` /proc re-counts were done; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._resyncs >= n, timeout)

    def status(self) -> dict[str, object]:
        return {**super().status(), "resyncs": self._resyncs}

    # ---- lifecycle
    def start(self) -> OnDemand:
        """Watch, seed the count from /proc, and start the thread. OSError if unwatchable."""
        self._inotify = Inotify(self.device)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        # The watch exists before the scan, so no open can fall between the two; one that
        # lands in both is corrected by the clamp at 0 when its close arrives.
        self._count = count_openers(self.device)
        self._last_resync = self._clock()
        self._react(self._clock())
        self._thread = threading.Thread(target=self._run, name="pixcam-ondemand", daemon=True)
        self._thread.start()
        self._log_watching(f"{self.device} ({self._count} consumer(s) now)")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        if self._inotify is not None:
            self._inotify.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    # ---- thread
    def _run(self) -> None:
        assert self._inotify is not None
        while not self._stop.is_set():
            dues = [d for d in (self._debounce.deadline(), self._resync_due()) if d is not None]
            timeout = None if not dues else max(0.0, min(dues) - self._clock())
            masks = self._inotify.read(timeout, self._wake_r)
            if masks is None:
                return
            if masks:
                self._handle(masks)
            self._maybe_resync(self._clock())
            self._react(self._clock())

    def _resync_due(self) -> float | None:
        # Only while someone seems to watch: a stale count then keeps the camera on.
        if self._resync_interval is None or (self._count == 0 and not self.active):
            return None
        return self._last_resync + self._resync_interval

    def _maybe_resync(self, now: float) -> None:
        due = self._resync_due()
        if due is None or now < due:
            return
        self._last_resync = now
        seen = count_openers(self.device)
        with self._changed:
            self._resyncs += 1
            self._changed.notify_all()
            if seen == self._count:
                self._disagree = None
            elif self._disagree != seen:
                self._disagree = seen  # could be an fd not installed yet: ask again later
            else:
                log.info(
                    "on demand: /proc shows %d consumer(s), inotify counted %d; using /proc",
                    seen,
                    self._count,
                )
                self._count, self._disagree = seen, None

    def _handle(self, masks: list[int]) -> None:
        with self._changed:
            if self._count == 0:  # first resync a full interval after watching starts
                self._last_resync = self._clock()
            for mask in masks:
                if mask & IN_Q_OVERFLOW:
                    # Events were dropped: the running count is unknown, ask /proc.
                    self._count = count_openers(self.device)
                    log.warning("on demand: inotify overflow, recounted %d", self._count)
                elif mask & IN_OPEN:
                    self._count += 1
                elif mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE):
                    # Clamp: a close of something opened before we started watching.
                    self._count = max(0, self._count - 1)
                elif mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED):
                    log.warning("on demand: %s went away; no longer watching", self.device)
                    self._stop.set()
                self._events += 1
            self._changed.notify_all()

    def _who(self) -> str:
        return f"{self._count} consumer(s) on {self.device}"
