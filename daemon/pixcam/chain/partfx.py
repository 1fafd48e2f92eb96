"""Body-part effects for the live picture: the coloured-parts view and part privacy.

Applied after the background compose, on top of any background mode:

- **view**: the seed's coloured-part image (`overlay.to_colored_part_mask`, the same colouring
  `pixcam segment --parts --overlay` uses) drawn over the person at an opacity, like the seed's
  `toColoredPartImageData` + `drawMask`;
- **privacy**: blur or pixelate chosen parts (`"face"`, `"hands"` or any part names), like the
  seed's `blurBodyPart`, e.g. to keep the background but anonymise the face.

Part maps follow the person mask's refinement:

1. temporal smoothing: a motion-adaptive EMA of the 24 part logits on the network's own grid
   (31×18 cells for 720p: a few thousand numbers), so labels do not flicker at part borders on
   a still person but follow a moving one at once;
2. feathered edges: an effect's alpha is a soft part mask, bilinearly upsampled, times the
   refined person alpha, so it ends where the person ends and fades where parts meet.

Cost: everything per-part runs on a small working grid (long side 160 px); full-resolution
pixels are touched only inside the bounding box of the person (view) or of the chosen parts
(privacy), with OpenCV's saturating uint8 arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from pixcam.chain.overlay import to_colored_part_mask
from pixcam.chain.segment.output import GridMapping, SegmentationOutput
from pixcam.errors import PixcamError
from pixcam.parts import PART_NAMES, RAINBOW, part_ids

Palette = tuple[tuple[int, int, int], ...]
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)

_WORK_LONG = 160  # long side of the working grid for labels and masks (8× below 720p)
_MOTION_LO, _MOTION_HI = 0.015, 0.06  # grey change (0..1) from "still" to "moving", as refine
_THUMB_LONG = 96  # long side of the grey thumbnail motion is measured on
# Privacy mask: a pixel is fully covered when the chosen parts hold this much of the part
# probability (generous on purpose: an uncovered sliver of face defeats the point), nothing
# below _COVER_LO.
_COVER_LO, _COVER_HI = 0.2, 0.45
_BLUR_FRAC = 1 / 36  # privacy blur sigma as a fraction of the frame height (20 px at 720p)
_PIXEL_FRAC = 1 / 32  # pixelate block size as a fraction of the frame height (22 px at 720p)


@dataclass(frozen=True)
class PartSettings:
    """What to draw on the body parts; mirrors `[parts]` (plus `[refine]` smoothing/feather).

    Built from a `Config` by `effects.EffectsSettings.from_config`; unchecked: the config
    schema holds the ranges and the part names (`pixcam.config`)."""

    view: bool = False  # draw the 24 coloured parts over the person
    opacity: float = 0.7  # of the coloured parts, 0..1
    privacy: str = "none"  # one of PRIVACY_MODES
    privacy_parts: tuple[str, ...] = ("face",)  # part names and/or groups ("face", "hands")
    palette: Palette = RAINBOW  # RGB, one colour per part id
    smoothing: float = 0.5  # temporal smoothing of the part maps, 0..0.95 (`[refine]`)
    feather: float = 6.0  # extra soft edge of the privacy mask, output pixels (`[refine]`)

    def __post_init__(self) -> None:
        if len(self.palette) != len(PART_NAMES):  # not a setting: the caller's own table
            raise PixcamError(
                f"a part palette needs {len(PART_NAMES)} colours, got {len(self.palette)}"
            )
        if isinstance(self.privacy_parts, str):  # "face" would otherwise be read as f, a, c, e
            object.__setattr__(self, "privacy_parts", (self.privacy_parts,))

    @property
    def privacy_ids(self) -> list[int]:
        return part_ids(self.privacy_parts)


# ------------------------------------------------------------------------------ helpers
def work_size(width: int, height: int, long_side: int = _WORK_LONG) -> tuple[int, int]:
    """(w, h) with the frame's aspect and `long_side` as its long side (never above the frame)."""
    k = min(1.0, long_side / max(width, height))
    return max(1, round(width * k)), max(1, round(height * k))


