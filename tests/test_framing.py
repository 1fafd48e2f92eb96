"""Auto-framing: the head finder, the spring, the crop, and the figures on two real videos."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import VIDEOS, need
from fakes import cfg_with
from pixcam.chain.effects import Effects, EffectsSettings
from pixcam.chain.framing import (
    MAX_UPSCALE,
    Box,
    Framer,
    FramingSettings,
    Head,
    crop_frame,
    crop_output,
    find_head,
    measure,
    snap,
    spring_step,
    target_view,
    view_box,
)
from pixcam.chain.segment import load_segmenter
from pixcam.chain.segment.output import GridMapping, SegmentationOutput


class StepClock:
    """A clock that moves by one frame period per call, as a video at `fps` would."""

    def __init__(self, fps: float) -> None:
        self.t, self.dt = 0.0, 1.0 / fps

    def __call__(self) -> float:
        self.t += self.dt
        return self.t


def blob_person(w: int = 96, h: int = 54, x: int = 60) -> np.ndarray:
    """A head (circle) on shoulders (a wide box reaching the bottom), as probabilities."""
    m = np.zeros((h, w), np.float32)
    cv2.circle(m, (x, 14), 6, 1.0, -1)
    cv2.rectangle(m, (x - 16, 24), (x + 16, h - 1), 1.0, -1)
    cv2.rectangle(m, (x - 3, 19), (x + 3, 24), 1.0, -1)  # neck
    return m


# ----------------------------------------------------------------------------- units
def test_head_from_the_outline_and_from_face_parts() -> None:
    person = blob_person()
    head = find_head(person)
    assert head is not None
    assert abs(head.x - 60.5) < 1.5 and head.top == 8
    assert 8 <= head.height <= 20
    face = np.zeros_like(person, bool)
    face[10:20, 56:65] = True
    with_face = find_head(person, face)
    assert with_face is not None
    assert with_face.top == 8 and with_face.height == 12  # hair above the face counts
    assert find_head(np.zeros((54, 96), np.float32)) is None
    speck = np.zeros((54, 96), np.float32)
    speck[5, 5] = 1.0
    assert find_head(speck) is None  # noise is nobody


def test_spring_reaches_the_goal_without_overshoot() -> None:
    for v0 in (0.0, 50.0, 500.0):  # at rest, and coming in fast
        x, v, path = 0.0, v0, []
        for _ in range(90):
            x, v = spring_step(x, v, 100.0, 4.7, 1 / 30)
            path.append(x)
        assert max(path) <= 100.0
        assert abs(path[29] - 100.0) < 6.0  # within ~5 % after one second at speed 1
        assert np.all(np.diff(path) >= 0)


def test_target_stays_in_the_frame_and_within_the_zoom_limit() -> None:
    w, h = 1280, 720
    for head in (Head(5, 0, 40), Head(1275, 600, 40), Head(640, 300, 5), Head(640, 0, 700)):
        box = view_box(target_view(head, w, h, 0.6), w, h)
        assert box.x >= 0 and box.y >= 0 and box.x + box.w <= w + 1e-6
        assert box.y + box.h <= h + 1e-6
        assert box.w >= w / MAX_UPSCALE - 1e-6 and abs(box.w / box.h - w / h) < 1e-6


def test_framer_holds_still_then_returns_to_the_full_view() -> None:
    clock = StepClock(30)
    framer = Framer(FramingSettings("auto", 0.7, 1.0), clock)
    rng = np.random.default_rng(1)
    boxes = []
    for _ in range(120):  # a still person, measured with a pixel or two of noise
        head = Head(800 + rng.normal(0, 2), 200 + rng.normal(0, 2), 90 + rng.normal(0, 1))
        boxes.append(framer.update(head, 1280, 720))
    settled = boxes[60:]
    centres = np.array([(b.x + b.w / 2, b.y + b.h / 2) for b in settled])
    assert np.ptp(centres, axis=0).max() < 0.01 * 1280  # no jitter while still
    assert abs(settled[-1].x + settled[-1].w / 2 - 800) < 0.05 * 1280
    for _ in range(int(30 * 6)):  # nobody for six seconds
        box = framer.update(None, 1280, 720)
    assert box == Box(0.0, 0.0, 1280.0, 720.0)


def test_cropped_segmentation_lands_on_the_cropped_frame() -> None:
    """Warping the grid through the crop equals cropping the whole-frame warp."""
    rng = np.random.default_rng(3)
    grid = rng.random((23, 41)).astype(np.float32)
    out = SegmentationOutput(grid, None, GridMapping((640, 360), (640, 360), 16))
    box = Box(100.0, 50.0, 320.0, 180.0)
    whole = out.person_probability((640, 360))
    expected = crop_frame(np.ascontiguousarray(whole), box)
    assert snap(Box(100.4, 49.6, 319.8, 180.2), 640, 360) == box
    got = crop_output(out, box).person_probability((640, 360))
    assert np.abs(got - expected)[20:-20, 20:-20].max() < 0.02


class CornerPerson:
    """A segmenter that always sees a person's head and shoulders in the top-left corner."""

    has_parts = False

    def run(
        self, frame: np.ndarray, parts: bool = True, pyramid: object = None
    ) -> SegmentationOutput:
        h, w = frame.shape[:2]
        grid = cv2.resize(blob_person(96, 54, x=24), (w // 8, h // 8))
        return SegmentationOutput(grid, None, GridMapping((w, h), (w, h), 8))


def test_effects_frame_before_the_background() -> None:
    from fakes import cfg_with
    from pixcam.chain.effects import Effects, EffectsSettings

    clock = StepClock(30)
    cfg = cfg_with(framing={"mode": "auto"}, effects={"background": "color", "color": "#00ff00"})
    fx = Effects(EffectsSettings.from_config(cfg), CornerPerson(), clock=clock)
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 255, (360, 640, 3), np.uint8)
    stages: list[str] = []
    for _ in range(60):
        out = fx.process(frame, on_stage=lambda name, ms: stages.append(name))
    assert out.shape == frame.shape
    assert "frame" in stages
    # The person (left third of the frame) now fills the middle: the colour is at the edges
    # of the framed picture, and the middle column is the person, enlarged.
    green = (out[:, :, 1] == 255) & (out[:, :, 0] == 0)
    assert green[:, -20:].mean() > 0.9
    middle = out[210:, 300:340]  # below the shoulder line, whose soft edge may be green
    assert not green[210:, 300:340].any() and middle.std() > 20
    off = cfg_with(effects={"background": "color", "color": "#00ff00"})
    fx.update(EffectsSettings.from_config(off))
    plain = fx.process(frame)
    # Unframed, the middle of the picture is background again.
    assert ((plain[200:, 300:340, 1] == 255) & (plain[200:, 300:340, 0] == 0)).all()


# ----------------------------------------------------------------------------- real videos
@dataclass
class Figures:
    frames: int
    seen: int  # frames with a person found
    centred: float  # share of seen frames with the head in the output's middle third (across)
    still_frames: int
    still_max_step: float  # largest crop-centre step on still frames, share of the width
    max_step: float  # largest step on any frame
    inside: bool  # no crop edge ever left the frame
    zoomed: float  # share of frames with a crop smaller than the frame


def follow(video: Path, segmenter, fps: float, settings: FramingSettings) -> Figures:
    cap = cv2.VideoCapture(str(video))
    framer = Framer(settings, StepClock(fps))
    heads: list[Head | None] = []
    boxes: list[Box] = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        head = measure(segmenter.run(frame, parts=segmenter.has_parts))
        heads.append(head)
        boxes.append(snap(framer.update(head, w, h), w, h))  # as Effects crops
    cap.release()
    centred = [
        1 / 3 <= (hd.x - b.x) / b.w <= 2 / 3
        for hd, b in zip(heads, boxes, strict=True)
        if hd is not None
    ]
    cx = np.array([b.x + b.w / 2 for b in boxes])
    cy = np.array([b.y + b.h / 2 for b in boxes])
    steps = np.hypot(np.diff(cx), np.diff(cy)) / w
    # Still: the measured head moved less than 2 % of the width over the last half second.
    window = max(2, round(fps / 2))
    still = []
    for i in range(1, len(heads)):
        span = [hd for hd in heads[max(0, i - window) : i + 1] if hd is not None]
        xs = [hd.x for hd in span]
        ys = [hd.top for hd in span]
        still.append(len(span) == min(i + 1, window + 1) and max(np.ptp(xs), np.ptp(ys)) < 0.02 * w)
    still_steps = steps[np.array(still)]
    inside = all(
        b.x >= -1e-6 and b.y >= -1e-6 and b.x + b.w <= w + 1e-6 and b.y + b.h <= h + 1e-6
        for b in boxes
    )
    return Figures(
        frames=len(boxes),
        seen=len(centred),
        centred=float(np.mean(centred)) if centred else 0.0,
        still_frames=int(np.sum(still)),
        still_max_step=float(still_steps.max()) if len(still_steps) else 0.0,
        max_step=float(steps.max()),
        inside=inside,
        zoomed=float(np.mean([b.w < w - 0.5 for b in boxes])),
    )


@pytest.mark.parametrize(
    ("name", "fps"), [("walking-640x360.mp4", 30.0), ("presenter-1280x720.mp4", 24.0)]
)
def test_framing_on_real_videos(models_installed: Path, name: str, fps: float) -> None:
    video = need(VIDEOS / name, "test video")
    seg = load_segmenter(None, threads=2)
    fig = follow(video, seg, fps, FramingSettings("auto", 0.7, 1.0))
    print(f"\n{name}: {fig}")
    assert fig.seen >= 0.9 * fig.frames
    assert fig.zoomed > 0.5  # it did frame (not the full view all along)
    assert fig.centred >= 0.90
    assert fig.still_frames >= 10
    assert fig.still_max_step <= 0.01
    assert fig.inside


def test_face_privacy_follows_the_framed_picture(models_installed: Path) -> None:
    """Part effects read the segmentation through the crop: the blurred face is where the
    framed picture shows the head (the middle third, upper half), not where it was."""
    cap = cv2.VideoCapture(str(need(VIDEOS / "presenter-1280x720.mp4", "test video")))
    clip = [cap.read()[1] for _ in range(45)]
    cap.release()
    seg = load_segmenter(None, threads=2)
    outs = {}
    for privacy in ("none", "blur"):
        cfg = cfg_with(framing={"mode": "auto"}, parts={"privacy": privacy})
        fx = Effects(EffectsSettings.from_config(cfg), seg, clock=StepClock(24))
        for frame in clip:
            outs[privacy] = fx.process(frame)
    changed = cv2.absdiff(outs["none"], outs["blur"]).max(axis=2) > 30
    h, w = changed.shape
    assert changed.sum() > 0.01 * h * w  # a face's worth of pixels was blurred
    ys, xs = np.nonzero(changed)
    assert w / 3 <= np.median(xs) <= 2 * w / 3 and np.median(ys) <= h / 2
