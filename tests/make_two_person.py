"""Test clips with two people (or one who leaves), made from the one-person videos, with the
truth of who is who known by construction.

A person is cut out of a shared video with the best alpha pixcam makes (`[model] quality`
"best", refined), scaled and moved along a path, and laid into another video: behind the main
person (the main person's own alpha covers them), or in front. The truth per frame is the
bystander's visible alpha in the made picture. The away scenes lay the main person, cut out
the same way, over a room picture (backgrounds/) and move them out of the picture and back.

    .venv/bin/python tests/make_two_person.py OUTDIR [--scene behind ...]

writes OUTDIR/SCENE.mp4 (lossless-ish MJPG in AVI is not needed: the tests use `make()` in
memory) and prints what it made. The clips are never committed: the slow tests make them in a
temporary folder (tests/test_people_clips.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))

VIDEOS = Path(os.environ.get("PIXCAM_DEV_VIDEOS", REPO.parent / "shared" / "data" / "video"))
MAIN = "doctor-desk-960x540.mp4"  # the main person: at a desk, near the centre
BYSTANDER = "presenter-1280x720.mp4"  # the one who walks in: standing, upper body
ROOM = REPO / "backgrounds" / "warm-office.png"  # the away scenes' empty room
SIZE = (640, 360)  # the clips' frame size
FPS = 30.0
FRAMES = 240  # 8 s


@dataclass(frozen=True)
class Path2D:
    """Where the bystander's centre is (share of the frame width) at a frame: key points
    (frame, x) joined by straight lines; None outside the picture's time."""

    keys: tuple[tuple[int, float], ...]

    def at(self, t: int) -> float | None:
        ks = self.keys
        if t < ks[0][0] or t > ks[-1][0]:
            return None
        for (t0, x0), (t1, x1) in zip(ks, ks[1:], strict=False):
            if t0 <= t <= t1:
                return x0 + (x1 - x0) * (t - t0) / max(1, t1 - t0)
        return ks[-1][1]


@dataclass(frozen=True)
class Scene:
    name: str
    path: Path2D  # the bystander's centre over time (share of the width)
    scale: float  # the bystander's height as a share of the frame's (smaller: further back)
    front: bool  # in front of the main person (else behind)
    what: str


# The main person sits with their centre near 0.55 of the width, shoulders 0.35..0.8.
SCENES = {
    s.name: s
    for s in (
        Scene(
            "behind",
            Path2D(((30, 1.25), (75, 0.82), (150, 0.82), (225, -0.3))),
            0.75,
            False,
            "walks in from the right behind you, stands by your shoulder, leaves across "
            "behind you to the left",
        ),
        Scene(
            "beside",
            Path2D(((30, -0.3), (70, 0.12), (170, 0.12), (215, -0.3))),
            0.85,
            False,
            "walks in from the left and stands beside you, apart, then leaves",
        ),
        Scene(
            "front",
            Path2D(((40, 1.35), (130, -0.35))),
            1.1,
            True,
            "crosses in front of you, right to left",
        ),
        Scene(
            "touch",
            Path2D(((30, 1.25), (70, 0.86), (190, 0.86), (235, 1.25))),
            0.95,
            False,
            "comes up behind your right shoulder, touching your outline, and stays a while",
        ),
    )
}


@dataclass
class Shot:
    """One made frame: the picture and the truth."""

    frame: np.ndarray  # BGR, SIZE
    bystander: np.ndarray  # float32 0..1: how much of each pixel shows the bystander
    main_present: bool  # the main person is in the picture (the away scenes)
    main: np.ndarray | None = None  # float32 0..1: how much of each pixel shows the main person
    bystander_area: float = 0.0  # the bystander's whole area (pixels), hidden parts included


