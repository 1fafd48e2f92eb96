"""The runner: camera → `effects.Effects` (the frame chain) → `outlet.Outlet` (the sink), live.

Threads: the source's capture thread keeps only the newest frame; one worker thread (owned
here) takes it, runs the chain and sends the result, so inference always runs on the newest
frame and latency never grows. Nothing slow runs on the worker: a new model (loaded,
verified and run once), a new background image or video (decoded, opened) and the camera's
opening and closing all happen on helper threads and are swapped in between two frames, so
a frame goes out at least every `HOLD_AFTER_S` (the last one again while nothing new comes).
`stop()` joins every thread it started, with no timeout: a frame inside LiteRT or OpenCV
finishes first, so no native thread is alive at interpreter exit.

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
from concurrent.futures import Future, ThreadPoolExecutor
from enum import StrEnum
from typing import Any

import numpy as np

from pixcam.autotune import Controller
from pixcam.cards import Cards
from pixcam.compose import Background
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
# With no new frame for this long (camera late, camera opening) the last output goes out
# again: consumers such as Chromium end a track that gets no frame for a while.
HOLD_AFTER_S = 0.15
READ_TIMEOUT_S = 0.1  # one wait for the camera's next frame
WARMUP_SIZE = (64, 48)  # a new model runs once on a blank frame this big before its swap

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
        self._helpers: list[threading.Thread] = []  # every loader started: joined by stop()
        # Camera opens and closes, one at a time in order (a close finishes before the
        # reopen of the same device), off the worker.
        self._camera_jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pixcam camera")
        self._opening: Future[Source] | None = None
        self._opening_spec: SourceSpec | None = None
        # Settings whose new background was loaded on the side: (config, settings, loaded).
        self._staged: tuple[Config, EffectsSettings, Background | None] | None = None
        self._settings_gen = 0  # bumped by every new config: a slower older load is dropped
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
        """Stop and join every thread started here, without a timeout that could leave one
        inside native code at interpreter exit (the SIGABRT "terminate called without an
        active exception"): the frame in flight, a model or background load, the camera."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            _join(self._thread)
        for helper in self._helpers:
            _join(helper)
        self._camera_jobs.shutdown(wait=True)
        opening, self._opening = self._opening, None
        if opening is not None and opening.exception() is None:
            opening.result().close()  # opened while stopping: never adopted
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
            frame = self._source.read(timeout=READ_TIMEOUT_S)
        except SourceError as exc:
            self._lose_camera(str(exc))
            return True
        except EOFError:
            return False
        now = time.monotonic()
        if frame is None:
            self._hold()
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

    def _hold(self) -> None:
        """The last output again once nothing went out for `HOLD_AFTER_S`."""
        last = self._outlet.last_sent
        if last is not None and time.monotonic() - self._outlet.last_send_t >= HOLD_AFTER_S:
            self._outlet.send(last, repeat=True)

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
        "starting"): only a failure there is a fault worth a warning. The open runs on the
        camera thread (a real camera takes up to seconds); frames go on meanwhile."""
        fut = self._opening
        if fut is None:
            if time.monotonic() >= self._next_retry:
                self._opening_spec = self._source_spec
                self._opening = self._camera_jobs.submit(self._open_source_fn, self._source_spec)
        elif fut.done():
            self._opening = None
            try:
                source = fut.result()  # anything but a PixcamError ends the run, as before
            except PixcamError as exc:
                self._open_failed(exc)
            else:
                if self._opening_spec != self._source_spec:  # new camera settings meanwhile
                    self._camera_jobs.submit(source.close)
                    self._next_retry = 0.0
                else:
                    self._opened(source)
                    return
        self._emit_card("placeholder" if self._camera_fault else "hold")

    def _open_failed(self, exc: PixcamError) -> None:
        self._attempt += 1
        wait = BACKOFF_S[min(self._attempt, len(BACKOFF_S) - 1)]
        self._next_retry = time.monotonic() + wait
        if self._camera_fault:
            self._ratelog("reopen", logging.WARNING, f"camera still unavailable: {exc}")
        else:  # a resume or a settings change that failed: now it is a fault
            self._fault(str(exc))
            self._mark_camera_lost()
            log.warning("camera unavailable: %s; showing a placeholder and retrying", exc)

    def _opened(self, source: Source) -> None:
        self._source = source
        if self._camera_fault:
            log.warning("camera %s is back", source.name)
        else:
            log.info("camera %s opened", source.name)
        self._camera_fault = False
        self._state = State.RUNNING
        self._last_frame_t = time.monotonic()
        if self._effects is not None:
            self._effects.reset()  # a new scene: no smoothing against the old one

    def _idle_step(self) -> None:
        if self._source is not None:
            self._close_source(wait=False)
            log.info("paused: camera closed")
        self._state = State.PAUSED
        self._emit_card("idle")

    def _emit_card(self, kind: str) -> None:
        """Send the cached placeholder or idle frame, or ("hold") the last output again while
        the camera opens, paced (they cost nothing per frame)."""
        w, h = self._outlet.dims
        repeat = False
        if kind == "idle":
            frame, rate = self._cards.idle(w, h), self._idle_fps
        elif kind == "hold" and self._outlet.last_sent is not None:
            frame, rate, repeat = self._outlet.last_sent, self._outlet.fps, True
        else:
            frame, rate = self._cards.placeholder(self._last_good, w, h), self._outlet.fps
        t = time.monotonic()
        self._outlet.send(frame, repeat=repeat)
        self._stop.wait(max(0.0, 1.0 / rate - (time.monotonic() - t)))

    def _close_source(self, wait: bool = True) -> None:
        src, self._source = self._source, None
        if src is None:
            return
        if wait:
            src.close()
        else:  # on the camera thread, before any reopen of the same device
            self._camera_jobs.submit(src.close)

    # ------------------------------------------------------------------ live settings
    def _take_pending(self) -> None:
        with self._lock:
            cfg, self._pending = self._pending, None
            staged, self._staged = self._staged, None
            paused = self._paused
        self._helpers = [t for t in self._helpers if t.is_alive()]
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
        if staged is not None:
            self._apply_now(*staged)
        if cfg is not None:
            self._prepare(cfg)
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

    def _prepare(self, cfg: Config) -> None:
        """Apply `cfg` now, or once its new background is loaded on a helper thread."""
        fx = self._effects
        assert fx is not None
        try:
            settings = EffectsSettings.from_config(cfg)
        except Exception as exc:
            self._settings_failed(exc)
            return
        with self._lock:
            self._settings_gen += 1
            gen = self._settings_gen
        if not fx.needs_load(settings):
            self._apply_now(cfg, settings, None)
            return

        def load() -> None:
            try:
                loaded = fx.load(settings)  # builds a new object; the running one is untouched
            except Exception as exc:
                if gen == self._settings_gen:  # not overtaken by newer settings
                    self._settings_failed(exc)
                return
            with self._lock:
                if gen == self._settings_gen:
                    self._staged = (cfg, settings, loaded)
                    return
            if loaded is not None:
                loaded.close()  # newer settings came meanwhile

        self._start_helper(load, "pixcam background load")

    def _start_helper(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._helpers.append(thread)
        thread.start()
        return thread

    def _settings_failed(self, exc: Exception) -> None:
        self._last_error = f"settings: {exc}"
        log.error("new settings not applied: %s", exc)

    def _apply_now(self, cfg: Config, settings: EffectsSettings, loaded: Background | None) -> None:
        assert self._effects is not None
        try:
            if not cfg.model.auto_tune and self._effects.tune_level:
                self._effects.set_tune_level(0)  # turned off: the user's settings exactly
                self._tuner = Controller(self._outlet.fps)
            self._effects.update(settings, loaded)
        except Exception as exc:
            self._settings_failed(exc)
            return
        if self._tuner is not None:
            self._tuner.reset()  # the new settings cost what they cost: measure afresh
        self._cfg = cfg
        if not self._fixed_source and source_spec_from(cfg) != self._source_spec:
            self._source_spec = source_spec_from(cfg)
            if self._source is not None:
                log.info("camera settings changed: reopening")
                self._close_source(wait=False)
                self._plan_reopen()
        spec = self._outlet.spec
        if str(cfg.output.device) != spec.device and not spec.path:
            log.warning("output device change takes effect at the next start of pixcam")

    def _load_segmenter_async(self, model: ModelChoice) -> None:
        """Load the new model beside the running one; the worker swaps it in between frames."""

        def load() -> None:
            try:
                seg = self._loader(*model)
                # The first inference of a new interpreter is slow (XNNPACK prepares then):
                # pay it here, not on the frame thread; a model that fails it is refused.
                w, h = WARMUP_SIZE
                seg.run(np.zeros((h, w, 3), np.uint8), parts=False)
            except Exception as exc:
                self._last_error = f"model: {exc}"
                self._failed_model = model  # do not retry the same failing choice every frame
                name = segmenter_name(None, model)
                log.error("model %s not loaded, keeping the current one: %s", name, exc)
                return
            self._loaded = (seg, model)  # one reference assignment: the worker takes it
            log.info("model %s loaded", segmenter_name(seg, model))

        self._loading = self._start_helper(load, "pixcam model load")


def _join(thread: threading.Thread) -> None:
    """Join with no deadline, saying so in the log while it takes long (a hung device)."""
    thread.join(5.0)
    while thread.is_alive():
        log.warning("waiting for %s to finish before exiting", thread.name)
        thread.join(5.0)
