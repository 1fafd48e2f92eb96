"""Auto-tune: step the chain's cost down when frames take longer than the output rate allows.

`Controller` takes each frame's work time and answers with a level: 0 is the user's settings,
level k applies the first k of the chain's applicable `STEPS` on top of them. It steps down
after frames have been over budget for `DOWN_AFTER_S`, and up again only when the level above
would fit in `HEADROOM` of the budget for `UP_AFTER_S`. "Would fit" uses the cost ratio
measured across the step down (the time now times that ratio), so a level that did not fit is
not retried until the load really dropped; a step up undone soon after doubles the wait before
the next try. So it settles instead of oscillating.

`Tuner` is the runner's side and owns the auto-tune state: it keeps the user's settings and the
level, feeds the controller each frame's work time, hands the running `effects.Effects` the
settings that level means and says where it stands for the status.

`tuned(settings, level, resolution)` is what a level means for `effects.EffectsSettings`. The
order of `STEPS` was measured (`bench/studies/autotune_steps.py`: CPU ms saved per level of picture
change on 720p frames): the biggest saving for the least visible loss comes first.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pixcam.chain.effects import Effects, EffectsSettings, ModelChoice

log = logging.getLogger("pixcam.runner.pipeline")

DOWN_AFTER_S = 2.0  # over budget this long: one step down
UP_AFTER_S = 6.0  # with headroom this long: one step up
HEADROOM = 0.75  # stepping up needs the level above to fit in this share of the budget
OVER = 1.0  # a frame over this share of the budget counts as late
RETRY_AFTER_S = 20.0  # a step up undone within this time doubles the next wait
MAX_UP_WAIT_S = 120.0


@dataclass(frozen=True)
class Step:
    name: str
    why: str  # what it gives up, for the status line
    applies: Callable[[EffectsSettings], bool]
    apply: Callable[[EffectsSettings, int], EffectsSettings]  # (settings, base resolution)


def _stride16_name(name: str | None) -> str | None:
    """The stride-16 sibling of a stride-8 BodyPix model, if it is installed."""
    from pixcam import models

    if name is None or "-s8-" not in name:
        return None
    try:
        sibling = models.get_spec(name.replace("-s8-", "-s16-"))
    except Exception:  # not in the manifest: no such step
        return None
    return sibling.name if sibling.installed else None


def _with_resolution(s: EffectsSettings, base: int, share: float) -> EffectsSettings:
    if not base:
        return s
    res = max(64, int(base * share) // 8 * 8 + 1)  # BodyPix likes 8k+1; any size works
    return replace(s, model=s.model._replace(internal_resolution=res))


def _with_stride16(s: EffectsSettings, _: int) -> EffectsSettings:
    return replace(s, model=s.model._replace(name=_stride16_name(s.model.name)))


STEPS: tuple[Step, ...] = (
    Step(
        "stride 16",
        "coarser mask grid",
        lambda s: _stride16_name(s.model.name) is not None,
        _with_stride16,
    ),
    Step(
        "resolution 75 %",
        "network input at 3/4 size",
        lambda s: True,
        lambda s, base: _with_resolution(s, base, 0.75),
    ),
    Step(
        "resolution 50 %",
        "network input at half size",
        lambda s: True,
        lambda s, base: _with_resolution(s, base, 0.5),
    ),
    Step(
        "edges plain",
        "no edge-aware mask snapping",
        lambda s: s.refine.edge_aware,
        lambda s, _: replace(s, refine=replace(s.refine, edge_aware=False)),
    ),
)


def base_resolution(model: ModelChoice) -> int:
    """The network input size the user asked for (for 0: the quality preset's, else the model's
    own default), so "75 %" is always smaller than what runs untuned."""
    if model.internal_resolution:
        return model.internal_resolution
    from pixcam import models
    from pixcam.chain.segment import network_resolution

    try:
        spec = models.get_spec(model.name)
    except Exception:  # unknown model or broken manifest: the loader says so; no such step
        return 0
    return network_resolution(spec, model.quality, 0) or spec.default_resolution


def applicable(settings: EffectsSettings) -> list[Step]:
    """The steps that change something for these settings, in order."""
    return [step for step in STEPS if step.applies(settings)]


def tuned(settings: EffectsSettings, level: int, resolution: int) -> EffectsSettings:
    """The settings at `level` (0: as given); `resolution` is the model's untuned input size."""
    for step in applicable(settings)[:level]:
        settings = step.apply(settings, resolution)
    return settings


