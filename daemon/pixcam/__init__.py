"""pixcam: a virtual webcam that blurs or replaces the background with BodyPix."""

import os
import sys


def _hold_standard_streams() -> None:
    """Closed standard streams (`pixcam segment … >&- 2>&-`) are opened on /dev/null: else
    the next file opened takes fd 1 or 2, and native libraries' messages, or the redirect of
    fd 2 around them (native.py), land in it; and sys.stderr is None where pixcam writes."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: `fd` itself
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        if getattr(sys, name) is None:
            stream = open(fd, "r" if fd == 0 else "w", closefd=False)  # noqa: SIM115 - for good
            setattr(sys, name, stream)


if sys.argv[:1] == ["-m"] or os.path.basename(sys.argv[0] if sys.argv else "") == "pixcam":
    _hold_standard_streams()
    # pixcam is the program (`python -m pixcam`, the `pixcam` command): from its first import
    # on, a Ctrl-C that Python swallows during start-up is sent again (see interrupt.py).
    from pixcam.interrupt import keep_ctrl_c

    keep_ctrl_c()
    # A watching app gets its frames back first, before cli.py and the heavy imports (see
    # keeper.py): `pixcam daemon`/`run` start the keeper here. With -m, Python's own
    # command line names the module just before pixcam's arguments: not `-m pixcam.<module>`.
    if sys.argv[0] != "-m" or sys.orig_argv[len(sys.orig_argv) - len(sys.argv)] == "pixcam":
        from pixcam.video import keeper

        keeper.start_from_argv(sys.argv[1:])

__version__ = "0.1.0"  # the one place it is written: pyproject.toml reads it from here

# FFmpeg (inside OpenCV) prints its own complaints straight to stderr, hundreds of lines for
# one damaged video, and OpenCV adds its own log lines, all around pixcam's one-line error.
# OpenCV reads these when it first logs or opens a video, so setting them here, before any
# cv2 use, silences both (-8 = AV_LOG_QUIET); set the variables yourself to see them again.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
