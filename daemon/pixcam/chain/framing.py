"""Auto-framing: a crop that keeps the head and shoulders centred, following smoothly.

`find_head` reads where the head is from a small person-probability map (and the two face
parts where the model has them); `target_view` turns it into the crop the output should show;
`Framer` follows that target with a critically damped spring behind a dead zone, so the crop
does not shake while the person sits still and never overshoots. `snap` puts that view on
whole pixels, `crop_frame` cuts and enlarges it (one resize) and `crop_output` maps the
segmentation onto it (no pixels touched), so the background effect and the part effects work
on the framed picture.

Everything here is plain numpy in and out; `effects.Effects` is the only caller.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

import cv2
import numpy as np

from pixcam.chain.segment.output import GridMapping, SegmentationOutput

MAP_WIDTH = 96  # width of the probability map the head is found on (a few cells per head)
MIN_PERSON = 0.004  # a person region smaller than this share of the map is noise
MAX_UPSCALE = 2.0  # the crop is never smaller than 1/MAX_UPSCALE of the frame per side
HEAD_AND_SHOULDERS = 2.0  # head top to below the shoulders, in head heights (face parts: chin)
HEADROOM = 0.12  # space above the head, as a share of the crop height
LOST_S = 3.0  # back to the full view after this long without a person
DEAD_ZONE = 0.05  # the goal moves only when the target leaves it by this share of the crop
TARGET_EMA = 0.35  # weight of a new measurement in the target's running average
SNAP_PX = 0.25  # closer than this (and slower than this per second): at the goal
FACE_PARTS = (0, 1)  # left_face, right_face


@dataclass(frozen=True)
class FramingSettings:
    """`mode` "off" | "auto"; `zoom`: share of the output height the head and shoulders fill;
    `speed`: 1 settles a move in about a second, 2 in half a second."""

    mode: str = "off"
    zoom: float = 0.7
    speed: float = 1.0

    @property
    def on(self) -> bool:
        return self.mode == "auto"


class Head(NamedTuple):
    """The head in frame pixels: centre x, top y, height."""

    x: float
    top: float
    height: float


class View(NamedTuple):
    """A crop in frame pixels: centre and height (the width follows from the aspect ratio)."""

    cx: float
    cy: float
    height: float


class Box(NamedTuple):
    """A crop's corner and size in frame pixels (floats; `snap` rounds them for the cut)."""

    x: float
    y: float
    w: float
    h: float


# ----------------------------------------------------------------------------- measuring
def find_head(person: np.ndarray, face: np.ndarray | None = None) -> Head | None:
    """The head of the largest person on a small probability map, in map pixels.

    `person` is float probability h×w; `face` (bool h×w, optional) marks face-part pixels.
    With a face the head spans from the face's bottom up to the person's top above it;
    without one, it is a band at the top of the person region (`_head_from_outline`)."""
    mask = (person >= 0.5).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n < 2:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[biggest, cv2.CC_STAT_AREA] < MIN_PERSON * mask.size:
        return None
    body = labels == biggest
    if face is not None:
        ys, xs = np.nonzero(face & body)
        if len(xs) >= 2:
            x0, x1 = xs.min(), xs.max() + 1
            cols = body[:, x0:x1]
            top = int(np.argmax(cols.any(axis=1)))  # hair above the face is head too
            bottom = float(ys.max() + 1)
            return Head(float(xs.mean()) + 0.5, float(top), max(1.0, bottom - top))
    return _head_from_outline(body)


def _head_from_outline(body: np.ndarray) -> Head:
    """Head from the person's outline alone: a band at the top about 1.2 head widths tall."""
    rows = np.nonzero(body.any(axis=1))[0]
    top = int(rows[0])
    widths = body.sum(axis=1)
    band = 3
    for _ in range(3):  # settles in two or three rounds: band height <-> head width
        width = float(np.median(widths[top : top + band]))
        band = max(2, round(1.2 * width))
    ys, xs = np.nonzero(body[top : top + band])
    return Head(float(xs.mean()) + 0.5, float(top), float(band))


def measure(out: SegmentationOutput, threshold: float = 0.5) -> Head | None:
    """The head in frame pixels, from a segmentation (face parts when it carries them)."""
    fw, fh = out.frame_size
    size = (MAP_WIDTH, max(8, round(MAP_WIDTH * fh / fw)))
    person = out.person_probability(size)
    if threshold != 0.5:  # find_head cuts at 0.5: move the user's threshold there
        person = person - (threshold - 0.5)
    face = None
    if out.part_heatmaps is not None:
        ids = np.argmax(out.part_logits(size), axis=2)
        face = np.isin(ids, FACE_PARTS) & (person >= 0.5)
    head = find_head(person, face)
    if head is None:
        return None
    sx, sy = fw / size[0], fh / size[1]
    return Head(head.x * sx, head.top * sy, head.height * sy)


def full_view(width: int, height: int) -> View:
    return View(width / 2, height / 2, float(height))


def target_view(head: Head, width: int, height: int, zoom: float) -> View:
    """The crop that puts the head and shoulders over `zoom` of the output height, the head
    centred across with `HEADROOM` above it, inside the frame and within `MAX_UPSCALE`."""
    h = HEAD_AND_SHOULDERS * head.height / zoom
    h = min(float(height), max(height / MAX_UPSCALE, h))
    top = head.top - HEADROOM * h
    return clamp_view(View(head.x, top + h / 2, h), width, height)


def clamp_view(view: View, width: int, height: int) -> View:
    """The same view shifted (and shrunk if need be) to lie wholly inside the frame."""
    h = min(float(height), max(height / MAX_UPSCALE, view.height))
    w = min(float(width), h * width / height)
    h = w * height / width
    cx = min(max(view.cx, w / 2), width - w / 2)
    cy = min(max(view.cy, h / 2), height - h / 2)
    return View(cx, cy, h)