@cache
def _best_alphas(name: str, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The first `n` frames of a shared video at SIZE and pixcam's best alpha for each (float
    0..1): quality "best", refined as a stream."""
    from pixcam.chain.refine import Refiner, RefineSettings, probability_size
    from pixcam.chain.segment import load_segmenter
    from pixcam.chain.segment.fused import FusedSegmenter

    seg = load_segmenter(None, threads=1, quality="best")
    if isinstance(seg, FusedSegmenter):
        seg.steady = True
    refiner = Refiner(RefineSettings())
    cap = cv2.VideoCapture(str(VIDEOS / name))
    frames, alphas = [], []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # a short video loops
            ok, frame = cap.read()
            if not ok:
                raise RuntimeError(f"cannot read {name}")
        frame = cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA)
        out = seg.run(frame)
        prob = out.person_probability(size=probability_size(*SIZE, out.cell))
        alpha = refiner.refine(frame, prob)
        frames.append(frame)
        alphas.append(alpha.astype(np.float32) / 255.0)
    cap.release()
    return frames, alphas


def _placed(
    frame: np.ndarray, alpha: np.ndarray, cx: float, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """`frame` and `alpha` scaled so the person's height is `scale` of the frame's, moved so
    their centre is at `cx` (share of the width), feet on the bottom edge."""
    w, h = SIZE
    ys, xs = np.nonzero(alpha > 0.5)
    if len(xs) == 0:
        return np.zeros_like(frame), np.zeros_like(alpha)
    top, px = float(ys.min()), float(np.median(xs))
    k = scale * h / max(1.0, h - top)
    tx = cx * w - k * px
    ty = h - k * h
    m = np.float32([[k, 0, tx], [0, k, ty]])
    f = cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    return f, a


def make(scene: str, frames: int = FRAMES) -> Iterator[Shot]:
    """The frames of one scene: "behind", "beside", "front", "touch" (two people) or
    "away" (the main person leaves and comes back)."""
    if scene == "away":
        yield from _away(frames)
        return
    s = SCENES[scene]
    mains, main_alphas = _best_alphas(MAIN, frames)
    others, other_alphas = _best_alphas(BYSTANDER, frames)
    for t in range(frames):
        base, am = mains[t], main_alphas[t][..., None]
        cx = s.path.at(t)
        if cx is None:
            yield Shot(base.copy(), np.zeros(base.shape[:2], np.float32), True, am[..., 0])
            continue
        fb, ab = _placed(others[t], other_alphas[t], cx, s.scale)
        ab3 = ab[..., None]
        if s.front:
            out = base * (1 - ab3) + fb * ab3
            seen, main = ab, am[..., 0] * (1 - ab)
        else:
            behind = base * (1 - ab3) + fb * ab3  # them over the room
            out = behind * (1 - am) + base * am  # you over them
            seen, main = ab * (1 - am[..., 0]), am[..., 0]
        frame = np.clip(out, 0, 255).astype(np.uint8)
        yield Shot(frame, seen, True, main, float(ab.sum()))


# The away scene: you sit there 2 s, leave to the right over 0.5 s, are gone `AWAY_GONE` s,
# come back over 0.5 s and stay.
AWAY_LEAVE = 60
AWAY_GONE = 4.0


def away_present(t: int) -> bool:
    """Whether any of the main person is in the away scene's frame `t`."""
    back = AWAY_LEAVE + 15 + int(AWAY_GONE * FPS)
    return t < AWAY_LEAVE + 15 or t >= back


def _away(frames: int) -> Iterator[Shot]:
    from pixcam.images import read_image

    room = cv2.resize(read_image(ROOM, "room", cv2.IMREAD_COLOR), SIZE)
    mains, main_alphas = _best_alphas(MAIN, frames)
    w = SIZE[0]
    back = AWAY_LEAVE + 15 + int(AWAY_GONE * FPS)
    for t in range(frames):
        # The offset moves the person out of the picture to the right and back.
        if t < AWAY_LEAVE:
            dx = 0.0
        elif t < AWAY_LEAVE + 15:
            dx = (t - AWAY_LEAVE) / 15
        elif t < back:
            dx = 1.0
        else:
            dx = max(0.0, 1.0 - (t - back) / 15)
        m = np.float32([[1, 0, dx * w], [0, 1, 0]])
        f = cv2.warpAffine(mains[t], m, SIZE, borderMode=cv2.BORDER_REPLICATE)
        a = cv2.warpAffine(main_alphas[t], m, SIZE, borderValue=0)[..., None]
        out = room * (1 - a) + f * a
        yield Shot(
            np.clip(out, 0, 255).astype(np.uint8), np.zeros(SIZE[::-1], np.float32), away_present(t)
        )


