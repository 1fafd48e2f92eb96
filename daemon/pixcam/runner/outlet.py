"""The runner's sink side: the one send loop, a lost virtual camera reopened.

Everything the virtual camera gets while the stream runs goes out from one thread, the send
loop here, and nowhere else:
- the newest frame as it arrives: `send()` hands it over and returns once it went out, so
  the worker's frames are counted, timed and, into a file, every one written;
- the last one again after a gap: a frame time after the last one out when the worker asks
  (`hold()`: the camera is late or opening), or, with `keepalive`, `repeat_after()` after it
  unasked, while the worker lags (a frame inside inference takes seconds on a slow CPU);
- cards at their own rate: `show(card, fps)` until the next new frame (the idle card, the
  placeholder, "starting" while the first model loads).
A device sink that fails is closed and reopened every `SINK_RETRY_S` while the stream goes
on; a file sink that fails ends the run: its `SinkError` is raised to the worker at its next
call here. The keeper (video/keeper.py) writes before all this exists and stops before the
sink opens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import cv2

from pixcam.errors import PixcamError
from pixcam.i420 import Frame, as_bgr
from pixcam.runner.timings import RateLimitedLog, Timings
from pixcam.video.sinks import Sink, SinkError, SinkSpec

log = logging.getLogger("pixcam.runner.pipeline")

SINK_RETRY_S = 2.0
# Unasked (keep-alive), the last frame goes out again once nothing went out for this long, or
# for `REPEAT_PERIODS` frame times if that is sooner: consumers that trust the advertised rate
# (OBS) give up after 5 frame times, and Chromium ends a track that gets nothing for a while.
REPEAT_AFTER_S = 0.15
REPEAT_PERIODS = 4
GAP_WINDOW_S = 10.0  # the status's largest gap between two frames out, over this long

SinkOpener = Callable[[SinkSpec, int, int, float], Sink]


def fit(frame: Frame, width: int, height: int) -> Frame:
    """The sink's size is fixed for the process lifetime; a reopened camera may differ (then
    the frame is scaled in BGR)."""
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    return cv2.resize(as_bgr(frame), (width, height), interpolation=cv2.INTER_AREA)


def repeat_after(fps: float) -> float:
    """How long the send loop lets the virtual camera go without a frame before it repeats
    the last one unasked (keep-alive), at an output rate of `fps`."""
    return min(REPEAT_AFTER_S, REPEAT_PERIODS / max(1.0, fps))


@dataclass
class _Handed:
    """A frame the worker handed over, and what became of it."""

    frame: Frame
    repeat: bool
    captured: float | None
    done: bool = False
    sent: bool = False
    error: BaseException | None = None


class Outlet:
    """Owns the sink and the send loop. `report(message)` is told of every fault (the runner
    counts them); `keepalive` = repeat the last frame while the worker lags, unasked."""

    def __init__(
        self,
        spec: SinkSpec,
        opener: SinkOpener,
        timings: Timings,
        ratelog: RateLimitedLog,
        report: Callable[[str], None],
    ) -> None:
        self.spec = spec
        self._open = opener
        self._timings = timings
        self._ratelog = ratelog
        self._report = report
        self._sink: Sink | None = None
        self._cond = threading.Condition()  # guards everything the loop and callers share
        self._retry_at = 0.0
        self._loop: threading.Thread | None = None
        self._closing = False
        self._fatal: BaseException | None = None  # a file sink's failure, for the worker
        self._handed: _Handed | None = None  # the worker's frame, waiting for the loop
        self._card: tuple[Frame, float] | None = None  # shown at its rate until a new frame
        self._card_due = 0.0
        self._hold_asked = False  # the worker has nothing new: repeat the last after the gap
        self._keepalive = False
        self.dims = (0, 0)  # the sink's size once open: fixed from then on
        self.fps = 30.0
        self.frames = 0  # new frames sent
        self.repeats = 0  # the last frame again, not new
        self.last_sent: Frame | None = None
        self.last_send_t = 0.0
        self._sent_at: deque[float] = deque(maxlen=2048)  # every frame out, repeats too

    @property
    def sink(self) -> Sink | None:
        return self._sink

    @property
    def keepalive(self) -> bool:
        """Whether the loop repeats the last frame unasked while the worker sends nothing."""
        return self._keepalive

    @keepalive.setter
    def keepalive(self, on: bool) -> None:
        with self._cond:
            self._keepalive = on
            self._cond.notify_all()

    @property
    def lost(self) -> bool:
        """A device sink failed and is not back yet."""
        return self._sink is None and self.dims != (0, 0)

    def open(self, width: int, height: int, fps: float) -> None:
        """Open the sink (PixcamError for the caller; its granted size is kept for good) and
        start the send loop."""
        self.fps = fps
        self._sink = self._open(self.spec, width, height, fps)
        self.dims = (self._sink.width, self._sink.height)
        self.last_send_t = time.monotonic()
        self._loop = threading.Thread(target=self._run, name="pixcam send", daemon=True)
        self._loop.start()

    def retime(self, fps: float) -> None:
        """The output's rate changed (the camera reopened at another rate): cards and repeats
        follow it, and the loop has the sink advertise it before its next frame."""
        with self._cond:
            if fps > 0 and fps != self.fps:
                log.info("output rate: %g fps", fps)
                self.fps = fps
                self._cond.notify_all()

    def largest_gap(self, window_s: float = GAP_WINDOW_S) -> float | None:
        """The longest a watcher of the virtual camera went without a frame (seconds) over
        the last `window_s`, up to now; None before the first frame."""
        now = time.monotonic()
        with self._cond:
            times = [t for t in self._sent_at if t >= now - window_s] + [now]
            if len(self._sent_at) > len(times) - 1:  # the last frame before the window
                times.insert(0, self._sent_at[-len(times)])
        if len(times) < 2:
            return None
        return max(b - a for a, b in zip(times, times[1:], strict=False))

    # ------------------------------------------------------------------ the worker's side
    def send(self, frame: Frame, *, repeat: bool = False, captured: float | None = None) -> bool:
        """Hand `frame` to the send loop and wait until it went out: True if it did. `repeat`
        = the last frame again, not a new one; `captured` = the time.monotonic() its camera
        frame was captured (for the latency). Raises a file sink's `SinkError`."""
        handed = _Handed(frame, repeat, captured)
        with self._cond:
            self._raise_fatal()
            if self._loop is None or self._closing:
                return False
            self._handed = handed
            self._card, self._hold_asked = None, False
            self._cond.notify_all()
            while not handed.done and self._loop.is_alive():
                self._cond.wait(0.5)  # the loop marks it done; the check is for a loop gone
            self._raise_fatal()
        if handed.error is not None:
            raise handed.error
        return handed.sent

    def show(self, card: Frame, fps: float | None = None) -> None:
        """Send `card` now and then every 1/`fps` s (None: the output's rate) until the next
        new frame or card. Raises a file sink's `SinkError`."""
        with self._cond:
            self._raise_fatal()
            if self._card is not None and self._card[0] is card:
                self._card = (card, fps or 0.0)  # the same card: its pace goes on
                return
            self._card, self._card_due, self._hold_asked = (card, fps or 0.0), 0.0, False
            self._cond.notify_all()

    def hold(self) -> None:
        """Nothing new from the camera: the last frame goes out again once nothing went out
        for a frame time (once per call); a file gets each frame once, so never into a file.
        Raises a file sink's `SinkError`."""
        with self._cond:
            self._raise_fatal()
            self._card = None
            if not self._hold_asked and self.spec.path is None:
                self._hold_asked = True
                self._cond.notify_all()

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    # ------------------------------------------------------------------ the send loop
    def _run(self) -> None:
        while True:
            with self._cond:
                job = self._next_job()
                if job is None:
                    return
            frame, repeat, captured, handed = job
            sent = False
            error: BaseException | None = None
            try:
                sent = self._deliver(frame, repeat, captured)
            except SinkError as exc:  # a file sink: the run ends
                error = exc
            except Exception as exc:  # a bug in a sink: the stream goes on
                self._ratelog("send", logging.ERROR, f"sending a frame failed: {exc!r}")
                if handed is not None:
                    error = exc
            with self._cond:
                if error is not None and isinstance(error, SinkError):
                    self._fatal = error
                if handed is not None:
                    handed.sent, handed.error, handed.done = sent, error, True
                    self._cond.notify_all()
                if error is not None and isinstance(error, SinkError):
                    return

    def _next_job(self) -> tuple[Frame, bool, float | None, _Handed | None] | None:
        """What to send next, waiting (on `_cond`, held) until something is due; None once
        closing."""
        while not self._closing:
            now = time.monotonic()
            handed, self._handed = self._handed, None
            if handed is not None:
                return handed.frame, handed.repeat, handed.captured, handed
            period = 1.0 / max(1.0, self.fps)
            due: float | None = None
            if self._card is not None:
                card, fps = self._card
                due = self._card_due
                if now >= due:
                    self._card_due = now + (1.0 / fps if fps > 0 else period)
                    return card, False, None, None
            elif self.last_sent is not None and (self._hold_asked or self._keepalive):
                # Asked, the camera is already late (or closed): a frame time is enough.
                due = self.last_send_t + (period if self._hold_asked else repeat_after(self.fps))
                if now >= due:
                    self._hold_asked = False
                    return self.last_sent, True, None, None
            if due is not None and self._sink is None:
                due = max(due, self._retry_at)  # a lost device: try again only then
            self._cond.wait(None if due is None else max(0.001, due - now))
        return None  # a frame still handed over is left undone: its sender sees the loop gone

    def _deliver(self, frame: Frame, repeat: bool, captured: float | None) -> bool:
        """The one place that writes to the sink while the stream runs."""
        now = time.monotonic()
        if self._sink is None:
            if now < self._retry_at:
                return False
            try:
                self._sink = self._open(self.spec, *self.dims, self.fps)
                log.warning("output %s is back", self._sink.name)
            except PixcamError as exc:
                self._retry_at = now + SINK_RETRY_S
                self._ratelog("sink-open", logging.WARNING, f"output still unavailable: {exc}")
                return False
        sink = self._sink
        t = time.perf_counter()
        try:
            if sink.fps != self.fps:
                sink.retime(self.fps)
            sink.send(fit(frame, sink.width, sink.height))
        except SinkError as exc:
            self._report(str(exc))
            if not sink.reopenable:
                raise
            log.error("%s", exc)
            sink.close()
            self._sink = None
            self._retry_at = now + SINK_RETRY_S
            return False
        sent_t = time.monotonic()
        with self._cond:
            self.last_sent, self.last_send_t = frame, sent_t
            self._sent_at.append(sent_t)
        if repeat:
            self.repeats += 1  # not a new frame: neither counted nor in the fps
            return True
        self._timings.add("sink", (time.perf_counter() - t) * 1e3)
        self._timings.frame_sent(sent_t, captured)
        self.frames += 1
        return True

    def close(self) -> None:
        """Stop the send loop (a send in progress finishes first) and close the sink; a file
        sink's `SinkError` from closing propagates."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        loop = self._loop
        if loop is not None and loop is not threading.current_thread():
            loop.join()
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()