def view_box(view: View, width: int, height: int) -> Box:
    w = view.height * width / height
    return Box(view.cx - w / 2, view.cy - view.height / 2, w, view.height)


# ----------------------------------------------------------------------------- following
def spring_step(x: float, v: float, goal: float, omega: float, dt: float) -> tuple[float, float]:
    """One exact step of a critically damped spring towards `goal`; never overshoots."""
    d = x - goal
    e = math.exp(-omega * dt)
    k = (v + omega * d) * dt
    nd, nv = (d + k) * e, (v - omega * k) * e
    if nd * d < 0 or (abs(nd) < SNAP_PX and abs(nv) < SNAP_PX):
        return goal, 0.0  # it would cross the goal (it came in fast), or it is there
    return goal + nd, nv


class Framer:
    """Follows the target view over frames; `update` returns the crop for this frame.

    `clock` gives seconds (time.monotonic by default; tests step it by the video's frame
    period), so the motion's speed is the same at any frame rate."""

    def __init__(
        self, settings: FramingSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        self._view: list[float] | None = None  # cx, cy, height
        self._vel = [0.0, 0.0, 0.0]
        self._target: list[float] | None = None  # running average of the measured target
        self._goal: View | None = None
        self._t: float | None = None
        self._seen: float | None = None  # when a person was last seen
        self._size: tuple[int, int] | None = None

    def update(self, head: Head | None, width: int, height: int) -> Box:
        now = self._clock()
        if self._size != (width, height):
            self.reset()
            self._size = (width, height)
        dt = 0.0 if self._t is None else min(0.25, max(0.0, now - self._t))
        self._t = now
        full = full_view(width, height)
        if self._view is None:
            self._view = list(full)
        if head is not None:
            self._seen = now
            self._follow(target_view(head, width, height, self.settings.zoom), width / height)
        elif self._seen is None or now - self._seen > LOST_S:
            self._target, self._goal = None, full  # nobody for a while: the whole room
        goal = self._goal or full
        omega = 4.7 * self.settings.speed  # critically damped: within 5 % after 1/speed s
        for i in range(3):
            self._view[i], self._vel[i] = spring_step(
                self._view[i], self._vel[i], goal[i], omega, dt
            )
        view = clamp_view(View(*self._view), width, height)
        self._view = list(view)
        return view_box(view, width, height)

    def _follow(self, target: View, aspect: float) -> None:
        """Average the target, and move the goal only when the target leaves the dead zone."""
        if self._target is None:
            self._target = list(target)
        else:
            self._target = [
                a + TARGET_EMA * (b - a) for a, b in zip(self._target, target, strict=True)
            ]
        t = View(*self._target)
        g = self._goal
        if g is None:
            self._goal = t
            return
        moved = max(abs(t.cx - g.cx), abs(t.cy - g.cy)) > DEAD_ZONE * g.height * aspect
        resized = abs(t.height - g.height) > 2 * DEAD_ZONE * g.height
        if moved or resized:
            self._goal = t


# ----------------------------------------------------------------------------- cropping
def _crop_matrix(box: Box, size: tuple[int, int]) -> np.ndarray:
    """Affine map from output pixel (u, v) to frame pixel, pixel centres aligned."""
    sx, sy = box.w / size[0], box.h / size[1]
    return np.array(
        [[sx, 0.0, box.x + 0.5 * sx - 0.5], [0.0, sy, box.y + 0.5 * sy - 0.5]], dtype=np.float64
    )


def is_full(box: Box, width: int, height: int) -> bool:
    return box.w >= width - 0.5 and box.h >= height - 0.5


def snap(box: Box, width: int, height: int) -> Box:
    """The box on whole pixels, inside the frame: a plain resize of a slice is ~7× cheaper
    than a sub-pixel warp at 720p, and a step of one camera pixel does not show."""
    w, h = min(width, max(1, round(box.w))), min(height, max(1, round(box.h)))
    x = min(max(0, round(box.x)), width - w)
    y = min(max(0, round(box.y)), height - h)
    return Box(float(x), float(y), float(w), float(h))


def crop_frame(frame: np.ndarray, box: Box) -> np.ndarray:
    """The (whole-pixel) box of the frame, scaled up to the frame's own size: one resize."""
    h, w = frame.shape[:2]
    x, y, bw, bh = (int(v) for v in box)
    return cv2.resize(frame[y : y + bh, x : x + bw], (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class CroppedMapping(GridMapping):
    """A `GridMapping` whose "frame" is the crop `box` of the `source` mapping's frame, shown
    at `frame_size`: every warp of the probability and part maps lands on the cropped picture.
    `content` is scaled so that a grid cell's size in output pixels comes out right."""

    source: GridMapping | None = None
    box: Box = Box(0.0, 0.0, 0.0, 0.0)

    def matrix(self, size: tuple[int, int]) -> np.ndarray:
        assert self.source is not None
        m_src = self.source.matrix(self.source.frame_size)  # frame pixel -> grid
        m_crop = _crop_matrix(self.box, size)  # output pixel -> frame pixel
        lin = m_src[:, :2] @ m_crop[:, :2]
        off = m_src[:, :2] @ m_crop[:, 2] + m_src[:, 2]
        return np.hstack([lin, off[:, None]])


def crop_output(out: SegmentationOutput, box: Box) -> SegmentationOutput:
    """The segmentation as seen through the crop: the same grid, mapped onto the crop."""
    m = out.mapping
    fw, fh = m.frame_size
    content = (m.content[0] * box.w / fw, m.content[1] * box.h / fh)
    return replace(out, mapping=CroppedMapping(m.frame_size, content, m.stride, m, box))  # type: ignore[arg-type]
