"""Only me (chain/people.py) on synthetic masks: who is kept, who is hidden, who comes back."""

from __future__ import annotations

import numpy as np
import pytest

from pixcam.chain.labelflow import Carried
from pixcam.chain.people import (
    ADOPT_S,
    HOLD_S,
    LOST_S,
    OUTLINE,
    PeopleFilter,
    PeopleSettings,
    _decide,
    _near,
)

W, H = 160, 90
DT = 1 / 30


def body(cx: int, top: int = 20, half: int = 14) -> np.ndarray:
    """A person-like blob: a head on a torso, centred at column `cx`."""
    m = np.zeros((H, W), np.float32)
    yy, xx = np.mgrid[:H, :W]
    m[((xx - cx) ** 2 + (yy - top) ** 2) < (half * 0.6) ** 2] = 1.0
    m[(yy > top + 6) & (np.abs(xx - cx) < half)] = 1.0
    return m


def union(*masks: np.ndarray) -> np.ndarray:
    return np.maximum.reduce(masks)


def run(f: PeopleFilter, frames: list[np.ndarray], t0: float = 0.0) -> list[np.ndarray]:
    return [f.apply(p, t0 + i * DT) for i, p in enumerate(frames)]


def me() -> PeopleFilter:
    return PeopleFilter(PeopleSettings(keep="me"))


def test_keep_all_passes_everything() -> None:
    f = PeopleFilter(PeopleSettings(keep="all"))
    p = union(body(80), body(20))
    assert f.apply(p, 0.0) is p
    assert f.state.present


def test_alone_is_untouched() -> None:
    f = me()
    frames = [body(80 + i % 3) for i in range(20)]
    for p, out in zip(frames, run(f, frames), strict=True):
        assert out is p
    assert f.state.present and f.state.hidden == 0


def test_the_main_person_is_the_largest_near_the_centre() -> None:
    f = me()
    out = f.apply(union(body(80), body(18, half=16)), 0.0)
    assert out[60, 80] == 1.0 and out[60, 18] == 0.0
    assert f.state.hidden == 1


def test_a_bystander_walking_in_is_hidden() -> None:
    f = me()
    frames = [body(80)] * 5 + [union(body(80), body(150 - 2 * i)) for i in range(30)]
    outs = run(f, frames)
    for out in outs[5 + 15 :]:  # from 0.5 s after they enter
        assert out[60, 80] == 1.0  # you
        # Nothing of them beyond 2 % of their area (where they overlap you, who is in front).
        assert out.sum() <= body(80).sum() + 0.02 * body(150).sum()
    assert f.state.hidden == 1


def test_a_bystander_touching_you_stays_hidden() -> None:
    """They walk up beside you until their shoulder touches yours, and stay."""
    f = me()
    mine = body(60)
    frames = [mine] * 3 + [union(mine, body(140 - 2 * i)) for i in range(25)]
    frames += [union(mine, body(90))] * 60  # touching: one region
    outs = run(f, frames)
    for out in outs[-60:]:
        assert out[60, 95] == 0.0 and out[60, 60] == 1.0
        assert out[mine > 0].mean() > 0.97


