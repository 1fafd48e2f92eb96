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
def native_stderr_to_log() -> Iterator[None]:
    """The runtime's C++ side prints notes such as "INFO: Created TensorFlow Lite XNNPACK
    delegate" straight to fd 2; route them to the debug log so the terminal shows only our
    own one-line messages."""
    sys.stderr.flush()  # what Python already buffered belongs before the redirect
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                log.debug("native: %s", line)
