"""The loop: source → segmenter → refiner → compositor → sink, with timings and fault recovery.

Threads: the source's capture thread keeps only the newest frame; one worker thread (owned
here) takes it, runs the chain and sends the result, so inference always runs on the newest
frame and latency never grows. A model switch loads the new segmenter on a helper thread and
swaps it in between two frames, so the stream never stops.

Faults never stop the virtual camera: when the camera fails or stalls, the last good frame is
sent dimmed with "camera unavailable" while the camera is reopened with backoff; an exception
in one frame is logged (rate-limited) and that frame goes out unprocessed. When inference lags
far behind (a very slow CPU), a keep-alive thread re-sends the last output frame at the output
rate so the virtual camera's readers do not time out.

Body-part effects (`partfx`: coloured parts, face/hand privacy) run after the background
compose, on top of any background mode, and the part heatmaps are read only while one is on.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from pixcam.errors import PixcamError
from pixcam.sinks import Sink, SinkError, SinkSpec, open_sink
from pixcam.sources import Source, SourceError, SourceSpec, open_source

log = logging.getLogger("pixcam.pipeline")

STAGES = ("segment", "refine", "compose", "parts", "sink", "total")
WINDOW = 60  # frames in the sliding window of the timings
STALL_S = 2.0  # no frame for this long = camera lost
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 5.0)  # waits between reopen attempts, the last one repeats
SINK_RETRY_S = 2.0
LOG_EVERY_S = 10.0  # the same frame error is logged at most once per this period
WORK_DIVISOR = 4  # the segmenter's probability is requested at 1/4 of the frame size
DEBUG_STATUS_EVERY_S = 5.0
# Keep-alive: re-send the last output once nothing went out for this long (or 3 output frame
# times, whichever is longer), so ordinary jitter never duplicates a frame.
KEEPALIVE_AFTER_S = 0.25

SegmenterLoader = Callable[..., Any]


# ------------------------------------------------------------------------------ helpers
class Timings:
    """Median milliseconds per stage over a sliding window, and the output frame rate."""

    def __init__(self, window: int = WINDOW) -> None:
        self._ms: dict[str, deque[float]] = {s: deque(maxlen=window) for s in STAGES}
        self._sent: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            self._ms.setdefault(stage, deque(maxlen=WINDOW)).append(ms)

    def frame_sent(self, t: float) -> None:
        with self._lock:
            self._sent.append(t)

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


def _text_frame(base: np.ndarray, lines: list[str]) -> np.ndarray:
    """`base` with centred white lines of text on it (drawn once, then cached by callers)."""
    h, w = base.shape[:2]
    scale = max(0.5, w / 1280 * 1.2)
    thick = max(1, round(scale * 2))
    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(t, font, scale, thick)[0] for t in lines]
    step = max(s[1] for s in sizes) * 2
    y = h // 2 - step * (len(lines) - 1) // 2
    for text, (tw, th) in zip(lines, sizes, strict=True):
        org = ((w - tw) // 2, y + th // 2)
        cv2.putText(base, text, org, font, scale, (0, 0, 0), thick + 3, cv2.LINE_AA)
        cv2.putText(base, text, org, font, scale, (255, 255, 255), thick, cv2.LINE_AA)
        y += step
    return base


def placeholder_frame(last: np.ndarray | None, width: int, height: int) -> np.ndarray:
    """The last good frame dimmed with "camera unavailable", or a dark grey card."""
    if last is not None and last.shape[:2] == (height, width):
        base = cv2.convertScaleAbs(last, alpha=0.35)
    else:
        base = np.full((height, width, 3), 40, np.uint8)
    return _text_frame(base, ["camera unavailable", "reconnecting..."])


def idle_frame(width: int, height: int) -> np.ndarray:
    return _text_frame(np.full((height, width, 3), 24, np.uint8), ["pixcam: camera off"])


def _fit(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """The sink's size is fixed for the process lifetime; a reopened camera may differ."""
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def _field_names(cls: type) -> set[str]:
    if dataclasses.is_dataclass(cls):
        return {f.name for f in dataclasses.fields(cls)}
    return set(getattr(cls, "model_fields", {}))