# ------------------------------------------------------------------ measuring the chain
class Clock:
    """The chain's clock on a clip: one frame's time per frame, however long a frame takes."""

    def __init__(self, fps: float = FPS) -> None:
        self.t, self.dt = 1000.0, 1.0 / fps

    def __call__(self) -> float:
        return self.t

    def tick(self) -> None:
        self.t += self.dt


def chain(values: dict[str, object], fps: float = FPS) -> tuple[object, Clock]:
    """The live chain (`Effects`, the default model and quality, one thread) with `values`
    over the defaults, on a frame clock."""
    from pixcam.chain.effects import Effects, EffectsSettings
    from pixcam.chain.segment import load_segmenter
    from pixcam.config import Config

    cfg = Config().with_values({"effects.background": "color", "model.threads": 1, **values})
    settings = EffectsSettings.from_config(cfg)
    m = settings.model
    seg = load_segmenter(m.name, 1, m.internal_resolution, m.quality)
    clock = Clock(fps)
    return Effects(settings, seg, clock=clock), clock


@dataclass
class Figures:
    """One two-person scene through the chain with keep "all" and keep "me"."""

    scene: str
    leak_max: float  # the bystander's most visible share (of their area), 0.5 s after entering
    leak_mean: float
    iou_alone: float  # mean IoU of keep "me" with keep "all" where nobody else is there
    truth_me: float  # mean IoU with the main person's truth where alone, keep "me"
    truth_all: float  # the same, keep "all"
    kept_min: float  # the least share of the main person kept in any frame (a switch: ~0)
    switched: int  # main person changes
    lost_s: float = 0.0  # the longest time keep "me" kept under half of what keep "all" kept
    # of the main person (a switch lasts; the network itself loses most of you for a few
    # frames while someone covers you, keep "all" too)

    def line(self) -> str:
        return (
            f"{self.scene:7s} leak max {self.leak_max:.4f} mean {self.leak_mean:.4f}  "
            f"IoU alone me/all {self.iou_alone:.4f}  vs truth me {self.truth_me:.4f} "
            f"all {self.truth_all:.4f}  main kept min {self.kept_min:.3f}  "
            f"switches {self.switched}  lost {self.lost_s:.2f} s"
        )


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def measure(scene: str, frames: int = FRAMES) -> Figures:
    shots = list(make(scene, frames))
    alphas = {}
    switched = 0
    for keep in ("all", "me"):
        fx, clock = chain({"people.keep": keep})
        out = []
        for shot in shots:
            fx.process(shot.frame)  # type: ignore[attr-defined]
            clock.tick()
            out.append(fx.alpha.full.astype(np.float32) / 255.0)  # type: ignore[attr-defined]
        alphas[keep] = out
        if keep == "me":
            switched = fx._people.state.switched  # type: ignore[attr-defined]  # noqa: SLF001
    entered = next((t for t, s in enumerate(shots) if s.bystander_area > 0), None)
    leaks, ious, t_me, t_all, kept, kept_all = [], [], [], [], [], []
    for t, shot in enumerate(shots):
        me, every = alphas["me"][t], alphas["all"][t]
        assert shot.main is not None
        main = shot.main
        if shot.bystander_area > 0:
            if entered is not None and t >= entered + FPS / 2:
                leaks.append(float((me * shot.bystander).sum()) / shot.bystander_area)
        else:
            ious.append(_iou(me > 0.5, every > 0.5))
            t_me.append(_iou(me > 0.5, main > 0.5))
            t_all.append(_iou(every > 0.5, main > 0.5))
        kept.append(float((me * main).sum() / max(1.0, float(main.sum()))))
        kept_all.append(float((every * main).sum() / max(1.0, float(main.sum()))))
    run = longest = 0
    for k_me, k_all in zip(kept, kept_all, strict=True):
        run = run + 1 if k_me < 0.5 * k_all else 0
        longest = max(longest, run)
    return Figures(
        scene,
        max(leaks, default=0.0),
        float(np.mean(leaks)) if leaks else 0.0,
        float(np.mean(ious)),
        float(np.mean(t_me)),
        float(np.mean(t_all)),
        min(kept),
        switched,
        longest / FPS,
    )


