"""The keeper: at start-up, before numpy, OpenCV or LiteRT are imported, pixcam takes its
virtual camera back from the standard library alone when an app still watches it.

After a crash systemd starts pixcam again within seconds, but its imports alone take seconds
on a cold page cache (40 s under emulation) before the real sink writes, and Chromium ends a
track that gets no frame for 10 s; an ended track never comes back, the call shows black
until the user picks the camera again. The keeper writes the last run's "starting" card
(`keeper_cache`, the exact bytes), then again at the last run's rate from a thread (the rate
the device still advertises: readers like OBS give up after 5 frame times), and stops just
before the real sink opens the device (`release`): v4l2loopback takes one writer at a time.

It takes over only what is safe to: the cached device, still a v4l2loopback node with the
cached label and `exclusive_caps` on, that a reader holds with no writer (then it offers
CAPTURE and OUTPUT at once) at the cached size in I420. Nobody watching, another writer, any
doubt or any OSError: it stands down and pixcam starts as it would without.

`pixcam daemon` and `pixcam run` start it from `pixcam/__init__.py` (`start_from_argv`),
before cli.py and its argparse and logging are even imported. Everything on the way to the
first card is kept to a handful of small modules (tests/test_keeper.py checks which): under
emulation each module more costs about 15 ms, and the launch's whole budget is Chromium's
10 s. So nothing is logged at that point; cli.py calls `start` once logging is set up, and
the keeper says then what it did.
"""

from __future__ import annotations

import os
import time
from _thread import allocate_lock  # what threading.Lock is; `threading` loads 12 modules

from pixcam.video import keeper_cache, v4l2caps
from pixcam.video.keeper_cache import LastOutput

TYPE_CHECKING = False  # typing.TYPE_CHECKING without loading typing's 25 modules (mypy knows it)
if TYPE_CHECKING:
    import threading

SYSFS_EXCLUSIVE_CAPS = f"{v4l2caps.LOOPBACK_MODULE}/parameters/exclusive_caps"


class StandDown(Exception):
    """Why the keeper leaves the device alone (not an error: pixcam starts as before)."""