def test_your_outline_drifting_while_touched_is_yours_when_they_leave() -> None:
    """They touch your shoulder while you lean towards them (past the hold), then walk off:
    the strip you moved into comes back to you, they stay hidden."""
    f = me()
    frames = [body(60)] * 3 + [union(body(60), body(140 - 2 * i)) for i in range(25)]
    frames += [union(body(60 + i // 6), body(90)) for i in range(60)]  # you lean 10 px
    frames += [union(body(70), body(92 + 3 * i)) for i in range(30)]  # they walk out
    frames += [body(70)] * 30
    outs = run(f, frames)
    for out in outs[-60:-30]:
        assert out[60, 120:].sum() == 0.0  # they, walking out: hidden
    for out in outs[-15:]:
        assert out[body(70) > 0].mean() > 0.99  # all of you again, 0.5 s after they left


def test_a_bystander_passing_behind_you_never_shows() -> None:
    """Behind: you cover them; what shows of them on either side stays theirs."""
    f = me()
    mine = body(80, half=16)
    frames = [mine] * 3
    for i in range(70):
        theirs = body(150 - 2 * i, top=12, half=12)
        frames.append(union(mine, theirs))
    outs = run(f, frames)
    their_area = float(body(80, top=12, half=12).sum())
    for p, out in zip(frames[3:], outs[3:], strict=True):
        # A sliver along your outline may show (within `REACH` of it), never them.
        assert out[(p > 0) & (mine == 0)].sum() <= 0.03 * their_area
        assert out[mine > 0].mean() > 0.97  # you stay whole


def test_someone_coming_out_from_behind_you_on_your_other_side_stays_hidden() -> None:
    """They stand at your shoulder, walk behind you out of sight and come out on your other
    side a pixel a frame: their first pixels out are slivers along your outline, theirs, and
    so is all of them that follows."""
    f = me()
    mine = body(80, half=16)
    frames = [mine] * 3
    frames += [union(mine, body(150 - 2 * i, top=30, half=10)) for i in range(24)]
    frames += [union(mine, body(104, top=30, half=10))] * 15  # at your shoulder
    frames += [union(mine, body(104 - i, top=30, half=10)) for i in range(65)]  # to the left
    outs = run(f, frames)
    margin = _near(mine > 0, OUTLINE)  # where your outline may have moved
    for p, out in zip(frames[60:], outs[60:], strict=True):  # from behind you on
        assert out[(p > 0) & ~margin].sum() == 0.0  # nothing of them past your outline
    for out in outs:
        assert out[mine > 0].mean() > 0.97  # you stay whole


def test_you_leave_and_come_back() -> None:
    f = me()
    t = 0.0
    for _ in range(5):
        f.apply(body(80), t)
        t += DT
    empty = np.zeros((H, W), np.float32)
    for _ in range(int(2 * LOST_S / DT)):
        f.apply(empty, t)
        t += DT
    assert not f.state.present
    out = f.apply(body(100), t)  # back, a little to the side
    assert out[60, 100] == 1.0 and f.state.present


def test_a_stranger_in_your_chair_is_not_you_until_alone_a_while() -> None:
    f = me()
    t = 0.0
    frames = [union(body(60), body(130))] * 10
    for p in frames:
        f.apply(p, t)
        t += DT
    # You leave; they walk over into your chair.
    for i in range(40):
        out = f.apply(body(130 - 2 * i if 130 - 2 * i > 60 else 60), t)
        t += DT
        assert out.sum() == 0.0
    assert not f.state.present
    while t < 40 * DT + 10 * DT + ADOPT_S + HOLD_S + 0.5:
        out = f.apply(body(60), t)
        t += DT
    assert out[60, 60] == 1.0 and f.state.present and f.state.switched == 1


@pytest.mark.parametrize("keep", ["all", "me"])
def test_nobody_is_not_present(keep: str) -> None:
    f = PeopleFilter(PeopleSettings(keep=keep))
    f.apply(np.zeros((H, W), np.float32), 0.0)
    assert not f.state.present


# ------------------------------------------------------------------ in the chain (Effects)
class Scripted:
    """A segmenter whose person probability is the next of `probs` (the chain's size)."""

    has_parts = False
    cell = 16.0

    def __init__(self, probs: list[np.ndarray]) -> None:
        self.probs, self.i = probs, -1

    def run(self, frame: np.ndarray, parts: bool = True, pyramid: object = None) -> Scripted:
        self.i += 1
        return self

    def person_probability(self, size: tuple[int, int]) -> np.ndarray:
        import cv2

        p = self.probs[min(self.i, len(self.probs) - 1)]
        return cv2.resize(p, size, interpolation=cv2.INTER_NEAREST)


class FrameClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += DT
        return self.t


def effects(probs: list[np.ndarray], **people: object) -> object:
    from fakes import cfg_with
    from pixcam.chain.effects import Effects, EffectsSettings

    cfg = cfg_with(
        effects={"background": "color", "color": "#000000"},
        model={"skip_still": False},
        people=people,
    )
    return Effects(EffectsSettings.from_config(cfg), Scripted(probs), clock=FrameClock())


def picture() -> np.ndarray:
    return np.full((360, 640, 3), 200, np.uint8)


def test_the_chain_hides_the_other_person_as_background() -> None:
    probs = [body(80)] * 3 + [union(body(80), body(20, half=12))] * 30
    fx = effects(probs, keep="me")
    for _ in probs:
        out = fx.process(picture())  # type: ignore[attr-defined]
    assert out[240, 320].min() > 150  # you (column 80 of 160)
    assert out[240, 80].max() < 40  # them: the black background
    info = fx.people  # type: ignore[attr-defined]
    assert info["keep"] == "me" and info["hidden"] == 1 and info["present"]


def test_the_chain_shows_the_card_when_nobody_is_there_and_not_after() -> None:
    empty = np.zeros((H, W), np.float32)
    probs = [body(80)] * 10 + [empty] * 60 + [body(80)] * 5
    fx = effects(probs, away="card", away_after=1.0, away_text="Back soon")
    levels = []
    for _ in probs:
        out = fx.process(picture())  # type: ignore[attr-defined]
        levels.append(fx.people["away_level"])  # type: ignore[attr-defined]
        assert out.shape == (360, 640, 3)  # a frame every time
    assert max(levels[:10]) == 0.0 and levels[69] == 1.0
    assert levels[70] == 1.0 and levels[71] == 0.0  # gone on the second frame with you
    fx.set_away(True)  # type: ignore[attr-defined]
    fx.process(picture())  # type: ignore[attr-defined]
    assert fx.people["away"] and fx.people["away_manual"]  # type: ignore[attr-defined]


def test_manual_away_works_with_the_effects_off() -> None:
    from fakes import cfg_with
    from pixcam.chain.effects import Effects, EffectsSettings

    cfg = cfg_with(effects={"enabled": False})
    fx = Effects(EffectsSettings.from_config(cfg), clock=FrameClock())
    assert fx.process(picture()).mean() == 200
    fx.set_away(True)
    card = fx.process(picture())
    for _ in range(20):
        card = fx.process(picture())
    assert card.mean() < 100  # the dark text card


def test_the_tooltip_words() -> None:
    from pixcam.daemon import people_summary

    status = {"hidden": 1, "away": True, "away_since": "12:03"}
    assert people_summary("me", status) == ["only me: 1 other hidden", "away since 12:03"]
    assert people_summary("me", {"hidden": 0}) == ["only me"]
    assert people_summary("all", None) == []


def test_someone_joined_to_you_at_a_side_from_the_first_frame_is_hidden() -> None:
    f = me()
    bridge = np.zeros((H, W), np.float32)
    bridge[60:70, 90:140] = 1.0  # the network joins them to you at once
    frames = [body(80)] * 5 + [union(body(80), body(150 - i), bridge) for i in range(10)]
    outs = run(f, frames)
    assert all(out[50, 150 - i] == 0.0 for i, out in enumerate(outs[5:]))
    assert all(out[50, 80] == 1.0 for out in outs)
    assert f.state.hidden >= 1


def test_your_own_arm_growing_inside_the_picture_stays_yours() -> None:
    f = me()
    arm = np.zeros((H, W), np.float32)
    arm[30:40, 90:125] = 1.0  # raised at once, away from the sides
    frames = [body(80)] * 5 + [union(body(80), arm)] * 5
    for p, out in zip(frames, run(f, frames), strict=True):
        assert out is p
    assert f.state.hidden == 0


def test_someone_crossing_in_front_of_you_is_hidden_where_they_cover_you() -> None:
    """With the picture: a textured person walks across a still, differently dressed you."""
    rng = np.random.default_rng(3)
    you_tex = rng.integers(180, 256, (H // 3 + 1, W // 3 + 1, 3), dtype=np.uint8)
    them_tex = rng.integers(40, 140, (H // 3 + 1, W // 3 + 1, 3), dtype=np.uint8)
    you_tex = np.kron(you_tex, np.ones((3, 3, 1), np.uint8))[:H, :W]
    them_tex = np.kron(them_tex, np.ones((3, 3, 1), np.uint8))[:H, :W]
    room = np.full((H, W, 3), 120, np.uint8)
    mine = np.zeros((H, W), bool)
    mine[25:, 55:105] = True
    f = me()
    covered = shown = 0
    for i in range(50):
        x = 150 - 3 * i  # their left edge, 3 px a frame
        theirs = np.zeros((H, W), bool)
        theirs[15:, max(0, x) : max(0, x + 24)] = True
        picture = room.copy()
        picture[mine] = you_tex[mine]
        picture[theirs] = np.roll(them_tex, x, axis=1)[theirs]  # their texture moves with them
        prob = (mine | theirs).astype(np.float32)
        out = f.apply(prob, i * DT, lambda size, p=picture: p)
        over = theirs & mine
        if np.count_nonzero(over) == np.count_nonzero(theirs[25:]):  # all of them over you
            covered += 1
            shown += np.count_nonzero(out[over] > 0)
            # You stay (but 2 px along their edge and the rim, hidden with them).
            assert out[mine & ~theirs].mean() > 0.7
    assert covered > 5
    assert shown <= 0.05 * covered * 24 * (H - 25)  # they hardly show where they cover you


def test_a_part_of_theirs_within_your_shape_is_yours_while_you_two_are_still() -> None:
    """Someone stands by you, both still: the evidence (last frame's labels, the colours) has
    taken a patch of your head for theirs, cut off from their body. It is yours; a patch of
    theirs cut off from their body but reaching past your shape is theirs."""
    alone = body(60) > 0
    theirs_body = body(88) > 0  # standing at your shoulder
    head = np.zeros((H, W), bool)
    head[16:24, 56:64] = True  # inside your head
    beside = np.zeros((H, W), bool)
    beside[6:14, 66:80] = True  # from inside your head's outline out past it
    both = alone | theirs_body | beside
    theirs = theirs_body | head | beside
    mine = both & ~theirs
    still = np.zeros(2, np.float32)
    carried = Carried(mine, theirs, np.zeros((H, W, 2), np.float32), still, still)
    colour = np.where(theirs, -3.0, 3.0).astype(np.float32)  # the patches wear their colours
    yours, kept = _decide(both, mine, theirs, alone, carried, colour)
    assert yours[head].all() and not kept[head].any()
    assert kept[beside].all() and not yours[beside].any()
    assert kept[theirs_body & ~alone].all()
