"""Low-resolution person probability → clean full-resolution alpha.

The segmenter gives a soft, blocky probability map (BodyPix's output stride is 16, so one cell
covers ~40 px of a 720p frame); upsampled as-is it leaves a halo of background around the
person and cuts into hair and shoulders. `Refiner` fixes that in three cheap steps on a small
grid (the probability's own size, at most 160 px on the long side: 160×90 for 16:9):

1. temporal smoothing: a motion-adaptive exponential moving average, so a still person does not
   flicker while a moving one is followed at once;
2. edge-aware upsampling: a colour guided filter against the downscaled frame snaps the soft
   mask to the picture's real edges; its linear coefficients are applied at twice the grid
   size ("fast guided filter", He & Sun 2015);
3. a contrast curve around the threshold and a feather of configurable width.

The filter's grid is as coarse as BodyPix (stride 16), but the selfie model the default fuses
in sees the person finely (256 px across them). So the chain gives the refiner a model's
probability at the detail size (`probability_size`, twice the grid) when the model's cells are
finer than the grid, and the refiner mixes that fine probability in with the filter's output
(35 % of it, `_FILTER_SHARE`): the model's own outline where it has one, the picture's edges
where it is blocky. Its temporal smoothing then runs at that size, and holds back small changes on a
still picture harder (the fine outline wobbles more). Measured in docs/cut.md#the-fine-probability.

Only the last operation touches the full resolution: one uint8 bilinear resize, of the part
around the person (`upscale_alpha`; the compositor gets the small alpha too, `Alpha`).
The refiner costs ~3 ms CPU per 720p frame and about halves the boundary error of a raw
bilinear upscale (docs/cut.md#the-fine-probability).

`prob_small` is the person probability as **float32 in 0..1** (what
`SegmentationOutput.person_probability` returns); uint8 0..255 is accepted too and converted.
It must cover the whole frame with the frame's aspect ratio (any size up to the frame's); one
finer than the filter grid is taken as a fine outline (above).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple, TypedDict

import cv2
import numpy as np

from pixcam.chain.pyramid import Pyramid
from pixcam.i420 import Frame

if TYPE_CHECKING:
    from typing_extensions import Unpack

# The guided filter runs on a small grid and needs only box filters, so it is written here with
# cv2.boxFilter: cv2.ximgproc.guidedFilter lives in opencv-contrib, which would replace our
# opencv-python-headless wheel (the two conflict) for ~15 lines of arithmetic, and it has no
# "fast" (subsampled) variant anyway.


@dataclass(frozen=True)
class RefineSettings:
    """How the mask is cleaned; mirrors the `[refine]` config section (plus the threshold).
    Unchecked: the config schema holds the ranges (`pixcam.config`)."""

    smoothing: float = 0.5  # 0 = no temporal smoothing .. 0.95 = very slow to follow
    # Width (10–90 %) of the soft edge in output-frame pixels: 2 adds no blur beyond the
    # final upscale's own edge, so small frames keep a sharp outline (docs/cut.md#the-feather).
    feather: float = 2.0
    edge_aware: bool = True  # guided filter against the frame
    threshold: float = 0.5  # probability that maps to alpha 128 (`[model] threshold`)


class Alpha(NamedTuple):
    """The refined mask: `full` (uint8, frame size) is the bilinear upscale of `small` (the
    detail grid's alpha; the same array when that is the frame's size). The compositor reads
    the small one where it will do (the box of alpha > 0, the blur's alpha) and of the full
    one only the box's part (halved for U and V)."""

    full: np.ndarray
    small: np.ndarray


class RefineChanges(TypedDict, total=False):
    """Single `RefineSettings` fields, as `Refiner.update` takes them by keyword."""

    smoothing: float
    feather: float
    edge_aware: bool
    threshold: float


# Tuned on the dev photos with bench/boundary_error.py (radius/eps) and on video (motion).
_GRID_LONG = 160  # long side of the grid the filter runs on (160×90 for 16:9)
_GF_RADIUS_FRAC = 1 / 24  # window radius / grid height: about one network output cell
_GF_EPS = 0.02**2  # regularisation on a 0..1 guide: colour steps below ~5 levels are ignored
_DETAIL = 2  # apply the filter's coefficients at this multiple of the working size
_WORK_DIVISOR = 4  # the grid is at most 1/4 of the frame (and at most _GRID_LONG)
# Weight of the guided filter's output against the fine probability at the detail size: the
# fine outline is more accurate but wobbles more on a still picture (docs/cut.md#the-filters-share).
_FILTER_SHARE = 0.65
_PRE_GAIN = 3.0  # probability contrast before the guided filter (maps threshold ± 1/6 to 0..1)
_RAMP = 0.1  # filtered range (around 0.5) stretched to the full 0..255 alpha range
# Grey-level change (0..1) from "still" to "moving", at the probability's size: low, so a moving
# person is followed within a frame (docs/cut.md#motion).
_MOTION_LO, _MOTION_HI = 0.015, 0.025
_JUMP_LO, _JUMP_HI = 0.5, 0.9  # probability change that overrides smoothing without motion
# Where the picture is still, a small probability change (below _WOBBLE_LO, fading out at
# _WOBBLE_HI) is network wobble: it is held back with _WOBBLE_KEEP instead of `smoothing`.
_WOBBLE_LO, _WOBBLE_HI, _WOBBLE_KEEP = 0.05, 0.25, 0.9


def box(img: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)² window; O(1) per pixel whatever r, edges reflected."""
    return cv2.boxFilter(img, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def guided_coefficients(
    guide: np.ndarray, src: np.ndarray, r: int, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Colour-guide guided filter (He et al. 2013): output ≈ Σ_c a_c·guide_c + b.

    `guide` float32 H×W×3, `src` float32 H×W. Returns the window-averaged coefficients
    (a: H×W×3, b: H×W) *before* applying them, so the caller may upsample them first ("fast
    guided filter"). A colour guide separates person from background far better than grey:
    a red jumper on a grey wall can have the wall's luminance.
    """
    mean_i = box(guide, r)
    mean_p = box(src, r)
    cov_ip = box(guide * src[..., None], r) - mean_i * mean_p[..., None]
    ch = cv2.split(guide)
    mi = cv2.split(mean_i)

    def cov(i: int, j: int) -> np.ndarray:
        return box(ch[i] * ch[j], r) - mi[i] * mi[j]

    # Σ + eps·I, symmetric 3×3 per pixel, inverted with cofactors (no per-pixel linalg call).
    s00, s01, s02 = cov(0, 0) + eps, cov(0, 1), cov(0, 2)
    s11, s12, s22 = cov(1, 1) + eps, cov(1, 2), cov(2, 2) + eps
    c00, c01, c02 = s11 * s22 - s12 * s12, s02 * s12 - s01 * s22, s01 * s12 - s02 * s11
    c11, c12, c22 = s00 * s22 - s02 * s02, s01 * s02 - s00 * s12, s00 * s11 - s01 * s01
    inv_det = 1.0 / (s00 * c00 + s01 * c01 + s02 * c02)
    v0, v1, v2 = cv2.split(cov_ip)
    a0 = (c00 * v0 + c01 * v1 + c02 * v2) * inv_det
    a1 = (c01 * v0 + c11 * v1 + c12 * v2) * inv_det
    a2 = (c02 * v0 + c12 * v1 + c22 * v2) * inv_det
    b = mean_p - a0 * mi[0] - a1 * mi[1] - a2 * mi[2]
    return box(cv2.merge([a0, a1, a2]), r), box(b, r)


def apply_coefficients(a: np.ndarray, b: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """Σ_c a_c·guide_c + b (all float32, same size)."""
    q = cv2.transform(a * guide, np.ones((1, 3), np.float32))
    q += b
    return q


def guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    a, b = guided_coefficients(guide, src, r, eps)
    return apply_coefficients(a, b, guide)


def grid_size(width: int, height: int) -> tuple[int, int]:
    """The grid the filter runs on for a `width`×`height` probability: its own size, the long
    side capped at `_GRID_LONG` (a larger probability is area-averaged down to it)."""
    k = min(1.0, _GRID_LONG / max(width, height))
    return max(2, round(width * k)), max(2, round(height * k))


def probability_size(width: int, height: int, cell: float) -> tuple[int, int]:
    """The size to give `Refiner.refine` the probability at, for a `width`×`height` frame and a
    segmentation whose output cells are `cell` frame pixels wide: the filter grid, or twice
    that (the detail size) when the model's outline is finer than the grid (the selfie model,
    alone or fused), so the refiner keeps it."""
    gw, gh = grid_size(max(1, width // _WORK_DIVISOR), max(1, height // _WORK_DIVISOR))
    if cell >= width / gw:
        return gw, gh
    return min(width, gw * _DETAIL), min(height, gh * _DETAIL)


def _as_probability(prob_small: np.ndarray) -> np.ndarray:
    if prob_small.ndim != 2:
        raise ValueError(f"prob_small must be H×W, got shape {prob_small.shape}")
    if prob_small.dtype == np.uint8:
        return prob_small.astype(np.float32) * np.float32(1 / 255)
    return np.asarray(prob_small, dtype=np.float32)


def _scaled(x: np.ndarray, gain: float, offset: float, top: float = 1.0) -> np.ndarray:
    """clip(x·gain + offset, 0, top) in one new float32 array. Chained numpy expressions make a
    fresh temporary per operation, which on a detail-size plane costs several times the
    arithmetic itself (docs/cut.md#motion)."""
    y = x * np.float32(gain)
    y += np.float32(offset)
    return np.clip(y, np.float32(0), np.float32(top), out=y)


def _fade(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """1 below lo, 0 above hi, linear between."""
    return _scaled(x, -1 / (hi - lo), hi / (hi - lo))


class Refiner:
    """Stateful (temporal smoothing): one instance per video stream, `reset()` on a cut."""

    def __init__(self, settings: RefineSettings | None = None) -> None:
        self._settings = settings or RefineSettings()
        self.reset()

    @property
    def settings(self) -> RefineSettings:
        return self._settings

    def update(
        self, settings: RefineSettings | None = None, **changes: Unpack[RefineChanges]
    ) -> None:
        """Change settings live (a whole `RefineSettings`, or single fields by keyword)."""
        new = settings or self._settings
        self._settings = replace(new, **changes) if changes else new  # validates

    def reset(self) -> None:
        """Forget the previous frames (new source, resolution change, scene cut)."""
        self._state: np.ndarray | None = None
        self._prev_grey: np.ndarray | None = None

    def refine(
        self, frame: Frame, prob_small: np.ndarray, pyramid: Pyramid | None = None
    ) -> np.ndarray:
        """Return the alpha (uint8 H×W, frame size) for `frame` (BGR or I420) from `prob_small`.

        `pyramid` (of `frame`) lends the halvings other stages made already."""
        return self.refine_alpha(frame, prob_small, pyramid).full

    def refine_alpha(
        self, frame: Frame, prob_small: np.ndarray, pyramid: Pyramid | None = None
    ) -> Alpha:
        """`refine`, with the small alpha the full one was upscaled from."""
        h, w = frame.shape[:2]
        prob = _as_probability(prob_small)
        ph, pw = prob.shape
        if ph > h or pw > w or abs(pw / ph - w / h) > 0.05 * w / h:
            raise ValueError(f"prob_small {pw}×{ph} does not match the frame {w}×{h}")
        s = self._settings
        # Filter grid: the probability's own, at most 1/4 of the frame and `_GRID_LONG` long;
        # BodyPix's stride-16 output has no detail finer than that, and the filter's cost grows
        # with its area.
        limit_w, limit_h = max(1, w // _WORK_DIVISOR), max(1, h // _WORK_DIVISOR)
        gw, gh = grid_size(min(pw, limit_w), min(ph, limit_h))
        # Detail grid: where the filter's output is produced; never above frame size.
        dw, dh = min(w, gw * _DETAIL), min(h, gh * _DETAIL)
        pyramid = pyramid or Pyramid(frame)
        guide_u8 = detail_u8 = pyramid.down_to((gw, gh))
        guide = detail = guide_u8.astype(np.float32) * np.float32(1 / 255)
        if (dw, dh) != (gw, gh):
            detail_u8 = pyramid.down_to((dw, dh))
            detail = detail_u8.astype(np.float32) * np.float32(1 / 255)

        # A probability finer than the grid has an outline the grid would lose (the selfie
        # model's): it is smoothed (against the picture's motion at that size) and kept at the
        # detail size, and averaged down for the filter.
        fine = None
        if pw > gw:
            if (pw, ph) != (dw, dh):
                shrink = cv2.INTER_AREA if pw > dw else cv2.INTER_LINEAR
                prob = cv2.resize(prob, (dw, dh), interpolation=shrink)
            fine = self._smooth(prob, detail_u8, s.smoothing)
            prob = cv2.resize(fine, (gw, gh), interpolation=cv2.INTER_AREA)
        else:
            if (pw, ph) != (gw, gh):
                prob = cv2.resize(prob, (gw, gh), interpolation=cv2.INTER_AREA)
            prob = self._smooth(prob, guide_u8, s.smoothing)

        if s.edge_aware:
            # Steepen the network's soft ramp first: the guided filter then only has to move a
            # near-binary edge onto the picture's edge instead of copying a 30 px gradient.
            r = max(1, round(gh * _GF_RADIUS_FRAC))
            a, b = guided_coefficients(guide, self._steepen(prob), r, _GF_EPS)
            if (dw, dh) != (gw, gh):
                a = cv2.resize(a, (dw, dh), interpolation=cv2.INTER_LINEAR)
                b = cv2.resize(b, (dw, dh), interpolation=cv2.INTER_LINEAR)
            q = apply_coefficients(a, b, detail)
            if fine is not None:
                own = self._steepen(fine)
                q = cv2.addWeighted(q, _FILTER_SHARE, own, 1 - _FILTER_SHARE, 0)
        else:
            # No filter: the final bilinear resize is the upsampling.
            q = self._steepen(prob if fine is None else fine)
        return self._finish(q, s.feather, (w, h))

    def _steepen(self, prob: np.ndarray) -> np.ndarray:
        """The probability's contrast around the threshold raised `_PRE_GAIN` times, 0..1."""
        return _scaled(prob, _PRE_GAIN, 0.5 - self._settings.threshold * _PRE_GAIN)

    def _smooth(self, prob: np.ndarray, picture: np.ndarray, smoothing: float) -> np.ndarray:
        """Motion-adaptive EMA: strong where the picture (BGR uint8, `prob`'s size) is still,
        none where it moves."""
        state, prev = self._state, self._prev_grey
        grey = self._prev_grey = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY)
        if (
            state is None
            or prev is None
            or (state.shape, prev.shape) != (prob.shape, grey.shape)
            or smoothing <= 0
        ):
            self._state = prob.copy()  # prob may be the caller's buffer, reused next frame
            return prob
        # Picture motion (not mask change) decides: network flicker on a still person has no
        # motion, real movement does. A small box blur keeps camera noise below _MOTION_LO.
        motion = cv2.boxFilter(cv2.absdiff(grey, prev), cv2.CV_32F, (3, 3)) * np.float32(1 / 255)
        change = cv2.absdiff(prob, state)
        # How far to hold back: `smoothing`, raised towards _WOBBLE_KEEP for a small change
        # where the picture is still (both factors 1 for a tiny change without motion).
        calm = _fade(change, _WOBBLE_LO, _WOBBLE_HI)
        calm *= _fade(motion, 0.0, _MOTION_LO)
        hold = _scaled(calm, max(0.0, _WOBBLE_KEEP - smoothing), smoothing)
        # Not at all where the picture moves, nor for a huge probability jump on a still
        # picture (someone sits very still, then the network changes its mind for good): that
        # must not take ~1/(1-smoothing) frames.
        keep = _fade(motion, _MOTION_LO, _MOTION_HI)
        np.minimum(keep, _fade(change, _JUMP_LO, _JUMP_HI), out=keep)
        keep *= hold
        out = cv2.subtract(state, prob)
        out *= keep
        out += prob
        self._state = out
        return out

    @staticmethod
    def _finish(q: np.ndarray, feather: float, size: tuple[int, int]) -> Alpha:
        """Contrast curve, feather, uint8, and the single full-resolution resize."""
        w, h = size
        # Clipped before the blur, so the ramp has that width.
        alpha = _scaled(q, 255 / _RAMP, 128 - 0.5 * 255 / _RAMP, 255.0)
        scale = w / q.shape[1]  # output pixels per grid pixel
        # A Gaussian's 10–90 % rise is 2.56 σ; bilinear upsampling adds ~`scale` px by itself,
        # so only the remainder is blurred here, at grid resolution.
        extra = max(0.0, feather * feather - scale * scale) ** 0.5
        sigma = extra / 2.56 / scale
        if sigma > 0.3:
            alpha = cv2.GaussianBlur(alpha, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
        small = alpha.astype(np.uint8)
        if small.shape[1] == w and small.shape[0] == h:
            return Alpha(small, small)
        return Alpha(upscale_alpha(small, (w, h)), small)


def upscale_alpha(small: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`small` (uint8) bilinearly resized to `size` (w, h), the same picture as one whole
    resize: only the part around alpha > 0 is resized when the scale is whole (the rest stays
    0), since the person covers about a quarter of the frame."""
    w, h = size
    sh, sw = small.shape
    x, y, bw, bh = cv2.boundingRect(small)
    if w % sw or h % sh:
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    full = np.zeros((h, w), np.uint8)
    if not (bw and bh):
        return full
    kx, ky = w // sw, h // sh
    # A margin of one zero pixel: the part's resize then reads what the whole one reads.
    x0, y0, x1, y1 = max(0, x - 1), max(0, y - 1), min(sw, x + bw + 1), min(sh, y + bh + 1)
    part = full[y0 * ky : y1 * ky, x0 * kx : x1 * kx]
    cv2.resize(small[y0:y1, x0:x1], (part.shape[1], part.shape[0]), dst=part)
    return full
