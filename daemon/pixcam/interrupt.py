"""A Ctrl-C is never lost, however early it comes.

Python turns SIGINT into a KeyboardInterrupt wherever the main thread happens to be. When that
is a weakref callback or a `__del__` (during start-up the import machinery runs such callbacks
to drop its per-module locks), the exception is only reported ("Exception ignored in …") and
the program runs on as if nothing happened. `keep_ctrl_c()` hooks that report: a swallowed
KeyboardInterrupt is delivered again as a new SIGINT, which lands in ordinary code once the
callback is over, and is handled as usual (the KeyboardInterrupt, or the daemon's own handler).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

_previous_hook: Any = None
# Long enough for the main thread to leave the hook and the callback before the new SIGINT.
RESEND_DELAY_S = 0.02


def _resend_sigint_soon() -> None:
    threading.Timer(RESEND_DELAY_S, os.kill, (os.getpid(), signal.SIGINT)).start()


def _unraisable(args: Any) -> None:
    if args.exc_type is not None and issubclass(args.exc_type, KeyboardInterrupt):
        # Not sent from here: its KeyboardInterrupt could come inside this hook, which
        # nothing reports. A re-sent one swallowed again later comes back here.
        try:
            _resend_sigint_soon()
        except KeyboardInterrupt:  # another Ctrl-C, landing in here
            _resend_sigint_soon()
        return
    _previous_hook(args)


def keep_ctrl_c() -> None:
    """Re-deliver every Ctrl-C that Python swallowed. Call first thing; idempotent."""
    global _previous_hook
    if sys.unraisablehook is not _unraisable:
        _previous_hook = sys.unraisablehook
        sys.unraisablehook = _unraisable
