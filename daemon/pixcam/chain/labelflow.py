"""Who was where, carried to this frame: the last frame's labels (you, someone else) moved by
dense optical flow at the people stage's size (160×90 for 16:9).

Only me uses it while someone else is about (docs/people.md): a person crossing in front of
you moves with their own motion while you stay, so their pixels inside your outline are found
where the flow brings their last pixels. A pixel the picture does not match at the place the
flow comes from (it was covered, or newly covered, last frame) carries nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MATCH = 24  # grey levels a carried pixel may differ from where it came from and still count
AGREE = 1.5  # mask pixels a frame a pixel's own motion may differ from its person's
LEVELS = 8  # colour levels per channel of the colour model (8³ bins)
LEARN = 0.2  # share of a frame's colours in the model (the rest: the frames before)


@dataclass(frozen=True)
class Carried:
    """Last frame's labels at this frame's pixels (bool H×W each), each person's pixels moved
    by that person's motion (the median of the flow over them: a person moves as one, where
    the flow of a single pixel near someone else's edge is smeared with theirs)."""

    mine: np.ndarray  # carried from your pixels, the picture matching
    theirs: np.ndarray  # carried from someone else's, the picture matching
    motion: np.ndarray  # float32 H×W×2: where each pixel came from, (dx, dy) mask pixels
    you: np.ndarray | None  # your motion (dx, dy) back to the last frame, None: not seen
    them: np.ndarray | None  # theirs


class LabelFlow:
    """`carry(grey)` before the frame is labelled, `keep(grey, mine, theirs)` after;
    `forget()` when nobody else is about (the next carry has nothing to carry)."""

    def __init__(self) -> None:
        self._dis = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_ULTRAFAST)
        self._grey: np.ndarray | None = None
        self._labels: np.ndarray | None = None  # uint8: 0 nobody, 1 you, 2 someone else
        self._grid: np.ndarray | None = None

    def forget(self) -> None:
        self._grey = self._labels = None

    def carry(self, grey: np.ndarray) -> Carried | None:
        last, labels = self._grey, self._labels
        if last is None or labels is None or last.shape != grey.shape:
            return None
        h, w = grey.shape
        # From this frame back to the last: each pixel's origin.
        flow = self._dis.calc(grey, last, None)  # type: ignore[call-overload]  # None: a new array
        if self._grid is None or self._grid.shape[:2] != (h, w):
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid = np.dstack([xs, ys])
        came = cv2.remap(labels, self._grid + flow, None, cv2.INTER_NEAREST, borderValue=0)
        out: list[np.ndarray] = []
        moves: list[np.ndarray | None] = []
        for k in (1, 2):
            mine = came == k
            if not mine.any():
                out.append(np.zeros((h, w), bool))
                moves.append(None)
                continue
            v = np.median(flow[mine], axis=0)
            # dst(p) = src(p + v): the person's last pixels moved by their motion.
            m = np.array([[1, 0, v[0]], [0, 1, v[1]]], np.float32)
            flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
            moved = cv2.warpAffine((labels == k).astype(np.float32), m, (w, h), flags=flags)
            seen = cv2.warpAffine(last, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
            # The picture matches where it came from, and the pixel moves with the person.
            along = (np.abs(flow[..., 0] - v[0]) <= AGREE) & (np.abs(flow[..., 1] - v[1]) <= AGREE)
            out.append((moved > 0.5) & (cv2.absdiff(seen, grey) <= MATCH) & along)
            moves.append(v)
        return Carried(out[0], out[1], flow, moves[0], moves[1])

    def keep(self, grey: np.ndarray, mine: np.ndarray, theirs: np.ndarray) -> None:
        labels = np.zeros(grey.shape, np.uint8)
        labels[theirs] = 2
        labels[mine] = 1
        self._grey, self._labels = grey, labels


class Colours:
    """What you and someone else wear: a colour histogram each (8 levels a channel), learnt from
    the pixels that are surely theirs; `ratio(bgr)` is each pixel's log likelihood of you
    against them."""

    def __init__(self) -> None:
        self._hist: list[np.ndarray | None] = [None, None]  # you, them

    def forget(self) -> None:
        self._hist = [None, None]

    @staticmethod
    def bins(bgr: np.ndarray) -> np.ndarray:
        q = (bgr // (256 // LEVELS)).astype(np.int32)
        return (q[..., 0] * LEVELS + q[..., 1]) * LEVELS + q[..., 2]

    def learn(self, bins: np.ndarray, mine: np.ndarray, theirs: np.ndarray) -> None:
        for k, mask in enumerate((mine, theirs)):
            if not mask.any():
                continue
            h = np.bincount(bins[mask], minlength=LEVELS**3).astype(np.float32)
            h /= h.sum()
            old = self._hist[k]
            self._hist[k] = h if old is None else (1 - LEARN) * old + LEARN * h

    def ratio(self, bins: np.ndarray) -> np.ndarray | None:
        you, them = self._hist
        if you is None or them is None:
            return None
        lut = np.log(you + 1e-3) - np.log(them + 1e-3)
        return lut[bins].astype(np.float32)