class Controller:
    """Frame work times in, a level out; `reason` says why the level is what it is."""

    def __init__(self, fps: float, window: int = 15) -> None:
        self.budget = 1.0 / max(1.0, fps)
        self.level = 0
        self.max_level = len(STEPS)
        self.reason = "holding the frame rate"
        self._window = window
        self._times: deque[float] = deque(maxlen=window)
        # Since when the frames have been over budget ("down") or had headroom ("up").
        self._run: tuple[str, float] | None = None
        # Cost of level k over level k+1, measured across each step down: what a step up
        # would cost relative to now, whatever the machine's load is meanwhile.
        self._ratio: dict[int, float] = {}
        self._left: tuple[int, float] | None = None  # (level, its median) just stepped down from
        self._up_wait = UP_AFTER_S
        self._stepped_up = -math.inf

    def feed(self, work_s: float, now: float) -> int:
        """One frame's work time (seconds); returns the level for the next frame."""
        self._times.append(work_s)
        if len(self._times) < self._window:
            return self.level
        med = statistics.median(self._times)
        if self._left is not None and self._left[0] == self.level - 1:
            self._ratio[self.level - 1] = max(1.0, self._left[1] / med)
        self._left = None
        if med > OVER * self.budget and self.level < self.max_level:
            if self._lasted("down", now, DOWN_AFTER_S):
                if now - self._stepped_up < RETRY_AFTER_S:  # the last step up did not hold
                    self._up_wait = min(MAX_UP_WAIT_S, self._up_wait * 2)
                self._set(self.level + 1, med)
        elif self.level > 0 and self._fits_above(med):
            if self._lasted("up", now, self._up_wait):
                self._stepped_up = now
                self._set(self.level - 1, med)
        else:
            self._run = None
            if self.level == 0:
                self._up_wait = UP_AFTER_S
        return self.level

    def limit(self, levels: int) -> None:
        """How many steps apply to the current settings (the chain changed)."""
        self.max_level = levels
        self.level = min(self.level, levels)

    def reset(self) -> None:
        """Start measuring afresh (new settings, a new camera): keep the level."""
        self._times.clear()
        self._run = None
        self._ratio.clear()
        self._left = None

    def _fits_above(self, med: float) -> bool:
        # Never measured (new settings): assume the level above costs twice as much.
        return med * self._ratio.get(self.level - 1, 2.0) < HEADROOM * self.budget

    def _lasted(self, direction: str, now: float, seconds: float) -> bool:
        """Whether the frames have kept going this `direction` for `seconds`."""
        if self._run is None or self._run[0] != direction:
            self._run = (direction, now)
        return now - self._run[1] >= seconds

    def _set(self, level: int, med: float) -> None:
        ms, budget_ms = med * 1e3, self.budget * 1e3
        if level > self.level:
            self.reason = f"frames took {ms:.0f} ms, over the {budget_ms:.0f} ms budget"
            self._left = (self.level, med)
        else:
            self.reason = f"headroom: frames take {ms:.0f} ms of {budget_ms:.0f} ms"
        self.level = level
        self._run = None
        self._times.clear()  # judge the new level by its own frames


class Tuner:
    """Auto-tune for one running chain: `enabled` follows the config's `model.auto_tune`.

    It holds the user's settings and the level; `Effects` only ever sees the tuned result."""

    def __init__(self, fx: Effects, fps: float, enabled: bool) -> None:
        self._fx = fx
        self._fps = fps
        self.enabled = enabled
        self.level = 0
        self._user = fx.settings  # the chain starts on the user's settings, untuned
        self._steps = applicable(self._user) if enabled else []
        self._controller = Controller(fps)

    def settings_for(self, user: EffectsSettings) -> EffectsSettings:
        """`user` with the current level's steps applied: what the chain should run."""
        if not self.level:
            return user  # level 0: no step, no manifest lookup for the base resolution
        return tuned(user, self.level, base_resolution(user.model))

    def feed(self, work_s: float, now: float) -> None:
        """This frame's work time; the chain gets the level the controller answers with."""
        if not self.enabled:
            return
        controller = self._controller
        controller.limit(len(self._steps))
        level = controller.feed(work_s, now)
        if level != self.level:
            self.level = level
            self._fx.update(self.settings_for(self._user))
            step = self.status().get("step")
            log.info("auto-tune: step %d (%s): %s", level, step, controller.reason)

    def before_update(self, enabled: bool) -> None:
        """New settings come: turned off, the chain runs the user's settings exactly."""
        if not enabled and self.level:
            self.level = 0
            self._fx.update(self._user)
            self._controller = Controller(self._fps)

    def updated(self, user: EffectsSettings, enabled: bool) -> None:
        """The chain took `settings_for(user)`: keep `user`; its cost is new, measure afresh."""
        self._user = user
        self._steps = applicable(user) if enabled else []
        self._controller.reset()
        self.enabled = enabled

    def status(self) -> dict[str, Any]:
        steps = [step.name for step in self._steps]
        level = self.level
        return {
            "level": level,
            "step": steps[level - 1] if 0 < level <= len(steps) else "none",
            "reason": self._controller.reason,
            "steps": steps,
            "target_fps": round(1.0 / self._controller.budget, 2),
        }
