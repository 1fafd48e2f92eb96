"""Before a setting is saved: can the stream use it? (`pixcam ctl set`, the tray.)

The schema only knows a value's shape; a background or away card image that is missing or
unreadable, or a model that is unknown, not installed or damaged, passes it and would be
saved, shown in the status and tried again at every start while the old background or model
kept running. Only what the change touches is checked, so an unrelated `set` is never refused
because of a value saved earlier. A background is read as the stream will read it: the image decoded
(after its header's size is checked: a bomb is refused unread), the video opened and its
first frame decoded, then closed; a header alone says nothing of damaged data. A model is
hashed, never loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pixcam import models, paths
from pixcam.chain.away import AwaySettings, load_card_image
from pixcam.chain.compose import VideoBackground, load_image
from pixcam.config import Config
from pixcam.errors import PixcamError


def check_usable(new: Config, old: Config) -> None:
    """PixcamError, one line naming the key, when a changed value cannot be used."""
    e, o = new.effects, old.effects
    if e.background == "image" and (o.background != "image" or e.image != o.image):
        _check("effects.image", lambda: load_image(e.image))
    if e.background == "video" and (o.background != "video" or e.video != o.video):
        _check("effects.video", lambda: _video(e.video))
    n, p = new.people, old.people
    if n.away == "card" and n.away_image and (p.away != "card" or n.away_image != p.away_image):
        card = AwaySettings(mode="card", image=n.away_image)
        _check("people.away_image", lambda: load_card_image(card))
    if new.model.name != old.model.name and not models.is_default(new.model.name):
        _check("model.name", lambda: models.resolve(new.model.name))


def _check(key: str, probe: Callable[[], Any]) -> None:
    try:
        probe()
    except PixcamError as exc:
        raise PixcamError(f"{key}: {exc}; nothing was changed") from None


def _video(name: str) -> None:
    path = paths.find_background(name)
    if not os.access(path, os.R_OK):
        raise PixcamError(f"background video {path} is not readable: check its permissions")
    VideoBackground(name).close()
