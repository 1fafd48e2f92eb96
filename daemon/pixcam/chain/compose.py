"""Backgrounds and blending: frame + alpha → the picture the virtual camera shows.

`Compositor.compose(frame, alpha_u8)` puts the person (alpha 255) over a background chosen by
`ComposeSettings.background`: a blur of the frame itself, a still image, a looping video, a
solid colour, or "none" (the frame is returned untouched). Everything stays uint8 at full
resolution; the blur works on a 1/2..1/16 downscale chosen from its strength, where the eye
cannot tell. The final blend is `fg·a/255 + bg·(255-a)/255` with cv2's saturating uint8
multiply/add, several times faster than a float blend
(docs/live-costs.md#decode-and-blend-figures). A frame in I420 (a
camera's) is blended plane by plane, Y with the alpha and U, V with its half: half the bytes,
and the virtual camera takes the result as it is; its background is made in I420 too (the blur
converted at its small size, an image or video picture converted once).

Settings change live with `update()`; a missing or unreadable image or video raises
`PixcamError` and leaves the previous background in place.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, TypedDict, overload

import cv2
import numpy as np

from pixcam import images, paths
from pixcam.chain.pyramid import Pyramid
from pixcam.errors import PixcamError
from pixcam.i420 import C_TO_LIMITED, I420, Y_TO_LIMITED, Frame, halved, upscaled
from pixcam.modes import BACKGROUNDS

if TYPE_CHECKING:
    from typing_extensions import Unpack

MODES = BACKGROUNDS


@dataclass(frozen=True)
class ComposeSettings:
    """What goes behind the person; mirrors the `[effects]` config section. Unchecked: the
    config schema holds the ranges (`pixcam.config`)."""

    background: str = "blur"  # one of MODES
    blur_strength: int = 40  # 1..100
    image: str = "studio-grey.png"  # path, or a name looked up by paths.find_background()
    video: str = ""  # likewise, for background = "video"
    color: str = "#2e7d32"  # "#rrggbb"
    mirror: bool = False  # flip the picture horizontally (the background image is not)


class ComposeChanges(TypedDict, total=False):
    """Single `ComposeSettings` fields, as `Compositor.update` takes them by keyword."""

    background: str
    blur_strength: int
    image: str
    video: str
    color: str
    mirror: bool


def parse_color(text: str) -> tuple[int, int, int]:
    """'#rrggbb' → (b, g, r), OpenCV's channel order."""
    t = text.strip()
    if len(t) != 7 or t[0] != "#":
        raise PixcamError(f"colour {text!r} is not of the form #rrggbb (e.g. #2e7d32)")
    try:
        r, g, b = (int(t[i : i + 2], 16) for i in (1, 3, 5))
    except ValueError:
        raise PixcamError(f"colour {text!r} is not of the form #rrggbb (e.g. #2e7d32)") from None
    return b, g, r


