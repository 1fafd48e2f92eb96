"""`pixcam` with no sub-command: the long-running daemon. It only wires things together.

    pixcam ctl ──ControlServer──┐
    signals ───SignalHandlers──┼──> Daemon.set_many() ── validate + write once ──┐
    tray menu ─────Tray─────────┘                                                 ├─> apply
    outside edits of the file ──ConfigWatcher (reports only those) ───────────────┘
    apply ──> Pipeline.apply (before the next frame)
    virtual camera watched? ──OnDemand──> Pipeline.resume()/pause()

Threads: the main thread runs the tray's GLib loop (or just waits when headless); the
pipeline, the control server, the config watcher, the on-demand watcher and the signal
dispatcher each have their own. `Daemon` is the `control.App` and the `tray.TrayApp`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pixcam import config as config_mod
from pixcam import paths
from pixcam.chain.effects import effects_active
from pixcam.config import Config, ConfigWatcher
from pixcam.control import ControlServer, SignalHandlers, install_signal_handlers
from pixcam.errors import PixcamError, log_each_line
from pixcam.paths import installed_version
from pixcam.runner.pipeline import Pipeline
from pixcam.runner.usable import check_usable
from pixcam.video import outputs
from pixcam.video.ondemand import START_DELAY_S, STOP_DELAY_S, OnDemand
from pixcam.video.sinks import SinkSpec
from pixcam.video.sources import SourceSpec

log = logging.getLogger("pixcam.daemon")

PipelineFactory = Callable[..., Pipeline]
FAULT_STATES = ("camera_lost", "output_lost")


class Daemon:
    """Owns the parts; implements `control.App` (status/set/toggle/reload/quit/pause/resume)
    and the few extras the tray needs (config, pause_camera, tray_state)."""

    def __init__(
        self,
        config_path: str | os.PathLike[str] | None = None,
        *,
        source: SourceSpec | None = None,
        sink: SinkSpec | None = None,
        socket_path: str | os.PathLike[str] | None = None,
        tray: bool | None = None,
        pipeline_factory: PipelineFactory = Pipeline,
        ondemand_delays: tuple[float, float] = (START_DELAY_S, STOP_DELAY_S),
    ) -> None:
        path = Path(config_path) if config_path else config_mod.config_path()
        self._config_path = path.absolute()  # the status and the tray show it; cwd may change
        self._source_spec = source
        self._sink_spec = sink
        self._socket_path = socket_path
        self._tray_wanted = tray  # None: the config's daemon.tray decides
        self._pipeline_factory = pipeline_factory
        self._ondemand_delays = ondemand_delays

        self._cfg: Config = Config()
        self._apply_lock = threading.Lock()  # one config change at a time, whoever asks
        self._camera_lock = threading.Lock()
        self._ondemand_lock = threading.Lock()
        self._quit = threading.Event()
        self._exit_code = 0
        self._user_paused = False
        self._away_manual = False  # "be right back" switched on by hand
        self._config_error: str | None = None

        self._pipeline: Pipeline | None = None
        self._control: ControlServer | None = None
        self._watcher: ConfigWatcher | None = None
        self._ondemand: Any = None  # OnDemand, PipeWireOnDemand or both
        self._signals: SignalHandlers | None = None
        self._tray: Any = None
        self._tray_status = "off"  # off | headless | starting | running

    # ------------------------------------------------------------------ TrayApp extras
    @property
    def config(self) -> Config:
        return self._cfg

    @property
    def config_path(self) -> Path:
        return self._config_path

    @property
    def camera_paused(self) -> bool:
        return self._user_paused

    def pause_camera(self, paused: bool) -> None:
        """The user's pause switch (tray, `pixcam ctl pause`/`resume`): overrides on-demand
        and always_on; not persisted, so a restart always brings the camera back."""
        self._check_running()
        self._user_paused = paused
        log.info("camera %s by the user", "paused" if paused else "resumed")
        self._update_camera()

    def tray_state(self) -> tuple[str, str]:
        if self._config_error:
            first = self._config_error.splitlines()[0]
            return "error", f"pixcam: config error (last good settings running): {first}"
        status = self._pipeline.status() if self._pipeline is not None else {}
        if status.get("state") in FAULT_STATES:
            return "error", f"pixcam: {status.get('last_error') or 'camera unavailable'}"
        if self._user_paused:
            return "paused", "pixcam: camera paused"
        if self._pipeline is not None and self._pipeline.paused:
            return "paused", f"pixcam: camera off until an app uses {_output_label(status)}"
        if not effects_active(self._cfg):
            return "off", "pixcam: effects off"
        effects = [f"background: {self._cfg.effects.background}"]
        if self._cfg.parts.view:
            effects.append("coloured parts")
        if self._cfg.parts.privacy != "none":
            effects.append(f"{self._cfg.parts.privacy} {', '.join(self._cfg.parts.privacy_parts)}")
        if self._cfg.framing.mode == "auto":
            effects.append("auto-frame")
        effects += people_summary(self._cfg.people.keep, status.get("people"))
        tune = status.get("auto_tune") or {}
        if tune.get("level"):
            effects.append(f"auto-tune: {tune['step']} ({tune['reason']})")
        if str(status.get("sink") or "").startswith("pipewire:"):
            effects.append("out: PipeWire camera")
        elif " + " in str(status.get("sink") or ""):
            effects.append("out: loopback + PipeWire")
        return "active", "pixcam: " + ", ".join(effects)

    # ------------------------------------------------------------------ control.App
    def status(self) -> dict[str, Any]:
        od = self._ondemand
        return {
            "version": installed_version(),
            "pid": os.getpid(),
            "config_file": str(self._config_path),
            "config_error": self._config_error,
            "state": self.tray_state()[0],
            "paused": self._user_paused,  # by the user; "state" also covers on-demand
            "tray": self._tray_status,
            "on_demand": od.status() if od is not None else None,
            "pipeline": self._pipeline.status() if self._pipeline is not None else None,
            "settings": self._cfg.flat(),
        }

    def set(self, key: str, value: Any) -> None:
        self.set_many({key: value})

    def set_many(self, values: Mapping[str, Any]) -> None:
        """Validate the keys together, write the file once, apply once (e.g. the tray's
        "image X": the image and the background). Only a stored value reaches the stream."""
        self._check_running()
        with self._apply_lock:
            self._set_locked(values)

    def _set_locked(self, values: Mapping[str, Any]) -> None:
        try:
            candidate = self._cfg.with_values(values)
        except PixcamError:
            candidate = None  # set_values below says what is wrong, with the file's context
        if candidate is not None:
            check_usable(candidate, self._cfg)  # a value the stream can't use is not saved
        watcher = self._watcher
        if watcher is None:
            cfg = config_mod.set_values(self._config_path, values)
        else:  # it remembers the new content, so its next poll does not report our write
            cfg = watcher.set_values(values)
        self._apply_locked(cfg)

    def toggle(self) -> bool:
        self._check_running()
        with self._apply_lock:  # read-modify-write against a concurrent toggle or set
            enabled = not self._cfg.effects.enabled
            self._set_locked({"effects.enabled": enabled})
        return enabled

    def pause(self) -> bool:
        self.pause_camera(True)
        return True

    def resume(self) -> bool:
        self.pause_camera(False)
        return False

    @property
    def away_on(self) -> bool:
        """The tray's "Be right back" check: switched on by hand."""
        return self._away_manual

    def away(self, on: bool) -> bool:
        """ "Be right back" by hand (tray, `pixcam ctl away on|off`); not saved."""
        self._check_running()
        self._away_manual = on
        if self._pipeline is not None:
            self._pipeline.set_away(on)
        log.info("away card %s by the user", "on" if on else "off")
        return on

    def reload(self) -> None:
        self._check_running()
        with self._apply_lock:
            watcher = self._watcher
            try:
                if watcher is None:
                    cfg = config_mod.load_config(self._config_path)
                else:
                    cfg = watcher.reload()
            except PixcamError as exc:
                self._on_config_error(str(exc))
                raise
            self._apply_locked(cfg)

    def quit(self) -> None:
        self._quit.set()
        if self._tray is not None:
            self._tray.stop()

    def _check_running(self) -> None:
        # The control socket answers until the very end of the shutdown: changes then would
        # restart parts (on-demand, camera) that were just stopped.
        if self._quit.is_set():
            raise PixcamError("pixcam is shutting down")

    # ------------------------------------------------------------------ run
    def run(self) -> int:
        """Start everything, block until quit(), stop everything. PixcamError on startup."""
        self._cfg = config_mod.load_config(self._config_path)
        # The control socket first: it is also the single-instance check, so a second
        # `pixcam` fails before touching the camera or the virtual camera.
        self._control = ControlServer(self, self._socket_path).start()
        # Signals are ours from the moment `pixcam ctl` answers: a SIGUSR1/2 or SIGHUP sent
        # during the start (a model load takes seconds) must not end the process.
        if threading.current_thread() is threading.main_thread():
            self._signals = install_signal_handlers(self)
        # The lock is ours: no other pixcam saves this file now, so any temp file is stale.
        config_mod.remove_temp_files(self._config_path, older_than=0.0)
        self._tray_status = "starting" if self._tray_enabled() else "off"
        try:
            self._start_parts()
            self._main_loop()
        finally:
            self._shutdown()
        return self._exit_code

    def _start_parts(self) -> None:
        cfg = self._cfg
        self._pipeline = self._pipeline_factory(
            cfg, self._source_spec, self._sink_spec, start_paused=not self._camera_wanted_at_start()
        )
        self._pipeline.start()
        status = self._pipeline.status()
        log.info("pixcam running: %s → %s", status.get("source") or "camera", status.get("sink"))
        with self._apply_lock:
            # A change made while the pipeline was being built (a signal, `pixcam ctl set`)
            # may have found no pipeline to hand it to.
            if self._cfg != cfg:
                self._pipeline.apply(self._cfg)
            self._watcher = ConfigWatcher(
                self._config_path, self._on_config, self._on_config_error, current=self._cfg
            ).start()
        self._update_ondemand()
        threading.Thread(target=self._watch_pipeline, name="pixcam-watchdog", daemon=True).start()

    def _main_loop(self) -> None:
        if self._tray_enabled():
            from pixcam.tray import Tray

            sigint = signal.getsignal(signal.SIGINT)

            def ready() -> None:
                _restore_sigint(sigint)
                self._tray_status = "running"

            tray = Tray(self, on_ready=ready)
            if tray.start():
                self._tray = tray
                if not self._quit.is_set():
                    tray.run()  # returns after quit() → tray.stop(), or if the icon failed
            if not self._quit.is_set():
                self._tray = None  # its loop is gone: no more updates for it
                self._tray_status = "headless"
        else:
            log.info("tray icon disabled (daemon.tray = false)")
        while not self._quit.wait(1.0):
            pass

    def _shutdown(self) -> None:
        self._quit.set()
        # The control server last: it holds the single-instance lock, so a new pixcam can't
        # start until the camera and the virtual camera are released; until then `pixcam
        # ctl status` still answers (changes are refused, see _check_running).
        for stop in (
            self._stop_ondemand,
            self._watcher.stop if self._watcher else None,
            self._pipeline.stop if self._pipeline is not None else None,
            self._signals.restore if self._signals else None,
            self._control.close if self._control else None,
        ):
            if stop is None:
                continue
            try:
                stop()
            except PixcamError as exc:  # the output file failed as it was closed (disk full)
                log.error("%s", exc)
                self._exit_code = 1
            except Exception:  # keep stopping the rest
                log.exception("shutting down")
        log.info("pixcam stopped")

    def _tray_enabled(self) -> bool:
        return self._cfg.daemon.tray if self._tray_wanted is None else self._tray_wanted

    def _watch_pipeline(self) -> None:
        """The stream ending on its own (a file input ran out, an unrecoverable output)
        ends the daemon, with the reason in the log and a non-zero exit."""
        pipeline = self._pipeline
        assert pipeline is not None  # started right after it
        try:
            while not self._quit.is_set() and not pipeline.wait(0.5):
                pass
        except Exception as exc:
            log.error("the stream stopped: %s", exc)
            self._exit_code = 1
        if not self._quit.is_set():
            log.info("the stream ended; quitting")
            self.quit()

    # ------------------------------------------------------------------ config changes
    def _apply_locked(self, cfg: Config) -> None:
        """Run with `cfg` (a valid, stored configuration); the caller holds `_apply_lock`."""
        self._config_error = None  # a valid configuration is running again
        old, self._cfg = self._cfg, cfg
        if cfg != old:
            if self._pipeline is not None:
                self._pipeline.apply(cfg)  # applied by the worker before the next frame
            if old.daemon.always_on != cfg.daemon.always_on:
                self._update_ondemand()
            if old.daemon.tray != cfg.daemon.tray:
                log.info("daemon.tray takes effect at the next start of pixcam")
            changed = [k for k, v in cfg.flat().items() if old.flat()[k] != v]
            log.info("settings changed: %s", ", ".join(changed))
        self._refresh_tray()

    def _on_config(self, cfg: Config) -> None:
        """An edit of the file made outside pixcam (the watcher reports nothing else)."""
        with self._apply_lock:
            watcher = self._watcher
            # The watcher calls us outside its lock, so a slow callback may carry an older
            # config than a set() that overtook it: its `current` is always the newest.
            if watcher is not None:
                cfg = watcher.current
            if cfg != self._cfg:
                log.info("%s changed: applying", self._config_path)
            self._apply_locked(cfg)

    def _on_config_error(self, message: str) -> None:
        # The stream keeps the last good settings; the tray turns red until a fix.
        log_each_line(log, logging.ERROR, message, " (keeping the last good settings)")
        self._config_error = message
        self._refresh_tray()

    def _refresh_tray(self) -> None:
        if self._tray is not None:
            self._tray.refresh()

    # ------------------------------------------------------------------ on demand
    def _on_demand_possible(self) -> bool:
        # A file output has nobody to watch it: the camera simply runs.
        return self._sink_spec is None or self._sink_spec.path is None

    def _camera_wanted_at_start(self) -> bool:
        if self._user_paused:
            return False
        return self._cfg.daemon.always_on or not self._on_demand_possible()

    def _update_ondemand(self) -> None:
        want = not self._cfg.daemon.always_on and self._on_demand_possible()
        with self._ondemand_lock:
            # Checked under the lock _stop_ondemand takes: nothing starts after the shutdown.
            if want and self._ondemand is None and not self._quit.is_set():
                pipeline = self._pipeline
                device = pipeline.status().get("sink") if pipeline is not None else None
                if device:
                    self._start_ondemand(str(device))
            elif not want and self._ondemand is not None:
                self._stop_ondemand_locked()
        self._update_camera()

    def _start_ondemand(self, device: str) -> None:
        # Started after the pipeline opened the virtual camera, so our writer's open is not
        # seen; its fd is not counted by the /proc seed either (our own pid is skipped).
        start_delay, stop_delay = self._ondemand_delays
        if device.startswith("pipewire:") or " + " in device:
            od: Any = outputs.watcher_for(device, self._update_camera, start_delay, stop_delay)
        else:
            od = OnDemand(
                device,
                self._update_camera,
                self._update_camera,
                start_delay=start_delay,
                stop_delay=stop_delay,
            )
        self._ondemand = od
        try:
            od.start()
        except OSError as exc:
            self._ondemand = None
            log.warning("can't watch %s (%s): the camera stays on", device, exc)

    def _stop_ondemand(self) -> None:
        with self._ondemand_lock:
            self._stop_ondemand_locked()

    def _stop_ondemand_locked(self) -> None:
        od, self._ondemand = self._ondemand, None
        if od is not None:
            od.stop()

    def _update_camera(self) -> None:
        """Camera on iff not paused by the user and (watched, always_on or file output)."""
        pipeline = self._pipeline
        if pipeline is None:
            return
        with self._camera_lock:
            od = self._ondemand
            run = not self._user_paused and (od is None or od.active)
            if run and pipeline.paused:
                pipeline.resume()
            elif not run and not pipeline.paused:
                pipeline.pause()
        if self._tray is not None:
            self._tray.refresh(menu=False)