# ------------------------------------------------------------------- config → settings
def source_spec_from(cfg: Any) -> SourceSpec:
    cam = cfg.camera
    return SourceSpec(
        device=cam.device, width=cam.width, height=cam.height, fps=cam.fps, mjpg=cam.mjpg
    )


def refine_settings_from(cfg: Any) -> Any:
    from pixcam.refine import RefineSettings

    r = cfg.refine
    return RefineSettings(
        smoothing=float(r.smoothing),
        feather=float(r.feather),
        edge_aware=bool(r.edge_aware),
        threshold=float(cfg.model.threshold),
    )


def compose_settings_from(cfg: Any) -> Any:
    from pixcam.compose import ComposeSettings

    names = _field_names(ComposeSettings)
    values = vars_of(cfg.effects)
    # The pipeline mirrors the camera frame before segmentation (so pass-through mirrors
    # too); the compositor must not flip it a second time.
    values["mirror"] = False
    return ComposeSettings(**{k: v for k, v in values.items() if k in names})


def vars_of(section: Any) -> dict[str, Any]:
    return section.model_dump() if hasattr(section, "model_dump") else dict(vars(section))


def parts_active(cfg: Any) -> bool:
    """A body-part effect is on (coloured parts or part privacy)."""
    p = cfg.parts
    return bool(p.view) or str(p.privacy) != "none"


def effects_active(cfg: Any) -> bool:
    """Segmentation is needed at all (otherwise frames pass through untouched).

    A part effect counts with background "none" too: keep the background, blur the face."""
    if not cfg.effects.enabled:
        return False
    return cfg.effects.background != "none" or parts_active(cfg)


def _model_key(cfg: Any) -> tuple[Any, ...]:
    m = cfg.model
    name = None if m.name in ("", "default") else m.name
    return (name, int(m.threads), int(m.internal_resolution), str(m.quality))


def model_label(name: str | None) -> str:
    """The model for logs: "default (its manifest name)" instead of None."""
    if name is not None:
        return name
    try:
        from pixcam import models

        return f"default ({models.default_model_name()})"
    except Exception:  # a broken manifest must not break a log line
        return "default"


def _default_loader(
    name: str | None, threads: int, internal_resolution: int, quality: str = "balanced"
) -> Any:
    from pixcam.segment import load_segmenter

    return load_segmenter(name, threads, internal_resolution, quality)


