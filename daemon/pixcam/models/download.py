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

Each file's size is in the manifest: a server announcing or sending more is cut off at once and
its partial removed (a lying mirror must not fill the disk). Each file has an overall deadline,
retries included: a mirror that trickles a byte every few seconds never trips the per-read
timeout, and is given up when the deadline passes. A write that fails here (full disk,
read-only folder) removes the partial and stops: every other file would fail the same way.

`PIXCAM_MODEL_MIRROR` (a URL prefix or a folder) replaces scheme and host of every upstream
URL: `https://HOST/PATH` is fetched from `$PIXCAM_MODEL_MIRROR/HOST/PATH`, the layout a company
mirror or an air-gapped copy uses.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
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

from pixcam import paths
from pixcam.errors import PixcamError

MIRROR_ENV = "PIXCAM_MODEL_MIRROR"
OFFLINE_HINT = "for an offline copy use `pixcam models install --from DIR`"
CHUNK = 64 * 1024


class DownloadError(PixcamError):
    """One file could not be fetched (404, wrong bytes, retries used up)."""


class NoNetworkError(DownloadError):
    """The host cannot be reached at all: no point trying the other files."""


class DiskError(DownloadError):
    """The file cannot be written here (disk full, read-only): the other files would fail too."""


class _TooLarge(Exception):
    """The server announced or sent more than the manifest's size."""


class _TooSlow(Exception):
    """The file's deadline passed."""


@dataclass(frozen=True)
class Policy:
    """How hard to try: per-read timeout (s), attempts per file, first backoff delay (s), and
    the deadline for a whole file, retries included (s; the largest model is 2.5 MB, so 600 s
    allows a connection of 4 KB/s)."""

    timeout: float = 30.0
    attempts: int = 5
    backoff: float = 1.0
    deadline: float = 600.0


def is_url(source: str) -> bool:
    """True for an http(s) or file URL; PixcamError for one urllib cannot parse."""
    try:
        scheme = urllib.parse.urlparse(source).scheme
    except ValueError as exc:  # "http://[::1": an IPv6 host not closed
        raise PixcamError(f"model source {source} is not a valid URL ({exc})") from None
    return scheme in ("http", "https", "file")


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
    size: int | None = None,
    label: str | None = None,
    policy: Policy | None = None,
    progress: Callable[[str], Progress] = Progress,
    mirror: str | None = None,
) -> str:
    """Put the file at `url` (a URL or a path; through `mirror`, default
    `$PIXCAM_MODEL_MIRROR`) at `dest`, verified; return where the bytes came from. `size`: the
    file's bytes (the manifest's); more is refused.
    """
    where = mirrored(url, mirror) if is_url(url) else url
    if where.startswith("file:"):
        where = urllib.request.url2pathname(urllib.parse.urlparse(where).path)
    label = label or dest.name
    part = part_path(dest)
    if is_url(where):
        _download(where, part, policy or Policy(), progress(label), label, size)
        advice = f"Try again later, or {OFFLINE_HINT}"
    else:
        _copy(Path(where), part, label, size)
        advice = "use an intact copy"
    found = sha256_of(part)
    if found != sha256:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{label}: the bytes from {where} are wrong (sha256 {found[:12]}…, expected "
            f"{sha256[:12]}…); not installed. {advice}"
        )
    try:
        part.replace(dest)
    except OSError as exc:
        raise _disk_error(label, part, dest, exc) from None
    return where


# ------------------------------------------------------------------------------ writing
def _disk_error(label: str, part: Path, target: Path, exc: OSError) -> DiskError:
    """A local write failed: the partial is removed (it would keep a full disk full)."""
    tail = ""
    if os.path.lexists(part):
        with contextlib.suppress(OSError):
            part.unlink()
        gone = not os.path.lexists(part)
        tail = "; the partial file was removed" if gone else f"; remove the partial file {part}"
    return DiskError(f"{label}: cannot write {target}: {exc.strerror or exc}{tail}")


def _open_part(part: Path, mode: str, label: str) -> IO[bytes]:
    try:
        part.parent.mkdir(parents=True, exist_ok=True)
        return part.open(mode)
    except OSError as exc:
        raise _disk_error(label, part, part.parent, exc) from None


