"""The runner's loading side: new models and backgrounds are made ready on helper threads.

A new model is loaded, verified and run once (its first inference is the slow one) beside the
running one; new settings whose background or away card image must be decoded or opened are
staged once it is. The worker takes what is ready between two frames (`take`), so it never
waits for a load. Every new config bumps a generation: a slower load for older settings is
dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

from pixcam.chain.effects import Effects, EffectsSettings, Loaded, ModelChoice, segmenter_name
from pixcam.chain.segment.contract import Segmenter
from pixcam.config import Config

log = logging.getLogger("pixcam.runner.pipeline")

WARMUP_SIZE = (64, 48)  # a new model runs once on a blank frame this big before its swap

SegmenterLoader = Callable[[str | None, int, int, str], Segmenter]
# New settings ready to apply: (config, settings, their files loaded on the side).
Staged = tuple[Config, EffectsSettings, Loaded | None]


def default_loader(
    name: str | None, threads: int, internal_resolution: int, quality: str = "balanced"
) -> Segmenter:
    from pixcam.chain.segment import load_segmenter

    return load_segmenter(name, threads, internal_resolution, quality)


# note(kind, message): a failure of "settings" or "model" to show in the status (a failed
# load is no stream fault: the old one goes on); message None: that kind works again.
Note = Callable[[str, str | None], None]


class Loader:
    """Loads beside the stream for one `Effects`, reporting through `note`."""

    def __init__(self, fx: Effects, segmenter_loader: SegmenterLoader, note: Note) -> None:
        self._fx = fx
        self._load_segmenter = segmenter_loader
        self._note = note
        self._lock = threading.Lock()
        self._helpers: list[threading.Thread] = []  # every load started: joined by join()
        self._loading: threading.Thread | None = None  # the model load, while it runs
        self._loaded: tuple[Segmenter, ModelChoice] | None = None  # a model, for the worker
        self._failed_model: ModelChoice | None = None
        self._staged: Staged | None = None
        self._gen = 0

    @property
    def busy(self) -> bool:
        """A model loads (or waits for its swap): its CPU time is not the chain's cost."""
        return self._loading is not None or self._loaded is not None

    def take(self) -> Staged | None:
        """On the worker, between frames: swap in a loaded model; settings staged, if any."""
        self._helpers = [t for t in self._helpers if t.is_alive()]
        with self._lock:
            staged, self._staged = self._staged, None
        loaded, self._loaded = self._loaded, None
        if loaded is not None:
            self._fx.set_segmenter(*loaded)  # the swap, between two frames
        if self._loading is not None and not self._loading.is_alive():
            self._loading = None
        return staged

    def prepare(self, cfg: Config) -> Staged | None:
        """`cfg`'s settings to apply now, or None: invalid, or staged once its background is
        loaded on a helper thread."""
        try:
            settings = EffectsSettings.from_config(cfg)
        except Exception as exc:
            self.settings_failed(exc)
            return None
        with self._lock:
            self._gen += 1
            gen = self._gen
        if not self._fx.needs_load(settings):
            return cfg, settings, None

        def load() -> None:
            try:
                loaded = self._fx.load(settings)  # a new object; the running one is untouched
            except Exception as exc:
                if gen == self._gen:  # not overtaken by newer settings
                    self.settings_failed(exc)
                return
            with self._lock:
                if gen == self._gen:
                    self._staged = (cfg, settings, loaded)
                    return
            loaded.close()  # newer settings came meanwhile

        self._start(load, "pixcam background load")
        return None

    def settings_failed(self, exc: Exception) -> None:
        self._note("settings", f"settings: {exc}")
        log.error("new settings not applied: %s", exc)

    def load_wanted_model(self) -> None:
        """Start loading the model the settings ask for, unless it runs, loads or failed."""
        fx = self._fx
        want = fx.settings.model
        if fx.settings.active and want not in (fx.model, self._failed_model) and not self.busy:
            self._loading = self._start(lambda: self._load_model(want), "pixcam model load")

    def _load_model(self, model: ModelChoice) -> None:
        try:
            seg = self._load_segmenter(*model)
            # The first inference of a new interpreter is slow (XNNPACK prepares then):
            # pay it here, not on the frame thread; a model that fails it is refused.
            w, h = WARMUP_SIZE
            seg.run(np.zeros((h, w, 3), np.uint8), parts=False)
        except Exception as exc:
            self._note("model", f"model: {exc}")
            self._failed_model = model  # do not retry the same failing choice every frame
            name = segmenter_name(None, model)
            log.error("model %s not loaded, keeping the current one: %s", name, exc)
            return
        self._loaded = (seg, model)  # one reference assignment: the worker takes it
        self._note("model", None)
        log.info("model %s loaded", segmenter_name(seg, model))

    def _start(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._helpers.append(thread)
        thread.start()
        return thread

    def join(self, join: Callable[[threading.Thread], None]) -> None:
        """Wait for every load started (`join` waits for one thread)."""
        for helper in self._helpers:
            join(helper)
