"""What the virtual camera looked like when pixcam last opened it, for the keeper of the next
start (`keeper.py`): the device, its label, the frame size, the rate it wrote and the exact
bytes (I420) of the "starting" card. Written by the runner each time its stream starts.

Read before anything else is imported, so it asks for little: `os` and `zlib`, no json
(which loads `re`), dataclasses or pathlib; each module more is a file lookup and a load on
the way to the first card (about 15 ms each under emulation, more on a cold disk).
The file: a text header of `key=value` lines, an empty line, then the card, zlib-compressed.
"""

from __future__ import annotations

import os
import zlib

MAGIC = "pixcam last output 2"  # its number changes with the layout: an older file is ignored
PIXEL_FORMAT = "YU12"  # I420, what the virtual camera sink writes
_FIELDS = ("device", "label", "width", "height", "fps", "pixel_format")


class NoCache(Exception):
    """There is no usable cache: none yet, another version's, or damaged (the message)."""


class LastOutput:
    """The device (/dev/videoN), its v4l2 card label ("pixcam"), the frame size, one I420
    card of width × height × 3/2 bytes and the rate the device advertised (the keeper writes
    the card at it). A plain class for the reason above."""

    __slots__ = ("device", "label", "width", "height", "card", "fps")

    def __init__(
        self, device: str, label: str, width: int, height: int, card: bytes, fps: float = 30.0
    ) -> None:
        if width <= 0 or height <= 0 or len(card) != i420_size(width, height):
            raise ValueError(f"a {width}x{height} I420 card, got {len(card)} bytes")
        if not 0 < fps <= 1000:
            raise ValueError(f"a rate of {fps} fps")
        self.device, self.label, self.width, self.height, self.card, self.fps = (
            device, label, width, height, card, fps
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LastOutput):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return (
            f"LastOutput({self.device!r}, {self.label!r}, {self.width}x{self.height}@{self.fps:g}, "
            f"{len(self.card)} bytes)"
        )


def i420_size(width: int, height: int) -> int:
    return width * height * 3 // 2


def cache_file() -> str:
    """`$XDG_CACHE_HOME/pixcam/last-output`: paths.cache_home()'s rule, in os.path terms
    (pathlib loads `re` and more; tests/test_keeper.py holds the two equal)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(_home(), ".cache")
    return os.path.join(base, "pixcam", "last-output")


def _home() -> str:
    """paths.home()'s rule: `$HOME` when absolute, else the account's home folder."""
    value = os.environ.get("HOME", "")
    if os.path.isabs(value):
        return value
    import pwd  # only for an odd HOME: the usual start imports nothing more

    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return os.path.expanduser("~")


def save(last: LastOutput, path: str | os.PathLike[str] | None = None) -> None:
    """Write atomically (a keeper may read it at any moment); a failure only costs the next
    start its keeper, so it is logged, not raised."""
    import logging  # here, not above: load() runs before logging is imported

    path = os.fspath(path or cache_file())
    log = logging.getLogger("pixcam.video.keeper")
    fields = (
        last.device, last.label, str(last.width), str(last.height), repr(last.fps), PIXEL_FORMAT
    )  # fmt: skip
    if any("\n" in value for value in fields):
        log.debug("not remembering %r for the next start: a line break in its name", last)
        return
    header = "\n".join([MAGIC, *(f"{k}={v}" for k, v in zip(_FIELDS, fields, strict=True))])
    # A card is flat colour and a line of text: a few kB compressed.
    data = header.encode() + b"\n\n" + zlib.compress(last.card)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    except OSError as exc:
        log.debug("can't save %s for the next start: %s", path, exc)


def load(path: str | os.PathLike[str] | None = None) -> LastOutput:
    """The last output; NoCache saying why when there is none or it is unusable in any way
    (not logged here: the keeper says why once logging is set up)."""
    path = os.fspath(path or cache_file())
    try:
        with open(path, "rb") as f:
            data = f.read()
        head, sep, card = data.partition(b"\n\n")
        lines = head.decode().split("\n")
        if not sep or lines[0] != MAGIC:
            raise NoCache(f"{path} is not a cache of this version")
        values = dict(line.partition("=")[::2] for line in lines[1:])
        if values.get("pixel_format") != PIXEL_FORMAT:
            raise NoCache(f"{path}: pixel format {values.get('pixel_format')!r}")
        return LastOutput(
            device=values["device"],
            label=values["label"],
            width=int(values["width"]),
            height=int(values["height"]),
            card=zlib.decompress(card),
            # A file from before the rate was kept: v4l2loopback's own default.
            fps=float(values.get("fps", "30")),
        )
    except FileNotFoundError:
        raise NoCache("no cached virtual camera from an earlier run") from None
    except (OSError, ValueError, KeyError, zlib.error) as exc:  # UnicodeError is a ValueError
        raise NoCache(f"{path} is unusable: {exc!r}") from None