# ----------------------------------------------------------------------------- pipeline
class Pipeline:
    """Owns the source, the stages, the sink and the worker thread.

    `source_spec` overrides the camera of `cfg` (e.g. `--input FILE`); `frames` stops after
    that many frames sent. `start_paused` opens only the sink (on-demand mode waits for a
    viewer before touching the camera). `keepalive` re-sends the last frame while the worker
    lags; None = only for a sink that is a live device (`reopenable`), never into a file.
    """

    def __init__(
        self,
        cfg: Any,
        source_spec: SourceSpec | None = None,
        sink_spec: SinkSpec | None = None,
        *,
        frames: int | None = None,
        start_paused: bool = False,
        source_opener: Callable[[SourceSpec], Source] = open_source,
        sink_opener: Callable[[SinkSpec, int, int, float], Sink] = open_sink,
        segmenter_loader: SegmenterLoader = _default_loader,
        idle_fps: float = 5.0,
        keepalive: bool | None = None,
    ) -> None:
        self._cfg = cfg
        self._fixed_source = source_spec is not None
        self._source_spec = source_spec or source_spec_from(cfg)
        self._sink_spec = sink_spec or SinkSpec(device=str(cfg.output.device))
        self._frames_limit = frames
        self._open_source_fn = source_opener
        self._open_sink_fn = sink_opener
        self._loader = segmenter_loader
        self._idle_fps = idle_fps
        self._keepalive = keepalive

        self._lock = threading.Lock()
        self._pending: Any = None
        self._paused = start_paused
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fatal: BaseException | None = None

        self._source: Source | None = None
        self._sink: Sink | None = None
        self._segmenter: Any = None
        self._segmenter_key: tuple[Any, ...] | None = None
        self._loading: threading.Thread | None = None
        self._refiner: Any = None
        self._compositor: Any = None
        self._fx: Any = None  # partfx.PartEffects
        self._parts_fed = False  # the part tracker saw the previous frame
        self._parts_warned: tuple[Any, ...] | None = None  # model key warned about: no parts

        self._timings = Timings()
        self._ratelog = RateLimitedLog()
        self._state = "stopped"
        self._frames = 0
        self._errors = 0
        self._last_error: str | None = None
        self._last_good: np.ndarray | None = None
        self._placeholder: np.ndarray | None = None
        self._idle: np.ndarray | None = None
        self._attempt = 0
        self._next_retry = 0.0
        self._last_frame_t = 0.0
        self._sink_retry = 0.0
        self._out_fps = 30.0
        self._dims = (int(cfg.camera.width), int(cfg.camera.height))  # the sink's, once open
        self._failed_key: tuple[Any, ...] | None = None
        # Sends come from the worker and the keep-alive thread: one at a time.
        self._send_lock = threading.Lock()
        self._last_sent: np.ndarray | None = None
        self._last_send_t = 0.0
        self._repeats = 0
        self._keepalive_thread: threading.Thread | None = None
        self._camera_fault = False  # the camera failed (not: closed for a pause or new settings)

    # ------------------------------------------------------------------ public API
    def start(self) -> None:
        """Open everything (errors are `PixcamError`s for the caller) and start the worker."""
        cfg = self._cfg
        # Settings and model first: their errors need no camera, and nothing to close.
        self._build_stages(cfg)
        if effects_active(cfg):
            self._segmenter = self._loader(*_model_key(cfg))
            self._segmenter_key = _model_key(cfg)
        width, height, fps = cfg.camera.width, cfg.camera.height, float(cfg.camera.fps)
        if not self._paused:
            self._source = self._open_source_fn(self._source_spec)
            width, height = self._source.width, self._source.height
            fps = self._source.fps or fps
        # The sink's size is the camera's granted size, fixed for the process lifetime.
        self._out_fps = float(cfg.output.fps) or fps or 30.0
        try:
            self._sink = self._open_sink_fn(self._sink_spec, width, height, self._out_fps)
        except BaseException:
            self._close_source()
            raise
        self._dims = (self._sink.width, self._sink.height)
        self._state = "paused" if self._paused else "running"
        self._last_frame_t = time.monotonic()
        self._last_send_t = time.monotonic()
        self._thread = threading.Thread(target=self._worker, name="pixcam pipeline", daemon=True)
        self._thread.start()
        keepalive = self._keepalive
        if keepalive is None:
            keepalive = bool(getattr(self._sink, "reopenable", False))
        if keepalive:
            self._keepalive_thread = threading.Thread(
                target=self._keepalive_loop, name="pixcam keepalive", daemon=True
            )
            self._keepalive_thread.start()

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
        for thread in (self._thread, self._keepalive_thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=5.0)
        self._close_source()
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        self._state = "stopped"

    def apply(self, cfg: Any) -> None:
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
        sink = self._sink
        src = self._source
        return {
            "state": self._state,
            "source": src.name
            if src is not None
            else str(self._source_spec.path or self._source_spec.device),
            "sink": sink.name if sink is not None else None,
            "width": sink.width if sink is not None else None,
            "height": sink.height if sink is not None else None,
            "fps": self._timings.fps(),
            "frames": self._frames,
            "repeated": self._repeats,
            "errors": self._errors,
            "last_error": self._last_error,
            "model": self._model_name(),
            "effects": effects_active(self._cfg),
            "parts": parts_active(self._cfg) and bool(self._cfg.effects.enabled),
            "stages_ms": self._timings.medians(),
        }

    def _model_name(self) -> str | None:
        """The loaded model's own name (what "default" resolved to), when there is one."""
        if self._segmenter_key is None:
            return None
        spec = getattr(self._segmenter, "spec", None)
        return getattr(spec, "name", None) or self._segmenter_key[0] or "default"

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
                if self._frames_limit is not None and self._frames >= self._frames_limit:
                    break
                if log.isEnabledFor(logging.DEBUG) and time.monotonic() >= next_debug:
                    next_debug = time.monotonic() + DEBUG_STATUS_EVERY_S
                    log.debug("status %s", self.status())
        except BaseException as exc:  # a sink that cannot come back, or a bug: end run()
            self._fatal = exc
        finally:
            self._close_source()
            self._state = "stopped"

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
        out = self._process(frame)
        if self._send(out):
            self._last_good = out
        return True

    def _process(self, frame: np.ndarray) -> np.ndarray:
        cfg = self._cfg
        width, height = self._dims
        t0 = time.perf_counter()
        try:
            if cfg.effects.mirror:
                frame = cv2.flip(frame, 1)
            frame = _fit(frame, width, height)
            seg = self._segmenter
            if not effects_active(cfg) or seg is None:
                self._parts_fed = False
                return frame  # pass-through: no inference at all
            fx = self._fx
            needs_parts = fx is not None and fx.needs_parts
            if not needs_parts:
                self._clear_parts_warning()  # turned on again later: say it again
            want_parts = needs_parts and self._parts_available(seg)
            if not want_parts:
                self._parts_fed = False
                if cfg.effects.background == "none":
                    return frame  # only a part effect was asked for, and it cannot run
            h, w = frame.shape[:2]
            t = time.perf_counter()
            # The 24 part channels are read (and decoded) only while an effect needs them.
            out = seg.run(frame, parts=want_parts)
            # Same aspect as the frame (the refiner checks it); ~1/16 of the pixels.
            prob = out.person_probability(
                size=(max(1, w // WORK_DIVISOR), max(1, h // WORK_DIVISOR))
            )
            t_seg = time.perf_counter()
            alpha = self._refiner.refine(frame, prob)
            t_ref = time.perf_counter()
            result = self._compositor.compose(frame, alpha)
            t_comp = time.perf_counter()
            self._timings.add("segment", (t_seg - t) * 1e3)
            self._timings.add("refine", (t_ref - t_seg) * 1e3)
            self._timings.add("compose", (t_comp - t_ref) * 1e3)
            if want_parts:
                if not self._parts_fed:
                    fx.reset()  # frames went by unseen: no smoothing against a stale state
                # The compositor hands out a new array (except for "none", which returns the
                # camera frame itself): draw into it rather than copying 2.7 MB again.
                result = fx.apply(result, out, alpha, inplace=result is not frame)
                self._parts_fed = True
                self._timings.add("parts", (time.perf_counter() - t_comp) * 1e3)
            return result
        except Exception as exc:
            # One bad frame must not stop the stream: log (rate-limited), send it unprocessed.
            self._errors += 1
            self._last_error = f"frame: {type(exc).__name__}: {exc}"
            self._ratelog("frame", logging.ERROR, f"frame failed: {exc!r}", exc_info=True)
            self._parts_fed = False
            return _fit(frame, width, height)
        finally:
            self._timings.add("total", (time.perf_counter() - t0) * 1e3)

    def _parts_available(self, seg: Any) -> bool:
        """Whether the model has part heads; says once per model when it has not."""
        if getattr(seg, "has_parts", False):
            self._clear_parts_warning()  # a model with parts came: the problem is gone
            return True
        key = self._segmenter_key
        if self._parts_warned != key:
            self._parts_warned = key
            name = getattr(getattr(seg, "spec", None), "name", None) or model_label(
                key[0] if key else None
            )
            msg = (
                f"model {name} has no body parts: the part effects are off until a model with "
                "parts is chosen (`pixcam models list`: person+parts)"
            )
            self._last_error = msg
            log.warning("%s", msg)
        return False

    def _clear_parts_warning(self) -> None:
        if self._parts_warned is None:
            return
        self._parts_warned = None
        if self._last_error and "has no body parts" in self._last_error:
            self._last_error = None

    def _send(self, frame: np.ndarray, *, repeat: bool = False) -> bool:
        with self._send_lock:
            return self._send_locked(frame, repeat)

    def _send_locked(self, frame: np.ndarray, repeat: bool) -> bool:
        now = time.monotonic()
        if self._sink is None:
            if now < self._sink_retry:
                return False
            try:
                self._sink = self._reopen_sink()
                log.warning("output %s is back", self._sink.name)
                if self._state == "output_lost":
                    self._state = self._live_state()
            except PixcamError as exc:
                self._sink_retry = now + SINK_RETRY_S
                self._ratelog("sink-open", logging.WARNING, f"output still unavailable: {exc}")
                return False
        sink = self._sink
        t = time.perf_counter()
        try:
            sink.send(_fit(frame, sink.width, sink.height))
        except SinkError as exc:
            self._errors += 1
            self._last_error = str(exc)
            if not sink.reopenable:
                raise
            log.error("%s", exc)
            sink.close()
            self._sink = None
            self._state = "output_lost"
            self._sink_retry = now + SINK_RETRY_S
            return False
        self._last_sent = frame
        self._last_send_t = time.monotonic()
        if repeat:
            self._repeats += 1  # not a new frame: neither counted nor in the fps
            return True
        self._timings.add("sink", (time.perf_counter() - t) * 1e3)
        self._timings.frame_sent(self._last_send_t)
        self._frames += 1
        return True

    def _live_state(self) -> str:
        if self._paused:
            return "paused"
        if self._source is not None:
            return "running"
        return "camera_lost" if self._camera_fault else "starting"

    def _keepalive_loop(self) -> None:
        """Re-send the last output at the output rate while the worker sends nothing.

        The worker blocks in inference for a whole frame; on a very slow CPU (seconds per
        frame) readers of the virtual camera would time out. Paused, the worker paces the
        idle card itself at its own (lower) rate, so nothing is repeated then."""
        period = 1.0 / max(1.0, self._out_fps)
        after = max(KEEPALIVE_AFTER_S, 3 * period)
        worker = self._thread
        while not self._stop.wait(period):
            if worker is None or not worker.is_alive():
                return
            frame = self._last_sent
            if frame is None or self._paused or self._sink is None:
                continue
            if time.monotonic() - self._last_send_t < after:
                continue
            try:
                self._send(frame, repeat=True)
            except Exception as exc:  # never let the keep-alive take the stream down
                self._ratelog("keepalive", logging.ERROR, f"repeating a frame failed: {exc!r}")

    def _reopen_sink(self) -> Sink:
        w, h = self._dims
        return self._open_sink_fn(self._sink_spec, w, h, self._out_fps)

    # ------------------------------------------------------------------ faults
    def _lose_camera(self, why: str) -> None:
        self._errors += 1
        self._last_error = why
        log.warning("camera lost: %s; showing a placeholder and reconnecting", why)
        # A stuck camera can keep its capture thread in a blocking read for seconds; release
        # it on the side so the placeholder starts flowing at once.
        self._close_source(wait=False)
        self._state = "camera_lost"
        self._camera_fault = True
        self._placeholder = None
        self._attempt = 0
        self._next_retry = time.monotonic() + BACKOFF_S[0]

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
                    self._errors += 1
                    self._last_error = str(exc)
                    self._state = "camera_lost"
                    self._camera_fault = True
                    self._placeholder = None
                    log.warning("camera unavailable: %s; showing a placeholder and retrying", exc)
            else:
                if self._camera_fault:
                    log.warning("camera %s is back", self._source.name)
                else:
                    log.info("camera %s opened", self._source.name)
                self._camera_fault = False
                self._state = "running"
                self._last_frame_t = time.monotonic()
                self._reset_tracking()
                return
        if self._camera_fault:
            self._emit_card("placeholder")
        else:  # not reached (a planned reopen is due at once); never spin regardless
            self._stop.wait(0.01)

    def _reset_tracking(self) -> None:
        """Forget the temporal state of the refiner and the part effects (new scene)."""
        if self._refiner is not None and hasattr(self._refiner, "reset"):
            self._refiner.reset()
        if self._fx is not None:
            self._fx.reset()
        self._parts_fed = False

    def _idle_step(self) -> None:
        if self._source is not None:
            self._close_source()
            log.info("paused: camera closed")
        self._state = "paused"
        self._emit_card("idle")

    def _emit_card(self, kind: str) -> None:
        """Send the cached placeholder or idle frame, paced (the cards cost nothing per frame)."""
        w, h = self._dims
        if kind == "idle":
            if self._idle is None or self._idle.shape[:2] != (h, w):
                self._idle = idle_frame(w, h)
            frame, rate = self._idle, self._idle_fps
        else:
            if self._placeholder is None:
                self._placeholder = placeholder_frame(self._last_good, w, h)
            frame, rate = self._placeholder, self._out_fps
        t = time.monotonic()
        self._send(frame)
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
        if not paused and self._state == "paused":
            # resume(): reopen the camera right away through the fault path's opener.
            self._state = "starting"
            self._camera_fault = False
            self._next_retry = 0.0
            self._attempt = 0
            self._placeholder = None
        if self._loading is not None and not self._loading.is_alive():
            self._loading = None
        if cfg is not None:
            self._apply_now(cfg)
        want = _model_key(self._cfg)
        if (
            effects_active(self._cfg)
            and want != self._segmenter_key
            and want != self._failed_key
            and self._loading is None
        ):
            self._load_segmenter_async(want)

    def _apply_now(self, cfg: Any) -> None:
        old, self._cfg = self._cfg, cfg
        try:
            self._build_stages(cfg)
        except Exception as exc:
            self._cfg = old
            self._last_error = f"settings: {exc}"
            log.error("new settings not applied: %s", exc)
            return
        if not self._fixed_source and source_spec_from(cfg) != self._source_spec:
            self._source_spec = source_spec_from(cfg)
            if self._source is not None:
                log.info("camera settings changed: reopening")
                self._close_source()
                self._state = "starting"
                self._camera_fault = False
                self._next_retry = 0.0
                self._attempt = 0
        if str(cfg.output.device) != self._sink_spec.device and not self._sink_spec.path:
            log.warning("output device change takes effect at the next start of pixcam")

    def _build_stages(self, cfg: Any) -> None:
        from pixcam.compose import Compositor
        from pixcam.partfx import PartEffects, PartSettings
        from pixcam.refine import Refiner

        # Every settings object first: an invalid one must leave all stages as they were.
        refine = refine_settings_from(cfg)
        compose = compose_settings_from(cfg)
        parts = PartSettings.from_config(cfg)
        if self._refiner is None:
            self._refiner = Refiner(refine)
        elif refine != self._refiner.settings:
            self._refiner.update(refine)
        if self._compositor is None or compose != getattr(self._compositor, "settings", None):
            if self._compositor is not None and hasattr(self._compositor, "update"):
                self._compositor.update(compose)
            else:
                self._compositor = Compositor(compose)
        if self._fx is None:
            self._fx = PartEffects(parts)
        elif parts != self._fx.settings:
            self._fx.update(parts)

    def _load_segmenter_async(self, key: tuple[Any, ...]) -> None:
        """Load the new model beside the running one; swap it in between two frames."""

        def load() -> None:
            try:
                seg = self._loader(*key)
            except Exception as exc:
                self._last_error = f"model: {exc}"
                self._failed_key = key  # do not retry the same failing choice every frame
                log.error(
                    "model %s not loaded, keeping the current one: %s", model_label(key[0]), exc
                )
                return
            # One reference assignment each: the worker reads them between frames.
            self._segmenter, self._segmenter_key = seg, key
            resolved = getattr(getattr(seg, "spec", None), "name", None)
            log.info("model %s loaded", resolved or model_label(key[0]))

        self._loading = threading.Thread(target=load, name="pixcam model load", daemon=True)
        self._loading.start()