class Keeper:
    """One takeover attempt: the checks and the first card in `start()`, the next cards from a
    thread until `stop()`."""

    def __init__(
        self,
        wanted: str | None = None,
        cache: str | os.PathLike[str] | None = None,
        exclusive_caps: str | os.PathLike[str] = SYSFS_EXCLUSIVE_CAPS,
    ) -> None:
        self.wanted = _device_path(wanted)
        self._cache = cache
        self._exclusive_caps = exclusive_caps
        self._fd: int | None = None
        self._stop: threading.Event | None = None  # set once the cards repeat
        self._thread: threading.Thread | None = None  # the one writing them
        self.device: str | None = None  # set once the device is held
        self.stood_down = ""  # why it left the device alone, or stopped writing
        self.frames = 0
        self.since = 0.0  # time.monotonic() of the first card written

    def start(self) -> Keeper:
        """Check, take the device and write the first card, here and now (the sooner the
        better); then repeat it from a thread. Never raises."""
        try:
            last = keeper_cache.load(self._cache)
            self._fd = self._take(last)
            os.write(self._fd, last.card)
            self._advertise(self._fd, last.fps)
        except (StandDown, keeper_cache.NoCache, OSError) as exc:
            self._close()
            self.stood_down = str(exc)
            return self
        except Exception as exc:  # never let the keeper break a start-up
            self._close()
            self.stood_down = repr(exc)
            return self
        self.device, self.since, self.frames = last.device, time.monotonic(), 1
        import threading  # only now: the first card is out

        self._stop = stop = threading.Event()
        self._thread = threading.Thread(
            target=self._repeat, args=(self._fd, last.card, last.fps, stop), name="pixcam keeper",
            daemon=True,
        )  # fmt: skip
        self._thread.start()
        return self

    @staticmethod
    def _advertise(fd: int, fps: float) -> None:
        """The rate the card is written at, for readers that open the device now."""
        try:  # noqa: SIM105 - contextlib would be one module more before the first card
            v4l2caps.set_frame_rate(fd, v4l2caps.BUF_TYPE_VIDEO_OUTPUT, fps)
        except OSError:
            pass  # an old driver: readers see its default

    def _repeat(self, fd: int, card: bytes, fps: float, stop: threading.Event) -> None:
        try:
            while not stop.wait(1.0 / fps):
                os.write(fd, card)
                self.frames += 1
        except OSError as exc:
            self.stood_down = f"writing to {self.device} failed: {exc}"
        finally:
            self._close()

    def stop(self) -> None:
        """Stop writing and close the device (safe to call twice)."""
        thread, self._thread = self._thread, None
        if thread is None or self._stop is None:
            self._close()
            return
        self._stop.set()
        thread.join()

    def running(self) -> bool:
        """Whether its thread still writes cards."""
        return self._thread is not None and self._thread.is_alive()

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            # A STREAMON'd writer closing gives the device its OUTPUT capability back, so the
            # real sink can open it next.
            os.close(fd)

    def _take(self, last: LastOutput) -> int:
        """Open `last.device` as its writer, or raise StandDown/OSError saying why not."""
        if self.wanted is not None and self.wanted != last.device:
            raise StandDown(f"this run writes {self.wanted}, the last one {last.device}")
        info = v4l2caps.query(last.device)
        if not info.is_loopback or info.card != last.label:
            raise StandDown(f"{last.device} is no longer the v4l2loopback {last.label!r}")
        if not (info.can_capture and info.can_output):
            raise StandDown(f"{last.device}: no reader waits, or another writer feeds it")
        if not self._exclusive(info.loopback_index):
            raise StandDown(f"{last.device}: exclusive_caps is off, a writer can't be told apart")
        fd = os.open(last.device, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fmt = v4l2caps.get_format(fd, v4l2caps.BUF_TYPE_VIDEO_OUTPUT)
            want = (last.width, last.height, keeper_cache.PIXEL_FORMAT, len(last.card))
            if fmt != want:
                raise StandDown(f"{last.device} is at {fmt}, the cached card is {want}")
            # STREAMON makes this fd the device's writer: its close gives OUTPUT back (so a
            # keeper that dies with pixcam never leaves the device refusing writers).
            v4l2caps.stream_on(fd, v4l2caps.BUF_TYPE_VIDEO_OUTPUT)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _exclusive(self, index: int | None) -> bool:
        try:
            with open(self._exclusive_caps) as f:
                flags = f.read().strip().split(",")
        except OSError:
            return False
        return index is not None and index < len(flags) and flags[index] in ("Y", "1")


def _device_path(device: str | None) -> str | None:
    """The sink's spelling of an explicit device ("11" → /dev/video11); None for auto."""
    device = (device or "auto").strip()
    if device == "auto":
        return None
    return f"/dev/video{device}" if device.isdigit() else device


_current: Keeper | None = None
_lock = allocate_lock()


def start_from_argv(argv: list[str]) -> None:
    """Start the keeper straight from the raw command line (`pixcam/__init__.py`, when pixcam
    is the program). cli.py stays the one parser: this recognises only the plain forms of the
    two commands that write the virtual camera, `pixcam [-v...] [daemon|run] [options]` (what
    systemd and the autostart entry run), with `--output-device DEV` for `run`. Anything else
    (another command, --help, an --output file, an abbreviated option) is left to cli.py,
    which starts the keeper after parsing when it should."""
    args = list(argv)
    while args and (args[0] == "--verbose" or (args[0][:1] == "-" and set(args[0][1:]) == {"v"})):
        args.pop(0)  # -v, -vv, --verbose: pixcam's only options before the command
    if not args:
        command = "daemon"  # bare `pixcam`
    elif args[0].startswith("-"):
        return
    else:
        command = args.pop(0)
    if command not in ("daemon", "run"):
        return
    wanted = None
    for i, arg in enumerate(args):
        if command == "run" and arg == "--output-device" and i + 1 < len(args):
            wanted = args[i + 1]
        elif command == "run" and arg.startswith("--output-device="):
            wanted = arg.partition("=")[2]
        elif arg in ("-h", "--help") or arg.startswith("--o"):
            return
    _start(wanted)


def _start(wanted: str | None) -> Keeper:
    global _current
    with _lock:
        if _current is None:
            _current = Keeper(wanted).start()
        return _current


def start(wanted: str | None = None) -> None:
    """cli.py, for a run into a virtual camera, once logging is set up: start the keeper
    unless the command line already did, and say what it did. A keeper started for another
    device (cli.py parsed what the early look did not see) is stopped."""
    import logging

    log = logging.getLogger("pixcam.video.keeper")
    keeper = _start(wanted)
    if keeper.wanted != _device_path(wanted):  # the early look read the command line otherwise
        release()
        keeper = _start(wanted)
    if keeper.device is not None:
        log.info(
            "keeper: holding %s with the last card (since %.1f s) until the stream opens",
            keeper.device, time.monotonic() - keeper.since,
        )  # fmt: skip
    else:
        log.debug("keeper stands down: %s", keeper.stood_down)


def release() -> None:
    """The real sink is about to open the device, or this run writes no virtual camera: stop
    the keeper and close its fd."""
    global _current
    with _lock:
        keeper, _current = _current, None
    if keeper is None:
        return
    keeper.stop()
    if keeper.device is not None:
        import logging

        logging.getLogger("pixcam.video.keeper").info(
            "keeper: held %s for %.1f s with the last card (%d frames) until the stream took over",
            keeper.device, time.monotonic() - keeper.since, keeper.frames,
        )  # fmt: skip