def cover_fit(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale `img` to cover `size` (w, h) keeping its aspect, then centre-crop (no bars)."""
    w, h = size
    ih, iw = img.shape[:2]
    if (iw, ih) == (w, h):
        return img
    scale = max(w / iw, h / ih)
    sw, sh = max(w, round(iw * scale)), max(h, round(ih * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(img, (sw, sh), interpolation=interp)
    x, y = (sw - w) // 2, (sh - h) // 2
    return np.ascontiguousarray(scaled[y : y + h, x : x + w])


# A background never needs more than this: it is scaled to the frame, at most 4K.
BACKGROUND_COVER = (3840, 2160)


def load_image(name: str) -> np.ndarray:
    # The header's size is checked first: a decompression bomb must not stall the stream.
    path = paths.find_background(name)
    return images.read_image(path, "background image", cv2.IMREAD_COLOR, cover=BACKGROUND_COVER)


# ------------------------------------------------------------------------------ blend
class _Scratch:
    """Temporaries reused across frames (saves page-faulting megabytes per frame).

    Views of two flat buffers that grow to the largest size asked for, so a region that changes
    size every frame does not reallocate.
    """

    def __init__(self) -> None:
        self._a = np.empty(0, np.uint8)
        self._b = np.empty(0, np.uint8)

    def get(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        n = int(np.prod(shape))
        if self._a.size < n:
            self._a, self._b = np.empty(n, np.uint8), np.empty(n, np.uint8)
        return self._a[:n].reshape(shape), self._b[:n].reshape(shape)


def blend_dense(
    fg: np.ndarray,
    bg: np.ndarray,
    alpha: np.ndarray,
    scratch: _Scratch | None = None,
    out: np.ndarray | None = None,
    fg_map: tuple[float, float] | None = None,
) -> np.ndarray:
    """fg·a + bg·(1-a) in uint8 (each product rounded, so ±1 level; exact at a = 0 and 255).
    `fg` and `bg` are BGR (H×W×3) or one plane (H×W), `alpha` H×W; written into `out` (which
    may be `bg` or a view, such as a region of a bigger picture) when given.
    `fg_map`: (scale, offset) applied to `fg` on the way (one more pass): a full-range
    plane's mapping to the limited range of `bg`.

    cv2's saturating uint8 multiply/add: 5 SIMD passes, the fastest blend measured
    (docs/live-costs.md#decode-and-blend-figures).
    """
    a, inv = (scratch or _Scratch()).get(fg.shape)
    if out is None:
        out = np.empty_like(fg)
    if fg.ndim == 3:
        alpha = cv2.cvtColor(alpha, cv2.COLOR_GRAY2BGR, dst=a)
    # The background's share first: then `out` (which may be `bg`) takes fg·a and the sum in
    # place, no scratch for fg·a (with a mapping, decode and compose measured 0.4 ms less per
    # 1080p frame than mapping the whole frame at the decode, 0.3 through a scratch buffer).
    cv2.bitwise_not(alpha, dst=inv)
    cv2.multiply(bg, inv, dst=inv, scale=1 / 255)
    if fg_map is not None:
        fg = cv2.convertScaleAbs(fg, dst=out, alpha=fg_map[0], beta=fg_map[1])
    cv2.multiply(fg, alpha, dst=out, scale=1 / 255)
    return cv2.add(out, inv, dst=out)


def blend(
    fg: np.ndarray,
    bg: np.ndarray,
    alpha: np.ndarray,
    scratch: _Scratch | None = None,
    *,
    reuse_bg: bool = False,
    out: np.ndarray | None = None,
    box: tuple[int, int, int, int] | None = None,
    fg_map: tuple[float, float] | None = None,
) -> np.ndarray:
    """Like `blend_dense`, but only inside the bounding box of alpha > 0 (`box`, x, y, w, h,
    when the caller knows it): outside it the output is the background, copied into `out` (a
    new array when None; with `reuse_bg`, the blend is written into `bg` itself)."""
    # Of the non-zero pixels; one cheap 1-channel pass.
    x, y, w, h = cv2.boundingRect(alpha) if box is None else box
    if reuse_bg:
        out = bg
    elif out is None:
        out = bg.copy()
    else:
        np.copyto(out, bg)
    if w and h:
        roi = (slice(y, y + h), slice(x, x + w))
        blend_dense(fg[roi], bg[roi], alpha[roi], scratch, out=out[roi], fg_map=fg_map)
    return out


class AlphaLevels:
    """The alpha as the blend and the blur read it: full size (Y), its area half (U, V), a
    small one for the blur and the box of alpha > 0.

    `small`, when given, is the alpha `full` is the bilinear upscale of (the refiner's
    `Alpha.small`): the box and the blur's alpha come from it, and the half is made from the
    box's part of the full alpha alone (0 elsewhere, as the whole halving would make it)."""

    __slots__ = ("pyramid", "small", "_half")

    def __init__(self, full: np.ndarray, small: np.ndarray | None = None) -> None:
        self.pyramid = Pyramid(full)
        self.small = small
        self._half: np.ndarray | None = None

    @property
    def base(self) -> np.ndarray:
        return self.pyramid.base

    @property
    def half(self) -> np.ndarray:
        if self._half is None:
            full = self.base
            fh, fw = full.shape
            if self.small is None or fh % 2 or fw % 2:
                self._half = self.pyramid.level(1)
            else:
                self._half = np.zeros((fh // 2, fw // 2), np.uint8)
                x, y, w, h = self.half_box()
                if w and h:  # nobody in the picture: the half alpha stays 0
                    part = full[2 * y : 2 * (y + h), 2 * x : 2 * (x + w)]
                    self._half[y : y + h, x : x + w] = halved(part, 1)
        return self._half

    def reduced(self, k: int, size: tuple[int, int]) -> np.ndarray:
        """The alpha at `size` (w, h), about level k's size: the small alpha reduced (halvings,
        then a bilinear step) when it is at least that big, else the full one's level k."""
        small = self.small
        if small is not None and small.shape[1] >= size[0] and small.shape[0] >= size[1]:
            return Pyramid(small).down_to(size)
        return cv2.resize(self.pyramid.level(k), size, interpolation=cv2.INTER_AREA)

    def box(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) in full-size pixels holding every alpha > 0: from the small alpha, a
        few pixels wider than the exact box (where alpha is 0 the blend gives the background
        exactly); else the half alpha's box doubled (a lone alpha 1 whose 2×2 block averages
        to 0 is left out, an error of one grey level)."""
        small = self.small
        fh, fw = self.base.shape
        if small is None:
            x, y, w, h = cv2.boundingRect(self.half)
            return 2 * x, 2 * y, min(2 * w, fw - 2 * x), min(2 * h, fh - 2 * y)
        x, y, w, h = cv2.boundingRect(small)
        if not (w and h):
            return 0, 0, 0, 0
        x0, x1 = _upscaled_span(x, x + w, small.shape[1], fw)
        y0, y1 = _upscaled_span(y, y + h, small.shape[0], fh)
        return x0, y0, x1 - x0, y1 - y0

    def half_box(self) -> tuple[int, int, int, int]:
        """`box()` on the half alpha, halved outwards (it is 0 outside)."""
        x, y, w, h = self.box()
        hx, hy = x // 2, y // 2
        return hx, hy, (x + w + 1) // 2 - hx, (y + h + 1) // 2 - hy


def _upscaled_span(lo: int, hi: int, n_small: int, n_full: int) -> tuple[int, int]:
    """The pixels [lo', hi') of an `n_full` line bilinearly upscaled from an `n_small` one that
    read any of the small pixels [lo, hi): full pixel d samples small position
    (d + 0.5)·n_small/n_full - 0.5 from its two neighbours. One pixel of slack each side."""
    s = n_full / n_small
    return (
        max(0, math.floor((lo - 0.5) * s - 0.5) - 1),
        min(n_full, math.ceil((hi + 0.5) * s - 0.5) + 1),
    )


def blend_i420(
    fg: I420, bg: I420, alpha: AlphaLevels, scratch: _Scratch | None = None, *, reuse_bg: bool
) -> I420:
    """`blend` plane by plane: Y with the alpha (`alpha.base`), U and V with its half-size
    area mean (`alpha.half`, shared with the blurred background). A full-range `fg` is
    mapped to limited range inside the box only: outside it the output is the background."""
    # The half box doubled for Y keeps its rows and columns even (an odd start or width
    # measured 0.1 ms more at 720p).
    box = hx, hy, hw, hh = alpha.half_box()
    x, y = 2 * hx, 2 * hy
    out = bg if reuse_bg else I420.empty(fg.width, fg.height)
    boxes = ((x, y, min(2 * hw, fg.width - x), min(2 * hh, fg.height - y)), box, box)
    maps = (Y_TO_LIMITED, C_TO_LIMITED, C_TO_LIMITED) if fg.full_range else (None,) * 3
    half = alpha.half
    for f, b, o, a, r, m in zip(
        fg.planes, bg.planes, out.planes, (alpha.base, half, half), boxes, maps, strict=True
    ):
        blend(f, b, a, scratch, reuse_bg=reuse_bg, out=o, box=r, fg_map=m)
    return out


# ------------------------------------------------------------------------ backgrounds
class _Background(Protocol):
    fresh: bool  # get() returns a new array each call, which the blend may write into

    def get(
        self, frame: np.ndarray, alpha: np.ndarray, pyramid: Pyramid | None = None
    ) -> np.ndarray:
        """The background for this frame, frame-sized uint8 BGR (not to be modified unless
        `fresh`); `pyramid` is the frame's, to share its halvings."""
        ...

    def get_i420(self, frame: I420, alpha: AlphaLevels, pyramid: Pyramid | None = None) -> I420:
        """The same in I420, for a frame in I420 (converted once per picture, not per frame,
        where the background stands still); `alpha` is shared with the chroma blend."""
        ...

    def close(self) -> None: ...


Background = _Background  # what `Compositor.load_background` hands out


class BlurBackground:
    """The frame blurred with the person masked out, so no halo of their colours.

    bg = blur(frame·w) / blur(w) with w = 1 - (dilated) alpha: each background pixel is an
    average of background only. Computed on a power-of-two downscale where the blur is still
    ≥ ~1.1 px wide (so the small image is band-limited and its bilinear upscale looks smooth).
    """

    MIN_SMALL_SIGMA = 1.1
    MAX_FACTOR = 16
    fresh = True

    def __init__(self, strength: int) -> None:
        self.strength = strength

    def sigma(self, short_side: int) -> float:
        """Gaussian sigma in full-resolution pixels: strength 100 = 1/16 of the short side
        (45 px at 720p), so a setting looks the same at any resolution."""
        return self.strength / 100 * short_side / 16

    def factor(self, short_side: int) -> int:
        """Downscale factor 2..16 keeping the small-image sigma ≥ MIN_SMALL_SIGMA."""
        f, sigma = 2, self.sigma(short_side)
        while (
            f < self.MAX_FACTOR
            and sigma / (2 * f) >= self.MIN_SMALL_SIGMA
            and short_side // (2 * f) >= 16
        ):
            f *= 2
        return f

    def get(
        self, frame: np.ndarray, alpha: np.ndarray, pyramid: Pyramid | None = None
    ) -> np.ndarray:
        h, w = frame.shape[:2]
        small = self._small(frame, alpha, pyramid)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    def get_i420(self, frame: I420, alpha: AlphaLevels, pyramid: Pyramid | None = None) -> I420:
        return upscaled(self._small(frame, alpha, pyramid), frame.width, frame.height)

    def _small(
        self, frame: np.ndarray | I420, alpha: np.ndarray | AlphaLevels, pyramid: Pyramid | None
    ) -> np.ndarray:
        """The blurred background at the downscale, BGR."""
        h, w = frame.shape[:2]
        f = self.factor(min(h, w))
        sw, sh = max(1, w // f), max(1, h // f)
        k = f.bit_length() - 1  # f is a power of two
        small = cv2.resize(
            (pyramid or Pyramid(frame)).level(k), (sw, sh), interpolation=cv2.INTER_AREA
        )
        alphas = alpha if isinstance(alpha, AlphaLevels) else AlphaLevels(alpha)
        a_small = alphas.reduced(k, (sw, sh))
        # Dilate: a small pixel that straddles the outline carries some person colour.
        a_small = cv2.dilate(a_small, np.ones((3, 3), np.uint8))
        weight = (255 - a_small).astype(np.float32) * np.float32(1 / 255)
        # One 4-channel blur of premultiplied (B·w, G·w, R·w, 255·w) instead of separate ones;
        # cv2 calls on contiguous arrays, numpy on strided 4-channel views is ~10× slower here.
        stack = cv2.multiply(
            cv2.cvtColor(small, cv2.COLOR_BGR2BGRA).astype(np.float32), cv2.merge([weight] * 4)
        )
        sigma = max(0.5, self.sigma(min(h, w)) / f)
        blurred = cv2.GaussianBlur(stack, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        b, g, r, den = cv2.split(blurred)
        # Where the window holds no background (den → 0, deep inside the person, so under
        # alpha ≈ 255) fall back smoothly to the mean background colour instead of 0/0.
        sums = cv2.sumElems(stack)
        mean_bg = [c * 255 / sums[3] for c in sums[:3]] if sums[3] > 0 else [128.0] * 3
        eps = 1e-3  # in units of w; den is 255·w
        inv = cv2.divide(1.0, den + np.float32(255 * eps))
        bgr = cv2.merge([c + np.float32(eps * m) for c, m in zip((b, g, r), mean_bg, strict=True)])
        # A weighted mean of 0..255 values; the saturating conversion only guards rounding.
        return cv2.multiply(bgr, cv2.merge([inv] * 3), dtype=cv2.CV_8U, scale=255)

    def close(self) -> None:
        pass


class _ConvertedOnce:
    """`get_i420` for a background whose `get` hands out the same array until its picture
    changes: each picture is converted to I420 once."""

    _i420: tuple[np.ndarray, I420] | None = None

    def get(
        self, frame: np.ndarray, alpha: np.ndarray, pyramid: Pyramid | None = None
    ) -> np.ndarray:
        raise NotImplementedError

    def get_i420(self, frame: I420, alpha: AlphaLevels, pyramid: Pyramid | None = None) -> I420:
        # Only the frame's shape is read, and the alpha not at all.
        bgr = self.get(frame, alpha.base, pyramid)  # type: ignore[arg-type]
        if self._i420 is None or self._i420[0] is not bgr:
            self._i420 = (bgr, I420.from_bgr(bgr))
        return self._i420[1]


class ImageBackground(_ConvertedOnce):
    """A still image, cover-fitted once per frame size."""

    fresh = False

    def __init__(self, name: str) -> None:
        self.image = load_image(name)
        self._fitted: np.ndarray | None = None

    def get(
        self, frame: np.ndarray, alpha: np.ndarray, pyramid: Pyramid | None = None
    ) -> np.ndarray:
        h, w = frame.shape[:2]
        if self._fitted is None or self._fitted.shape[:2] != (h, w):
            self._fitted = cover_fit(self.image, (w, h))
        return self._fitted

    def close(self) -> None:
        pass


class ColorBackground(ImageBackground):
    def __init__(self, color: str) -> None:
        self.image = np.full((1, 1, 3), parse_color(color), np.uint8)
        self._fitted = None

    def get(
        self, frame: np.ndarray, alpha: np.ndarray, pyramid: Pyramid | None = None
    ) -> np.ndarray:
        h, w = frame.shape[:2]
        if self._fitted is None or self._fitted.shape[:2] != (h, w):
            self._fitted = np.full((h, w, 3), self.image[0, 0], np.uint8)
        return self._fitted


class VideoBackground(_ConvertedOnce):
    """A video file looping at its own frame rate, whatever the camera's rate.

    Decoding runs in the caller's thread: a 720p H.264 frame costs a few ms; a busy pipeline
    may want a lower-resolution clip.
    """

    MAX_SKIP = 3  # frames dropped per call at most when the camera is slower than the video
    fresh = False

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = paths.find_background(name)
        self._cap = cv2.VideoCapture(str(self.path))
        ok, first = self._cap.read() if self._cap.isOpened() else (False, None)
        if not ok or first is None:
            self._cap.release()
            raise PixcamError(f"cannot read background video {self.path}: use an MP4 or WebM file")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1 <= fps <= 240 else 30.0
        self._clock = clock
        self._start = self._clock()
        self._index = 0  # index of self._frame since the start (not wrapped)
        self._frame = first
        self._fitted: np.ndarray | None = None

    def _advance(self) -> None:
        """Read until the frame due now (by wall clock); reuse the last one if early."""
        due = int((self._clock() - self._start) * self.fps)
        steps = min(due - self._index, self.MAX_SKIP + 1)
        if steps <= 0:
            return
        for _ in range(steps - 1):
            if not self._cap.grab():
                break
        ok, frame = self._cap.read()
        if not ok:  # end of file: loop
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        self._index = due
        if ok:
            self._frame = frame
            self._fitted = None

    def get(
        self, frame: np.ndarray, alpha: np.ndarray, pyramid: Pyramid | None = None
    ) -> np.ndarray:
        self._advance()
        h, w = frame.shape[:2]
        if self._fitted is None or self._fitted.shape[:2] != (h, w):
            self._fitted = cover_fit(self._frame, (w, h))
        return self._fitted

    def close(self) -> None:
        self._cap.release()


def make_background(
    settings: ComposeSettings, clock: Callable[[], float] = time.monotonic
) -> _Background | None:
    """Build (load, open) the background for `settings`; None for mode "none"."""
    mode = settings.background
    if mode == "blur":
        return BlurBackground(settings.blur_strength)
    if mode == "image":
        return ImageBackground(settings.image)
    if mode == "video":
        return VideoBackground(settings.video, clock)
    if mode == "color":
        return ColorBackground(settings.color)
    return None


# ------------------------------------------------------------------------- compositor
class Compositor:
    """Thread-safe: `update()` may run in the control thread while `compose()` runs."""

    def __init__(
        self, settings: ComposeSettings | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """`clock` paces background videos (tests and benchmarks pass a fake one)."""
        self._settings = settings or ComposeSettings()
        self._clock = clock
        self._background = make_background(self._settings, clock)
        self._scratch = _Scratch()
        self._lock = threading.Lock()
        # A blurred background kept for the next frames while the picture is still.
        self._kept: tuple[_Background, Frame] | None = None

    @property
    def settings(self) -> ComposeSettings:
        return self._settings

    def needs_load(self, settings: ComposeSettings) -> bool:
        """Whether switching to `settings` loads or opens a file (`load_background`)."""
        return not _same_background(self._settings, settings)

    def load_background(self, settings: ComposeSettings) -> _Background | None:
        """The background for `settings`, built without touching the running one: the slow
        part of `update`, which a live stream runs off its frame thread."""
        return make_background(settings, self._clock)

    def update(
        self,
        settings: ComposeSettings | None = None,
        *,
        loaded: _Background | None = None,
        **changes: Unpack[ComposeChanges],
    ) -> None:
        """Apply new settings (whole, or single fields by keyword); `loaded` is their
        background from `load_background`, already built.

        The new background is loaded before anything changes, so on `PixcamError` (missing or
        unreadable file) the previous background keeps running.
        """
        new = settings or self._settings
        if changes:
            new = replace(new, **changes)
        old = self._settings
        if _same_background(old, new):
            self._settings = new  # e.g. only `mirror` or an unused field changed
            self._kept = None  # blurred from a picture flipped the other way
            if loaded is not None:
                loaded.close()
            return
        # may raise: nothing changed yet
        background = loaded if loaded is not None else make_background(new, self._clock)
        with self._lock:
            previous, self._background, self._settings = self._background, background, new
        if previous is not None:
            previous.close()

    @overload
    def compose(
        self,
        frame: np.ndarray,
        alpha_u8: np.ndarray,
        pyramid: Pyramid | None = None,
        *,
        small: np.ndarray | None = None,
        keep_background: bool = False,
        reuse_background: bool = False,
    ) -> np.ndarray: ...

    @overload
    def compose(
        self,
        frame: I420,
        alpha_u8: np.ndarray,
        pyramid: Pyramid | None = None,
        *,
        small: np.ndarray | None = None,
        keep_background: bool = False,
        reuse_background: bool = False,
    ) -> I420: ...

    def compose(
        self,
        frame: Frame,
        alpha_u8: np.ndarray,
        pyramid: Pyramid | None = None,
        *,
        small: np.ndarray | None = None,
        keep_background: bool = False,
        reuse_background: bool = False,
    ) -> Frame:
        """The output frame, in the frame's own format (BGR or I420); mode "none" without
        mirror returns `frame` itself.

        `pyramid` (of `frame`) lends the halvings the earlier stages made; `small` is the
        alpha `alpha_u8` is the bilinear upscale of (`refine.Alpha.small`), read for the
        box and the blur instead of the full one.
        `keep_background`: keep this frame's blurred background; `reuse_background`: the
        picture hardly moved since it was kept and the mask is the same (a carried mask), so
        the kept one serves again. The blur is a third of a still frame's cost (the mask is
        carried, so the blend and the blur are all that is left), and a picture whose
        background did not move blurs to the same thing."""
        with self._lock:
            s, background = self._settings, self._background
            if s.mirror:
                frame = frame.flipped() if isinstance(frame, I420) else cv2.flip(frame, 1)
                alpha_u8 = cv2.flip(alpha_u8, 1)
                small = None if small is None else cv2.flip(small, 1)
                pyramid = None  # of the unflipped frame
            if background is None:
                return frame
            if alpha_u8.shape != frame.shape[:2]:
                raise ValueError(f"alpha {alpha_u8.shape} does not match frame {frame.shape}")
            alphas = AlphaLevels(alpha_u8, small)
            kept = self._kept
            bg: Frame
            if reuse_background and kept and kept[0] is background and _alike(kept[1], frame):
                bg, fresh = kept[1], False  # blended from, never into
            else:
                if isinstance(frame, I420):
                    bg = background.get_i420(frame, alphas, pyramid)
                else:
                    bg = background.get(frame, alpha_u8, pyramid)
                fresh = background.fresh
                # Only the blur is made from the frame (and costs); a video must go on playing.
                if keep_background and isinstance(background, BlurBackground):
                    self._kept = (background, _copied(bg, kept[1] if kept else None))
                else:
                    self._kept = None
            if isinstance(frame, I420):
                assert isinstance(bg, I420)
                return blend_i420(frame, bg, alphas, self._scratch, reuse_bg=fresh)
            assert isinstance(bg, np.ndarray)
            box = None if small is None else alphas.box()
            return blend(frame, bg, alpha_u8, self._scratch, reuse_bg=fresh, box=box)

    def close(self) -> None:
        with self._lock:
            if self._background is not None:
                self._background.close()


def _same_background(a: ComposeSettings, b: ComposeSettings) -> bool:
    """True when switching a → b needs no new file loaded or opened."""
    if a.background != b.background:
        return False
    if a.background == "image":
        return a.image == b.image
    if a.background == "video":
        return a.video == b.video
    if a.background == "color":
        return a.color == b.color
    if a.background == "blur":
        return a.blur_strength == b.blur_strength
    return True


def _alike(a: Frame, b: Frame) -> bool:
    """Same format and size."""
    return type(a) is type(b) and a.shape == b.shape


def _copied(bg: Frame, into: Frame | None) -> Frame:
    """`bg` copied into `into` when that is alike: holding on to `bg` itself would make every
    frame allocate afresh, page faults included (docs/live-costs.md#decode-and-blend-figures)."""
    if into is None or not _alike(bg, into):
        into = I420.empty(bg.width, bg.height) if isinstance(bg, I420) else np.empty_like(bg)
    if isinstance(bg, I420):
        assert isinstance(into, I420)
        np.copyto(into.data, bg.data)
    else:
        assert isinstance(into, np.ndarray)
        np.copyto(into, bg)
    return into
