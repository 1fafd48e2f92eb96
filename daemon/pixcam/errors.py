"""The one exception type whose message is meant for the user."""

from __future__ import annotations

import logging


class PixcamError(Exception):
    """A problem the user can fix; its message is one line saying what and how.

    The CLI prints it without a traceback; the running stream logs it and goes on.
    """


def log_each_line(log: logging.Logger, level: int, message: str, suffix: str = "") -> None:
    """`message` (several problems are one line each, e.g. a config's bad keys) as one log
    record per line, so each line carries the level (and the `suffix`)."""
    for line in message.splitlines() or [""]:
        log.log(level, "%s%s", line, suffix)
