"""The runner's camera side: the source's lifecycle, off the worker, reopened with backoff.

Opening a real camera takes up to seconds and closing a stuck one can block as long, so both
run on one camera thread, in order (a close finishes before the reopen of the same device);
the worker only polls. A lost camera (an error, or no frame for `STALL_S`) is released on the
side and reopened after the waits of `BACKOFF_S`; a reopen for a resume or new camera
settings is no fault until it fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from pixcam.config import Config
from pixcam.errors import PixcamError
from pixcam.i420 import Frame
from pixcam.runner.timings import RateLimitedLog
from pixcam.video.sources import Source, SourceSpec

log = logging.getLogger("pixcam.runner.pipeline")

STALL_S = 2.0  # no frame for this long = camera lost
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 5.0)  # waits between reopen attempts, the last one repeats
READ_TIMEOUT_S = 0.1  # one wait for the camera's next frame

SourceOpener = Callable[[SourceSpec], Source]


def source_spec_from(cfg: Config) -> SourceSpec:
    cam = cfg.camera
    return SourceSpec(
        device=cam.device, width=cam.width, height=cam.height, fps=cam.fps, mjpg=cam.mjpg
    )


class Camera:
    """Owns the source. `report(message)` is told of every fault (the runner counts them);
    `on_lost()` when the camera turns from fine to failed (the runner shows the placeholder).

    `fixed`: the spec came from the command line (`--input FILE`), not from the config, so
    new camera settings do not touch it."""

    def __init__(
        self,
        spec: SourceSpec,
        opener: SourceOpener,
        ratelog: RateLimitedLog,
        report: Callable[[str], None],
        on_lost: Callable[[], None],
        *,
        fixed: bool = False,
    ) -> None:
        self.spec = spec
        self._open = opener
        self._ratelog = ratelog
        self._report = report
        self._on_lost = on_lost
        self._fixed = fixed
        self.source: Source | None = None
        self.decode_size: tuple[int, int] | None = None  # what the frames are shown at
        self.failed = False  # the camera failed (not: closed for a pause or new settings)
        self._jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixcam camera")
        self._opening: Future[Source] | None = None
        self._opening_spec: SourceSpec | None = None
        self._attempt = 0
        self._next_retry = 0.0
        self._last_frame_t = 0.0

    @property
    def name(self) -> str:
        src = self.source
        return src.name if src is not None else str(self.spec.path or self.spec.device)

    def open_now(self) -> Source:
        """Open on the calling thread (start(): its errors are the caller's)."""
        self.source = self._open(self.spec)
        return self.source

    def expect_frames(self) -> None:
        """The stall clock starts now (the stream starts)."""
        self._last_frame_t = time.monotonic()

    def read(self) -> Frame | None:
        """The next frame, None for none yet (`SourceError`, `EOFError` as the source's)."""
        assert self.source is not None
        frame = self.source.read(timeout=READ_TIMEOUT_S, size=self.decode_size)
        if frame is not None:
            self._last_frame_t = time.monotonic()
        return frame

    @property
    def stalled(self) -> bool:
        return time.monotonic() - self._last_frame_t > STALL_S

    def lose(self, why: str) -> None:
        self._report(why)
        log.warning("camera lost: %s; showing a placeholder and reconnecting", why)
        # A stuck camera can keep its capture thread in a blocking read for seconds; release
        # it on the side so the placeholder starts flowing at once.
        self.close(wait=False)
        self._mark_lost()
        self._attempt = 0
        self._next_retry = time.monotonic() + BACKOFF_S[0]

    def plan_reopen(self) -> None:
        """Open at the next poll (a resume or new camera settings), not a fault."""
        self.failed = False
        self._next_retry, self._attempt = 0.0, 0

    def follow(self, cfg: Config) -> bool:
        """Take `cfg`'s camera settings; True when the open camera was closed to reopen."""
        spec = source_spec_from(cfg)
        if self._fixed or spec == self.spec:
            return False
        self.spec = spec
        if self.source is None:
            return False
        log.info("camera settings changed: reopening")
        self.close(wait=False)
        self.plan_reopen()
        return True

    def poll(self) -> Source | None:
        """Start an open when the backoff allows, or take the finished one: the new source,
        or None while there is none (a failed open is reported and waits its backoff)."""
        fut = self._opening
        if fut is None:
            if time.monotonic() >= self._next_retry:
                self._opening_spec = self.spec
                self._opening = self._jobs.submit(self._open, self.spec)
            return None
        if not fut.done():
            return None
        self._opening = None
        try:
            source = fut.result()  # anything but a PixcamError ends the run, as before
        except PixcamError as exc:
            self._open_failed(exc)
            return None
        if self._opening_spec != self.spec:  # new camera settings meanwhile
            self._jobs.submit(source.close)
            self._next_retry = 0.0
            return None
        self._adopt(source)
        return source

    def _open_failed(self, exc: PixcamError) -> None:
        self._attempt += 1
        wait = BACKOFF_S[min(self._attempt, len(BACKOFF_S) - 1)]
        self._next_retry = time.monotonic() + wait
        if self.failed:
            self._ratelog("reopen", logging.WARNING, f"camera still unavailable: {exc}")
        else:  # a resume or a settings change that failed: now it is a fault
            self._report(str(exc))
            self._mark_lost()
            log.warning("camera unavailable: %s; showing a placeholder and retrying", exc)

    def _mark_lost(self) -> None:
        self.failed = True
        self._on_lost()

    def _adopt(self, source: Source) -> None:
        self.source = source
        if self.failed:
            log.warning("camera %s is back", source.name)
        else:
            log.info("camera %s opened", source.name)
        self.failed = False
        self._last_frame_t = time.monotonic()

    def close(self, wait: bool = True) -> None:
        src, self.source = self.source, None
        if src is None:
            return
        if wait:
            src.close()
        else:  # on the camera thread, before any reopen of the same device
            self._jobs.submit(src.close)

    def shutdown(self) -> None:
        """Finish every open and close (no timeout: see `Pipeline.stop`), then close."""
        self._jobs.shutdown(wait=True)
        opening, self._opening = self._opening, None
        if opening is not None and opening.exception() is None:
            opening.result().close()  # opened while stopping: never adopted
        self.close()
