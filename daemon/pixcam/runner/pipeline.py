"""The runner: `camera.Camera` → `effects.Effects` (the chain) → `outlet.Outlet` (the sink), live.

Threads: the source's capture thread keeps only the newest frame; one worker thread (owned
here) takes it, runs the chain and sends the result, so inference always runs on the newest
frame and latency never grows. Nothing slow runs on the worker: a new model (loaded,
verified and run once), a new background image or video (decoded, opened) and the camera's
opening and closing all happen on helper threads and are swapped in between two frames, so
the worker always comes back to hand the outlet a frame, a card, or "nothing new" (the outlet's
send loop then repeats the last frame after a short gap).
`stop()` joins every thread it started, with no timeout: a frame inside LiteRT or OpenCV
finishes first, so no native thread is alive at interpreter exit.

Faults never stop the virtual camera: when the camera fails or stalls, the last good frame is
sent dimmed with "camera unavailable" while the camera is reopened with backoff; an exception
in one frame is logged (rate-limited) and that frame goes out unprocessed. The camera's
opening, closing and backoff are `camera.Camera`'s; the loads beside the stream are
`loader.Loader`'s; auto-tune is `autotune.Tuner`'s; every write to the sink, its faults and the
keep-alive for a lagging worker are the outlet's (its one send loop).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

from pixcam.chain.autotune import Tuner
from pixcam.chain.effects import Effects, EffectsSettings, Loaded
from pixcam.config import Config
from pixcam.i420 import I420, Frame
from pixcam.runner import camera
from pixcam.runner.camera import Camera, SourceOpener, source_spec_from
from pixcam.runner.cards import Cards
from pixcam.runner.loader import Loader, SegmenterLoader, default_loader
from pixcam.runner.outlet import Outlet, SinkOpener, fit
from pixcam.runner.timings import RateLimitedLog, Timings
from pixcam.video import keeper_cache, v4l2caps
from pixcam.video.keeper_cache import LastOutput
from pixcam.video.sinks import SinkSpec, open_sink
from pixcam.video.sources import SourceError, SourceSpec, open_source

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # Python 3.10: the same str-valued enum (str() and format() give the value)
    from enum import Enum

    class StrEnum(str, Enum):
        def __str__(self) -> str:
            return str(self.value)


log = logging.getLogger("pixcam.runner.pipeline")

DEBUG_STATUS_EVERY_S = 5.0


class State(StrEnum):
    """What the stream is doing (`status()["state"]`)."""

    STOPPED = "stopped"
    STARTING = "starting"  # the camera is being (re)opened on resume or new camera settings
    RUNNING = "running"
    PAUSED = "paused"  # camera closed, the idle card goes out
    CAMERA_LOST = "camera_lost"  # placeholder out, reopening with backoff
    OUTPUT_LOST = "output_lost"  # the virtual camera went away, reopening


# ----------------------------------------------------------------------------- pipeline
class Pipeline:
    """Runs `Effects` on a live stream: owns the camera, the outlet and the worker thread.

    `source_spec` overrides the camera of `cfg` (e.g. `--input FILE`); `frames` stops after
    that many frames sent. `start_paused` opens only the sink (on-demand mode waits for a
    viewer before touching the camera). `keepalive` re-sends the last frame while the worker
    lags; None = only for a sink that is a live device (`reopenable`), never into a file.
    `idle_fps`: the idle card's rate; None = the output's, the rate the virtual camera
    advertises (a reader that trusts it never waits longer than a frame time).
    """

    def __init__(
        self,
        cfg: Config,
        source_spec: SourceSpec | None = None,
        sink_spec: SinkSpec | None = None,
        *,
        frames: int | None = None,
        start_paused: bool = False,
        source_opener: SourceOpener = open_source,
        sink_opener: SinkOpener = open_sink,
        segmenter_loader: SegmenterLoader = default_loader,
        idle_fps: float | None = None,
        keepalive: bool | None = None,
    ) -> None:
        self._cfg = cfg
        self._frames_limit = frames
        self._segmenter_loader = segmenter_loader
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
        self._camera = Camera(
            source_spec or source_spec_from(cfg),
            source_opener,
            self._ratelog,
            self._fault,
            self._mark_camera_lost,
            fixed=source_spec is not None,
        )
        self._outlet = Outlet(
            sink_spec or SinkSpec(device=str(cfg.output.device), backend=cfg.output.backend),
            sink_opener,
            self._timings,
            self._ratelog,
            self._fault,
        )
        # Built by start(): the chain, its loads on the side, its auto-tune.
        self._effects: Effects | None = None
        self._loader: Loader | None = None
        self._tuner: Tuner | None = None

        self._state = State.STOPPED
        self._errors = 0
        self._last_error: str | None = None
        self._last_kind = ""  # what `_last_error` is about: "stream", "settings" or "model"
        self._last_good: Frame | None = None
        self._cards = Cards()
        self._away = False  # "be right back" switched on by hand

    # ------------------------------------------------------------------ public API
    def start(self) -> None:
        """Open everything (errors are `PixcamError`s for the caller) and start the worker."""
        cfg = self._cfg
        # Settings first: their errors need no camera, and nothing to close.
        settings = EffectsSettings.from_config(cfg)
        self._effects = fx = Effects(settings)
        fx.set_away(self._away)
        self._loader = Loader(fx, self._segmenter_loader, self._note)
        # Into a file the model loads first: a bad model then leaves no file behind. A virtual
        # camera is taken over first (see _load_first_model).
        live = self._outlet.spec.path is None
        if settings.active and not live:
            fx.set_segmenter(self._segmenter_loader(*settings.model), settings.model)
        width, height, fps = cfg.camera.width, cfg.camera.height, float(cfg.camera.fps)
        if not self._paused:
            source = self._camera.open_now()
            width, height = source.width, source.height
            fps = source.fps or fps
        # The sink's size is the camera's granted size (or [output] height's scale-down of
        # it), fixed for the process lifetime.
        try:
            self._outlet.open(
                *output_size(width, height, cfg.output.height),
                float(cfg.output.fps) or fps or 30.0,
            )
            if live and settings.active:
                # A virtual camera is taken over before the model loads, a card on it: after
                # a restart an app may still be watching, and Chromium ends its track after
                # 10 s without a frame; a model load alone can take that long.
                self._outlet.show(self._first_card(), self._idle_fps)
                fx.set_segmenter(self._segmenter_loader(*settings.model), settings.model)
        except BaseException:
            self._camera.close()
            self._outlet.close()
            raise
        self._camera.decode_size = self._outlet.dims
        self._state = State.PAUSED if self._paused else State.RUNNING
        self._tuner = Tuner(fx, self._outlet.fps, cfg.model.auto_tune)
        self._camera.expect_frames()
        self._thread = threading.Thread(target=self._worker, name="pixcam pipeline", daemon=True)
        self._thread.start()
        keepalive = self._keepalive
        if keepalive is None:
            keepalive = bool(getattr(self._outlet.sink, "reopenable", False))
        self._outlet.keepalive = keepalive
        if live:
            # Once the stream runs: the save (~20 ms at 1080p) never delays a frame out.
            # A restart while watched is "starting", whatever this run showed first.
            self._remember_output(self._cards.starting(*self._outlet.dims))

    def _first_card(self) -> Frame:
        """What the virtual camera shows first: the idle card paused, else "starting"."""
        w, h = self._outlet.dims
        return self._cards.idle(w, h) if self._paused else self._cards.starting(w, h)

    def _remember_output(self, card: Frame) -> None:
        """The device, its rate and `card`, for the keeper of the next start (keeper.py)."""
        sink = self._outlet.sink
        if sink is None or not isinstance(card, I420):  # an odd-sized card: no keeper
            return
        try:
            info = v4l2caps.query(sink.name)
        except OSError as exc:
            log.debug("not remembering %s for the next start: %s", sink.name, exc)
            return
        if info.is_loopback:
            data = card.data.tobytes()
            last = LastOutput(sink.name, info.card, card.width, card.height, data, sink.fps)
            keeper_cache.save(last)

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
        if self._loader is not None:
            self._loader.join(_join)
        self._camera.shutdown()
        try:
            self._outlet.close()  # a file sink reads its file back: SinkError if it is broken
        finally:
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

    def set_away(self, on: bool) -> None:
        """The "be right back" card by hand, until switched off (kept across restarts of
        the chain, not saved)."""
        self._away = on
        if self._effects is not None:
            self._effects.set_away(on)

    def people(self) -> dict[str, Any] | None:
        """Only me and away for the status; "away_since" as the local time ("12:03")."""
        fx = self._effects
        if fx is None:
            return None
        info = dict(fx.people)
        since = info.get("away_since")
        if isinstance(since, float):
            wall = time.time() - (time.monotonic() - since)
            info["away_since"] = time.strftime("%H:%M", time.localtime(wall))
        info["away_manual"] = self._away
        return info

    @property
    def paused(self) -> bool:
        return self._paused

    def status(self) -> dict[str, Any]:
        sink = self._outlet.sink
        fx, tuner = self._effects, self._tuner  # None until start(): nothing runs yet
        # A standing notice (a part effect the model cannot do) is the problem to show.
        notice = fx.notice if fx is not None else None
        return {
            "state": self.state.value,
            "source": self._camera.name,
            "sink": sink.name if sink is not None else None,
            "width": sink.width if sink is not None else None,
            "height": sink.height if sink is not None else None,
            "fps": self._timings.fps(),
            "frames": self._outlet.frames,
            "repeated": self._outlet.repeats,
            # The longest the virtual camera went without a frame in the last 10 s.
            "largest_gap_ms": _ms(self._outlet.largest_gap()),
            "errors": self._errors,
            "last_error": notice or self._last_error,
            "model": fx.model_name if fx is not None else None,
            "effects": fx is not None and fx.settings.active,
            "parts": fx is not None and fx.settings.parts_on and fx.settings.enabled,
            "stages_ms": self._timings.medians(),
            # Camera capture to the sink write, over the last frames: {"median", "p95"} ms.
            "latency_ms": self._timings.latency(),
            "auto_tune": tuner.status() if tuner is not None and tuner.enabled else None,
            "people": self.people(),
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
                elif self._camera.source is None:
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
            self._camera.close()
            self._state = State.STOPPED

    def _camera_step(self) -> bool:
        """One frame from the camera; False at the end of a non-looping file."""
        cam = self._camera
        try:
            frame = cam.read()
        except SourceError as exc:
            cam.lose(str(exc))
            return True
        except EOFError:
            return False
        source = cam.source
        assert source is not None
        if frame is None:
            self._outlet.hold()
            if cam.stalled:
                cam.lose(f"{source.name} sent no frame for {camera.STALL_S:g} s")
            return True
        t0 = time.perf_counter()
        captured = source.last_capture_t
        out, carried = self._process(frame)
        if self._outlet.send(out, captured=captured):
            self._last_good = out
        if not carried:
            # Only frames the network ran on: a still picture's carried frames would make
            # the median look cheap while every inferred one overran the interval, and the
            # frames behind it waited (p95 latency 70 ms at 720p under load, auto-tune idle).
            self._tune(time.perf_counter() - t0)
        return True

    def _tune(self, work_s: float) -> None:
        # While a model loads beside the stream its CPU time is not the chain's cost.
        if self._tuner is not None and self._loader is not None and not self._loader.busy:
            self._tuner.feed(work_s, time.monotonic())

    def _process(self, frame: Frame) -> tuple[Frame, bool]:
        """The output frame, and whether it kept the last mask (no inference)."""
        fx = self._effects
        assert fx is not None
        t0 = time.perf_counter()
        frame = fit(frame, *self._outlet.dims)
        try:
            return fx.process(frame, on_stage=self._timings.add), fx.carried
        except Exception as exc:
            # One bad frame must not stop the stream: log (rate-limited), send it unprocessed.
            self._fault(f"frame: {type(exc).__name__}: {exc}")
            self._ratelog("frame", logging.ERROR, f"frame failed: {exc!r}", exc_info=True)
            return fx.mirror(frame), False
        finally:
            self._timings.add("total", (time.perf_counter() - t0) * 1e3)

    def _fault(self, message: str) -> None:
        """Count a problem and keep it as the last error for the status."""
        self._errors += 1
        self._last_error, self._last_kind = message, "stream"

    def _note(self, kind: str, message: str | None) -> None:
        """Keep a problem that is no stream fault (a failed load) for the status; None: that
        kind of thing worked since, so its error, if it is the last one, is stale."""
        if message is not None:
            self._last_error, self._last_kind = message, kind
        elif self._last_kind == kind:
            self._last_error, self._last_kind = None, ""

    # ------------------------------------------------------------------ faults
    def _mark_camera_lost(self) -> None:
        self._state = State.CAMERA_LOST
        self._cards.forget_placeholder()

    def _fault_step(self) -> None:
        """Placeholder out at the output rate; the camera reopens when its backoff says so.

        Also the way the camera is (re)opened on resume and on new camera settings (state
        "starting"): only a failure there is a fault worth a warning. The open runs on the
        camera thread (a real camera takes up to seconds); frames go on meanwhile."""
        source = self._camera.poll()
        if source is not None:
            self._state = State.RUNNING
            if source.fps and not self._cfg.output.fps:
                self._outlet.retime(source.fps)  # the rate the virtual camera advertises
            if self._effects is not None:
                self._effects.reset()  # a new scene: no smoothing against the old one
            return
        self._emit_card("placeholder" if self._camera.failed else "hold")

    def _idle_step(self) -> None:
        if self._camera.source is not None:
            self._camera.close(wait=False)
            log.info("paused: camera closed")
        self._state = State.PAUSED
        self._emit_card("idle")

    def _emit_card(self, kind: str) -> None:
        """Have the outlet show the cached placeholder or idle card at its rate, or ("hold")
        the last output again while the camera opens; then wait one card's time (the worker
        has nothing else to do until the camera is back or the pause ends)."""
        w, h = self._outlet.dims
        rate = self._outlet.fps
        if kind == "idle":
            rate = self._idle_fps or rate
            self._outlet.show(self._cards.idle(w, h), self._idle_fps)
        elif kind == "hold" and self._outlet.last_sent is not None:
            self._outlet.hold()
        else:
            self._outlet.show(self._cards.placeholder(self._last_good, w, h), rate)
        self._stop.wait(1.0 / rate)

    # ------------------------------------------------------------------ live settings
    def _take_pending(self) -> None:
        with self._lock:
            cfg, self._pending = self._pending, None
            paused = self._paused
        if not paused and self._state == State.PAUSED:
            # resume(): reopen the camera right away through the fault path's opener.
            self._plan_reopen()
        loader = self._loader
        assert loader is not None
        staged = loader.take()
        if staged is not None:
            self._apply_now(*staged)
        if cfg is not None:
            ready = loader.prepare(cfg)
            if ready is not None:
                self._apply_now(*ready)
        loader.load_wanted_model()

    def _plan_reopen(self) -> None:
        """Open the camera at the next step (a resume or new camera settings), not a fault."""
        self._state = State.STARTING
        self._cards.forget_placeholder()
        self._camera.plan_reopen()

    def _apply_now(self, cfg: Config, settings: EffectsSettings, loaded: Loaded | None) -> None:
        fx, tuner, loader = self._effects, self._tuner, self._loader
        assert fx is not None and tuner is not None and loader is not None
        try:
            tuner.before_update(cfg.model.auto_tune)
            fx.update(tuner.settings_for(settings), loaded)
        except Exception as exc:
            loader.settings_failed(exc)
            return
        tuner.updated(settings, cfg.model.auto_tune)
        self._cfg = cfg
        self._note("settings", None)
        if self._camera.follow(cfg):
            self._plan_reopen()
        spec = self._outlet.spec
        if str(cfg.output.device) != spec.device and not spec.path:
            log.warning("output device change takes effect at the next start of pixcam")


def output_size(width: int, height: int, out_height: int) -> tuple[int, int]:
    """The virtual camera's size for a `width`×`height` camera: the camera's own, or scaled
    down to `out_height` (0: no scaling; never up), same aspect, even sides (I420)."""
    if out_height <= 0 or out_height >= height:
        return width, height
    h = max(2, out_height // 2 * 2)
    return max(2, round(width * h / height / 2) * 2), h


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 1)


def _join(thread: threading.Thread) -> None:
    """Join with no deadline, saying so in the log while it takes long (a hung device)."""
    thread.join(5.0)
    while thread.is_alive():
        log.warning("waiting for %s to finish before exiting", thread.name)
        thread.join(5.0)
