"""The frames the runner sends instead of the camera's: "camera unavailable", "camera off",
"starting"."""

from __future__ import annotations

import cv2
import numpy as np

from pixcam.i420 import I420, Frame, as_bgr


def _text_frame(base: np.ndarray, lines: list[str]) -> np.ndarray:
    """`base` with centred white lines of text on it (drawn once, then cached by callers)."""
    h, w = base.shape[:2]
    scale = max(0.5, w / 1280 * 1.2)
    thick = max(1, round(scale * 2))
    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(t, font, scale, thick)[0] for t in lines]
    step = max(s[1] for s in sizes) * 2
    y = h // 2 - step * (len(lines) - 1) // 2
    for text, (tw, th) in zip(lines, sizes, strict=True):
        org = ((w - tw) // 2, y + th // 2)
        cv2.putText(base, text, org, font, scale, (0, 0, 0), thick + 3, cv2.LINE_AA)
        cv2.putText(base, text, org, font, scale, (255, 255, 255), thick, cv2.LINE_AA)
        y += step
    return base


def placeholder_frame(last: Frame | None, width: int, height: int) -> np.ndarray:
    """The last good frame dimmed with "camera unavailable", or a dark grey card."""
    if last is not None and last.shape[:2] == (height, width):
        base = cv2.convertScaleAbs(as_bgr(last), alpha=0.35)
    else:
        base = np.full((height, width, 3), 40, np.uint8)
    return _text_frame(base, ["camera unavailable", "reconnecting..."])


def idle_frame(width: int, height: int) -> np.ndarray:
    return _text_frame(np.full((height, width, 3), 24, np.uint8), ["pixcam: camera off"])


def _for_sink(card: np.ndarray) -> Frame:
    """The card in the virtual camera's I420 (even sides), so resending it converts nothing:
    the idle card goes out several times a second for as long as nobody watches."""
    h, w = card.shape[:2]
    return I420.from_bgr(card) if h % 2 == 0 and w % 2 == 0 else card


def starting_frame(width: int, height: int) -> np.ndarray:
    return _text_frame(np.full((height, width, 3), 24, np.uint8), ["pixcam: starting..."])


class Cards:
    """Each card drawn once and sent again and again (they cost nothing per frame)."""

    def __init__(self) -> None:
        self._idle: Frame | None = None
        self._placeholder: Frame | None = None

    def idle(self, width: int, height: int) -> Frame:
        if self._idle is None or self._idle.shape[:2] != (height, width):
            self._idle = _for_sink(idle_frame(width, height))
        return self._idle

    def starting(self, width: int, height: int) -> Frame:
        """Shown once, while the first model loads with the camera on: not cached."""
        return _for_sink(starting_frame(width, height))

    def placeholder(self, last: Frame | None, width: int, height: int) -> Frame:
        """Drawn from `last` the first time after `forget_placeholder()`."""
        if self._placeholder is None:
            self._placeholder = _for_sink(placeholder_frame(last, width, height))
        return self._placeholder

    def forget_placeholder(self) -> None:
        """The next placeholder is drawn from the then last good frame."""
        self._placeholder = None
