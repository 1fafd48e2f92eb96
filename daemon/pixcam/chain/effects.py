"""The frame chain, once: mirror → segment → frame → refine → compose → part effects.

`EffectsSettings.from_config` is the one translation from the user's `Config` to the stage
settings (`RefineSettings`, `ComposeSettings`, `PartSettings`, the model choice); `Effects`
runs the chain on one frame, synchronously, with no threads or clocks of its own. The
pipeline (`pipeline.py`) runs it on a live stream and every bench runs the very same object,
so what is measured is what runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from pixcam import models
from pixcam.chain.away import AwayCard, AwaySettings, AwayState, load_card_image
from pixcam.chain.compose import Background, ComposeSettings, Compositor
from pixcam.chain.framing import (
    Framer,
    FramingSettings,
    crop_frame,
    crop_output,
    is_full,
    measure,
    snap,
)
from pixcam.chain.partfx import PartEffects, PartSettings
from pixcam.chain.people import PeopleFilter, PeopleSettings
from pixcam.chain.pyramid import Pyramid
from pixcam.chain.refine import Alpha, Refiner, RefineSettings, probability_size
from pixcam.chain.segment.contract import Segmenter
from pixcam.chain.segment.fused import FusedSegmenter
from pixcam.chain.segment.output import SegmentationOutput
from pixcam.chain.stillness import MotionGate
from pixcam.config import Config
from pixcam.i420 import I420, Frame, as_bgr

log = logging.getLogger("pixcam.chain.effects")

# Called after each stage with its name ("segment", "frame", "refine", "compose", "parts") and its
# wall-clock milliseconds.
StageHook = Callable[[str, float], None]


class _StageClock:
    """Tells `on_stage` each stage's wall time, measured from the end of the one before."""

    __slots__ = ("_hook", "_t")

    def __init__(self, hook: StageHook | None) -> None:
        self._hook = hook
        self._t = time.perf_counter()

    def done(self, stage: str) -> None:
        if self._hook is not None:
            now = time.perf_counter()
            self._hook(stage, (now - self._t) * 1e3)
            self._t = time.perf_counter()  # the hook's own time counts for no stage


def _streamed(segmenter: Segmenter | None, clock: Callable[[], float]) -> Segmenter | None:
    """`segmenter`, told it is fed a stream timed by `clock`: the fused one then keeps the
    selfie model's square while the person stays in it (segment/fused.py), which photos must
    not inherit."""
    if isinstance(segmenter, FusedSegmenter):
        segmenter.steady = True
        segmenter.clock = clock
    return segmenter


class ModelChoice(NamedTuple):
    """Which model to load and how: `segment.load_segmenter(*choice)`."""

    name: str | None  # None: the manifest's default
    threads: int
    internal_resolution: int
    quality: str = "balanced"  # the `[model] quality` preset (segment.load_segmenter)


def model_label(name: str | None) -> str:
    """The model for logs: "default (its manifest name)" instead of None."""
    if name is not None:
        return name
    try:
        return f"default ({models.default_model_name()})"
    except Exception:  # a broken manifest must not break a log line
        return "default"


def segmenter_name(seg: object, choice: ModelChoice | None) -> str:
    """The loaded model's own name (what "default" resolved to), else what was asked for."""
    spec = getattr(seg, "spec", None)
    name = getattr(spec, "name", None)
    return str(name) if name else model_label(choice.name if choice else None)


@dataclass(frozen=True)
class EffectsSettings:
    """Everything the chain needs, translated and validated once from a `Config`."""

    enabled: bool
    mirror: bool
    background: str
    skip_still: bool
    model: ModelChoice
    refine: RefineSettings
    compose: ComposeSettings
    parts: PartSettings
    framing: FramingSettings = FramingSettings()
    people: PeopleSettings = PeopleSettings()
    away: AwaySettings = AwaySettings()

    @classmethod
    def from_config(cls, cfg: Config) -> EffectsSettings:
        """The chain's settings for `cfg`, which the schema has checked (`pixcam.config`)."""
        e, r, p, m = cfg.effects, cfg.refine, cfg.parts, cfg.model
        refine = RefineSettings(
            smoothing=float(r.smoothing),
            feather=float(r.feather),
            edge_aware=bool(r.edge_aware),
            threshold=float(m.threshold),
        )
        compose = ComposeSettings(
            background=e.background,
            blur_strength=e.blur_strength,
            image=e.image,
            video=e.video,
            color=e.color,
            # The chain mirrors the camera frame before segmentation (so pass-through mirrors
            # too); the compositor must not flip it a second time.
            mirror=False,
        )
        parts = PartSettings(
            view=bool(p.view),
            opacity=float(p.opacity),
            privacy=str(p.privacy),
            privacy_parts=tuple(p.privacy_parts),
            smoothing=float(r.smoothing),
            feather=float(r.feather),
        )
        name = None if models.is_default(m.name) else m.name
        model = ModelChoice(name, int(m.threads), int(m.internal_resolution), str(m.quality))
        f = cfg.framing
        framing = FramingSettings(str(f.mode), float(f.zoom), float(f.speed))
        people, away = people_settings(cfg)
        return cls(
            bool(e.enabled),
            bool(e.mirror),
            e.background,
            bool(m.skip_still),
            model,
            refine,
            compose,
            parts,
            framing,
            people,
            away,
        )

    @property
    def parts_on(self) -> bool:
        """A body-part effect is asked for (coloured parts or part privacy)."""
        return self.parts.view or self.parts.privacy != "none"

    @property
    def active(self) -> bool:
        """Segmentation is needed at all (otherwise frames pass through untouched)."""
        watch = self.framing.on or self.away.mode != "off"
        return _active(self.enabled, self.background, self.parts_on, watch)


