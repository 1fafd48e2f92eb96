"""BodyPix and the MediaPipe selfie model run on the same frame, their probabilities averaged.

The two networks fail differently: BodyPix (stride 16) is blocky and claims bright background
structures beside the body, the selfie model (full-resolution output, trained on
webcam framing) follows the outline more closely but drops parts of a body further from the
camera. On the dev photos a weighted mean of both beats either one alone, even with BodyPix at
a smaller input (quality "balanced": 289 px, about the cost of BodyPix alone at 417 px; "best":
417 px); docs/cut.md. Body parts come from BodyPix only.

The selfie model's input is a fixed 256×256, so a 16:9 frame would reach it letterboxed into
256×144. It is given the square around the person BodyPix found instead (grown by a margin):
on a webcam frame that is ~1.6× finer where the outline is. Where that square leaves the frame
(on most upper-body frames, below and at the sides) its input is the frame mirrored at the
edge (`Segmenter.run`'s region), so the square stays square with the person centred and
clear of its borders: clipping it instead put the person against the input's edge and grey
padding beside it and cost accuracy (docs/cut.md#the-fusion-weight). Outside the square the
probability is BodyPix's alone (it found no person there). Where the person fits in
`SHORT_SIDE` of the square's side the other way, the square is that much shorter that way
(a rectangle at the same scale, which the selfie model runs on an input of its shape).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from pixcam.chain.pyramid import Box, Pyramid
from pixcam.chain.segment.base import Segmenter
from pixcam.chain.segment.engine import Engine
from pixcam.chain.segment.output import GridMapping, SegmentationOutput
from pixcam.i420 import Frame

# The square around BodyPix's person grows by this share of its side: on the dev photos 10 %
# beat the other margins tried (the selfie model wants some room around the person;
# docs/cut.md#the-steady-square).
CROP_MARGIN = 0.1
# On a stream the square stays where it was while the person's square moves less than this
# share of its side (and its side changes less than twice that): the selfie model's mask moves
# with its square by a pixel, so a square that follows every twitch of BodyPix's box makes the
# outline flicker. Half the margin keeps the person inside the old square
# (docs/cut.md#the-steady-square).
STEADY_SHARE = 0.05
# The selfie model's input may be this share of the square on its shorter side (256×224 or
# 224×256 beside 256×256), at the square's scale, when the person's box with its margin fits:
# an eighth less work with the same cut; shorter still lost it (docs/performance.md, "The
# selfie model on the person's rectangle").
SHORT_SIDE = 7 / 8
# On a stream, while the person's square holds (`STEADY_SHARE`), BodyPix runs on one frame in
# this many and the frames between use its last output and square; the selfie model runs on
# every frame. Part effects (fresh part heads) and a square that moved run both
# (docs/performance.md, "BodyPix on one frame in N").
MAIN_EVERY = 4
# On: a held BodyPix output is shifted by how far the selfie model's mask moved since BodyPix
# ran (its centre of mass, inside the same square). Off: that flickered more than holding it
# (docs/performance.md, "Lost").
CARRY = False
# A held BodyPix output serves only the frames right after it, within this many seconds of its
# run: not a frame after a pause (the stillness gate carrying, the stream stopped), when the
# picture may have changed.
HOLD_S = 0.25
_FIND_DIVISOR = 8  # BodyPix's probability is searched for the person at 1/8 of the frame size

Rect = tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels


def person_square(
    prob: np.ndarray, frame_size: tuple[int, int], margin: float = CROP_MARGIN, short: float = 1.0
) -> Box | None:
    """The square (x0, y0, x1, y1 in frame pixels) around the pixels where `prob` (covering the
    frame at any size) is ≥ 0.5, its side grown by `margin`, centred on them: it may reach
    beyond the frame. With `short` < 1 its side across the narrower way of those pixels is
    `short` of the square's where they fit in that (with the margin): a rectangle. Its corners
    are even: an I420 frame's chroma sample covers 2×2 pixels, so the square takes whole
    ones. None when there is no such pixel."""
    # cv2's bounding box of the non-zero pixels: a tenth of numpy's nonzero + min/max.
    bx, by, bw, bh = cv2.boundingRect((prob >= 0.5).view(np.uint8))
    if bw == 0:
        return None
    fw, fh = frame_size
    kx, ky = fw / prob.shape[1], fh / prob.shape[0]
    cx, cy = (bx + bw / 2) * kx, (by + bh / 2) * ky
    wide, high = bw * kx * (1.0 + margin), bh * ky * (1.0 + margin)
    full = max(wide, high)
    across = down = full
    if short < 1.0 and min(wide, high) <= full * short:
        across, down = (full * short, full) if wide < high else (full, full * short)
    x0, y0 = 2 * round((cx - across / 2) / 2), 2 * round((cy - down / 2) / 2)
    return x0, y0, x0 + max(2, 2 * round(across / 2)), y0 + max(2, 2 * round(down / 2))


@dataclass(frozen=True)
class ShiftedMapping(GridMapping):
    """A `GridMapping` whose probability lands `shift` (dx, dy) frame pixels further on."""

    shift: tuple[float, float] = (0.0, 0.0)

    def matrix(self, size: tuple[int, int]) -> np.ndarray:
        m = super().matrix(size)
        (fw, fh), (ow, oh) = self.frame_size, size
        # Target pixel u shows frame x - dx: its grid coordinate moves back by dx target pixels.
        m[0, 2] -= m[0, 0] * self.shift[0] * ow / fw
        m[1, 2] -= m[1, 1] * self.shift[1] * oh / fh
        return m


def mask_centre(out: SegmentationOutput, rect: Box) -> tuple[float, float] | None:
    """The centre of mass (frame pixels) of `out`'s probability, which covers `rect`; None
    when it is empty."""
    m = cv2.moments(out.segments)
    if m["m00"] <= 1e-6:
        return None
    gx, gy = m["m10"] / m["m00"], m["m01"] / m["m00"]  # on the grid, pixel centres at .5
    gh, gw = out.segments.shape[:2]
    return rect[0] + gx * (rect[2] - rect[0]) / gw, rect[1] + gy * (rect[3] - rect[1]) / gh


@dataclass
class FusedOutput(SegmentationOutput):
    """BodyPix's output whose person probability is blended with a second model's."""

    second: SegmentationOutput | None = None
    weight: float = 0.5  # of BodyPix's probability; the second model gets the rest
    # Where in the frame the second model looked (its whole input); None: the whole frame.
    second_rect: Rect | None = None

    @property
    def cell(self) -> float:
        """The second model's cell where it looked (the finer one: the refiner keeps it)."""
        if self.second is None:
            return super().cell
        rect = self.second_rect
        looked = self.frame_size[0] if rect is None else rect[2] - rect[0]  # in frame pixels
        return min(super().cell, self.second.cell * looked / self.second.frame_size[0])

    def person_probability(self, size: tuple[int, int] | None = None) -> np.ndarray:
        own = super().person_probability(size)
        if self.second is None:
            return own
        size = size or self.frame_size
        if self.second_rect is None:
            other = self.second.person_probability(size)
            return cv2.addWeighted(own, self.weight, other, 1.0 - self.weight, 0.0)
        return self._blend_in_rect(own, size, self.second, self.second_rect)

    def _blend_in_rect(
        self, own: np.ndarray, size: tuple[int, int], second: SegmentationOutput, rect: Rect
    ) -> np.ndarray:
        """`own` (changed in place) with the target pixels inside `rect` blended with `second`."""
        (ow, oh), (fw, fh) = size, self.frame_size
        sx, sy = ow / fw, oh / fh
        x0, y0, x1, y1 = rect
        u0, u1 = max(0, math.ceil(x0 * sx)), min(ow, math.floor(x1 * sx))
        v0, v1 = max(0, math.ceil(y0 * sy)), min(oh, math.floor(y1 * sy))
        if u1 <= u0 or v1 <= v0:
            return own
        # Target pixel (u0 + p) → frame x = (u + 0.5)/sx - 0.5 → the second model's input pixel
        # x' = (x + 0.5 - x0)·kx - 0.5 → its grid (its own mapping): one affine map in all.
        cw, ch = second.frame_size
        kx, ky = cw / (x1 - x0), ch / (y1 - y0)
        ax, ay = kx / sx, ky / sy
        bx = ((u0 + 0.5) / sx - x0) * kx - 0.5
        by = ((v0 + 0.5) / sy - y0) * ky - 0.5
        inner = second.mapping.matrix((cw, ch))
        m = np.empty((2, 3))
        m[:, 0], m[:, 1] = inner[:, 0] * ax, inner[:, 1] * ay
        m[:, 2] = inner[:, 0] * bx + inner[:, 1] * by + inner[:, 2]
        other = cv2.warpAffine(
            second.segments,
            m,
            (u1 - u0, v1 - v0),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        part = own[v0:v1, u0:u1]  # `own` is the warp's fresh array: blended in place
        cv2.addWeighted(part, self.weight, other, 1.0 - self.weight, 0.0, dst=part)
        return own


class FusedSegmenter:
    """Looks like the main `Segmenter` (spec, parts, run) but runs both models."""

    # `weight` is BodyPix's share of the mean: on the person's square the selfie model earns an
    # equal say (docs/cut.md#the-fusion-weight).
    def __init__(
        self, main: Segmenter, second: Segmenter, weight: float = 0.5, crop: bool = True
    ) -> None:
        self.main = main
        self.second = second
        self.weight = weight
        self.crop = crop  # give the second model the square around the person, not the frame
        # The square's shorter side on a rectangle the second model has an input for (1: squares).
        self.short = _short_side(second)
        self.spec = main.spec
        # Frames are a stream (set by `effects.Effects`): keep the square while the person
        # stays in it. Off for photos, each of which must get its own square.
        self.steady = False
        self.main_every = MAIN_EVERY  # on a stream only (`steady`)
        # False: BodyPix runs on every frame for now (only me splitting two people needs
        # each frame's own outline; set by `effects.Effects`).
        self.hold = True
        # The stream's clock, for how long a held output serves (set by `effects.Effects`:
        # a clip's frame clock makes a run independent of how long each frame took).
        self.clock: Callable[[], float] = time.monotonic
        self.carry = CARRY
        self._square: Box | None = None
        self._size: tuple[int, int] | None = None
        # BodyPix's output and square to use on the next frames instead of running it, when it
        # ran, how many frames more it serves and the selfie mask's centre then (`carry`).
        self._held: _Held | None = None
        self._main_ran = True  # on the last frame (`engines`)

    @property
    def has_parts(self) -> bool:
        return self.main.has_parts

    @property
    def engines(self) -> tuple[Engine, ...]:
        """The engines that ran on the last frame (their run times add up): not BodyPix's on a
        frame that used its held output."""
        if self._main_ran:
            return self.main.engine, self.second.engine
        return (self.second.engine,)

    @property
    def internal_resolution(self) -> int:
        return self.main.internal_resolution

    def run(self, frame: Frame, parts: bool = True, pyramid: Pyramid | None = None) -> FusedOutput:
        pyramid = pyramid or Pyramid(frame)  # both inputs come from the same halvings
        h, w = frame.shape[:2]
        held, self._held = self._held, None
        fresh = held is not None and self.clock() - held.t <= HOLD_S
        usable = fresh and self._size == (w, h) and self.steady and self.hold and not parts
        if held is not None and usable:
            # BodyPix's frame off: its last output, and the square it chose, stay.
            self._main_ran = False
            a, kept = held.out, held.square
            b = self.second.run(frame, parts=False, pyramid=pyramid, region=kept)
            if held.left > 1:
                self._held = _Held(a, kept, held.t, held.left - 1, held.centre)
            mapping = a.mapping
            centre = mask_centre(b, kept) if held.centre is not None else None
            if centre is not None and held.centre is not None:
                shift = (centre[0] - held.centre[0], centre[1] - held.centre[1])
                mapping = ShiftedMapping(mapping.frame_size, mapping.content, mapping.stride, shift)
            return FusedOutput(a.segments, a.part_heatmaps, mapping, b, self.weight, kept)
        self._main_ran = True
        a = self.main.run(frame, parts=parts, pyramid=pyramid)
        find = (max(1, w // _FIND_DIVISOR), max(1, h // _FIND_DIVISOR))
        prob = a.person_probability(find)
        square = person_square(prob, (w, h), short=self.short) if self.crop else None
        if square is None:
            self._square = None
            b = self.second.run(frame, parts=False, pyramid=pyramid)
            return FusedOutput(a.segments, a.part_heatmaps, a.mapping, b, self.weight)
        last = self._square
        square = self._steady(square, (w, h))
        b = self.second.run(frame, parts=False, pyramid=pyramid, region=square)
        # The square held: BodyPix may sit out the next frames (`MAIN_EVERY`).
        if self.steady and self.main_every > 1 and square == last:
            centre = mask_centre(b, square) if self.carry else None
            self._held = _Held(a, square, self.clock(), self.main_every - 1, centre)
        return FusedOutput(a.segments, a.part_heatmaps, a.mapping, b, self.weight, square)

    def _steady(self, square: Box, size: tuple[int, int]) -> Box:
        """On a stream, the last frame's square while this one's is near it."""
        last = self._square
        if self.steady and last is not None and self._size == size and _near(square, last):
            return last
        self._square, self._size = square, size
        return square


@dataclass
class _Held:
    """BodyPix's output kept for the frames after its run (`FusedSegmenter.run`)."""

    out: SegmentationOutput
    square: Box
    t: float  # when BodyPix ran (the segmenter's clock)
    left: int  # frames it still serves
    centre: tuple[float, float] | None  # the selfie mask's centre then; None: not carried


def _near(square: Box, last: Box, share: float = STEADY_SHARE) -> bool:
    """`square`'s centre within `share` of `last`'s longer side of `last`'s, its sides within
    twice that of `last`'s (a rectangle: each of its own)."""
    side = max(last[2] - last[0], last[3] - last[1])
    dx = abs(square[0] + square[2] - last[0] - last[2]) / 2
    dy = abs(square[1] + square[3] - last[1] - last[3]) / 2
    dw = abs(square[2] - square[0] - last[2] + last[0])
    dh = abs(square[3] - square[1] - last[3] + last[1])
    return max(dx, dy) <= share * side and max(dw, dh) <= 2 * share * side


def _short_side(second: Segmenter) -> float:
    """`SHORT_SIDE` when `second` has inputs for both rectangles beside its square, else 1."""
    shapes: set[tuple[int, int]] = getattr(second, "input_shapes", set())
    for h, w in shapes:
        short = round(h * SHORT_SIDE)
        if h == w and {(short, w), (h, short)} <= shapes:
            return SHORT_SIDE
    return 1.0
