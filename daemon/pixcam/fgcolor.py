"""The person's own colours under the soft edge, so no old background is carried over.

Where 0 < alpha < 1 the camera pixel is a mix I = α·F + (1-α)·B_old of the person's colour F
and the old background B_old. Blending I itself over a new background keeps the (1-α)·B_old
part: a glowing band of the old background around the person. With smooth estimates F0 and B0
of both colours near the edge, F = I + (1-α)·(F0 - B0) exactly when the mix holds, and the
composite becomes

    α·F + (1-α)·B_new = blend(I, B_new, α) + α·(1-α)·(F0 - B0).

The correction term is smooth (alpha comes from a ~1/4-size grid, F0 and B0 are local means),
so it is computed on a small grid and added to the blended frame only inside the edge band's
bounding box: one resize and one saturating add at full resolution.

F0 and B0 are "push-pull" fills (a cheap multi-level scheme in the spirit of Germer et al.
2021, "Fast multi-level foreground estimation"): the colours of confident person
(background) pixels, averaged down an area pyramid and pulled back up into the pixels that
have none, so every edge pixel gets the nearest confident colours on its own side.

Measured (docs/cut.md): on an exact soft edge it removes 64 % of the band's colour error, but
on real photos the error comes from a misplaced alpha, not from the mix, and it costs ~10 ms
per 720p frame; so `ComposeSettings.edge_colour` is off by default.
"""

from __future__ import annotations

import cv2
import numpy as np

# Small grid: the frame halved until its short side is at most this (180 at 720p).
_GRID_SHORT = 200
# Confident person: alpha above this on the small grid after a 1-cell erosion (an alpha that
# is a little too wide still gives person colours); confident background: below 1 - this.
_SURE = 0.9
_LEVELS = 5  # pyramid depth of the fill: reaches ~2^5 grid cells (~128 px at 720p) away
_GAIN = 4.0  # a cell whose confident weight is ≥ 1/_GAIN keeps its own mean


def grid_factor(height: int, width: int) -> int:
    """Power-of-two downscale that brings the short side to at most _GRID_SHORT."""
    f, short = 1, min(height, width)
    while short // f > _GRID_SHORT and short // (2 * f) >= 16:
        f *= 2
    return f


def _halve(img: np.ndarray, times: int) -> np.ndarray:
    for _ in range(times):
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return img


def push_pull(colour: np.ndarray, weight: np.ndarray, levels: int = _LEVELS) -> np.ndarray:
    """Fill `colour` (float32 H×W×3) where `weight` (float32 H×W, 0..1) is low with the
    weighted mean of the nearest well-weighted pixels, coarse to fine."""
    sums = [colour * weight[..., None]]
    weights = [weight]
    for _ in range(levels):
        h, w = weights[-1].shape
        if min(h, w) < 4:
            break
        sums.append(cv2.resize(sums[-1], (w // 2, h // 2), interpolation=cv2.INTER_AREA))
        weights.append(cv2.resize(weights[-1], (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    filled = sums[-1] / np.maximum(weights[-1], 1e-6)[..., None]
    for s, wgt in zip(reversed(sums[:-1]), reversed(weights[:-1]), strict=True):
        up = cv2.resize(filled, (wgt.shape[1], wgt.shape[0]), interpolation=cv2.INTER_LINEAR)
        own = s / np.maximum(wgt, 1e-6)[..., None]
        t = np.minimum(wgt * np.float32(_GAIN), 1.0)[..., None]
        filled = up + t * (own - up)
    return filled


def edge_correction(
    frame_bgr: np.ndarray, alpha_u8: np.ndarray
) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """α·(1-α)·(F0 - B0) (float32, BGR) for the edge band's bounding box (x, y, w, h) in frame
    pixels, or None when there is no soft edge."""
    h, w = alpha_u8.shape
    f = grid_factor(h, w)
    steps = f.bit_length() - 1
    small = _halve(frame_bgr, steps).astype(np.float32)
    a = _halve(alpha_u8, steps).astype(np.float32) * np.float32(1 / 255)
    band = cv2.inRange(a, 0.004, 0.996)
    bx, by, bw, bh = cv2.boundingRect(band)
    if bw == 0 or bh == 0:
        return None
    kernel = np.ones((3, 3), np.uint8)
    sure_fg = np.clip((cv2.erode(a, kernel) - _SURE) * (1 / (1 - _SURE)), 0, 1)
    sure_bg = np.clip((1 - _SURE - cv2.dilate(a, kernel)) * (1 / (1 - _SURE)), 0, 1)
    fg = push_pull(small, sure_fg)
    bg = push_pull(small, sure_bg)
    # One grid cell of margin: the upscale interpolates towards it.
    gh, gw = a.shape
    x0, y0 = max(0, bx - 1), max(0, by - 1)
    x1, y1 = min(gw, bx + bw + 1), min(gh, by + bh + 1)
    roi = (slice(y0, y1), slice(x0, x1))
    a_roi = a[roi]
    corr = (fg[roi] - bg[roi]) * (a_roi * (1 - a_roi))[..., None]
    fx0, fy0 = x0 * w // gw, y0 * h // gh
    fx1, fy1 = x1 * w // gw if x1 < gw else w, y1 * h // gh if y1 < gh else h
    up = cv2.resize(corr, (fx1 - fx0, fy1 - fy0), interpolation=cv2.INTER_LINEAR)
    return up, (fx0, fy0, fx1 - fx0, fy1 - fy0)


def remove_old_background(out: np.ndarray, frame_bgr: np.ndarray, alpha_u8: np.ndarray) -> None:
    """Correct `out` = blend(frame, new background, alpha) in place: the edge band shows the
    person's colours instead of the old background's."""
    found = edge_correction(frame_bgr, alpha_u8)
    if found is None:
        return
    corr, (x, y, w, h) = found
    view = out[y : y + h, x : x + w]
    cv2.add(view, corr, dst=view, dtype=cv2.CV_8U)
