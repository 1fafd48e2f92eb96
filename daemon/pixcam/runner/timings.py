"""What the runner measures and how it logs: per-stage timings, rate-limited problem lines."""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque

log = logging.getLogger("pixcam.runner.pipeline")

STAGES = ("segment", "refine", "compose", "parts", "sink", "total")
WINDOW = 60  # frames in the sliding window of the timings
LOG_EVERY_S = 10.0  # the same frame error is logged at most once per this period


class Timings:
    """Median milliseconds per stage over a sliding window, and the output frame rate."""

    def __init__(self, window: int = WINDOW) -> None:
        self._ms: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self._sent: deque[float] = deque(maxlen=window)
        self._latency: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            self._ms.setdefault(stage, deque(maxlen=WINDOW)).append(ms)

    def frame_sent(self, t: float, captured: float | None = None) -> None:
        """A new frame went out at `t` (time.monotonic); `captured`: when its camera frame
        was captured, on the same clock."""
        with self._lock:
            self._sent.append(t)
            if captured:
                self._latency.append((t - captured) * 1e3)

    def latency(self) -> dict[str, float]:
        """Capture-to-sink milliseconds over the window: median and 95th percentile."""
        with self._lock:
            ms = sorted(self._latency)
        if not ms:
            return {}
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        return {"median": round(statistics.median(ms), 1), "p95": round(p95, 1)}

    def medians(self) -> dict[str, float]:
        with self._lock:
            return {s: round(statistics.median(v), 2) for s, v in self._ms.items() if v}

    def fps(self) -> float:
        with self._lock:
            if len(self._sent) < 2 or self._sent[-1] <= self._sent[0]:
                return 0.0
            return round((len(self._sent) - 1) / (self._sent[-1] - self._sent[0]), 2)


class RateLimitedLog:
    """Logs a repeating problem once per period, with how often it happened meanwhile."""

    def __init__(self, period: float = LOG_EVERY_S) -> None:
        self.period = period
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def __call__(self, key: str, level: int, msg: str, *, exc_info: bool = False) -> bool:
        now = time.monotonic()
        self._count[key] = self._count.get(key, 0) + 1
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            return False
        n, self._count[key] = self._count[key], 0
        self._last[key] = now
        suffix = f" ({n} times in the last {self.period:g} s)" if n > 1 else ""
        log.log(level, "%s%s", msg, suffix, exc_info=exc_info)
        return True
