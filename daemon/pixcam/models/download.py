"""Fetch one model file from its pinned upstream URL (or a mirror), resumable and verified.

Built on the standard library (`urllib.request`) on purpose: it already speaks HTTP Range,
timeouts, redirects and the user's `https_proxy`, and pixcam downloads a handful of small files
once. `requests`/`httpx` would add a dependency (and their own retry layers) without making
resuming or hashing any simpler.

How a file travels: bytes go to `<final>.part` beside the final name; a dropped connection or a
timeout is retried with exponential backoff and resumed from the `.part`'s length with a
`Range: bytes=N-` request (a server that ignores Range answers 200 and the file starts over); the
sha256 is checked before the `.part` is renamed into place, so a model file is either complete
and verified or absent. A 404 or a wrong hash is not retried: it will not get better.

`PIXCAM_MODEL_MIRROR` (a URL prefix or a folder) replaces scheme and host of every upstream
URL: `https://HOST/PATH` is fetched from `$PIXCAM_MODEL_MIRROR/HOST/PATH`, the layout a company
mirror or an air-gapped copy uses.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pixcam.errors import PixcamError

MIRROR_ENV = "PIXCAM_MODEL_MIRROR"
OFFLINE_HINT = "for an offline copy use `pixcam models install --from DIR`"
CHUNK = 64 * 1024


class DownloadError(PixcamError):
    """One file could not be fetched (404, wrong bytes, retries used up)."""


class NoNetworkError(DownloadError):
    """The host cannot be reached at all: no point trying the other files."""


@dataclass(frozen=True)
class Policy:
    """How hard to try: per-read timeout (s), attempts per file, first backoff delay (s)."""

    timeout: float = 30.0
    attempts: int = 5
    backoff: float = 1.0


def is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https", "file")


def mirrored(url: str, mirror: str | None = None) -> str:
    """`url` as fetched through `mirror` (default `$PIXCAM_MODEL_MIRROR`; none: `url` itself).

    A URL-prefix mirror gives a URL, a folder mirror gives a file path.
    """
    mirror = os.environ.get(MIRROR_ENV, "") if mirror is None else mirror
    if not mirror:
        return url
    parts = urllib.parse.urlparse(url)
    tail = f"{parts.netloc}{parts.path}"
    if is_url(mirror):
        return f"{mirror.rstrip('/')}/{tail}"
    return str(Path(mirror).expanduser() / urllib.parse.unquote(tail))


# ------------------------------------------------------------------------------ progress
class Progress:
    """Reports one file's bytes: a redrawn bar on a terminal, start/end lines otherwise."""

    def __init__(self, label: str, stream: IO[str] | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total: int | None = None
        self.done = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def start(self, url: str, total: int | None, resumed_at: int) -> None:
        self.total, self.done = total, resumed_at
        self._resumed_at = resumed_at
        self.started = time.monotonic()
        if not self.tty:
            size = f" ({_mb(total)})" if total else ""
            resumed = f", resuming at {_mb(resumed_at)}" if resumed_at else ""
            self._say(f"downloading {self.label} from {url}{size}{resumed}")

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.tty and now - self._drawn >= 0.1:
            self._drawn = now
            self._draw(now)

    def retry(self, reason: str, delay: float) -> None:
        self._end_line()
        self._say(f"{self.label}: {reason}; retrying in {delay:.1f} s")

    def finish(self) -> None:
        if self.tty:
            self._draw(time.monotonic())
            self._end_line()
        else:
            took = time.monotonic() - self.started
            self._say(f"downloaded {self.label}: {_mb(self.done)} in {took:.1f} s")

    def _rate(self, now: float) -> float:
        return (self.done - self._resumed_at) / max(now - self.started, 1e-6)

    def _draw(self, now: float) -> None:
        rate = self._rate(now)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 24)
            left = (self.total - self.done) / rate if rate > 0 else 0.0
            text = (
                f"{self.label} [{bar:<24}] {_mb(self.done)}/{_mb(self.total)} "
                f"{_mb(rate)}/s ETA {int(left) // 60}:{int(left) % 60:02d}"
            )
        else:
            text = f"{self.label} {_mb(self.done)} {_mb(rate)}/s"
        self.stream.write("\r" + text.ljust(79))
        self.stream.flush()

    def _end_line(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _say(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


def _mb(n: float | None) -> str:
    return f"{(n or 0) / 1e6:.1f} MB"


# ------------------------------------------------------------------------------ fetching
def part_path(dest: Path) -> Path:
    """Where the bytes collect before they are verified (hidden, beside the final file)."""
    return dest.with_name(f".{dest.name}.part")


def fetch(
    url: str,
    dest: Path,
    sha256: str,
    *,
    label: str | None = None,
    policy: Policy | None = None,
    progress: Callable[[str], Progress] = Progress,
    mirror: str | None = None,
) -> str:
    """Put the file at `url` (a URL or a path; through `mirror`, default
    `$PIXCAM_MODEL_MIRROR`) at `dest`, verified; return where the bytes came from.
    """
    where = mirrored(url, mirror) if is_url(url) else url
    if where.startswith("file:"):
        where = urllib.request.url2pathname(urllib.parse.urlparse(where).path)
    label = label or dest.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    if is_url(where):
        _download(where, part, policy or Policy(), progress(label), label)
        advice = f"Try again later, or {OFFLINE_HINT}"
    elif Path(where).is_file():
        shutil.copyfile(where, part)
        advice = "use an intact copy"
    else:
        raise DownloadError(f"{label}: {where} not found")
    found = sha256_of(part)
    if found != sha256:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{label}: the bytes from {where} are wrong (sha256 {found[:12]}…, expected "
            f"{sha256[:12]}…); not installed. {advice}"
        )
    part.replace(dest)
    return where


def _download(url: str, part: Path, policy: Policy, bar: Progress, label: str) -> None:
    """Fill `part` with the whole file at `url`, resuming and retrying as the policy allows."""
    delay = policy.backoff
    for attempt in range(1, policy.attempts + 1):
        try:
            _download_once(url, part, policy.timeout, bar)
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 416:  # asked to resume past the end: the .part is stale
                part.unlink(missing_ok=True)
                reason = "the partial file does not fit the server's; starting over"
            elif exc.code < 500 and exc.code != 429:  # the request itself is refused
                gone = exc.code in (404, 410)
                why = " (moved upstream, or missing from the mirror)" if gone else ""
                raise DownloadError(
                    f"{label}: {url} answered HTTP {exc.code} {exc.reason}{why}; {OFFLINE_HINT}"
                ) from None
            else:
                reason = f"HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            if _unreachable(exc.reason):
                raise NoNetworkError(
                    f"cannot reach {urllib.parse.urlparse(url).netloc} for {url} ({exc.reason}); "
                    f"check the network or set {MIRROR_ENV}, or {OFFLINE_HINT}"
                ) from None
            reason = str(exc.reason)
        except (OSError, http.client.HTTPException) as exc:  # timeouts, cut connections
            reason = _describe(exc)
        if attempt == policy.attempts:
            raise DownloadError(
                f"{label}: download from {url} failed {policy.attempts} times (last: {reason}); "
                f"the partial file is kept and resumed next time; {OFFLINE_HINT}"
            )
        bar.retry(reason, delay)
        time.sleep(delay)
        delay *= 2


def _download_once(url: str, part: Path, timeout: float, bar: Progress) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "pixcam-models"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        resumed = have if resp.status == 206 else 0  # 200: the server sends it all again
        length = resp.headers.get("Content-Length")
        total = resumed + int(length) if length is not None else None
        bar.start(url, total, resumed)
        with part.open("ab" if resumed else "wb") as out:
            while chunk := resp.read1(CHUNK):  # what has arrived: a timeout loses nothing
                out.write(chunk)
                bar.advance(len(chunk))
    if total is not None and part.stat().st_size < total:
        raise http.client.IncompleteRead(b"", total - part.stat().st_size)
    bar.finish()


def _unreachable(reason: object) -> bool:
    """A DNS failure or a refused/unroutable connection: the network (or host) is missing."""
    if isinstance(reason, socket.gaierror):
        return True
    return isinstance(reason, OSError) and reason.errno in (
        errno.ENETUNREACH,
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection cut before the end of the file"
    return str(exc) or type(exc).__name__


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