def softmax_sum(logits: np.ndarray, ids: list[int]) -> np.ndarray:
    """Per cell, the share of the part probability (softmax over 24 logits) held by `ids`."""
    z = logits - logits.max(axis=2, keepdims=True)
    e = np.exp(z, out=z)
    return e[..., ids].sum(axis=2) / e.sum(axis=2)


def _parts_found(core: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """float32 0/1: the connected regions of `candidate` that contain some `core` pixel.

    A faint face-like patch elsewhere (a second person's shoulder at the frame edge) is no face
    unless a chosen part is the most likely part somewhere inside it."""
    n, labels = cv2.connectedComponents(candidate.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(candidate.shape, np.float32)
    keep = np.zeros(n, np.float32)
    keep[np.unique(labels[core])] = 1.0
    keep[0] = 0.0
    return keep[labels]


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    y = (x - np.float32(lo)) * np.float32(1 / (hi - lo))
    return np.clip(y, 0.0, 1.0, out=y)


def _box_of(mask: np.ndarray, size: tuple[int, int]) -> tuple[Box, Box] | None:
    """Bounding box of a small whole-frame mask's non-zero pixels, grown by one small pixel:
    (x0, y0, x1, y1) on the mask and the same box in frame pixels; None when it is empty."""
    x, y, bw, bh = cv2.boundingRect(mask)
    if bw == 0 or bh == 0:
        return None
    sh, sw = mask.shape[:2]
    small = (max(0, x - 1), max(0, y - 1), min(sw, x + bw + 1), min(sh, y + bh + 1))
    kx, ky = size[0] / sw, size[1] / sh
    full = (
        round(small[0] * kx),
        round(small[1] * ky),
        round(small[2] * kx),
        round(small[3] * ky),
    )
    return small, full


def crop_resize(small: np.ndarray, boxes: tuple[Box, Box]) -> np.ndarray:
    """The part of a whole-frame small image under a box, bilinearly resized to the box's frame
    pixels: a whole-frame resize restricted to the box (boxes from `_box_of` keep both
    aligned to within a fraction of a frame pixel)."""
    (sx0, sy0, sx1, sy1), (x0, y0, x1, y1) = boxes
    return cv2.resize(small[sy0:sy1, sx0:sx1], (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)


def blend_into(dst: np.ndarray, fg: np.ndarray, alpha: np.ndarray, opacity: float = 1.0) -> None:
    """dst += (fg - dst)·a·opacity in place, uint8 saturating arithmetic: ±1 level, and exact
    where a = 0 (dst untouched) and where a·opacity = 1 (fg)."""
    a3 = cv2.cvtColor(alpha, cv2.COLOR_GRAY2BGR)
    k = opacity / 255
    fga = cv2.multiply(fg, a3, scale=k)
    cv2.multiply(dst, a3, dst=a3, scale=k)
    cv2.subtract(dst, a3, dst=dst)
    cv2.add(dst, fga, dst=dst)


def warp_crop(
    grid: np.ndarray, mapping: GridMapping, size: tuple[int, int], box: Box
) -> np.ndarray:
    """`mapping.warp(grid, size)[y0:y1, x0:x1]`, computing only the crop."""
    x0, y0, x1, y1 = box
    m = mapping.matrix(size)
    m[:, 2] += m[:, :2] @ np.array([x0, y0], dtype=np.float64)
    return cv2.warpAffine(
        grid,
        m,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


# ----------------------------------------------------------------------- part tracking
class PartTracker:
    """Motion-adaptive EMA of the 24 part logits on the network's grid.

    Like the refiner, picture motion (not the network's change of mind) decides: where the
    picture is still, labels are averaged over ~1/(1-smoothing) frames, which removes the
    flicker of near-equal logits at part borders; where it moves, the new logits win at once.
    """

    def __init__(self, smoothing: float = 0.5) -> None:
        self.smoothing = smoothing
        self.reset()

    def reset(self) -> None:
        self._state: np.ndarray | None = None
        self._thumb: np.ndarray | None = None

    def update(self, frame_bgr: np.ndarray, out: SegmentationOutput) -> np.ndarray:
        """Smoothed part logits (float32 gh×gw×24, the network's grid) for this frame."""
        logits = out.part_heatmaps
        if logits is None:
            raise PixcamError(
                "this model has no body-part outputs; pick one whose `pixcam models list` "
                "entry says person+parts, or turn the part effects off"
            )
        logits = np.asarray(logits, dtype=np.float32)
        thumb = self._thumbnail(frame_bgr)
        state, prev = self._state, self._thumb
        self._thumb = thumb
        if (
            self.smoothing <= 0
            or state is None
            or prev is None
            or state.shape != logits.shape
            or prev.shape != thumb.shape
        ):
            self._state = logits.copy()
            return self._state
        keep = np.float32(self.smoothing) * (1.0 - self._motion(prev, thumb, out, logits.shape))
        state += (1.0 - keep)[..., None] * (logits - state)
        return state

    @staticmethod
    def _thumbnail(frame_bgr: np.ndarray) -> np.ndarray:
        h, w = frame_bgr.shape[:2]
        tw, th = work_size(w, h, _THUMB_LONG)
        # Area average of a linear 2× sample: ~0.1 ms at 720p, and camera noise averages out.
        mid = cv2.resize(frame_bgr, (tw * 2, th * 2), interpolation=cv2.INTER_LINEAR)
        small = cv2.resize(mid, (tw, th), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32) * np.float32(1 / 255)

    @staticmethod
    def _motion(
        prev: np.ndarray, thumb: np.ndarray, out: SegmentationOutput, shape: tuple[int, ...]
    ) -> np.ndarray:
        """0 (still) .. 1 (moving) per grid cell."""
        th, tw = thumb.shape
        diff = cv2.absdiff(thumb, prev)
        # A cell is ~2 thumbnail pixels wide: average over its footprint before sampling it.
        cell = out.mapping.stride * tw / out.mapping.content[0]
        k = max(1, round(cell)) | 1
        diff = cv2.blur(diff, (k, k), borderType=cv2.BORDER_REFLECT)
        # matrix() maps thumbnail pixels onto grid cells: exactly the forward warp we need.
        m = out.mapping.matrix((tw, th))
        grid = cv2.warpAffine(
            diff, m, (shape[1], shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return _ramp(grid, _MOTION_LO, _MOTION_HI)


# ----------------------------------------------------------------------------- effects
class PartEffects:
    """Stateful (the part-map smoothing): one per stream; `reset()` on a cut or new source.

    Pipeline use: `seg.run(frame, parts=fx.needs_parts)`, then after the background compose
    `frame = fx.apply(frame, out, alpha)`.
    """

    def __init__(self, settings: PartSettings | None = None) -> None:
        self._settings = settings or PartSettings()
        self._tracker = PartTracker(self._settings.smoothing)

    @property
    def settings(self) -> PartSettings:
        return self._settings

    @property
    def needs_parts(self) -> bool:
        """Whether any effect is on, i.e. the segmenter must read the part heatmaps."""
        s = self._settings
        return s.view or s.privacy != "none"

    def update(self, settings: PartSettings | None = None, **changes: Any) -> None:
        """Change settings live (a whole `PartSettings`, or single fields by keyword)."""
        new = settings or self._settings
        self._settings = replace(new, **changes) if changes else new  # validates
        self._tracker.smoothing = self._settings.smoothing

    def reset(self) -> None:
        """Forget the previous frames (new source, resolution change, scene cut)."""
        self._tracker.reset()

    def smoothed_logits(self, frame_bgr: np.ndarray, out: SegmentationOutput) -> np.ndarray:
        """Advance the temporal smoothing by one frame; the grid's smoothed logits."""
        return self._tracker.update(frame_bgr, out)

    @staticmethod
    def part_labels(
        logits: np.ndarray, out: SegmentationOutput, size: tuple[int, int], box: Box | None = None
    ) -> np.ndarray:
        """int32 part id per pixel of a whole-frame map at `size` (w, h), or of its `box`
        only, from (smoothed) grid logits: the argmax of the bilinearly warped logits, as
        `SegmentationOutput.part_ids`, inside and outside the person alike."""
        # Between cells, practically only parts ranked first or second in some cell can win:
        # warping and comparing those few (typically ~8 of 24) is ~3× cheaper; on 90 video
        # frames 2 of 1.3 M labels differed from the full argmax.
        top2 = np.argpartition(logits, -2, axis=2)[..., -2:]
        present = np.unique(top2)
        sub = np.ascontiguousarray(logits[..., present])
        box = box or (0, 0, *size)
        return present[np.argmax(warp_crop(sub, out.mapping, size, box), axis=2)].astype(np.int32)

    def apply(
        self,
        frame_bgr: np.ndarray,
        out: SegmentationOutput,
        person_alpha: np.ndarray,
        *,
        inplace: bool = False,
    ) -> np.ndarray:
        """The frame with the part effects drawn; `frame_bgr` is only written when `inplace`.

        `out` must come from `run(frame, parts=True)` on the frame these pixels show (for a
        mirrored stream, the mirrored frame); `person_alpha` is the refined uint8 H×W alpha.
        """
        if not self.needs_parts:
            return frame_bgr
        h, w = frame_bgr.shape[:2]
        if person_alpha.shape != (h, w):
            raise ValueError(f"alpha {person_alpha.shape} does not match the frame {(h, w)}")
        logits = self.smoothed_logits(frame_bgr, out)
        result = frame_bgr if inplace else frame_bgr.copy()
        s = self._settings
        if s.privacy != "none":
            self._privacy(result, out, logits, person_alpha)
        if s.view and s.opacity > 0:
            self._view(result, out, logits, person_alpha)
        return result

    # ------------------------------------------------------------------ view
    def _view(
        self, frame: np.ndarray, out: SegmentationOutput, logits: np.ndarray, alpha: np.ndarray
    ) -> None:
        h, w = frame.shape[:2]
        ww, wh = work_size(w, h)
        # Only the person's box is touched; a nearest-neighbour sample of the alpha finds it.
        near = cv2.resize(alpha, (ww, wh), interpolation=cv2.INTER_NEAREST)
        boxes = _box_of(cv2.dilate(near, None), (w, h))  # type: ignore[call-overload]
        if boxes is None:
            return
        small_box, (x0, y0, x1, y1) = boxes
        ids = self.part_labels(logits, out, (ww, wh), small_box)
        # The seed's colouring (shared with `pixcam segment --parts --overlay`), on the small
        # grid; only its colour channels are needed, the person alpha is the opacity mask.
        colour_small = cv2.cvtColor(
            to_colored_part_mask(ids, self._settings.palette), cv2.COLOR_RGBA2BGR
        )
        sx0, sy0, sx1, sy1 = small_box
        colour = crop_resize(colour_small, ((0, 0, sx1 - sx0, sy1 - sy0), boxes[1]))
        blend_into(frame[y0:y1, x0:x1], colour, alpha[y0:y1, x0:x1], self._settings.opacity)

    # ------------------------------------------------------------------ privacy
    def privacy_mask(
        self, out: SegmentationOutput, logits: np.ndarray, size: tuple[int, int]
    ) -> np.ndarray:
        """uint8 0..255 at `size` (w, h): how much each pixel belongs to the chosen parts
        (before the person alpha). Generous: it covers anything the parts might hold."""
        s = self._settings
        ids = s.privacy_ids
        share = softmax_sum(logits, ids)
        if out.part_heatmaps is not None and out.part_heatmaps is not logits:
            # Privacy first: smoothing may only add coverage, never lag behind a new position.
            share = np.maximum(share, softmax_sum(np.asarray(out.part_heatmaps, np.float32), ids))
        # Parts' logits mean nothing off the person: weight by the (grid) person probability.
        person = out.segments.astype(np.float32)
        cover = share * np.minimum(person * np.float32(4.0), np.float32(1.0))
        small = _ramp(out.mapping.warp(cover.astype(np.float32), size), _COVER_LO, _COVER_HI)
        # Cells where a chosen part is the person's most likely part: the regions to keep.
        wins = np.isin(np.argmax(logits, axis=2), ids) & (person >= 0.5)
        core = out.mapping.warp(wins.astype(np.float32), size) >= 0.5
        small *= _parts_found(core, small > 0)
        w = out.frame_size[0]
        sigma = s.feather / 2.56 / (w / size[0])  # feather in mask pixels
        if sigma > 0.3:
            # Feather outwards: blur, then re-saturate the core so it stays fully covered.
            small = cv2.GaussianBlur(small, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
            small = np.minimum(small * np.float32(2.0), np.float32(1.0))
        return (small * np.float32(255) + np.float32(0.5)).astype(np.uint8)

    def _privacy(
        self, frame: np.ndarray, out: SegmentationOutput, logits: np.ndarray, alpha: np.ndarray
    ) -> None:
        h, w = frame.shape[:2]
        ww, wh = work_size(w, h)
        mask_small = self.privacy_mask(out, logits, (ww, wh))
        boxes = _box_of(mask_small, (w, h))
        if boxes is None:
            return
        x0, y0, x1, y1 = boxes[1]
        mask = crop_resize(mask_small, boxes)
        if self._settings.privacy == "pixelate":
            effect = pixelate(frame, boxes[1], max(2, round(h * _PIXEL_FRAC)))
        else:
            effect = blur_region(frame, boxes[1], max(1.0, h * _BLUR_FRAC))
        cv2.multiply(mask, alpha[y0:y1, x0:x1], dst=mask, scale=1 / 255)
        blend_into(frame[y0:y1, x0:x1], effect, mask)


def pixelate(frame: np.ndarray, box: Box, block: int) -> np.ndarray:
    """`frame` under `box` with each `block`×`block` cell replaced by its mean colour.

    Cells sit on a lattice fixed to the frame's corner, so they do not swim as the box moves.
    """
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = box
    cx0, cy0 = x0 // block * block, y0 // block * block
    cx1, cy1 = min(w, -(-x1 // block) * block), min(h, -(-y1 // block) * block)
    cols, rows = -(-(cx1 - cx0) // block), -(-(cy1 - cy0) // block)
    roi = frame[cy0:cy1, cx0:cx1]
    # Pad the frame's last partial row/column of cells to whole cells (edge pixels repeated).
    pad_b, pad_r = rows * block - (cy1 - cy0), cols * block - (cx1 - cx0)
    if pad_b or pad_r:
        roi = cv2.copyMakeBorder(roi, 0, pad_b, 0, pad_r, cv2.BORDER_REPLICATE)
    small = cv2.resize(roi, (cols, rows), interpolation=cv2.INTER_AREA)
    big = cv2.resize(small, (cols * block, rows * block), interpolation=cv2.INTER_NEAREST)
    return big[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0]


def blur_region(frame: np.ndarray, box: Box, sigma: float) -> np.ndarray:
    """A strong Gaussian blur of `frame` under `box`, computed on a downscale of the box plus
    a margin (so pixels near the box's edge average real neighbours, not a mirror)."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = box
    m = int(2 * sigma)
    ex0, ey0, ex1, ey1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
    small = frame[ey0:ey1, ex0:ex1]
    # Work where the blur is ~2.5 px, so the cost does not grow with the strength; halving
    # (cv2's fast exact-2× area path) is ~6× quicker than one area resize by, say, 1/6.
    f = 1
    while sigma / (2 * f) >= 2.5 and min(small.shape[:2]) >= 4:
        small = cv2.resize(
            small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA
        )
        f *= 2
    small = cv2.GaussianBlur(small, (0, 0), sigma / f, borderType=cv2.BORDER_REPLICATE)
    big = cv2.resize(small, (ex1 - ex0, ey1 - ey0), interpolation=cv2.INTER_LINEAR)
    return big[y0 - ey0 : y1 - ey0, x0 - ex0 : x1 - ex0]
