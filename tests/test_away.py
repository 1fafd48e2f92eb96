"""Be right back (chain/away.py): when the card comes, when it goes, what it shows."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from pixcam.chain.away import (
    BACK_FRAMES,
    FADE_S,
    AwayCard,
    AwaySettings,
    AwayState,
    load_card_image,
    text_card,
)
from pixcam.chain.effects import Effects, EffectsSettings
from pixcam.config import parse_config
from pixcam.errors import PixcamError
from pixcam.i420 import as_bgr

DT = 1 / 30


def feed(state: AwayState, present: list[bool], t0: float = 0.0) -> list[float]:
    return [state.update(p, t0 + i * DT) for i, p in enumerate(present)]


def test_the_card_comes_after_away_after_and_fades_in() -> None:
    st = AwayState(AwaySettings(mode="card", after=2.0))
    levels = feed(st, [True] * 30 + [False] * 150)
    first = next(i for i, v in enumerate(levels) if v > 0)
    full = next(i for i, v in enumerate(levels) if v >= 1.0)
    assert (first - 29) * DT == pytest.approx(2.0, abs=DT)  # from the last frame with you
    assert (full - first) * DT <= FADE_S + DT
    assert st.away and st.since is not None


def test_one_missed_frame_never_shows_the_card() -> None:
    st = AwayState(AwaySettings(mode="card", after=1.0))
    pattern = ([True] * 5 + [False]) * 60
    assert max(feed(st, pattern)) == 0.0


def test_back_on_the_second_frame_and_a_stray_frame_does_not_end_it() -> None:
    st = AwayState(AwaySettings(mode="card", after=1.0))
    feed(st, [False] * 60)
    assert st.level == 1.0
    t = 60 * DT
    assert st.update(True, t) == 1.0  # one stray detection: still away
    assert st.update(False, t + DT) == 1.0
    levels = [st.update(True, t + (2 + i) * DT) for i in range(BACK_FRAMES)]
    assert levels[-1] == 0.0 and not st.away


def test_off_never_shows_it_and_by_hand_always_does() -> None:
    st = AwayState(AwaySettings(mode="off", after=1.0))
    assert max(feed(st, [False] * 90)) == 0.0
    st.manual = True
    assert feed(st, [True] * 20, 3.0)[-1] == 1.0  # by hand, even with you there
    st.manual = False
    assert st.update(True, 4.0) == 0.0


def test_unknown_presence_counts_as_nobody_gone() -> None:
    st = AwayState(AwaySettings(mode="card", after=1.0))
    assert max(feed(st, [None] * 90)) == 0.0  # type: ignore[list-item]


def test_the_card_pictures() -> None:
    frame = np.full((90, 160, 3), 200, np.uint8)
    card = AwayCard(AwaySettings(mode="card", text="Back soon"))
    assert card.blend(frame, 0.0) is frame
    full = card.blend(frame, 1.0)
    assert full.shape == frame.shape and (full == text_card("Back soon", 160, 90)).all()
    half = card.blend(frame, 0.5)
    assert 100 < half.mean() < 200
    room = np.random.default_rng(1).integers(0, 255, (90, 160, 3), np.uint8)
    blur = AwayCard(AwaySettings(mode="blur")).blend(frame, 1.0, room)
    assert blur.std() < room.std() / 4  # the room, unrecognisable
    missing = AwayCard(AwaySettings(mode="card", image="/nonexistent/card.png"))
    assert missing.blend(frame, 1.0).shape == frame.shape  # the text card instead
    assert missing.notice is not None and "\n" not in missing.notice


def test_the_card_image_is_decoded_beside_the_stream(tmp_path: Path) -> None:
    """`Effects.load` decodes the card image (the runner's loader runs it on a helper
    thread); the frame thread only fits it to the frame. The file is gone before the card
    first shows, yet the card is the image: nothing was read on the frame path."""
    image = np.zeros((300, 400, 3), np.uint8)
    image[:, :, 2] = 255  # red
    path = tmp_path / "card.png"
    assert cv2.imwrite(str(path), image)
    base = EffectsSettings.from_config(parse_config('[effects]\nbackground = "none"\n'))
    ticks = itertools.count()
    fx = Effects(base, clock=lambda: next(ticks) * 0.1)
    settings = dataclasses.replace(base, away=AwaySettings(mode="card", image=str(path)))
    assert fx.needs_load(settings)
    loaded = fx.load(settings)
    assert loaded.card is not None and loaded.background is None
    path.unlink()
    fx.update(settings, loaded)
    assert not fx.needs_load(settings)  # decoded once: the same settings load nothing
    fx.set_away(True)
    frame = np.full((90, 160, 3), 128, np.uint8)
    out = as_bgr(fx.process(frame))
    for _ in range(10):  # through the fade (0.1 s a frame)
        out = as_bgr(fx.process(frame))
    assert out[:, :, 2].min() > 240 and out[:, :, :2].max() < 15


def test_an_unreadable_card_image_fails_the_load_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    fx = Effects(EffectsSettings.from_config(parse_config("")))
    settings = dataclasses.replace(fx.settings, away=AwaySettings(mode="card", image=str(bad)))
    with pytest.raises(PixcamError) as caught:
        fx.load(settings)
    assert "\n" not in str(caught.value) and "away card" in str(caught.value)


@pytest.mark.parametrize("kind", ["missing", "folder", "bare name"])
def test_a_card_image_that_is_not_there_is_named_as_the_away_card(
    tmp_path: Path, kind: str
) -> None:
    # The messages said "background file ... is a folder" for the away card's image.
    (tmp_path / "folder").mkdir()
    image = {"missing": str(tmp_path / "gone.png"), "folder": str(tmp_path / "folder")}
    fx = Effects(EffectsSettings.from_config(parse_config("")))
    card = AwaySettings(mode="card", image=image.get(kind, "no-such-card.png"))
    with pytest.raises(PixcamError) as caught:
        fx.load(dataclasses.replace(fx.settings, away=card))
    assert str(caught.value).startswith("away card ")  # not "background file ..."


def test_a_huge_card_image_is_shrunk_beside_the_stream(tmp_path: Path) -> None:
    # A 63 MP card image was kept whole (190 MB) and fitted to the frame on the frame thread
    # when the card first showed: 0.4 s without a frame, again at each new frame size.
    big = tmp_path / "big.png"
    image = np.zeros((4600, 8000, 3), np.uint8)
    image[:, :, 1] = np.arange(8000) % 256
    assert cv2.imwrite(str(big), image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    card = load_card_image(AwaySettings(mode="card", image=str(big)))
    assert card is not None
    h, w = card.shape[:2]
    assert w * h <= 3841 * 2208 and min(w / 3840, h / 2160) >= 1.0  # still covers 4K


def test_the_manual_switch_off_shows_in_the_status_without_a_frame() -> None:
    # Paused (no frame through the chain), `ctl away off` left the status at away: true,
    # level 1.0 until the camera was resumed.
    fx = Effects(EffectsSettings.from_config(parse_config("")))
    fx.set_away(True)
    frame = np.full((90, 160, 3), 128, np.uint8)
    for _ in range(5):
        fx.process(frame)
    assert fx.people["away"] and fx.people["away_manual"]
    fx.set_away(False)
    assert not fx.people["away"] and fx.people["away_level"] == 0.0
