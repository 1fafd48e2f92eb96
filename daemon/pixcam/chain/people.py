"""Only me: the main person is kept, anyone else in the picture becomes background.

Works on the person probability at the refiner's input size (160×90 or 320×180 for a 16:9
frame), before the refiner: the pixels of other people are set to 0 there, so the compositor
blurs, replaces or colours them with the rest of the background. The rules (docs/people.md
has the measurements):

- the main person is chosen on the first frame with someone in it: the largest region of the
  mask, weighted towards the centre;
- from frame to frame a region belongs to whoever it overlaps: the main person's last mask or
  the others' last mask, moved by their last motion and held for `HOLD_S` while they are out
  of sight (behind you);
- a region touching both (a bystander behind you, a hand on your shoulder) is split pixel by
  pixel: what was yours stays yours, what was theirs stays theirs, new pixels go to the nearer
  of the two; a patch of theirs in it too thin to be a body for `THIN_S` is yours again (your
  outline, drifted while they touched you), and so is all of theirs next to you once they
  walked out at a side of the picture; with them unseen behind you, what newly comes out
  beside you is theirs;
- with them unseen after they were last next to you (behind you), you are as you were then:
  what of yours grows past that shape is them coming out, and so is what changed in the
  picture along your outline (them, seen through a gap the network counts as you);
- while someone else is near you, the frame itself (at the mask's size) decides a shared region
  pixel by pixel: last frame's labels carried by each person's motion, the colours each
  wears, each pixel's motion, your shape before they came, the rules above as a prior
  (`labelflow.py`; someone crossing in front of you is followed over you);
- someone the network joins to you from the first frame it finds them, walking in at a side
  of the picture, is someone else (the one check the cheap path pays);
- a region that overlaps nobody is a newcomer: someone else while you are there; you, back,
  when you are not (you left and came back);
- a stranger in your chair: someone seen as another person stays another person after you
  leave, until they have been alone in the picture for `ADOPT_S` (then the picture follows
  them: a handed-over seat);
- nobody else seen and one region: the probability passes unchanged (the cost is a threshold
  and a connected-components pass).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from pixcam.chain.labelflow import Carried, Colours, LabelFlow
from pixcam.modes import KEEP_MODES

Picture = Callable[[tuple[int, int]], np.ndarray]  # the frame in BGR at a (w, h)

NEAR_PICTURE = 0.1  # someone else this near you (share of the width): the picture is read
WORK_WIDTH = 160  # the mask is looked at this wide at most (160×90 for 16:9)
MIN_AREA = 0.004  # share of the mask a region needs to be a person (smaller: specks, hands)
NEAR = 0.06  # a small region this close to you (share of the mask width) is a part of you
HOLD_S = 1.5  # others out of sight are still expected where they were for this long
ABOUT_S = 3.0  # someone else tracked this recently still counts as about (`others_about`)
ADOPT_S = 5.0  # alone in the picture this long without you: the other becomes the main person
LOST_S = 0.5  # no pixel of yours for this long: you left
REACH = 0.03  # how far you may move (share of the width) while someone touches you
WEARS = 0.5  # mean log likelihood (you / them) of a patch's colours under which it is theirs
THIN_S = 0.3  # a thin part of theirs stays theirs this long (a person coming out from behind you)
BODY_AREA = 0.016  # share of the mask a part of theirs needs (opened by THICK) to be a body
LEAVING = 0.048  # share of the mask under which their own region at a side is walking out
HIDDEN_S = 0.2  # others not seen for this long are behind you: what comes out is theirs
OUT_S = 0.2  # your shape from before they went behind you holds this long after they came out
CHANGED = 60  # grey levels a pixel of yours changed by since they went behind you: them
OUTLINE = 1  # mask pixels your outline may move by while someone is behind you
RIM = 3  # mask pixels from your outline where such a change is them (not your hands, face)
THICK = 5  # their part of a region shared with you is a body where it is this thick
GROWN = 2  # mask pixels your region may grow by in a frame (more, at a side: someone came in)
BODY = 5  # another person is this thick somewhere (mask pixels); slivers are not
THIN = 3  # another person's part this thin (mask pixels) along your outline is yours
RULES = 0.5  # weight of the rules' split in a shared region (a prior: the evidence decides)
RULES_HIDDEN = 3.0  # weight of the rules' split while the others are hidden behind you
CARRIED = 1.0  # weight of a label carried by the picture's motion
COLOUR = 3.0  # most weight of a pixel's colour (log likelihood you / them, clipped)
ALONE = 0.5  # weight of your shape before anyone came, where their motion does not bring them
MOTION = 2.0  # most weight of a pixel's motion (how much nearer yours than theirs, px/frame)
MOVED_S = 0.5  # you two still count as moving apart this long after (`EDGE_MOVING`)
APART = 0.4  # the two of you move this differently (mask pixels a frame) for motion to count
EDGE = 1  # mask pixels of yours along their edge in a shared region hidden with them
EDGE_MOVING = 2  # the same while you two move apart
SMOOTH = 5  # the evidence is summed over this square (mask pixels)
_NONE = np.zeros((0, 0), bool)
HALO = 2  # mask pixels around another person hidden too (the soft rim of their probability)


@dataclass(frozen=True)
class PeopleSettings:
    keep: str = "all"  # "all": everyone found; "me": only the main person
    threshold: float = 0.5  # probability that counts as a person (the model's threshold)

    def __post_init__(self) -> None:
        if self.keep not in KEEP_MODES:
            raise ValueError(f"keep must be one of {KEEP_MODES}, got {self.keep!r}")

    @property
    def only_me(self) -> bool:
        return self.keep == "me"


@dataclass
class PeopleState:
    """What the last frame found (for the status and the away stage)."""

    present: bool = False  # the main person (anyone, with keep "all") is in the picture
    hidden: int = 0  # other people hidden in the last frame
    switched: int = 0  # times another person was adopted as the main person


@dataclass
class _Others:
    mask: np.ndarray  # bool, their pixels when last seen
    seen: float  # when last seen
    shift: tuple[int, int] = (0, 0)  # their last motion per frame, mask pixels (dx, dy)
    centre: tuple[float, float] = (0.0, 0.0)
    alone_since: float | None = None  # seen without you since then
    leaving: bool = False  # their own region, small and shrinking, is at a side of the picture
    own_area: int = 0  # the most pixels their regions of their own have had
    left: bool = False  # they walked out at a side (nothing of theirs alone since)
    touching: bool = False  # last seen next to you, not at a side (unseen: behind you)


@dataclass
class _Behind:
    """You when the others went out of sight behind you: what they change coming out."""

    mask: np.ndarray  # bool, your pixels then
    grey: np.ndarray | None  # the picture then (None: not read)
    out_since: float | None = None  # when they were seen again


@dataclass
class _Main:
    mask: np.ndarray  # bool, your pixels when last seen
    seen: float
    alone: np.ndarray | None = None  # your pixels the last time nobody else was about
    behind: _Behind | None = None  # you when the others went behind you


@dataclass
class PeopleFilter:
    """Per frame: `apply(prob, now) -> prob` with other people's pixels at 0."""

    settings: PeopleSettings = field(default_factory=PeopleSettings)
    state: PeopleState = field(default_factory=PeopleState)
    _main: _Main | None = None
    _others: _Others | None = None
    _thin_since: float | None = None  # their part of a shared region has had thin patches since
    _flow: LabelFlow = field(default_factory=LabelFlow)  # who was where, moved to this frame
    _colours: Colours = field(default_factory=Colours)  # what you and the others wear
    _their_motion: tuple[float, float] | None = None  # per frame (dx, dy), from the flow
    _apart_seen: float = -1e9  # when you and the others last moved differently
    _labelled: tuple[np.ndarray, np.ndarray] = (_NONE, _NONE)  # the last split's (mine, theirs)
    _others_seen: float = -1e9  # when someone else was last tracked
    _about: bool = False  # `others_about`

    @property
    def others_about(self) -> bool:
        """Someone else is tracked, or was within `ABOUT_S`: the split needs each frame's own
        outline (they may come out from behind you)."""
        return self._about

    def update(self, settings: PeopleSettings) -> None:
        if settings.keep != self.settings.keep:
            self.reset()
        self.settings = settings

    def reset(self) -> None:
        """Forget who is who: the next frame chooses the main person again."""
        self._main = self._others = None
        self._thin_since = None
        self._others_seen, self._about = -1e9, False
        self._flow.forget()
        self._colours.forget()
        self.state = PeopleState()

    def apply(self, prob: np.ndarray, now: float, picture: Picture | None = None) -> np.ndarray:
        """`prob` (float32 H×W, 0..1) with the others at 0 (a new array only when someone was
        hidden); updates `state`. `picture` gives the frame, asked for only while someone else
        is about (their pixels are followed by the picture's motion)."""
        h, w = prob.shape
        small = prob
        if w > WORK_WIDTH:  # the detail size of a fine model: its grid is enough here
            size = (WORK_WIDTH, max(1, round(h * WORK_WIDTH / w)))
            small = cv2.resize(prob, size, interpolation=cv2.INTER_AREA)
        mask = cv2.threshold(small, self.settings.threshold, 1, cv2.THRESH_BINARY)[1]
        mask = mask.astype(np.uint8)
        # (connectedComponentsWithStats costs 5× more here than the labels and a bincount.)
        n, labels = cv2.connectedComponents(mask, connectivity=8)
        min_area = MIN_AREA * mask.size
        if n <= 2:  # one region or none, the usual picture: its area is the mask's
            big = [1] if n == 2 and cv2.countNonZero(mask) >= min_area else []
        else:
            areas = np.bincount(labels.ravel(), minlength=n)
            big = [int(i) for i in np.flatnonzero(areas >= min_area) if i > 0]
        if not self.settings.only_me:
            self.state = PeopleState(present=bool(big))
            return prob
        out = self._only_me(prob, labels, big, now, picture)
        if self._others is not None:
            self._others_seen = now
        self._about = now - self._others_seen <= ABOUT_S
        return out

    # ------------------------------------------------------------------ keep "me"
    def _only_me(
        self,
        prob: np.ndarray,
        labels: np.ndarray,
        big: list[int],
        now: float,
        picture: Picture | None,
    ) -> np.ndarray:
        others = self._others
        if others is not None and now - others.seen > HOLD_S:
            others = self._others = None
            self._thin_since = None
        main = self._main
        if main is None:
            if not big:
                self.state.present = False
                return prob
            first = max(big, key=lambda i: _centre_weighted(labels == i))
            main = self._main = _Main(labels == first, now)
        if others is None and len(big) <= 1:
            # Nobody else known and at most one person: the cheap path, `prob` unchanged.
            mine = labels == big[0] if big else None
            if mine is None:
                self._flow.forget()
                self.state = PeopleState(present=False, switched=self.state.switched)
                return prob
            came = _came_in(mine, main.mask) if now - main.seen <= LOST_S else None
            if came is not None:
                # Someone walked in at a side and the network joined them to you at once.
                others = self._others = _Others(came, now, (0, 0), _centre(came))
            elif main.mask[mine].any() or now - main.seen > LOST_S:
                # You, or a newcomer after you left: you back.
                main.mask, main.seen, main.alone = mine, now, mine
                self._flow.forget()
                self.state = PeopleState(present=True, switched=self.state.switched)
                return prob
        # The picture only while someone else is near you (about to share a region with you,
        # or sharing one): a region of someone else's apart from you needs the masks alone.
        w = labels.shape[1]
        near = others is not None and bool((others.mask & _near(main.mask, NEAR_PICTURE * w)).any())
        if picture is None or not near:
            self._flow.forget()
            return self._split(prob, labels, big, main, others, now)
        bgr = picture(labels.shape[::-1])
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        bins = Colours.bins(bgr)
        carried = self._flow.carry(grey)
        self._their_motion = None
        if carried is not None and carried.them is not None:
            self._their_motion = (-float(carried.them[0]), -float(carried.them[1]))
        if carried is not None and _apart(carried):
            self._apart_seen = now
        colour = self._colours.ratio(bins)
        out = self._split(prob, labels, big, main, others, now, carried, colour, grey)
        mine, theirs = self._labelled
        self._flow.keep(grey, mine, theirs)
        # Colours learnt only where nobody else is near (not the contested edge).
        self._colours.learn(bins, mine & ~_near(theirs, 3), theirs & ~_near(mine, 3))
        return out

    def _split(
        self,
        prob: np.ndarray,
        labels: np.ndarray,
        big: list[int],
        main: _Main,
        others: _Others | None,
        now: float,
        carried: Carried | None = None,
        colour: np.ndarray | None = None,
        grey: np.ndarray | None = None,
    ) -> np.ndarray:
        w = labels.shape[1]
        alone = main.alone if main.alone is not None and others is not None else main.mask
        yours = _near(alone, REACH * w)  # where you may be while someone touches you
        hidden = others is not None and now - others.seen > HIDDEN_S  # behind you
        # Where the colours are clearly theirs (averaged over a small square).
        worn = None if colour is None else cv2.blur(colour, (SMOOTH, SMOOTH)) < -WEARS
        s = _regions(labels, big, main, others, now, yours, hidden, worn)
        mine, theirs = s.mine, s.theirs
        own = theirs.copy()  # their regions of their own (not shared with you)
        if s.shared.any():
            mine, theirs = self._thin_to_you(s.shared, mine, theirs, now, colour)
        if others is not None:
            mine, theirs = _walked_out(others, own, mine, theirs)
        moving = now - self._apart_seen <= MOVED_S  # you two moved apart a moment ago
        if s.contested and carried is not None:
            mine, theirs = _decide(s.both, mine, theirs, alone, carried, colour, hidden)
        behind = hidden and others is not None and others.touching
        mine, theirs = _behind_you(main, behind, mine, theirs, grey, now, colour)
        # Small regions (a hand off the body, specks) near you are yours, near others theirs.
        small = (labels > 0) & ~mine & ~theirs
        if small.any():
            mine |= small & _near(mine, NEAR * w)
            theirs |= small & ~mine & _near(theirs, NEAR * w)
        self._track(mine, theirs, yours, main, others, s.apart, now)
        self._labelled = mine, theirs
        if self._others is not None:
            self._others.leaving = _leaving(self._others, own)
        self.state.present = bool(mine.any())
        if self.state.present:
            main.mask, main.seen = mine, now
        if self._others is None or not s.contested:
            main.alone = main.mask  # nobody touching you: the next contact starts from here
        # Where the evidence split a region, it is least sure along their edge.
        edge = None
        if s.contested and carried is not None:
            edge = s.both & _near(theirs, EDGE_MOVING if moving else EDGE)
        return _hidden(prob, (labels > 0) & ~mine, mine, edge)

    def _thin_to_you(
        self,
        shared: np.ndarray,
        mine: np.ndarray,
        theirs: np.ndarray,
        now: float,
        colour: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Their part of the regions shared with you: a patch nowhere as thick as a body, not
        leaving at a side of the picture, not in their colours and thin for `THIN_S` is yours
        (your own outline, drifted past the hold while they touched you); the rest is theirs."""
        n, patches = cv2.connectedComponents(shared.astype(np.uint8), connectivity=8)
        body = np.bincount(patches[_opened(shared, THICK)], minlength=n) >= BODY_AREA * shared.size
        body[np.concatenate([patches[:, 0], patches[:, -1]])] = True
        if colour is not None:
            # A patch wearing their colours (a strip of them by your shoulder) stays theirs.
            size = np.maximum(np.bincount(patches.ravel(), minlength=n), 1)
            body |= np.bincount(patches.ravel(), colour.ravel(), minlength=n) / size < -WEARS
        body[0] = True
        thin = ~body[patches]
        if not thin.any():
            self._thin_since = None
        elif self._thin_since is None:
            self._thin_since = now
        if self._thin_since is not None and now - self._thin_since >= THIN_S:
            return mine | thin, theirs | (shared & ~thin)
        return mine, theirs | shared

    def _track(
        self,
        mine: np.ndarray,
        theirs: np.ndarray,
        yours: np.ndarray,
        main: _Main,
        others: _Others | None,
        apart: bool,
        now: float,
    ) -> None:
        """Move the others' track on; adopt them when they have been alone long enough."""
        n_theirs = 0
        if theirs.any():
            areas = cv2.connectedComponentsWithStats(theirs.astype(np.uint8))[2][1:, 4]
            n_theirs = max(1, int(np.count_nonzero(areas >= MIN_AREA * theirs.size)))
            ys, xs = np.nonzero(theirs)
            centre = (float(xs.mean()), float(ys.mean()))
            if others is None:
                others = self._others = _Others(theirs, now, (0, 0), centre)
            else:
                shift = others.shift
                if self._their_motion is not None:
                    # Their motion in the picture (the flow over their pixels): measured
                    # touching you too, where their visible part's centre is not.
                    dx, dy = self._their_motion
                    shift = (int(round(dx)), int(round(dy)))
                elif apart:
                    # Their motion, measured while they are a region of their own (touching
                    # you, the visible part's centre moves with what you cover), capped.
                    cap = max(1, theirs.shape[1] // 40)
                    shift = (
                        int(np.clip(round(centre[0] - others.centre[0]), -cap, cap)),
                        int(np.clip(round(centre[1] - others.centre[1]), -cap, cap)),
                    )
                # Where they were and still is a person (you, in front of them) is still
                # theirs to find again, moved with them.
                held = _shifted(others.mask, shift) & (mine | theirs)
                others.mask = theirs | held
                others.shift, others.centre = shift, centre
                # A body beyond your reach (not your own outline moving) while you are here.
                body = theirs & ~yours if mine.any() else theirs
                thick = _opened(body, BODY)
                if thick.sum() >= MIN_AREA * theirs.size:
                    others.seen = now
                    # Next to you and inside the picture: unseen next, they are behind you.
                    at_side = bool(theirs[:, 0].any() or theirs[:, -1].any())
                    others.touching = not at_side and bool((_near(theirs, BODY) & mine).any())
            if mine.any() or now - main.seen <= LOST_S:
                others.alone_since = None
            elif others.alone_since is None:
                others.alone_since = now
            elif now - others.alone_since >= ADOPT_S:
                # A seat handed over: the one still here becomes the main person.
                main.mask, main.seen = theirs.copy(), now
                mine |= theirs
                theirs[:] = False
                self._others = None
                self.state.switched += 1
                n_theirs = 0
        elif others is not None:
            # Out of sight (behind you): keep expecting them where they were going.
            others.mask = _shifted(others.mask, others.shift)
        self.state.hidden = n_theirs


@dataclass
class _Regions:
    """Each region of the mask given to you or the others by whom it overlaps."""

    mine: np.ndarray
    theirs: np.ndarray  # their regions of their own
    shared: np.ndarray  # their part of the regions they share with you
    both: np.ndarray  # the regions shared with you
    contested: bool = False  # a region was both yours and theirs
    apart: bool = True  # the others were a region of their own (their motion can be measured)


def _regions(
    labels: np.ndarray,
    big: list[int],
    main: _Main,
    others: _Others | None,
    now: float,
    yours: np.ndarray,
    hidden: bool,
    worn: np.ndarray | None,
) -> _Regions:
    """A region is yours or theirs by whom it overlaps; one touching both is divided
    (`_divide`); one touching nobody is a newcomer: you, back, while you are away, else
    someone else."""
    mine, theirs, shared, both = (np.zeros(labels.shape, bool) for _ in range(4))
    s = _Regions(mine, theirs, shared, both)
    was_mine = main.mask
    was_theirs = others.mask if others is not None else None
    main_gone = now - main.seen > LOST_S
    for i in big:
        region = labels == i
        ov_mine = not main_gone and bool(was_mine[region].any())
        ov_theirs = was_theirs is not None and bool(was_theirs[region].any())
        if ov_mine and ov_theirs:
            assert was_theirs is not None
            s.contested = True
            s.both |= region
            a, b = _divide(region, was_mine, was_theirs, yours, hidden, worn)
            s.mine |= a
            s.shared |= b
            s.apart = s.apart and not b.any()
        elif ov_mine:
            s.mine |= region
        elif ov_theirs:
            s.theirs |= region
        elif main_gone and not s.mine.any():
            s.mine |= region  # a newcomer while you are away: you, back
        else:
            s.theirs |= region  # a newcomer while you are here: someone else
    return s


def _walked_out(
    others: _Others, own: np.ndarray, mine: np.ndarray, theirs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Once they walked out at a side of the picture (nothing of theirs on its own left),
    what is left of theirs next to you is your own outline (drifted past the hold while they
    touched you), but for what still reaches that side (the last of them)."""
    if not (others.left or others.leaving) or own.any():
        others.left = False
        return mine, theirs
    others.left = True
    out = theirs & ~_at_sides(theirs)
    return mine | out, theirs & ~out


def _leaving(others: _Others, own: np.ndarray) -> bool:
    """Their own region is walking out: small at a side and shrinking (coming in, it grows)."""
    at_side = bool(own[:, 0].any() or own[:, -1].any())
    area = int(np.count_nonzero(own))
    peak = others.own_area = max(others.own_area, area)
    return at_side and 2 * area <= peak and area <= LEAVING * own.size


def _hidden(
    prob: np.ndarray, hide: np.ndarray, mine: np.ndarray, edge: np.ndarray | None
) -> np.ndarray:
    """`prob` with `hide` (everything not yours: specks far from you too) at 0, widened by the
    others' soft rim, and `edge` (yours, least sure, along their edge) too; `prob` itself
    when there is nothing to hide."""
    if not hide.any():
        return prob
    k = np.ones((2 * HALO + 1,) * 2, np.uint8)
    hide = cv2.dilate(hide.astype(np.uint8), k).astype(bool) & ~mine
    if edge is not None:
        hide |= edge
    if hide.shape != prob.shape:
        ph, pw = prob.shape
        grown = cv2.resize(hide.astype(np.uint8), (pw, ph), interpolation=cv2.INTER_NEAREST)
        hide = grown.astype(bool)
    out = prob.copy()
    out[hide] = 0.0
    return out


def _behind_you(
    main: _Main,
    behind: bool,
    mine: np.ndarray,
    theirs: np.ndarray,
    grey: np.ndarray | None,
    now: float,
    colour: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """With the others `behind` you (unseen since they touched you), and for `OUT_S` after
    they are seen again, you are as you were when they went out of sight: what of yours grows
    past that shape (by more than `OUTLINE` pixels) is them coming out, slivers too (their first
    pixels out lie along your outline), and so is what of yours along your outline the picture
    changed in since, to colours more theirs than yours (them, seen through a gap of your
    outline that the network counts as you; not you turning your head)."""
    b = main.behind
    if behind:
        if b is None:
            b = main.behind = _Behind(main.mask, grey)
        b.out_since = None
        if b.grey is None:
            b.grey = grey
    elif b is not None:
        b.out_since = now if b.out_since is None else b.out_since
        if now - b.out_since > OUT_S:
            b = main.behind = None
    if b is None:
        return mine, theirs
    out = mine & ~_near(b.mask, OUTLINE)
    if grey is not None and b.grey is not None and b.grey.shape == grey.shape:
        changed = cv2.blur(cv2.absdiff(grey, b.grey), (3, 3)) > CHANGED
        if colour is not None:
            changed &= colour < 0  # not to your own colours (you moving)
        out |= mine & changed & _near(~b.mask, RIM)
    return mine & ~out, theirs | out


def _came_in(mine: np.ndarray, was: np.ndarray) -> np.ndarray | None:
    """The part of your region new since the last frame (past `GROWN` pixels of it) that
    reaches a side of the picture and is a body (thick and big): someone walking in whom the
    network joins to you from the first frame it finds them; None when there is none (the
    usual frame pays a dilation and two column tests)."""
    grown = mine & ~_near(was, GROWN)
    if not (grown[:, 0].any() or grown[:, -1].any()):
        return None
    came = _at_sides(grown)
    if np.count_nonzero(_opened(came, BODY)) < MIN_AREA * mine.size:
        return None
    return came


def _centre(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def _centre_weighted(region: np.ndarray) -> float:
    """A region's area, down to half at the picture's side edges."""
    xs = np.nonzero(region)[1]
    half = region.shape[1] / 2
    off = abs(float(xs.mean()) - half) / half
    return len(xs) * (1.0 - 0.5 * off)


def _near(mask: np.ndarray, reach: float) -> np.ndarray:
    """The pixels within `reach` of `mask` (a square neighbourhood)."""
    if not mask.any():
        return mask
    r = max(1, int(reach))
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * r + 1,) * 2, np.uint8)).astype(bool)


def _shifted(mask: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """`mask` moved by (dx, dy) pixels, what moves out dropped."""
    dx, dy = shift
    if dx == 0 and dy == 0:
        return mask
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = mask[
        max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)
    ]
    return out


def _divide(
    region: np.ndarray,
    was_mine: np.ndarray,
    was_theirs: np.ndarray,
    yours: np.ndarray,
    hidden: bool = False,
    worn: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A region touching you while someone else is about: yours where it was yours (whoever
    passes behind you is covered by you); each new patch theirs when it touches where they
    were (or were going) or lies beyond `yours` (where you were when alone, widened), yours
    otherwise (you moved); a thin sliver of theirs along your outline yours (your own
    outline moving, not a person). With them `hidden` behind you, every new part thicker than
    a sliver is theirs: they are coming out."""
    mine = region & was_mine & yours
    new = region & ~mine
    if not new.any():
        return mine, new
    _, patches = cv2.connectedComponents(new.astype(np.uint8), connectivity=8)
    tracked = np.unique(patches[new & was_theirs])
    theirs = np.isin(patches, tracked[tracked > 0])
    beyond = np.unique(patches[new & ~yours & ~theirs])
    theirs |= _opened(np.isin(patches, beyond[beyond > 0]), THIN)
    if hidden:  # someone behind you: what newly comes out beside you, but slivers, is them
        theirs |= _opened(new & ~theirs, THIN)
        if worn is not None:  # and the slivers in their colours (their first pixels out)
            theirs |= new & worn
    mine |= new & ~theirs
    return mine, theirs


def _decide(
    both: np.ndarray,
    mine: np.ndarray,
    theirs: np.ndarray,
    alone: np.ndarray,
    carried: Carried | None,
    colour: np.ndarray | None,
    hidden: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The regions shared with you (`both`) pixel by pixel from the evidence: last frame's
    labels where each person's motion brings them, your shape before anyone came, the rules'
    split as a weak prior, and the colours each of you wears and each pixel's motion, those
    two averaged over a small square (one pixel's colour or flow is noisy)."""
    # With them behind you the rules know best: what newly comes out beside you is them.
    weight = RULES_HIDDEN if hidden else RULES
    score = np.where(mine, weight, -weight).astype(np.float32)
    noisy = np.zeros(both.shape, np.float32)
    if carried is not None:
        score += CARRIED * (carried.mine.astype(np.float32) - carried.theirs)
        noisy += _moving_with(carried)
        # Where you were before they came and their motion does not bring them: you, come
        # out from behind them as they pass in front of you.
        score += ALONE * (alone & ~carried.theirs)
    if colour is not None:
        noisy += np.clip(colour, -COLOUR, COLOUR)
    score += cv2.blur(noisy, (SMOOTH, SMOOTH))
    yours = both & (score > 0)
    theirs = (theirs & ~both) | (both & ~yours)
    # They are one body: a part of theirs in a shared region apart from their largest and
    # from the picture's bottom and sides (their body goes on past the picture), lying
    # within your shape before they came, is yours (your hair or face in their colours, left
    # behind as they pass, or taken bit by bit while they stand by you); a part reaching past
    # that shape is them (coming out from behind you, or a part of them seen beside you).
    n, parts = cv2.connectedComponents(theirs.astype(np.uint8), connectivity=8)
    if n > 2:
        areas = np.bincount(parts.ravel(), minlength=n)
        areas[0] = 0
        body = np.zeros(n, bool)
        body[int(areas.argmax())] = True
        body[np.concatenate([parts[-1], parts[:, 0], parts[:, -1]])] = True
        body[0] = True
        stray = both & ~body[parts]
        stray &= ~np.isin(parts, np.unique(parts[stray & ~alone]))
        yours |= stray
        theirs &= ~stray
    return (mine & ~both) | yours, theirs


def _apart(carried: Carried) -> bool:
    """Whether you and the others move differently (else the rules alone split a region)."""
    you, them = carried.you, carried.them
    if you is None or them is None or float(np.hypot(*(you - them))) < APART:
        return False
    # Both a person's size (not a remnant of theirs left on you).
    least = MIN_AREA * carried.mine.size
    return bool(min(np.count_nonzero(carried.mine), np.count_nonzero(carried.theirs)) >= least)


def _moving_with(carried: Carried) -> np.ndarray | float:
    """Per pixel, how much better its motion fits yours than the others' (mask pixels a
    frame, clipped at `MOTION`); 0 when the two of you move alike."""
    flow, you, them = carried.motion, carried.you, carried.them
    if you is None or them is None or not _apart(carried):
        return 0.0
    dx, dy = flow[..., 0], flow[..., 1]
    d_you = np.hypot(dx - you[0], dy - you[1])
    d_them = np.hypot(dx - them[0], dy - them[1])
    return np.clip(d_them - d_you, -MOTION, MOTION).astype(np.float32)


def _at_sides(mask: np.ndarray) -> np.ndarray:
    """The connected parts of `mask` that reach the left or right side of the picture."""
    n, patches = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    ids = np.unique(np.concatenate([patches[:, 0], patches[:, -1]]))
    return np.isin(patches, ids[ids > 0])


def _opened(mask: np.ndarray, thin: int) -> np.ndarray:
    """`mask` without its parts thinner than `thin` pixels."""
    if not mask.any():
        return mask
    k = np.ones((thin, thin), np.uint8)
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, k).astype(bool)
