"""The one exception type whose message is meant for the user."""


class PixcamError(Exception):
    """A problem the user can fix; its message is one line saying what and how.

    The CLI prints it without a traceback; the running stream logs it and goes on.
    """
