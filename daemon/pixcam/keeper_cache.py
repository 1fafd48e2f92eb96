"""What the virtual camera looked like when pixcam last opened it, for the keeper of the next
start (`keeper.py`): the device, its label, the frame size and the exact bytes (I420) of the
first card the stream showed. Written by the runner each time its sink opens.

Stdlib only, like the keeper: it is read before numpy or OpenCV are imported.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from pixcam import paths

log = logging.getLogger("pixcam.keeper")

FORMAT = 1  # bumped when the file's layout changes: an older file is then ignored
PIXEL_FORMAT = "YU12"  # I420, what the virtual camera sink writes


@dataclass(frozen=True)
class LastOutput:
    device: str  # /dev/videoN
    label: str  # its v4l2 card label ("pixcam")
    width: int
    height: int
    card: bytes  # one I420 frame, width × height × 3/2 bytes

    def __post_init__(self) -> None:
        size_ok = self.width > 0 and self.height > 0
        if not size_ok or len(self.card) != i420_size(self.width, self.height):
            raise ValueError(f"a {self.width}x{self.height} I420 card, got {len(self.card)} bytes")


def i420_size(width: int, height: int) -> int:
    return width * height * 3 // 2


def cache_file() -> Path:
    return paths.cache_home() / "pixcam" / "last-output.json"


def save(last: LastOutput, path: Path | None = None) -> None:
    """Write atomically (a keeper may read it at any moment); a failure only costs the next
    start its keeper, so it is logged, not raised."""
    path = path or cache_file()
    text = json.dumps(
        {
            "format": FORMAT,
            "device": last.device,
            "label": last.label,
            "width": last.width,
            "height": last.height,
            "pixel_format": PIXEL_FORMAT,
            # A card is flat colour and a line of text: a few kB compressed.
            "card": base64.b64encode(zlib.compress(last.card)).decode("ascii"),
        }
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".last-output.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        log.debug("can't save %s for the next start: %s", path, exc)


def load(path: Path | None = None) -> LastOutput | None:
    """The last output, or None when there is none or it is unreadable in any way."""
    path = path or cache_file()
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT or data.get("pixel_format") != PIXEL_FORMAT:
            return None
        return LastOutput(
            device=str(data["device"]),
            label=str(data["label"]),
            width=int(data["width"]),
            height=int(data["height"]),
            card=zlib.decompress(base64.b64decode(data["card"], validate=True)),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zlib.error,
            binascii.Error) as exc:  # fmt: skip
        log.debug("ignoring %s: %s", path, exc)
        return None