@dataclass
class AwayFigures:
    card_after_s: float | None  # from the first frame without you to the card fully shown
    gone_after: int | None  # frames from the chain finding you back to the first without card
    card_frames_present: int  # frames with the card while you were in the picture, before
    # you left and after the card went

    def line(self, after: float) -> str:
        return (
            f"away    card full {self.card_after_s} s after leaving (limit {after + 0.5}), "
            f"gone on frame {self.gone_after} after you are found (limit 2), card with you "
            f"there {self.card_frames_present} frames"
        )


def measure_away(after: float = 2.0, mode: str = "card", frames: int = FRAMES) -> AwayFigures:
    fx, clock = chain({"people.away": mode, "people.away_after": after})
    levels, found = [], []
    for shot in make("away", frames):
        fx.process(shot.frame)  # type: ignore[attr-defined]
        clock.tick()
        info = fx.people  # type: ignore[attr-defined]
        levels.append(float(info["away_level"]))
        found.append(bool(info["present"]))
    present = [away_present(t) for t in range(frames)]
    left = present.index(False)
    back = present.index(True, left)
    full = next((t for t in range(left, back) if levels[t] >= 1.0), None)
    seen = next((t for t in range(back, frames) if found[t]), None)
    gone = None if seen is None else next((t for t in range(seen, frames) if levels[t] == 0), None)
    with_you = sum(
        1
        for t in range(frames)
        if present[t] and levels[t] > 0 and (t < left or gone is None or t >= gone)
    )
    return AwayFigures(
        None if full is None else round((full - left) / FPS, 3),
        None if gone is None or seen is None else gone - seen + 1,
        with_you,
    )


def card_frames(video: Path, after: float = 1.0) -> tuple[int, int]:
    """(frames with any of the away card, frames) over a one-person video."""
    cap = cv2.VideoCapture(str(video))
    fx, clock = chain(
        {"people.away": "card", "people.away_after": after}, cap.get(cv2.CAP_PROP_FPS) or FPS
    )
    n = shown = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        fx.process(frame)  # type: ignore[attr-defined]
        clock.tick()
        n += 1
        shown += float(fx.people["away_level"]) > 0  # type: ignore[attr-defined]
    cap.release()
    return shown, n


def write(scene: str, folder: Path, frames: int = FRAMES) -> Path:
    """The scene as an MP4 in `folder` (for looking at it)."""
    path = folder / f"{scene}.mp4"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    for shot in make(scene, frames):
        out.write(shot.frame)
    out.release()
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--scene", action="append", choices=[*SCENES, "away"])
    ap.add_argument("--frames", type=int, default=FRAMES)
    ap.add_argument("--report", action="store_true", help="measure the chain on them instead")
    args = ap.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    say: Callable[[str], None] = print
    for scene in args.scene or [*SCENES, "away"]:
        if not args.report:
            say(f"{write(scene, args.outdir, args.frames)}")
        elif scene == "away":
            say(measure_away(frames=args.frames).line(2.0))
            for video in sorted(VIDEOS.glob("*.mp4")):
                shown, n = card_frames(video)
                say(f"{video.name}: card on {shown} of {n} frames (away_after 1 s)")
        else:
            say(measure(scene, args.frames).line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
