"""Native libraries' own output (LiteRT's C++ side, libpng, libjpeg) routed into the log, so the
terminal shows only pixcam's one-line messages."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def native_stderr_to_log() -> Iterator[list[str]]:
    """The runtime's C++ side prints notes such as "INFO: Created TensorFlow Lite XNNPACK
    delegate" straight to fd 2, libpng "libpng error: IDAT: CRC error", libjpeg "Premature end
    of JPEG file"; route them to the debug log so the terminal shows only our own one-line
    messages. Yields a list that holds the lines once the block ends, for a caller that
    turns them into its own message.

    fd 2 is the process's: another thread's output during the block lands in the log too, so
    keep the block to the one native call, and off the per-frame path."""
    captured: list[str] = []
    sys.stderr.flush()  # what Python already buffered belongs before the redirect
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured += sink.read().decode(errors="replace").splitlines()
            for line in captured:
                log.debug("native: %s", line)
