"""The runner: camera → `effects.Effects` (the frame chain) → `outlet.Outlet` (the sink), live.

Threads: the source's capture thread keeps only the newest frame; one worker thread (owned
here) takes it, runs the chain and sends the result, so inference always runs on the newest
frame and latency never grows. A model switch loads the new segmenter on a helper thread and
swaps it in between two frames, so the stream never stops.

Faults never stop the virtual camera: when the camera fails or stalls, the last good frame is
sent dimmed with "camera unavailable" while the camera is reopened with backoff; an exception
in one frame is logged (rate-limited) and that frame goes out unprocessed. The sink's faults
and the keep-alive for a lagging worker are the outlet's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import numpy as np

from pixcam.autotune import Controller
from pixcam.cards import Cards
from pixcam.config import Config
from pixcam.effects import Effects, EffectsSettings, ModelChoice, Segmenter, segmenter_name
from pixcam.errors import PixcamError
from pixcam.outlet import Outlet, SinkOpener, fit
from pixcam.sinks import SinkSpec, open_sink
from pixcam.sources import Source, SourceError, SourceSpec, open_source
from pixcam.timings import RateLimitedLog, Timings

log = logging.getLogger("pixcam.pipeline")

STALL_S = 2.0  # no frame for this long = camera lost
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 5.0)  # waits between reopen attempts, the last one repeats
DEBUG_STATUS_EVERY_S = 5.0

SegmenterLoader = Callable[[str | None, int, int, str], Segmenter]


class State(StrEnum):
    """What the stream is doing (`status()["state"]`)."""

    STOPPED = "stopped"
    STARTING = "starting"  # the camera is being (re)opened on resume or new camera settings
    RUNNING = "running"
    PAUSED = "paused"  # camera closed, the idle card goes out
    CAMERA_LOST = "camera_lost"  # placeholder out, reopening with backoff
    OUTPUT_LOST = "output_lost"  # the virtual camera went away, reopening


def source_spec_from(cfg: Config) -> SourceSpec:
    cam = cfg.camera
    return SourceSpec(
        device=cam.device, width=cam.width, height=cam.height, fps=cam.fps, mjpg=cam.mjpg
    )


def _default_loader(
    name: str | None, threads: int, internal_resolution: int, quality: str = "balanced"
) -> Segmenter:
    from pixcam.segment import load_segmenter

    return load_segmenter(name, threads, internal_resolution, quality)


# ----------------------------------------------------------------------------- pipeline
class Pipeline:
    """Runs `Effects` on a live stream: owns the source, the outlet and the worker thread.

    `source_spec` overrides the camera of `cfg` (e.g. `--input FILE`); `frames` stops after
    that many frames sent. `start_paused` opens only the sink (on-demand mode waits for a
    viewer before touching the camera). `keepalive` re-sends the last frame while the worker
    lags; None = only for a sink that is a live device (`reopenable`), never into a file.
    """

    def __init__(
        self,
        cfg: Config,
        source_spec: SourceSpec | None = None,
        sink_spec: SinkSpec | None = None,
        *,
        frames: int | None = None,
        start_paused: bool = False,
        source_opener: Callable[[SourceSpec], Source] = open_source,
        sink_opener: SinkOpener = open_sink,
        segmenter_loader: SegmenterLoader = _default_loader,
        idle_fps: float = 5.0,
        keepalive: bool | None = None,
    ) -> None:
        self._cfg = cfg
        self._fixed_source = source_spec is not None
        self._source_spec = source_spec or source_spec_from(cfg)
        self._frames_limit = frames
        self._open_source_fn = source_opener
        self._loader = segmenter_loader
        self._idle_fps = idle_fps
        self._keepalive = keepalive

        self._lock = threading.Lock()
        self._pending: Config | None = None
        self._paused = start_paused
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fatal: BaseException | None = None

        self._timings = Timings()
        self._ratelog = RateLimitedLog()
        self._source: Source | None = None
        self._outlet = Outlet(
            sink_spec or SinkSpec(device=str(cfg.output.device)),
            sink_opener,
            self._timings,
            self._ratelog,
            self._fault,
        )
        self._effects: Effects | None = None  # built by start()
        self._tuner: Controller | None = None  # auto-tune, fed each frame's work time
        self._loading: threading.Thread | None = None
        # A model loaded on the side, handed to the worker: (segmenter, choice).
        self._loaded: tuple[Segmenter, ModelChoice] | None = None

        self._state = State.STOPPED
        self._errors = 0
        self._last_error: str | None = None
        self._last_good: np.ndarray | None = None
        self._cards = Cards()
        self._attempt = 0
        self._next_retry = 0.0
        self._last_frame_t = 0.0
        self._failed_model: ModelChoice | None = None
        self._camera_fault = False  # the camera failed (not: closed for a pause or new settings)

    # ------------------------------------------------------------------ public API
    def start(self) -> None:
        """Open everything (errors are `PixcamError`s for the caller) and start the worker."""
        cfg = self._cfg
        # Settings and model first: their errors need no camera, and nothing to close.
        settings = EffectsSettings.from_config(cfg)
        self._effects = Effects(settings)
        if settings.active:
            self._effects.set_segmenter(self._loader(*settings.model), settings.model)
        width, height, fps = cfg.camera.width, cfg.camera.height, float(cfg.camera.fps)
        if not self._paused:
            self._source = self._open_source_fn(self._source_spec)
            width, height = self._source.width, self._source.height
            fps = self._source.fps or fps
        # The sink's size is the camera's granted size, fixed for the process lifetime.
        try:
            self._outlet.open(width, height, float(cfg.output.fps) or fps or 30.0)
        except BaseException:
            self._close_source()
            raise
        self._state = State.PAUSED if self._paused else State.RUNNING
        self._tuner = Controller(self._outlet.fps)
        self._last_frame_t = time.monotonic()
        self._thread = threading.Thread(target=self._worker, name="pixcam pipeline", daemon=True)
        self._thread.start()
        keepalive = self._keepalive
        if keepalive is None:
            keepalive = bool(getattr(self._outlet.sink, "reopenable", False))
        if keepalive:
            self._outlet.start_keepalive(self._thread, self._stop, lambda: self._paused)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end (frame limit, end of file, stop()); re-raise its error."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        if self._fatal is not None:
            raise self._fatal
        return True

    def run(self) -> None:
        """start() and wait until done; Ctrl-C stops cleanly."""
        self.start()
        try:
            while not self.wait(0.5):
                pass
        finally:
            self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._close_source()
        self._outlet.close()
        self._state = State.STOPPED

    def apply(self, cfg: Config) -> None:
        """Take a new configuration; the worker applies it before the next frame."""
        with self._lock:
            self._pending = cfg

    def pause(self) -> None:
        """Close the camera and send the (cheap, cached) idle frame until resume()."""
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    def status(self) -> dict[str, Any]:
        sink = self._outlet.sink
        src = self._source
        fx = self._effects  # None until start(): nothing runs yet
        # A standing notice (a part effect the model cannot do) is the problem to show.
        notice = fx.notice if fx is not None else None
        return {
            "state": self.state.value,
            "source": src.name
            if src is not None
            else str(self._source_spec.path or self._source_spec.device),
            "sink": sink.name if sink is not None else None,
            "width": sink.width if sink is not None else None,
            "height": sink.height if sink is not None else None,
            "fps": self._timings.fps(),
            "frames": self._outlet.frames,
            "repeated": self._outlet.repeats,
            "errors": self._errors,
            "last_error": notice or self._last_error,
            "model": fx.model_name if fx is not None else None,
            "effects": fx is not None and fx.settings.active,
            "parts": fx is not None and fx.settings.parts_on and fx.settings.enabled,
            "stages_ms": self._timings.medians(),
            # Camera capture to the sink write, over the last frames: {"median", "p95"} ms.
            "latency_ms": self._timings.latency(),
            "auto_tune": self._tune_status(),
        }

    def _tune_status(self) -> dict[str, Any] | None:
        fx, tuner = self._effects, self._tuner
        if fx is None or tuner is None or not self._cfg.model.auto_tune:
            return None
        steps = fx.tune_steps()
        level = fx.tune_level
        return {
            "level": level,
            "step": steps[level - 1] if 0 < level <= len(steps) else "none",
            "reason": tuner.reason,
            "steps": steps,
            "target_fps": round(1.0 / tuner.budget, 2),
        }

    @property
    def state(self) -> State:
        if self._state != State.STOPPED and self._outlet.lost:
            return State.OUTPUT_LOST
        return self._state

    # ------------------------------------------------------------------ worker
    def _worker(self) -> None:
        next_debug = time.monotonic() + DEBUG_STATUS_EVERY_S
        try:
            while not self._stop.is_set():
                self._take_pending()
                if self._paused:
                    self._idle_step()
                elif self._source is None:
                    self._fault_step()
                elif not self._camera_step():
                    break
                if self._frames_limit is not None and self._outlet.frames >= self._frames_limit:
                    break
                if log.isEnabledFor(logging.DEBUG) and time.monotonic() >= next_debug:
                    next_debug = time.monotonic() + DEBUG_STATUS_EVERY_S
                    log.debug("status %s", self.status())
        except BaseException as exc:  # a sink that cannot come back, or a bug: end run()
            self._fatal = exc
        finally:
            self._close_source()
            self._state = State.STOPPED

    def _camera_step(self) -> bool:
        """One frame from the camera; False at the end of a non-looping file."""
        assert self._source is not None
        try:
            frame = self._source.read(timeout=0.25)
        except SourceError as exc:
            self._lose_camera(str(exc))
            return True
        except EOFError:
            return False
        now = time.monotonic()
        if frame is None:
            if now - self._last_frame_t > STALL_S:
                self._lose_camera(f"{self._source.name} sent no frame for {STALL_S:g} s")
            return True
        self._last_frame_t = now
        t0 = time.perf_counter()
        captured = self._source.last_capture_t
        out = self._process(frame)
        if self._outlet.send(out, captured=captured):
            self._last_good = out
        self._tune(time.perf_counter() - t0)
        return True

    def _tune(self, work_s: float) -> None:
        """Feed auto-tune this frame's work time; apply the level it answers with."""
        fx, tuner = self._effects, self._tuner
        if fx is None or tuner is None or not self._cfg.model.auto_tune:
            return
        if self._loading is not None or self._loaded is not None:
            return  # a model loads beside the stream: its CPU time is not the chain's cost
        tuner.limit(len(fx.tune_steps()))
        level = tuner.feed(work_s, time.monotonic())
        if level != fx.tune_level:
            fx.set_tune_level(level)
            status = self._tune_status() or {}
            log.info("auto-tune: step %d (%s): %s", level, status.get("step"), tuner.reason)

    def _process(self, frame: np.ndarray) -> np.ndarray:
        fx = self._effects
        assert fx is not None
        t0 = time.perf_counter()
        frame = fit(frame, *self._outlet.dims)
        try:
            return fx.process(frame, on_stage=self._timings.add)
        except Exception as exc:
            # One bad frame must not stop the stream: log (rate-limited), send it unprocessed.
            self._fault(f"frame: {type(exc).__name__}: {exc}")
            self._ratelog("frame", logging.ERROR, f"frame failed: {exc!r}", exc_info=True)
            return fx.mirror(frame)
        finally:
            self._timings.add("total", (time.perf_counter() - t0) * 1e3)

    def _fault(self, message: str) -> None:
        """Count a problem and keep it as the last error for the status."""
        self._errors += 1
        self._last_error = message

    # ------------------------------------------------------------------ faults
    def _lose_camera(self, why: str) -> None:
        self._fault(why)
        log.warning("camera lost: %s; showing a placeholder and reconnecting", why)
        # A stuck camera can keep its capture thread in a blocking read for seconds; release
        # it on the side so the placeholder starts flowing at once.
        self._close_source(wait=False)
        self._mark_camera_lost()
        self._attempt = 0
        self._next_retry = time.monotonic() + BACKOFF_S[0]

    def _mark_camera_lost(self) -> None:
        self._state, self._camera_fault = State.CAMERA_LOST, True
        self._cards.forget_placeholder()

    def _fault_step(self) -> None:
        """Placeholder out at the output rate; reopen the camera when the backoff says so.

        Also the way the camera is (re)opened on resume and on new camera settings (state
        "starting"): only a failure there is a fault worth a warning."""
        now = time.monotonic()
        if now >= self._next_retry:
            try:
                self._source = self._open_source_fn(self._source_spec)
            except PixcamError as exc:
                self._attempt += 1
                wait = BACKOFF_S[min(self._attempt, len(BACKOFF_S) - 1)]
                self._next_retry = time.monotonic() + wait
                if self._camera_fault:
                    self._ratelog("reopen", logging.WARNING, f"camera still unavailable: {exc}")
                else:  # a resume or a settings change that failed: now it is a fault
                    self._fault(str(exc))
                    self._mark_camera_lost()
                    log.warning("camera unavailable: %s; showing a placeholder and retrying", exc)
            else:
                if self._camera_fault:
                    log.warning("camera %s is back", self._source.name)
                else:
                    log.info("camera %s opened", self._source.name)
                self._camera_fault = False
                self._state = State.RUNNING
                self._last_frame_t = time.monotonic()
                if self._effects is not None:
                    self._effects.reset()  # a new scene: no smoothing against the old one
                return
        if self._camera_fault:
            self._emit_card("placeholder")
        else:  # not reached (a planned reopen is due at once); never spin regardless
            self._stop.wait(0.01)

    def _idle_step(self) -> None:
        if self._source is not None:
            self._close_source()
            log.info("paused: camera closed")
        self._state = State.PAUSED
        self._emit_card("idle")

    def _emit_card(self, kind: str) -> None:
        """Send the cached placeholder or idle frame, paced (the cards cost nothing per frame)."""
        w, h = self._outlet.dims
        if kind == "idle":
            frame, rate = self._cards.idle(w, h), self._idle_fps
        else:
            frame, rate = self._cards.placeholder(self._last_good, w, h), self._outlet.fps
        t = time.monotonic()
        self._outlet.send(frame)
        self._stop.wait(max(0.0, 1.0 / rate - (time.monotonic() - t)))

    def _close_source(self, wait: bool = True) -> None:
        src, self._source = self._source, None
        if src is None:
            return
        if wait:
            src.close()
        else:
            threading.Thread(target=src.close, name="pixcam source close", daemon=True).start()

    # ------------------------------------------------------------------ live settings
    def _take_pending(self) -> None:
        with self._lock:
            cfg, self._pending = self._pending, None
            paused = self._paused
        if not paused and self._state == State.PAUSED:
            # resume(): reopen the camera right away through the fault path's opener.
            self._plan_reopen()
        fx = self._effects
        assert fx is not None
        loaded, self._loaded = self._loaded, None
        if loaded is not None:
            fx.set_segmenter(*loaded)  # the swap, between two frames
        if self._loading is not None and not self._loading.is_alive():
            self._loading = None
        if cfg is not None:
            self._apply_now(cfg)
        want = fx.settings.model
        if (
            fx.settings.active
            and want != fx.model
            and want != self._failed_model
            and self._loading is None
            and self._loaded is None
        ):
            self._load_segmenter_async(want)

    def _plan_reopen(self) -> None:
        """Open the camera at the next step (a resume or new camera settings), not a fault."""
        self._state, self._camera_fault = State.STARTING, False
        self._cards.forget_placeholder()
        self._next_retry, self._attempt = 0.0, 0

    def _apply_now(self, cfg: Config) -> None:
        assert self._effects is not None
        try:
            if not cfg.model.auto_tune and self._effects.tune_level:
                self._effects.set_tune_level(0)  # turned off: the user's settings exactly
                self._tuner = Controller(self._outlet.fps)
            self._effects.update(EffectsSettings.from_config(cfg))
        except Exception as exc:
            self._last_error = f"settings: {exc}"
            log.error("new settings not applied: %s", exc)
            return
        if self._tuner is not None:
            self._tuner.reset()  # the new settings cost what they cost: measure afresh
        self._cfg = cfg
        if not self._fixed_source and source_spec_from(cfg) != self._source_spec:
            self._source_spec = source_spec_from(cfg)
            if self._source is not None:
                log.info("camera settings changed: reopening")
                self._close_source()
                self._plan_reopen()
        spec = self._outlet.spec
        if str(cfg.output.device) != spec.device and not spec.path:
            log.warning("output device change takes effect at the next start of pixcam")

    def _load_segmenter_async(self, model: ModelChoice) -> None:
        """Load the new model beside the running one; the worker swaps it in between frames."""

        def load() -> None:
            try:
                seg = self._loader(*model)
            except Exception as exc:
                self._last_error = f"model: {exc}"
                self._failed_model = model  # do not retry the same failing choice every frame
                name = segmenter_name(None, model)
                log.error("model %s not loaded, keeping the current one: %s", name, exc)
                return
            self._loaded = (seg, model)  # one reference assignment: the worker takes it
            log.info("model %s loaded", segmenter_name(seg, model))

        self._loading = threading.Thread(target=load, name="pixcam model load", daemon=True)
        self._loading.start()
