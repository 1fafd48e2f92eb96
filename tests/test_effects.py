"""The frame chain on its own (`effects.Effects`): what runs for which settings, its stage
hook, the standing notice, and the one Config→stage translation."""

from __future__ import annotations

import numpy as np
import pytest

from fakes import FlakySegmenter, H, W, cfg_with
from pixcam.chain.effects import Effects, EffectsSettings, ModelChoice
from pixcam.config import Config
from pixcam.errors import PixcamError


def frame(value: int = 200) -> np.ndarray:
    return np.full((H, W, 3), value, np.uint8)


def test_settings_come_from_the_config_once() -> None:
    cfg = cfg_with(
        effects={"background": "color", "color": "#000000", "mirror": True},
        refine={"smoothing": 0.3},
        model={"name": "default", "threads": 1, "internal_resolution": 256},
        parts={"privacy": "pixelate"},
    )
    s = EffectsSettings.from_config(cfg)
    assert s.model == ModelChoice(None, 1, 256)
    assert (s.refine.smoothing, s.parts.smoothing) == (0.3, 0.3)
    assert s.compose.mirror is False and s.mirror is True  # the chain mirrors, once
    assert s.active and s.parts_on
    assert not EffectsSettings.from_config(Config().with_values({"effects.enabled": False})).active


def test_stages_run_and_are_reported_in_order() -> None:
    cfg = cfg_with(effects={"background": "color", "color": "#000000"}, refine={"smoothing": 0})
    seen: list[str] = []
    fx = Effects(EffectsSettings.from_config(cfg), FlakySegmenter())
    out = fx.process(frame(), on_stage=lambda stage, _ms: seen.append(stage))
    assert seen == ["segment", "refine", "compose"]
    assert out[:, -5:].max() <= 5 and out[:, :5].min() >= 195  # person kept, background black


class SizeRecorder(FlakySegmenter):
    """Remembers the probability sizes the chain asks for."""

    def __init__(self, cell: float) -> None:
        super().__init__()
        self.cell = cell
        self.sizes: list[tuple[int, int]] = []

    def person_probability(self, size: tuple[int, int]) -> np.ndarray:
        self.sizes.append(size)
        return super().person_probability(size)


@pytest.mark.parametrize(("cell", "times"), [(16.0, 1), (1.0, 2)])
def test_the_chain_asks_a_fine_model_for_a_finer_probability(cell: float, times: int) -> None:
    seg = SizeRecorder(cell)
    cfg = cfg_with(effects={"background": "color", "color": "#000000"})
    Effects(EffectsSettings.from_config(cfg), seg).process(frame())
    # A 64×48 frame: the refiner's grid is a quarter of it; a fine model's, twice that.
    assert (W, H) == (64, 48) and seg.sizes == [(16 * times, 12 * times)]


def test_pass_through_without_effects_or_segmenter() -> None:
    f = frame()
    none = EffectsSettings.from_config(cfg_with(effects={"background": "none"}))
    assert Effects(none, FlakySegmenter()).process(f) is f  # no inference at all
    blur = EffectsSettings.from_config(cfg_with(effects={"background": "blur"}))
    assert Effects(blur).process(f) is f  # no model yet: the camera's frame goes out
    mirrored = EffectsSettings.from_config(cfg_with(effects={"background": "none", "mirror": True}))
    ramp = np.tile(np.arange(W, dtype=np.uint8)[None, :, None], (H, 1, 3))
    np.testing.assert_array_equal(Effects(mirrored).process(ramp), ramp[:, ::-1])


def test_a_part_effect_without_part_heads_is_a_notice_until_switched_off() -> None:
    seg = FlakySegmenter()
    wanted = cfg_with(effects={"background": "color", "color": "#000000"}, parts={"view": True})
    fx = Effects(EffectsSettings.from_config(wanted), seg)
    fx.process(frame())
    assert fx.notice is not None and "has no body parts" in fx.notice
    fx.process(frame())
    assert fx.notice is not None  # standing, not repeated
    fx.update(EffectsSettings.from_config(cfg_with(effects={"background": "color"})))
    fx.process(frame())
    assert fx.notice is None


def test_an_invalid_update_keeps_the_running_settings() -> None:
    fx = Effects(EffectsSettings.from_config(Config()))
    missing = EffectsSettings.from_config(
        cfg_with(effects={"background": "image", "image": "/nonexistent/bg.png"})
    )
    with pytest.raises(PixcamError, match="bg.png"):
        fx.update(missing)
    assert fx.settings.background == "blur"
