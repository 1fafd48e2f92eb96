"""Skipping the network while the picture is still (stillness.MotionGate in effects.Effects)."""

from __future__ import annotations

from typing import Any

import numpy as np

from conftest import wait_until
from fakes import FakePipeline, FlakySegmenter, cfg_with
from pixcam.chain.compose import BlurBackground, ComposeSettings, Compositor
from pixcam.chain.effects import Effects, EffectsSettings
from pixcam.chain.pyramid import Pyramid
from pixcam.chain.stillness import MAX_CARRY, MotionGate

H, W = 180, 320


def scene(hand_x: int | None = None, mouth: int = 0) -> np.ndarray:
    """A grey wall, a person (dark) in the left half, an optional bright hand at `hand_x`
    and a mouth inside the person whose brightness varies."""
    f = np.full((H, W, 3), 150, np.uint8)
    f[:, : W // 2] = 60
    f[60:80, 40:60] = 60 + mouth
    if hand_x is not None:
        f[100:140, hand_x : hand_x + 30] = 250
    return f


def person_prob() -> np.ndarray:
    prob = np.zeros((H // 4, W // 4), np.float32)
    prob[:, : W // 8] = 1.0
    return prob


def test_gate_carries_a_still_picture_but_reruns_regularly() -> None:
    gate = MotionGate()
    assert not gate.still(Pyramid(scene()))  # nothing seen yet
    gate.ran(person_prob())
    decisions = []
    for _ in range(2 * (MAX_CARRY + 1)):
        still = gate.still(Pyramid(scene()))
        decisions.append(still)
        gate.carry() if still else gate.ran(person_prob())
    assert decisions == ([True] * MAX_CARRY + [False]) * 2


def test_gate_sees_movement_at_the_outline_at_once_but_not_inside() -> None:
    gate = MotionGate()
    gate.still(Pyramid(scene()))
    gate.ran(person_prob())
    assert gate.still(Pyramid(scene(mouth=80)))  # talking: inside the person
    assert not gate.still(Pyramid(scene(hand_x=W // 2 - 10)))  # a hand crosses the outline


def test_effects_infer_only_when_the_picture_moves() -> None:
    seg = FlakySegmenter()
    cfg = cfg_with(effects={"background": "color"}, refine={"smoothing": 0})
    fx = Effects(EffectsSettings.from_config(cfg), seg)
    stages: list[str] = []
    for _ in range(3):
        fx.process(scene(), on_stage=lambda s, _ms: stages.append(s))
    assert seg.calls == 1 and stages.count("carry") == 2
    moved = fx.process(scene(hand_x=W // 2 - 10))
    assert seg.calls == 2  # the first moving frame is inferred: no lag
    assert moved.shape == (H, W, 3)

    every = Effects(EffectsSettings.from_config(cfg.with_values({"model.skip_still": False})), seg)
    for _ in range(3):
        every.process(scene())
    assert seg.calls == 5


def test_a_carried_frame_reuses_the_kept_blur_but_shows_its_own_person() -> None:
    comp = Compositor(ComposeSettings(background="blur"))
    alpha = np.zeros((H, W), np.uint8)
    alpha[:, : W // 2] = 255
    first = comp.compose(scene(), alpha, keep_background=True)
    brighter = scene(mouth=80)
    brighter[:, W // 2 :] = 200  # the wall changed: a fresh blur would differ
    carried = comp.compose(brighter, alpha, keep_background=True, reuse_background=True)
    assert np.array_equal(carried[:, W // 2 + 20 :], first[:, W // 2 + 20 :])  # kept blur
    assert np.array_equal(carried[60:80, 40:60], brighter[60:80, 40:60])  # this frame's person
    fresh = comp.compose(brighter, alpha)
    assert fresh[0, -1, 0] > first[0, -1, 0] + 20

    comp.update(mirror=True)  # a kept blur of the unflipped picture must not serve
    comp.compose(scene(), alpha, keep_background=True)
    comp.update(mirror=False)
    again = comp.compose(brighter, alpha, keep_background=True, reuse_background=True)
    assert np.array_equal(again, fresh)


def test_the_auto_tune_is_fed_only_the_frames_the_network_ran_on(monkeypatch: Any) -> None:
    seg = FlakySegmenter()
    cfg = cfg_with(effects={"background": "color"}, refine={"smoothing": 0})
    p = FakePipeline(cfg, segmenter=seg)
    fed: list[float] = []
    monkeypatch.setattr(p, "_tune", fed.append)
    with p:
        wait_until(lambda: len(p.frames) >= 12, "12 frames out")
    # The fake camera's picture never moves: most frames carry the mask.
    assert 0 < len(fed) == seg.calls < len(p.frames)


def test_effects_blur_the_background_only_when_the_network_runs(monkeypatch: Any) -> None:
    blurs: list[int] = []
    get = BlurBackground.get

    def counting(self: BlurBackground, *args: Any) -> np.ndarray:
        blurs.append(1)
        return get(self, *args)

    monkeypatch.setattr(BlurBackground, "get", counting)
    seg = FlakySegmenter()
    cfg = cfg_with(effects={"background": "blur"}, refine={"smoothing": 0})
    fx = Effects(EffectsSettings.from_config(cfg), seg)
    for _ in range(3):
        fx.process(scene())
    assert seg.calls == 1 and len(blurs) == 1  # the two carried frames reuse the blur
    fx.process(scene(hand_x=W // 2 - 10))
    assert seg.calls == 2 and len(blurs) == 2