def _write(out: IO[bytes], chunk: bytes, part: Path, label: str) -> None:
    try:
        out.write(chunk)
    except OSError as exc:
        with contextlib.suppress(OSError):  # its buffer cannot be written either
            out.close()
        raise _disk_error(label, part, part.parent, exc) from None


def _close(out: IO[bytes], part: Path, label: str) -> None:
    try:
        out.close()  # the buffer's last bytes are written here
    except OSError as exc:
        raise _disk_error(label, part, part.parent, exc) from None


def _too_large(label: str, where: str, part: Path, size: int, n: int, verb: str) -> DownloadError:
    part.unlink(missing_ok=True)
    return DownloadError(
        f"{label}: {where} {verb} {n} bytes, more than the file's {size}; not the right file, "
        f"the partial file was removed; {OFFLINE_HINT}"
    )


def _copy(src: Path, part: Path, label: str, size: int | None) -> None:
    """Copy a `--from` file (a regular file, no more than `size` bytes) to `part`."""
    try:
        source = paths.open_file(src, "model file")
    except PixcamError as exc:
        raise DownloadError(f"{label}: {exc}") from None
    with source:
        out = _open_part(part, "wb", label)
        copied = 0
        try:
            while chunk := source.read(CHUNK):
                copied += len(chunk)
                if size is not None and copied > size:
                    out.close()
                    raise _too_large(label, str(src), part, size, copied, "holds over")
                _write(out, chunk, part, label)
        finally:
            _close(out, part, label)


# ------------------------------------------------------------------------------ downloading
def _download(
    url: str, part: Path, policy: Policy, bar: Progress, label: str, size: int | None = None
) -> None:
    """Fill `part` with the whole file at `url`, resuming and retrying as the policy allows."""
    delay = policy.backoff
    end = time.monotonic() + policy.deadline
    for attempt in range(1, policy.attempts + 1):
        try:
            _download_once(url, part, policy.timeout, bar, size, end)
            return
        except _TooLarge as exc:
            verb, n = exc.args
            raise _too_large(label, url, part, size or 0, n, verb) from None
        except _TooSlow:
            have = part.stat().st_size if part.exists() else 0
            raise DownloadError(
                f"{label}: {url} sent {_mb(have)} of {_mb(size)} in {policy.deadline:.0f} s, too "
                f"slowly; given up (the partial file is kept and resumed next time); "
                f"{OFFLINE_HINT}"
            ) from None
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
        if attempt == policy.attempts or time.monotonic() + delay >= end:
            raise DownloadError(
                f"{label}: download from {url} failed {policy.attempts} times (last: {reason}); "
                f"the partial file is kept and resumed next time; {OFFLINE_HINT}"
            )
        bar.retry(reason, delay)
        time.sleep(delay)
        delay *= 2


def _download_once(
    url: str,
    part: Path,
    timeout: float,
    bar: Progress,
    size: int | None = None,
    end: float = float("inf"),
) -> None:
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # a stale partial of another file
        part.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"User-Agent": "pixcam-models"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    left = end - time.monotonic()
    if left <= 0:
        raise _TooSlow
    with urllib.request.urlopen(request, timeout=min(timeout, left)) as resp:
        resumed = have if resp.status == 206 else 0  # 200: the server sends it all again
        length = resp.headers.get("Content-Length")
        total = resumed + int(length) if length is not None and length.isdigit() else None
        if size is not None and total is not None and total > size:
            raise _TooLarge("announces", total)
        bar.start(url, total, resumed)
        out = _open_part(part, "ab" if resumed else "wb", bar.label)
        done = resumed
        try:
            while chunk := resp.read1(CHUNK):  # what has arrived: a timeout loses nothing
                done += len(chunk)
                if size is not None and done > size:
                    raise _TooLarge("sent over", done)
                _write(out, chunk, part, bar.label)
                bar.advance(len(chunk))
                if time.monotonic() > end:
                    raise _TooSlow
        finally:
            _close(out, part, bar.label)
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
