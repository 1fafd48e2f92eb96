"""Be right back: after nobody has been in the picture for a while, the output fades to a card.

`AwayState` decides from one bool a frame (someone there or not) and the clock; `AwayCard`
makes the picture (an image, a text card, or a blurred still of the empty room) and blends it
over the chain's output. Frames keep flowing: the card is one more stage of the chain, so the
runner sends it at the stream's rate like any other frame.

Hysteresis both ways: the card comes only after `after` seconds with nobody (a missed frame or
a second out of the picture never shows it), and goes on the second frame in a row that finds
someone (one stray detection while away never flashes the picture through).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from pixcam.chain.compose import BACKGROUND_COVER, cover_fit
from pixcam.errors import PixcamError
from pixcam.i420 import Frame, as_bgr
from pixcam.images import read_image
from pixcam.modes import AWAY_MODES
from pixcam.paths import find_background

FADE_S = 0.3  # the fade to the card
BACK_FRAMES = 2  # frames in a row with someone in them that end the away card
CARD_COLOUR = (48, 40, 36)  # BGR: the text card's background, a dark slate
STILL_BLUR = 0.04  # the blurred still's blur, a share of the frame width


@dataclass(frozen=True)
class AwaySettings:
    mode: str = "off"  # "off", "card" (an image or a text card), "blur" (the room, blurred)
    after: float = 30.0  # seconds with nobody before the card
    image: str = ""  # the card image's path ("" for the text card)
    text: str = "Be right back"

    def __post_init__(self) -> None:
        if self.mode not in AWAY_MODES:
            raise ValueError(f"mode must be one of {AWAY_MODES}, got {self.mode!r}")
        if self.after < 0:
            raise ValueError(f"after must be >= 0, got {self.after}")


@dataclass
class AwayState:
    """Per frame: `update(present, now) -> level` (0: the picture, 1: the card)."""

    settings: AwaySettings = field(default_factory=AwaySettings)
    manual: bool = False  # "Be right back" switched on by hand
    level: float = 0.0
    since: float | None = None  # when the card began (clock time), None while not away
    _last_seen: float | None = None  # when someone was last in the picture
    _back: int = 0  # frames in a row with someone in them, while away
    _t: float | None = None  # the previous frame's time

    def reset(self, now: float | None = None) -> None:
        """Forget who was seen when (the stream started again): the wait starts over."""
        self._last_seen, self._back, self.level, self.since, self._t = now, 0, 0.0, None, None

    @property
    def away(self) -> bool:
        return self.since is not None

    def switch(self, on: bool) -> None:
        """The manual switch. Off ends the card now, not at the next frame: while the camera is
        paused no frame comes, and the status said "away" until the resume. Nobody in the
        picture for `after` s still brings it back (at the next frame, with its fade)."""
        self.manual = on
        if not on:
            self.since, self.level, self._back = None, 0.0, 0

    def update(self, present: bool | None, now: float) -> float:
        """`present`: someone is in this frame (None: unknown, no segmentation ran)."""
        dt = 0.0 if self._t is None else max(0.0, now - self._t)
        self._t = now
        if self._last_seen is None:
            self._last_seen = now  # the wait counts from the first frame
        auto = self.settings.mode != "off" and present is not None
        if present:
            self._last_seen = now
        if self.since is not None:
            self._back = self._back + 1 if present else 0
            if not self.manual and (not auto or self._back >= BACK_FRAMES):
                self.since, self.level = None, 0.0  # back: the picture at once
                return self.level
        elif self.manual or (auto and now - self._last_seen >= self.settings.after):
            self.since, self._back = now, 0
        if self.since is not None:
            step = 1.0 if FADE_S <= 0 else dt / FADE_S
            self.level = min(1.0, self.level + max(step, 1e-3))
        return self.level


def load_card_image(settings: AwaySettings) -> np.ndarray | None:
    """The card image decoded (the slow part: run it beside the stream), None when the
    settings show no image. PixcamError when it cannot be used."""
    if settings.mode != "card" or not settings.image:
        return None
    path = find_background(settings.image, "away card")
    image = read_image(path, "away card", cv2.IMREAD_COLOR, cover=BACKGROUND_COVER)
    # Shrunk here to just cover 4K: the frame thread fits it to the frame when the card first
    # shows (and at each new size), which took 0.4 s for a 63 MP image.
    w, h = image.shape[1], image.shape[0]
    f = max(BACKGROUND_COVER[0] / w, BACKGROUND_COVER[1] / h)
    if f >= 1.0:
        return image
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class AwayCard:
    """The card picture at a frame's size, made once per size and settings."""

    def __init__(self, settings: AwaySettings) -> None:
        self.settings = settings
        self._image: np.ndarray | None = None  # the decoded card image, when given
        self._card: np.ndarray | None = None
        self._still: np.ndarray | None = None
        self.notice: str | None = None  # a card image that could not be used

    def needs_load(self, settings: AwaySettings) -> bool:
        """Whether `settings` show a card image not decoded yet."""
        shown = settings.mode == "card" and bool(settings.image)
        return shown and (self._image is None or settings.image != self.settings.image)

    def update(self, settings: AwaySettings, image: np.ndarray | None = None) -> None:
        """New settings; `image`: what `load_card_image(settings)` returned beside the
        stream (None: decoded here when the card first shows)."""
        if image is not None or settings.image != self.settings.image:
            self._image = image
        if settings != self.settings or image is not None:
            self.settings, self._card, self._still = settings, None, None

    def forget_still(self) -> None:
        """The next away period takes a new still of the room."""
        self._still = None

    def blend(self, frame: Frame, level: float, room: Frame | None = None) -> Frame:
        """`frame` faded `level` of the way to the card; `room` is the camera picture the
        blurred still is taken from (the first away frame's)."""
        if level <= 0.0:
            return frame
        bgr = as_bgr(frame)
        card = self._picture(bgr.shape[1], bgr.shape[0], room if room is not None else bgr)
        if level >= 1.0:
            return card.copy()
        return cv2.addWeighted(bgr, 1.0 - level, card, level, 0.0)

    def _picture(self, w: int, h: int, room: Frame) -> np.ndarray:
        if self.settings.mode == "blur":
            if self._still is None or self._still.shape[:2] != (h, w):
                self._still = blurred_still(as_bgr(room), w, h)
            return self._still
        if self._card is None or self._card.shape[:2] != (h, w):
            self._card = self._make_card(w, h)
        return self._card

    def _make_card(self, w: int, h: int) -> np.ndarray:
        if self._image is None and self.settings.image:
            try:
                self._image = load_card_image(self.settings)
            except (PixcamError, OSError, ValueError) as exc:
                self.notice = str(exc).splitlines()[0]  # the text card instead
        if self._image is not None:
            return cover_fit(self._image, (w, h))
        return text_card(self.settings.text, w, h)


def blurred_still(room: np.ndarray, w: int, h: int) -> np.ndarray:
    """The room blurred beyond recognition: small, blurred, back to size."""
    sw = max(16, w // 8)
    sh = max(9, round(h * sw / w))
    small = cv2.resize(room, (sw, sh), interpolation=cv2.INTER_AREA)
    k = max(1.0, STILL_BLUR * sw * 2)
    small = cv2.GaussianBlur(small, (0, 0), k)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def text_card(text: str, w: int, h: int) -> np.ndarray:
    """A dark card with `text` centred, sized to the frame."""
    card = np.empty((h, w, 3), np.uint8)
    card[:] = CARD_COLOUR
    text = text.strip() or "Be right back"
    font = cv2.FONT_HERSHEY_DUPLEX
    scale = h / 360
    thick = max(1, round(h / 240))
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    if tw > 0.9 * w:
        scale *= 0.9 * w / tw
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    org = ((w - tw) // 2, (h + th) // 2)
    cv2.putText(card, text, org, font, scale, (235, 235, 235), thick, cv2.LINE_AA)
    return card
