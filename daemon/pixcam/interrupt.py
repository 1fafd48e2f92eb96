"""A Ctrl-C is never lost, however early it comes.

Python turns SIGINT into a KeyboardInterrupt wherever the main thread happens to be. When that
is a weakref callback or a `__del__` (during start-up the import machinery runs such callbacks
to drop its per-module locks), the exception is only reported ("Exception ignored in …") and
the program runs on as if nothing happened. `keep_ctrl_c()` hooks that report: a swallowed
KeyboardInterrupt is delivered again as a new SIGINT, which lands in ordinary code once the
callback is over, and is handled as usual (the KeyboardInterrupt, or the daemon's own handler).

pixcam's package `__init__` calls it first thing when pixcam is the program, so this module
imports nothing at its top that Python has not loaded already at start-up.
"""

from __future__ import annotations

import sys

# Long enough for the main thread to leave the hook and the callback before the new SIGINT.
RESEND_DELAY_S = 0.02

_previous_hook = sys.unraisablehook


def _resend_sigint_soon() -> None:
    import os
    import signal
    import threading

    threading.Timer(RESEND_DELAY_S, os.kill, (os.getpid(), signal.SIGINT)).start()


def _unraisable(args: sys.UnraisableHookArgs) -> None:
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


def caused_by_ctrl_c(exc: BaseException) -> bool:
    """Is `exc` a Ctrl-C in disguise? Python 3.11 wraps a KeyboardInterrupt raised while a
    class is made (in `__set_name__`, e.g. while pydantic builds the config's models during
    an import) into a RuntimeError."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False
