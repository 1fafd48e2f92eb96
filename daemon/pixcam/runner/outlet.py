"""The runner's sink side: one send at a time, a lost virtual camera reopened, keep-alive.

The worker sends processed frames; when inference lags far behind (a very slow CPU) the
keep-alive thread re-sends the last output at the output rate so the virtual camera's readers
do not time out. A device sink that fails is closed and reopened every `SINK_RETRY_S` while
the stream goes on; a file sink that fails ends the run (its `SinkError` propagates).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import cv2

from pixcam.errors import PixcamError
from pixcam.i420 import Frame, as_bgr
from pixcam.runner.timings import RateLimitedLog, Timings
from pixcam.video.sinks import Sink, SinkError, SinkSpec

log = logging.getLogger("pixcam.runner.pipeline")

SINK_RETRY_S = 2.0
# Keep-alive: re-send the last output once nothing went out for this long (or 3 output frame
# times, whichever is longer), so ordinary jitter never duplicates a frame.
KEEPALIVE_AFTER_S = 0.25
PAUSED_POLL_S = 0.5  # how often the keep-alive looks whether the stream is running again
GAP_WINDOW_S = 10.0  # the status's largest gap between two frames out, over this long

SinkOpener = Callable[[SinkSpec, int, int, float], Sink]


def fit(frame: Frame, width: int, height: int) -> Frame:
    """The sink's size is fixed for the process lifetime; a reopened camera may differ (then
    the frame is scaled in BGR)."""
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    return cv2.resize(as_bgr(frame), (width, height), interpolation=cv2.INTER_AREA)


class Outlet:
    """Owns the sink. `report(message)` is told of every fault (the runner counts them)."""

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
        self._lock = threading.Lock()  # sends come from the worker and the keep-alive thread
        self._retry_at = 0.0
        self._keepalive: threading.Thread | None = None
        self.dims = (0, 0)  # the sink's size once open: fixed from then on
        self.fps = 30.0
        self.frames = 0  # new frames sent
        self.repeats = 0  # keep-alive re-sends
        self.last_sent: Frame | None = None
        self.last_send_t = 0.0
        self._sent_at: deque[float] = deque(maxlen=2048)  # every frame out, repeats too

    @property
    def sink(self) -> Sink | None:
        return self._sink

    @property
    def lost(self) -> bool:
        """A device sink failed and is not back yet."""
        return self._sink is None and self.dims != (0, 0)

    def open(self, width: int, height: int, fps: float) -> None:
        """Open the sink (PixcamError for the caller); its granted size is kept for good."""
        self.fps = fps
        self._sink = self._open(self.spec, width, height, fps)
        self.dims = (self._sink.width, self._sink.height)
        self.last_send_t = time.monotonic()

    def largest_gap(self, window_s: float = GAP_WINDOW_S) -> float | None:
        """The longest a watcher of the virtual camera went without a frame (seconds) over
        the last `window_s`, up to now; None before the first frame."""
        now = time.monotonic()
        with self._lock:
            times = [t for t in self._sent_at if t >= now - window_s] + [now]
            if len(self._sent_at) > len(times) - 1:  # the last frame before the window
                times.insert(0, self._sent_at[-len(times)])
        if len(times) < 2:
            return None
        return max(b - a for a, b in zip(times, times[1:], strict=False))

    def send(self, frame: Frame, *, repeat: bool = False, captured: float | None = None) -> bool:
        """True when the frame went out; `repeat` = a keep-alive copy, not a new frame;
        `captured` = the time.monotonic() its camera frame was captured (for the latency)."""
        with self._lock:
            return self._send_locked(frame, repeat, captured)

    def _send_locked(self, frame: Frame, repeat: bool, captured: float | None) -> bool:
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
        self.last_sent = frame
        self.last_send_t = time.monotonic()
        self._sent_at.append(self.last_send_t)
        if repeat:
            self.repeats += 1  # not a new frame: neither counted nor in the fps
            return True
        self._timings.add("sink", (time.perf_counter() - t) * 1e3)
        self._timings.frame_sent(self.last_send_t, captured)
        self.frames += 1
        return True

    @contextlib.contextmanager
    def showing(self, frame: Frame, fps: float) -> Iterator[None]:
        """Send `frame` now and again every 1/`fps` s for the duration of the block, from a
        helper thread, while the stream itself cannot send yet (its first model loads)."""
        done = threading.Event()

        def repeat() -> None:
            while True:
                try:
                    self.send(frame)
                except Exception as exc:  # the block's own work decides the outcome
                    self._ratelog("card", logging.ERROR, f"sending a card failed: {exc!r}")
                if done.wait(1.0 / fps):
                    return

        thread = threading.Thread(target=repeat, name="pixcam card", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def start_keepalive(
        self, worker: threading.Thread, stop: threading.Event, paused: Callable[[], bool]
    ) -> None:
        self._keepalive = threading.Thread(
            target=self._keepalive_loop,
            args=(worker, stop, paused),
            name="pixcam keepalive",
            daemon=True,
        )
        self._keepalive.start()

    @property
    def keepalive_running(self) -> bool:
        return self._keepalive is not None

    def _keepalive_loop(
        self, worker: threading.Thread, stop: threading.Event, paused: Callable[[], bool]
    ) -> None:
        """Re-send the last output at the output rate while the worker sends nothing.

        The worker blocks in inference for a whole frame; on a very slow CPU (seconds per
        frame) readers of the virtual camera would time out. Paused, the worker paces the
        idle card itself at its own (lower) rate, so nothing is repeated then."""
        period = 1.0 / max(1.0, self.fps)
        after = max(KEEPALIVE_AFTER_S, 3 * period)
        wait = period
        while not stop.wait(wait):
            if not worker.is_alive():
                return
            # Paused it has nothing to do: look again only now and then (idle CPU).
            is_paused = paused()
            wait = PAUSED_POLL_S if is_paused else period
            frame = self.last_sent
            if frame is None or is_paused or self._sink is None:
                continue
            if time.monotonic() - self.last_send_t < after:
                continue
            try:
                self.send(frame, repeat=True)
            except Exception as exc:  # never let the keep-alive take the stream down
                self._ratelog("keepalive", logging.ERROR, f"repeating a frame failed: {exc!r}")

    def close(self) -> None:
        """Stop the keep-alive (the caller has set its stop event) and close the sink."""
        thread = self._keepalive
        if thread is not None and thread is not threading.current_thread():
            thread.join()  # its wait ends with the stop event; a send is short
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()