def _active(enabled: bool, background: str, parts_on: bool, watching: bool) -> bool:
    # A part effect, auto-framing or the away card count with background "none" too: keep
    # the background, blur the face, follow the person or notice they left.
    return enabled and (background != "none" or parts_on or watching)


def effects_active(cfg: Config) -> bool:
    """`EffectsSettings.active` straight from a `Config` (the tray's question, every second)."""
    e, p = cfg.effects, cfg.parts
    watching = cfg.framing.mode == "auto" or cfg.people.away != "off"
    return _active(e.enabled, e.background, p.view or p.privacy != "none", watching)


def people_settings(cfg: Config) -> tuple[PeopleSettings, AwaySettings]:
    """The `[people]` section as the people and away stages' settings."""
    p = cfg.people
    people = PeopleSettings(str(p.keep), float(cfg.model.threshold))
    away = AwaySettings(str(p.away), float(p.away_after), str(p.away_image), str(p.away_text))
    return people, away


@dataclass
class Loaded:
    """What `Effects.load` decoded beside the stream, for `Effects.update`."""

    background: Background | None = None
    card: np.ndarray | None = None  # the away card's image

    def close(self) -> None:
        """Not used after all (newer settings came): let the background go."""
        if self.background is not None:
            self.background.close()


class Effects:
    """The stages with their temporal state; not thread-safe: one caller at a time.

    `notice` is a standing problem worth showing (a part effect asked of a model without part
    heads), None when there is none; it is logged once per model.
    """

    def __init__(
        self,
        settings: EffectsSettings,
        segmenter: Segmenter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._framer = Framer(settings.framing, clock)
        self._refiner = Refiner(settings.refine)
        self._compositor = Compositor(settings.compose)
        self._fx = PartEffects(settings.parts)
        self._clock = clock
        self._people = PeopleFilter(settings.people)
        self._away = AwayState(settings.away)
        self._card = AwayCard(settings.away)
        self._segmenter = _streamed(segmenter, clock)
        self._model: ModelChoice | None = settings.model if segmenter is not None else None
        self._parts_fed = False  # the part tracker saw the previous frame
        self._gate = MotionGate()
        self._alpha: Alpha | None = None  # the last refined mask, carried while still
        self.carried = False  # the last frame kept that mask (the network did not run)
        self._warned: ModelChoice | None = None  # the model the notice was logged for
        self.notice: str | None = None

    @property
    def settings(self) -> EffectsSettings:
        """The settings in use (under auto-tune: the user's with the tuner's steps applied)."""
        return self._settings

    @property
    def segmenter(self) -> Segmenter | None:
        return self._segmenter

    @property
    def model(self) -> ModelChoice | None:
        """The choice the current segmenter was loaded for (None: no segmenter)."""
        return self._model

    @property
    def model_name(self) -> str | None:
        """The loaded model's own name (what "default" resolved to); None: no model."""
        if self._model is None:
            return None
        spec = getattr(self._segmenter, "spec", None)
        return getattr(spec, "name", None) or self._model.name or "default"

    def needs_load(self, settings: EffectsSettings) -> bool:
        """Whether `update(settings)` would load a file (a background image or video, the
        away card's image)."""
        return self._compositor.needs_load(settings.compose) or self._card.needs_load(settings.away)

    def load(self, settings: EffectsSettings) -> Loaded:
        """The slow part of `update(settings)` (decoding an image, opening a video), safe to
        run on another thread while frames go on; hand the result to `update(loaded=...)`.
        PixcamError when a file cannot be used."""
        background = None
        if self._compositor.needs_load(settings.compose):
            background = self._compositor.load_background(settings.compose)
        try:
            card = load_card_image(settings.away) if self._card.needs_load(settings.away) else None
        except Exception:
            if background is not None:
                background.close()
            raise
        return Loaded(background, card)

    def update(self, settings: EffectsSettings, loaded: Loaded | None = None) -> None:
        """New settings for the next frame; the stages keep their state where they can.
        `loaded`: what `load(settings)` returned (None: load here, now).

        PixcamError (e.g. a background image that cannot be read) leaves the settings as they
        were for what decides the chain's shape."""
        if settings.refine != self._refiner.settings:
            self._refiner.update(settings.refine)
            self._alpha = None  # made with the old settings
        if settings.compose != self._compositor.settings:
            self._compositor.update(settings.compose, loaded=loaded.background if loaded else None)
        if settings.parts != self._fx.settings:
            self._fx.update(settings.parts)
        if settings.people != self._people.settings:
            self._people.update(settings.people)
        if settings.away != self._away.settings:
            self._away.settings = settings.away
            self._card.update(settings.away, loaded.card if loaded else None)
        if settings.framing != self._framer.settings:
            self._framer.settings = settings.framing
            if not settings.framing.on:
                self._framer.reset()  # turned on again later: start from the full view
        self._settings = settings

    def set_segmenter(self, segmenter: Segmenter, model: ModelChoice) -> None:
        self._segmenter, self._model = _streamed(segmenter, self._clock), model
        self._alpha = None

    def reset(self) -> None:
        """Forget the temporal state of the refiner and the part effects (a new scene)."""
        self._refiner.reset()
        self._fx.reset()
        self._framer.reset()
        self._people.reset()
        self._away.reset()
        self._parts_fed = False
        self._gate.reset()
        self._alpha = None

    @property
    def alpha(self) -> Alpha | None:
        """The last refined mask (None before the first segmented frame)."""
        return self._alpha

    def set_away(self, on: bool) -> None:
        """ "Be right back" by hand: the card until switched off."""
        self._away.switch(on)

    @property
    def people(self) -> dict[str, object]:
        """Only me and away, for the status: {"keep", "present", "hidden", "away", "away_since"
        (the clock's time the card began, None)}."""
        st = self._people.state
        return {
            "keep": self._settings.people.keep,
            "present": st.present,
            "hidden": st.hidden,
            "away": self._away.away,
            "away_manual": self._away.manual,
            "away_since": self._away.since,
            "away_level": self._away.level,
        }

    def mirror(self, frame: Frame) -> Frame:
        """The frame as the chain sees it (flipped when mirroring is on)."""
        if not self._settings.mirror:
            return frame
        return frame.flipped() if isinstance(frame, I420) else cv2.flip(frame, 1)

    def process(self, frame: Frame, on_stage: StageHook | None = None) -> Frame:
        """One frame through the chain; the frame itself when nothing is to be done.

        The result is in the frame's format (BGR or I420: a camera's MJPG comes as I420 and
        goes to the virtual camera so), except that auto-framing and the part effects work
        in BGR: with them an I420 frame is converted once and the result is BGR."""
        try:
            return self._process(frame, on_stage)
        except BaseException:
            self._parts_fed = False  # the part tracker missed this frame
            raise

    def _process(self, frame: Frame, on_stage: StageHook | None) -> Frame:
        s = self._settings
        self.carried = False
        frame = self.mirror(frame)
        seg = self._segmenter
        if not s.active or seg is None:
            self._parts_fed = False
            return self._away_card(frame, None, frame)  # pass-through: no inference at all
        result = self._chain(frame, seg, on_stage)
        present = self._people.state.present if self._watching else None
        return self._away_card(result, present, frame)

    @property
    def _watching(self) -> bool:
        """The people stage runs: only me, or the away card waiting for nobody."""
        s = self._settings
        return s.people.only_me or s.away.mode != "off"

    def _away_card(self, result: Frame, present: bool | None, room: Frame) -> Frame:
        level = self._away.update(present, self._clock())
        if not self._away.away:
            self._card.forget_still()
        return self._card.blend(result, level, room)

    def _chain(self, frame: Frame, seg: Segmenter, on_stage: StageHook | None) -> Frame:
        s = self._settings
        want_parts = self._want_parts(seg)
        framing = s.framing.on
        if not want_parts:
            self._parts_fed = False
            if s.background == "none" and not framing and not self._watching:
                return frame  # only a part effect was asked for, and it cannot run
        if framing:
            frame = as_bgr(frame)  # the crop works in BGR
        h, w = frame.shape[:2]
        clock = _StageClock(on_stage)
        # The frame's halvings, made once for the motion test, the network input, the guide
        # and the blur.
        pyramid = Pyramid(frame)
        alpha = self._alpha
        # A still picture keeps the last mask; not with part effects, which need this very
        # frame's part output, nor while framing, whose crop moves under a kept mask.
        gated = s.skip_still and not want_parts and not framing
        if gated and self._gate.still(pyramid) and alpha is not None and alpha.full.shape == (h, w):
            self._gate.carry()
            self.carried = True
            clock.done("carry")
            out = None
        else:
            # The 24 part channels are read (and decoded) only while an effect needs them; the
            # framer finds the face in them (a few grid cells, cheap) where the model has them.
            if isinstance(seg, FusedSegmenter):
                seg.hold = not (s.people.only_me and self._people.others_about)
            out = seg.run(frame, parts=want_parts or (framing and seg.has_parts), pyramid=pyramid)
            if framing:
                clock.done("segment")
                frame, out, pyramid = self._framed(frame, out, pyramid)
                if s.background == "none" and not want_parts and not self._watching:
                    clock.done("frame")
                    return frame
            alpha = self._refined(frame, out, pyramid, clock, gated)
        # A carried mask on a still picture: the blurred background of the last inferred frame
        # serves too (the frame's own pixels still come through the blend).
        result = self._compositor.compose(
            frame,
            alpha.full,
            pyramid,
            small=alpha.small,
            keep_background=gated,
            reuse_background=gated and out is None,
        )
        clock.done("compose")
        if want_parts and out is not None:
            result = self._parts_drawn(result, frame, out, alpha)
            clock.done("parts")
        return result

    def _want_parts(self, seg: Segmenter) -> bool:
        """A part effect is on and this model has the part heads."""
        if not self._fx.needs_parts:
            self._clear_notice()  # turned on again later: say it again
            return False
        return self._parts_available(seg)

    def _framed(
        self, frame: Frame, out: SegmentationOutput, pyramid: Pyramid
    ) -> tuple[Frame, SegmentationOutput, Pyramid]:
        """Auto-framing's crop of the frame and of the network output, before the background
        (blur and replacement fill the framed picture)."""
        h, w = frame.shape[:2]
        box = snap(self._framer.update(measure(out, self._settings.refine.threshold), w, h), w, h)
        if is_full(box, w, h):
            return frame, out, pyramid
        cropped = crop_frame(as_bgr(frame), box)
        return cropped, crop_output(out, box), Pyramid(cropped)

    def _refined(
        self,
        frame: Frame,
        out: SegmentationOutput,
        pyramid: Pyramid,
        clock: _StageClock,
        gated: bool,
    ) -> Alpha:
        """The person's alpha from the network output: the others hidden (only me), refined."""
        h, w = frame.shape[:2]
        # Same aspect as the frame (the refiner checks it), as fine as the refiner uses.
        prob = out.person_probability(size=probability_size(w, h, out.cell))
        if self._watching:
            # Only me: the others' pixels at 0, before the refiner sees them.
            prob = self._people.apply(prob, self._clock(), pyramid.down_to)
        clock.done("frame" if self._settings.framing.on else "segment")
        alpha = self._alpha = self._refiner.refine_alpha(frame, prob, pyramid)
        clock.done("refine")
        if gated:
            self._gate.ran(prob)
        return alpha

    def _parts_drawn(
        self, result: Frame, frame: Frame, out: SegmentationOutput, alpha: Alpha
    ) -> np.ndarray:
        """The part effects drawn over the composite."""
        if not self._parts_fed:
            self._fx.reset()  # frames went by unseen: no smoothing against a stale state
        # The compositor hands out a new array (except for "none", which returns the camera
        # frame itself): draw into it rather than copying 2.7 MB again.
        bgr = as_bgr(result)
        drawn = self._fx.apply(bgr, out, alpha.full, inplace=bgr is not frame)
        self._parts_fed = True
        return drawn

    def close(self) -> None:
        self._compositor.close()

    def _parts_available(self, seg: Segmenter) -> bool:
        """Whether the model has part heads; says once per model when it has not."""
        if seg.has_parts:
            self._clear_notice()  # a model with parts came: the problem is gone
            return True
        if self._warned != self._model or self.notice is None:
            self._warned = self._model
            self.notice = (
                f"model {segmenter_name(seg, self._model)} has no body parts: the part effects "
                "are off until a model with parts is chosen (`pixcam models list`: person+parts)"
            )
            log.warning("%s", self.notice)
        return False

    def _clear_notice(self) -> None:
        self._warned = None
        self.notice = None
