"""Whether the picture moved since the network last ran: when it did not, the mask is carried.

A person on a video call is mostly still, and the network (with the refiner after it) is most
of a frame's cost. The test is cheap: a grey thumbnail (128 px wide, from the frame's shared
pyramid, so about 0.1 ms) against the thumbnail of the frame the network last saw. Each
thumbnail pixel averages a 10×10 block of a 720p frame, so camera noise stays under
`DIFF_LEVEL` while a moving hand, head or shoulder changes dozens of them at once; a smaller
thumbnail misses slow movements for longer. The
reference is the last *inferred* frame, not the previous one, so a slow drift adds up and
triggers too; and after `MAX_CARRY` carried frames the network runs anyway (light changes,
a mask that was wrong, a drift too slow for the thumbnail).

`MAX_CARRY` = 2 bounds any movement the test misses to 2 frames (the lag the project allows)
and still lets the network sleep on 2 frames of 3; a slow drift can stay under any threshold
for a few frames, so the cap, not the thresholds, holds the lag, and the thresholds can be
loose enough to carry most still frames (docs/live-costs.md#why-the-thumbnail-and-the-thresholds).
"""

from __future__ import annotations

import cv2
import numpy as np

from pixcam.chain.pyramid import Pyramid

THUMB_WIDTH = 128
DIFF_LEVEL = 8  # grey levels (0..255) a thumbnail pixel must change by to count as moved
EDGE_MOVED = 0.006  # share of thumbnail pixels moving near the person's outline (~55 of 128×72)
ANY_MOVED = 0.03  # share moving anywhere (someone walks in, the camera turns)
EDGE_BAND = 5  # outline band width in thumbnail pixels (±2, ~±20 px at 720p)
MAX_CARRY = 2  # carried frames in a row at most: the network still runs at ≥ fps/3


class MotionGate:
    """Per frame: `still(pyramid)` asks, then `carry()` or `ran()` says what was done."""

    def __init__(self, max_carry: int = MAX_CARRY) -> None:
        self.max_carry = max_carry
        self.reset()

    def reset(self) -> None:
        self._ref: np.ndarray | None = None  # thumbnail of the frame the network last saw
        self._band: np.ndarray | None = None  # its mask's outline band (uint8 0/1), if known
        self._thumb: np.ndarray | None = None  # thumbnail of the frame just asked about
        self.carried = 0  # frames carried since the network last ran

    def still(self, pyramid: Pyramid) -> bool:
        """True when the picture hardly moved since the network last ran (and it ran recently
        enough): the last mask may be kept."""
        w, h = pyramid.size
        tw = min(w, THUMB_WIDTH)
        th = max(1, round(h * tw / w))
        thumb = self._thumb = cv2.cvtColor(pyramid.down_to((tw, th)), cv2.COLOR_BGR2GRAY)
        ref = self._ref
        if ref is None or ref.shape != thumb.shape or self.carried >= self.max_carry:
            return False
        moved = cv2.threshold(cv2.absdiff(thumb, ref), DIFF_LEVEL, 1, cv2.THRESH_BINARY)[1]
        if cv2.countNonZero(moved) > ANY_MOVED * thumb.size:
            return False
        # Only movement at the outline changes the mask: a talking mouth or a hand in front of
        # the chest does not (a hand that leaves the body crosses the outline).
        edge = moved if self._band is None else cv2.bitwise_and(moved, self._band)
        return cv2.countNonZero(edge) <= EDGE_MOVED * thumb.size

    def carry(self) -> None:
        self.carried += 1

    def ran(self, prob: np.ndarray | None = None) -> None:
        """The network saw the frame last asked about: it is the new reference. `prob` is its
        person probability (float 0..1, the frame's aspect), whose outline is watched."""
        self._ref, self._thumb = self._thumb, None
        self.carried = 0
        self._band = None
        if prob is not None and self._ref is not None:
            th, tw = self._ref.shape
            mask = (cv2.resize(prob, (tw, th), interpolation=cv2.INTER_AREA) >= 0.5).astype(
                np.uint8
            )
            kernel = np.ones((EDGE_BAND, EDGE_BAND), np.uint8)
            self._band = cv2.subtract(cv2.dilate(mask, kernel), cv2.erode(mask, kernel))