def _output_label(status: Mapping[str, Any]) -> str:
    """The tray's name for where frames go: the loopback, the PipeWire node, or both."""
    sink = str(status.get("sink") or "")
    if " + " in sink:
        return "the virtual camera (loopback or PipeWire)"
    if sink.startswith("pipewire:"):
        return "the PipeWire camera"
    return "the virtual camera"


def people_summary(keep: str, people: dict[str, Any] | None) -> list[str]:
    """The tooltip's words for only me and away: "only me: 1 other hidden", "away since 12:03"."""
    info = people or {}
    out = []
    if keep == "me":
        hidden = int(info.get("hidden") or 0)
        out.append(
            f"only me: {hidden} other{'s' if hidden != 1 else ''} hidden" if hidden else "only me"
        )
    if info.get("away"):
        since = info.get("away_since")
        out.append(f"away since {since}" if isinstance(since, str) else "away")
    return out


def _restore_sigint(handler: Any) -> None:
    # pystray sets SIGINT to SIG_DFL when its loop starts: put our clean shutdown back.
    if handler is not None:
        signal.signal(signal.SIGINT, handler)


def run_from_args(args: Any) -> int:
    """`pixcam` / `pixcam daemon`: options are optional so a bare `pixcam` works too."""
    source = None
    if getattr(args, "input", None):
        source = SourceSpec(path=args.input, loop=True, realtime=True)  # behave like a camera
    sink = None
    if getattr(args, "output", None):
        reads = {"the input": getattr(args, "input", None)}
        paths.check_not_overwriting(args.output, "--output", reads)
        sink = SinkSpec(path=args.output)
    if not getattr(args, "verbose", 0):
        # A daemon's state changes (camera on/off, settings applied) belong in its log.
        logging.getLogger("pixcam").setLevel(logging.INFO)
    daemon = Daemon(
        getattr(args, "config", None),
        source=source,
        sink=sink,
        socket_path=getattr(args, "socket", None),
        tray=False if getattr(args, "no_tray", False) else None,
    )
    return daemon.run()
