"""Control of a running pixcam: `pixcam ctl` over a Unix socket, and Unix signals.

Protocol: one JSON object per line each way, on `$XDG_RUNTIME_DIR/pixcam/control.sock`
(mode 0600, in a 0700 directory).

    {"cmd": "status"}                          -> {"ok": true, "status": {...}}
    {"cmd": "set", "key": "effects.background", "value": "image"}
                                               -> {"ok": true}
    {"cmd": "toggle"}                          -> {"ok": true, "enabled": false}
    {"cmd": "reload"} / {"cmd": "quit"}        -> {"ok": true}
    {"cmd": "pause"} / {"cmd": "resume"}       -> {"ok": true, "paused": true}
    {"cmd": "away", "on": true}                -> {"ok": true, "away": true}
    anything wrong                             -> {"ok": false, "error": "one line"}

The server only parses and dispatches; the daemon implements `App`. Signals: SIGHUP reloads,
SIGUSR1 turns the effects on and SIGUSR2 off, SIGTERM/SIGINT quit (a second one forces the
exit). On and off, not a toggle: the kernel merges a signal sent while the same one is still
pending, so N toggles would flip an unknown number of times; "on" sent N times is on.

One instance per user: the server holds an flock on `control.sock.lock` for its lifetime (the
kernel drops it if the process dies) and also checks that nobody answers on the socket, so a
second instance is refused with a clear line and a stale socket from a crash is taken over.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import queue
import select
import selectors
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from pixcam.errors import PixcamError, log_each_line

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

MAX_REQUEST_BYTES = 64 * 1024  # a request is a few dozen bytes; anything huge is garbage
MAX_REPLY_BYTES = 16 * 1024 * 1024
MAX_SOCKET_PATH = 107  # bytes: a Unix socket address holds 108, the last one a NUL
MAX_CONNECTIONS = 16
# Refusals of a request the server never handled: the client may send it again.
ALL_SLOTS_BUSY = "too many requests in progress; try again"
EVICTED = "disconnected: too many connections, this one waited longest"
BUSY_REFUSALS = (ALL_SLOTS_BUSY, EVICTED)
# Replies a client has not read, beyond what the kernel holds: a pipelining client reads
# them eventually, one that never reads is dropped here (16 connections: 16 MiB at most).
MAX_UNREAD_BYTES = 1 << 20
_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR  # recv() then says which
LISTEN_BACKLOG = 64  # clients queued while a newcomer evicts an idle one
# A request must arrive whole this long after its first byte (a slow drip is cut off), and
# its reply must be taken within it; `pixcam ctl` sends and reads at once.
REQUEST_TIMEOUT_S = 5.0
COMMANDS = ("status", "set", "toggle", "reload", "quit", "pause", "resume", "away")
# How long close() lets requests in flight finish their reply before hanging up on them.
CLOSE_GRACE_S = 5.0


class App(Protocol):
    """What the control server and the signal handlers drive; the daemon implements it.

    Methods are called from the server's connection threads (one call at a time: the server
    serializes them) and from the signal thread, so they must be thread-safe. Raise
    `PixcamError` for a problem the user should see: its message becomes the `pixcam ctl`
    error line. None of them may block for long; `quit` only *requests* the shutdown.
    """

    def status(self) -> dict[str, Any]:
        """JSON-able state, e.g. {"effects.enabled": true, "fps": 29.8, ...}."""
        ...

    def set(self, key: str, value: Any) -> None:
        """Change a setting and save it, e.g. `ConfigWatcher.set_value(key, value)`, which
        writes the file and applies the result once."""
        ...

    def toggle(self) -> bool:
        """Switch the effects on/off; returns whether they are now on."""
        ...

    def reload(self) -> None:
        """Re-read the config file (e.g. `ConfigWatcher.reload()`)."""
        ...

    def quit(self) -> None:
        """Ask the daemon to shut down cleanly."""
        ...

    def pause(self) -> bool:
        """Switch the camera off until `resume` (the tray's "pause camera"); returns the new
        paused state. Optional: without it the server answers that there is no pause."""
        ...

    def resume(self) -> bool:
        """Undo `pause`; returns the new paused state (False)."""
        ...

    def away(self, on: bool) -> bool:
        """ "Be right back" by hand (the card until switched off); returns the new state.
        Optional, like `pause`."""
        ...


# ------------------------------------------------------------------------------ paths
def _check_private_dir(path: Path) -> None:
    """Create `path` 0700 or make sure an existing one is ours and private.

    Matters for the /tmp fallback: another user could have created the directory first to
    intercept our socket.
    """
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=False)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PixcamError(f"{path} is not a directory owned by you; remove it and retry")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)


def runtime_dir() -> Path:
    """`$XDG_RUNTIME_DIR/pixcam`, or a private `pixcam-<uid>` in the temp dir without it."""
    from pixcam import paths

    return paths.runtime_dir()


def socket_path() -> Path:
    """The default control socket."""
    return runtime_dir() / "control.sock"


def _prepare_dir(path: Path, default: bool) -> None:
    try:
        if default:
            _check_private_dir(path.parent)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PixcamError(f"can't create {path.parent}: {exc.strerror}") from None


def is_alive(path: Path) -> bool:
    """Does a process answer on this socket? Refused/absent/not-a-socket = stale."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    probe.settimeout(2.0)
    try:
        probe.connect(str(path))
    except PermissionError:
        raise PixcamError(f"{path} belongs to someone else; can't take it over") from None
    except OSError:
        return False
    else:
        return True
    finally:
        probe.close()


# ----------------------------------------------------------------------------- server
def _reply(ok: bool, **fields: Any) -> bytes:
    # default=str: a status value we can't encode (a Path, an enum) still shows up as text.
    return (json.dumps({"ok": ok, **fields}, default=str) + "\n").encode()


def _error(message: str) -> bytes:
    return _reply(False, error=message)


@dataclass
class _Conn:
    """One client connection, as the server thread sees it (changed under `_conn_lock`)."""

    sock: socket.socket
    waiting_since: float  # when it began owing its next request (accept or last reply)
    busy: bool = False  # a request of it is being answered: never evicted then
    unread: bool = False  # replies wait for it to read them: evicted first, even if busy
    evicted: bool = False


class _Wire:
    """One connection's bytes: the request arriving, the replies not taken yet, and the
    clocks their deadlines run from."""

    def __init__(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        self.conn = conn
        self.poller = select.poll()
        self.poller.register(conn, select.POLLIN)
        self.buffer = b""
        self.out = bytearray()  # replies the client has not taken yet
        self.reading = True  # False once the client has sent EOF (its replies still go out)
        self.first_byte = 0.0  # when the pending part of a request began to arrive
        self.taken = 0.0  # when the client last took reply bytes (or began to owe it)

    def next_line(self) -> bytes | None:
        """The next whole request line received, None until one is."""
        newline = self.buffer.find(b"\n")
        if newline < 0:
            return None
        line, self.buffer = self.buffer[:newline], self.buffer[newline + 1 :]
        return line

    def flush(self) -> int:
        """Write what the socket takes now, without waiting; the bytes written."""
        try:
            sent = self.conn.send(self.out)
        except BlockingIOError:
            return 0
        del self.out[:sent]
        return sent

    def time_left(self, idle_since: float, request_timeout: float, idle_timeout: float) -> float:
        """Seconds until the nearest deadline: taking owed replies, finishing a request
        begun, or sending one at all."""
        now = time.monotonic()
        if self.out:  # we owe replies: the client must take some in time
            left = self.taken + request_timeout - now
        elif self.buffer:  # the deadline is per request: dripping bytes don't extend it
            left = self.first_byte + request_timeout - now
        else:
            left = idle_since + idle_timeout - now
        if self.out and self.buffer:
            left = min(left, self.first_byte + request_timeout - now)
        return left

    def wait_and_read(self, left: float) -> None:
        """Wait up to `left` s for bytes (or room to write owed replies); take what came."""
        events = (select.POLLIN if self.reading else 0) | (select.POLLOUT if self.out else 0)
        self.poller.modify(self.conn, events)
        ready = self.poller.poll(left * 1000)
        if not ready or not self.reading or not ready[0][1] & _READABLE:
            return  # a deadline, or room to write: the caller's loop does either
        try:
            chunk = self.conn.recv(65536)
        except BlockingIOError:
            return
        if not chunk:
            self.reading = False
            return
        if not self.buffer:
            self.first_byte = time.monotonic()
        self.buffer += chunk


class ControlServer:
    """Serves the control socket from a thread; `start()` it, `close()` it (or `with`).

    Fair to every client: a request has `request_timeout` seconds from its first byte to
    arrive whole, and when all `MAX_CONNECTIONS` slots are taken a newcomer evicts the
    connection that has owed a request the longest, so idle or slow clients can't lock
    others out.
    """

    def __init__(
        self,
        app: App,
        path: PathLike | None = None,
        *,
        idle_timeout: float = 60.0,
        request_timeout: float = REQUEST_TIMEOUT_S,
        close_grace: float = CLOSE_GRACE_S,
    ) -> None:
        self.app = app
        self._default_path = path is None
        self.path = Path(path) if path is not None else socket_path()
        self.idle_timeout = idle_timeout  # drop clients that connect and say nothing
        self.request_timeout = request_timeout
        self.close_grace = close_grace
        self._app_lock = threading.Lock()
        self._conn_lock = threading.Lock()
        self._conns: dict[threading.Thread, _Conn] = {}
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._listener: socket.socket | None = None
        self._lock_fd: int | None = None
        self._inode: int | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._closed = False

    # ---- lifecycle
    def start(self) -> ControlServer:
        """Claim the socket and serve; PixcamError if another instance runs."""
        _prepare_dir(self.path, self._default_path)
        self._existing_mode()  # a path pixcam won't use is refused before the lock is made
        created = self._claim_lock()
        try:
            self._bind()
        except BaseException:
            if created:  # ours, made a moment ago, still locked: nothing beside the user's file
                with contextlib.suppress(OSError):
                    os.unlink(self._lock_path)
            self._release_lock()
            raise
        self._thread = threading.Thread(target=self._serve, name="pixcam-control", daemon=True)
        self._thread.start()
        log.info("control socket %s", self.path)
        return self

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    def _already_running(self) -> PixcamError:
        return PixcamError(
            f"pixcam is already running (control socket {self.path}); "
            "use `pixcam ctl status`, or `pixcam ctl quit` to stop it"
        )

    @property
    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def _claim_lock(self) -> bool:
        """Hold the single-instance lock; True if its file was made just now."""
        lock_path = self._lock_path
        created = True
        try:
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                created = False
                fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise PixcamError(f"can't open {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise self._already_running() from None
            raise PixcamError(f"can't lock {lock_path}: {exc.strerror}") from None
        self._lock_fd = fd
        return created

    def _release_lock(self) -> None:
        # The lock file stays: unlinking it would let two instances lock different files.
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _existing_mode(self) -> int | None:
        """The mode of what is at the socket path (None: nothing); PixcamError when it is
        something pixcam won't use or the path is too long for a Unix socket."""
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            raise PixcamError(
                f"{self.path} is too long for a control socket (at most {MAX_SOCKET_PATH} "
                "bytes); choose a shorter --socket path"
            )
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PixcamError(
                f"can't use {self.path} as the control socket: {exc.strerror}"
            ) from None
        # Only ever remove a socket: any other file there is someone's data.
        if stat.S_ISDIR(mode):
            raise PixcamError(
                f"{self.path} is a directory; give --socket a file path such as "
                f"{self.path / 'control.sock'}"
            )
        if not stat.S_ISSOCK(mode):
            raise PixcamError(
                f"{self.path} exists and is not a socket; pixcam won't replace it: "
                "choose another --socket path"
            )
        return mode

    def _bind(self) -> None:
        if self._existing_mode() is not None:
            if is_alive(self.path):  # an instance that predates or ignores the lock
                raise self._already_running()
            log.info("removing stale control socket %s", self.path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            listener.bind(str(self.path))
            # The directory is private already; 0600 also protects a --socket elsewhere.
            os.chmod(self.path, 0o600)
            listener.listen(LISTEN_BACKLOG)
            self._inode = os.stat(self.path).st_ino
        except OSError as exc:
            listener.close()
            raise PixcamError(f"can't listen on {self.path}: {exc.strerror or exc}") from None
        self._listener = listener

    def close(self) -> None:
        """Stop serving and remove the socket; safe from any thread, twice, or from `quit`.

        Every request already received still gets its reply: idle connections end at once,
        one mid-request may finish for up to `close_grace` seconds, and clients still
        queued in the backlog are told that pixcam is shutting down.
        """
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        me = threading.current_thread()
        if self._thread is not None and self._thread is not me:
            self._thread.join()
        if self._listener is not None:
            self._refuse_backlog(self._listener)
            self._listener.close()
            # Only remove the socket if it is still ours (not a successor's).
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == self._inode:
                    os.unlink(self.path)
        with self._conn_lock:
            inside = me in self._conns
            others = [t for t in self._conns if t is not me]
            # Shut the read side only: a blocked recv() sees EOF, but a reply being written
            # still goes out. Under the lock: a connection is unlisted before it is closed.
            self._shutdown_conns(socket.SHUT_RD)
        # Called from a request (`quit`), we hold the app lock the others wait for: waiting
        # would only stall them; they finish on their own once we return.
        if not inside:
            deadline = time.monotonic() + self.close_grace
            for thread in others:
                thread.join(max(0.0, deadline - time.monotonic()))
            with self._conn_lock:
                self._shutdown_conns(socket.SHUT_RDWR)  # still stuck after the grace period
        self._release_lock()
        self._wake_r.close()
        self._wake_w.close()

    def _shutdown_conns(self, how: int) -> None:
        # Caller holds _conn_lock. The connection threads close their sockets themselves.
        for thread, conn in self._conns.items():
            if thread is not threading.current_thread():
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(how)

    @staticmethod
    def _refuse_backlog(listener: socket.socket) -> None:
        """Answer clients that connected but were never accepted, instead of resetting them."""
        listener.setblocking(False)
        for _ in range(LISTEN_BACKLOG + 1):
            try:
                conn, _ = listener.accept()
            except OSError:  # BlockingIOError: nobody left
                return
            with conn, contextlib.suppress(OSError):
                conn.sendall(_error("pixcam is shutting down"))

    # ---- serving
    def _serve(self) -> None:
        assert self._listener is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in sel.select()}
                if self._wake_r in ready:
                    return
                try:
                    conn, _ = self._listener.accept()
                except OSError:
                    continue
                if not self._take_slot():
                    with contextlib.suppress(OSError):
                        conn.sendall(_error(ALL_SLOTS_BUSY))
                    conn.close()
                    continue
                state = _Conn(conn, time.monotonic())
                thread = threading.Thread(
                    target=self._connection, args=(state,), name="pixcam-ctl", daemon=True
                )
                with self._conn_lock:
                    self._conns[thread] = state
                thread.start()

    def _take_slot(self) -> bool:
        """A connection slot, evicting the client that has owed a request the longest if all
        are taken; False only when every slot is answering a request right now."""
        if self._slots.acquire(blocking=False):
            return True
        with self._conn_lock:
            waiting = [
                c for c in self._conns.values() if (c.unread or not c.busy) and not c.evicted
            ]
            if not waiting:
                return False
            victim = min(waiting, key=lambda c: (not c.unread, c.waiting_since))
            victim.evicted = True
            with contextlib.suppress(OSError):
                victim.sock.send(_error(EVICTED), socket.MSG_DONTWAIT)
            with contextlib.suppress(OSError):
                victim.sock.shutdown(socket.SHUT_RDWR)  # its thread sees EOF and frees the slot
        return self._slots.acquire(timeout=self.request_timeout)

    def _connection(self, state: _Conn) -> None:
        """Answer requests on one connection until EOF, a timeout, eviction or a bad frame.

        Replies are written without blocking: a client may send many requests before it
        reads (pipelining), and one that never reads must not hold its thread in a write.
        Replies it has not taken wait in `out`; over `MAX_UNREAD_BYTES`, or when it takes
        nothing for `request_timeout` seconds while some wait, the client is dropped."""
        wire = _Wire(state.sock)
        try:
            while True:
                if wire.out and not self._send_waiting(wire, state):
                    return
                line = wire.next_line()
                if line is not None:
                    if not self._answer(line, wire, state):
                        return
                    continue
                if not wire.reading and not wire.out:
                    return
                if len(wire.buffer) > MAX_REQUEST_BYTES:
                    # No way to find the next request boundary safely: answer and hang up.
                    wire.out += _error(f"request too large (over {MAX_REQUEST_BYTES} bytes)")
                    self._last_word(wire.conn, bytes(wire.out))
                    return
                left = wire.time_left(state.waiting_since, self.request_timeout, self.idle_timeout)
                if left <= 0:
                    if wire.buffer and not wire.out:
                        self._last_word(
                            wire.conn,
                            _error(
                                f"request not completed within {self.request_timeout:g} s "
                                "(one JSON object and a newline)"
                            ),
                        )
                    return
                wire.wait_and_read(left)
        except OSError:
            pass  # client went away, idled out or was evicted: nothing to answer
        finally:
            with self._conn_lock:
                self._conns.pop(threading.current_thread(), None)
            wire.conn.close()
            self._slots.release()

    def _send_waiting(self, wire: _Wire, state: _Conn) -> bool:
        """Write what the client takes of its replies now; False: drop it (it does not read)."""
        if wire.flush():
            wire.taken = time.monotonic()
        state.unread = bool(wire.out)
        if len(wire.out) > MAX_UNREAD_BYTES:
            log.info("control client dropped: it does not read its replies")
            return False
        return True

    def _answer(self, line: bytes, wire: _Wire, state: _Conn) -> bool:
        """Queue the reply to one request line; False: hang up (too large, or evicted)."""
        wire.first_byte = time.monotonic()  # what follows the line is a new request
        if len(line) > MAX_REQUEST_BYTES:
            wire.out += _error(f"request too large (over {MAX_REQUEST_BYTES} bytes)")
            self._last_word(wire.conn, bytes(wire.out))
            return False
        if not line.strip():
            return True  # blank lines don't restart the idle clock
        with self._conn_lock:
            if state.evicted:
                return False
            state.busy = True
        reply = self.handle_line(line)
        if state.evicted:  # dropped while it waited for the app: not answered
            return False
        if not wire.out:
            wire.taken = time.monotonic()
        wire.out += reply
        with self._conn_lock:
            state.busy = False
            state.waiting_since = time.monotonic()
        return True

    def _last_word(self, conn: socket.socket, data: bytes) -> None:
        """The last replies before hanging up; a client that doesn't read them can't hold us."""
        conn.settimeout(self.request_timeout)
        conn.sendall(data)

    def handle_line(self, line: bytes) -> bytes:
        """One request line in, one reply line out; never raises."""
        try:
            text = line.decode("utf-8")
            request = json.loads(text)
        except RecursionError:
            return _error(NESTED_TOO_DEEPLY)
        except UnicodeDecodeError:
            return _error(EXPECTED_OBJECT)
        except ValueError:
            # Python 3.13's decoder stops at its depth limit with a plain decode error.
            return _error(NESTED_TOO_DEEPLY if _nesting(text) >= DEEP_NESTING else EXPECTED_OBJECT)
        if not isinstance(request, dict):
            return _error('malformed request: expected a JSON object such as {"cmd": "status"}')
        return self.handle(request)

    def handle(self, request: dict[str, Any]) -> bytes:
        cmd = request.get("cmd")
        if cmd not in COMMANDS:
            return _error(f"unknown command {cmd!r}; commands: {', '.join(COMMANDS)}")
        try:
            with self._app_lock:
                return self._dispatch(cmd, request)
        except PixcamError as exc:
            return _error(str(exc))
        except Exception as exc:  # a daemon bug must not kill the control socket
            log.exception("control command %s", cmd)
            return _error(f"internal error in {cmd}: {type(exc).__name__}: {exc}")

    def _dispatch(self, cmd: str, request: dict[str, Any]) -> bytes:
        if cmd == "status":
            status = self.app.status()
            return _reply(True, status=status)
        if cmd == "set":
            key = request.get("key")
            if not isinstance(key, str) or "value" not in request:
                return _error('set needs "key" (a string such as "effects.background") and "value"')
            self.app.set(key, request["value"])
            return _reply(True)
        if cmd == "toggle":
            return _reply(True, enabled=bool(self.app.toggle()))
        if cmd == "reload":
            self.app.reload()
            return _reply(True)
        if cmd in ("pause", "resume"):
            # Optional for apps: one without a pause concept still gets a clear answer.
            method = getattr(self.app, cmd, None)
            if method is None:
                return _error(f"{cmd}: this pixcam has no camera pause")
            return _reply(True, paused=bool(method()))
        if cmd == "away":
            on = request.get("on")
            if not isinstance(on, bool):
                return _error('away needs "on": true or false')
            method = getattr(self.app, "away", None)
            if method is None:
                return _error("away: this pixcam has no away card")
            return _reply(True, away=bool(method(on)))
        self.app.quit()
        return _reply(True)


# ----------------------------------------------------------------------------- client
def send_command(
    cmd: str, *, path: PathLike | None = None, timeout: float = 30.0, **fields: Any
) -> dict[str, Any]:
    """Send one request and return the reply object (`ok` may be false). A request the
    server turned away unhandled because every slot was taken is sent again until
    `timeout`.

    PixcamError when no instance is running or it doesn't answer properly.
    """
    path = Path(path) if path is not None else socket_path()
    request = (json.dumps({"cmd": cmd, **fields}) + "\n").encode()
    deadline = time.monotonic() + timeout
    pause = 0.02  # doubles up to half a second between tries
    while True:
        reply = _exchange(path, request, max(0.1, deadline - time.monotonic()), timeout)
        if reply["ok"] or reply.get("error") not in BUSY_REFUSALS:
            return reply
        if time.monotonic() + pause >= deadline:
            return reply
        time.sleep(pause)
        pause = min(0.5, pause * 2)


def _exchange(path: Path, request: bytes, timeout: float, asked: float) -> dict[str, Any]:
    """One connection: send `request`, return the reply object (`asked` names the caller's
    timeout in the error)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise PixcamError(f"pixcam is not running (nothing listens on {path})") from None
        except OSError as exc:
            raise PixcamError(f"can't connect to pixcam at {path}: {exc.strerror}") from None
        # A server that refuses a request may hang up while we still send: read its reply.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        try:
            reply = b""
            while b"\n" not in reply:
                chunk = sock.recv(65536)
                if not chunk:
                    raise PixcamError("pixcam closed the connection without answering")
                reply += chunk
                if len(reply) > MAX_REPLY_BYTES:
                    raise PixcamError("pixcam sent an oversized reply")
        except TimeoutError:
            raise PixcamError(f"pixcam did not answer within {asked:g} s") from None
        except OSError as exc:
            raise PixcamError(f"lost the connection to pixcam: {exc.strerror}") from None
    try:
        obj = json.loads(reply.split(b"\n", 1)[0])
    except ValueError:
        raise PixcamError("pixcam sent a malformed reply") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("ok"), bool):
        raise PixcamError("pixcam sent a malformed reply")
    return obj


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if value is None:
        return "-"
    return json.dumps(value, default=str)


NESTED_TOO_DEEPLY = "malformed request: nested too deeply; send a flat JSON object"
EXPECTED_OBJECT = 'malformed request: expected one JSON object per line, e.g. {"cmd": "status"}'
# Brackets open at once from which a request counts as nested too deeply (far past any real one).
DEEP_NESTING = 500


def _nesting(text: str) -> int:
    """The deepest run of open brackets in `text` outside strings (for the error message)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _flatten(obj: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


def format_reply(cmd: str, reply: dict[str, Any], request: dict[str, Any]) -> str:
    """A successful reply as the human-readable `pixcam ctl` output."""
    if cmd == "status":
        status = reply.get("status")
        rows = _flatten(status) if isinstance(status, dict) else []
        return "\n".join(f"{key}: {_text(value)}" for key, value in rows)
    if cmd == "set":
        return f"{request['key']} = {json.dumps(request['value'], ensure_ascii=False)}"
    if cmd == "toggle":
        return "effects on" if reply.get("enabled") else "effects off"
    if cmd == "reload":
        return "configuration reloaded"
    if cmd in ("pause", "resume"):
        return "camera paused" if reply.get("paused") else "camera no longer paused"
    if cmd == "away":
        return "away card on" if reply.get("away") else "away card off"
    return "pixcam is shutting down"


# Settings naming a file: a relative path given to `ctl set` is the caller's, not the daemon's.
FILE_KEYS = ("effects.image", "effects.video", "people.away_image")


def _from_here(key: str | None, value: Any) -> Any:
    """`value` made absolute from the caller's folder when it is a relative path of a file
    key ("./bg.png", "pics/bg.png"); a bare name ("studio-grey.png") stays a name to look up
    in the backgrounds folders."""
    relative = isinstance(value, str) and "/" in value and not value.startswith(("/", "~"))
    return os.path.abspath(value) if key in FILE_KEYS and relative else value


def run_ctl(
    cmd: str,
    key: str | None = None,
    value: str | None = None,
    *,
    path: PathLike | None = None,
    raw: bool = False,
    out: Callable[[str], None] = print,
) -> int:
    """`pixcam ctl CMD [KEY VALUE]`: exit status; PixcamError for the CLI to print."""
    fields: dict[str, Any] = {}
    if cmd == "set":
        from pixcam.config import parse_value

        fields = {"key": key, "value": _from_here(key, parse_value(value or "", key))}
    elif cmd == "away":
        if key not in ("on", "off"):
            raise PixcamError(f"away takes on or off, not {key!r}")
        fields = {"on": key == "on"}
    reply = send_command(cmd, path=path, **fields)
    if raw:
        out(json.dumps(reply, indent=2))
        return 0 if reply["ok"] else 1
    if not reply["ok"]:
        raise PixcamError(str(reply.get("error") or "pixcam refused the command"))
    text = format_reply(cmd, reply, fields)
    if text:
        out(text)
    return 0


# ---------------------------------------------------------------------------- signals
_ACTIONS = {signal.SIGHUP: "reload", signal.SIGUSR1: "on", signal.SIGUSR2: "off"}
_TERMINATE = (signal.SIGTERM, signal.SIGINT)


class SignalHandlers:
    """Signal → app call. The Python handler only queues the signal (SimpleQueue.put is
    reentrant-safe); a thread makes the call, so app code never runs inside a handler
    interrupting arbitrary main-thread code that may hold its locks."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._terminating = False
        self._previous: dict[int, Any] = {}
        self._thread = threading.Thread(target=self._dispatch, name="pixcam-signals", daemon=True)

    def install(self) -> SignalHandlers:
        for signum in (*_ACTIONS, *_TERMINATE):
            self._previous[signum] = signal.signal(signum, self._handler)
        self._thread.start()
        return self

    def restore(self) -> None:
        """Put the previous handlers back (the dispatcher thread just idles)."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handler(self, signum: int, _frame: FrameType | None) -> None:
        if signum in _TERMINATE:
            if self._terminating:
                # Second Ctrl-C/TERM while shutting down: the shutdown hangs, force it.
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
                return
            self._terminating = True
        self._queue.put(signum)

    def _dispatch(self) -> None:
        while True:
            signum = signal.Signals(self._queue.get())
            name = signum.name
            try:
                if signum in _TERMINATE:
                    log.info("%s: shutting down (send it again to force)", name)
                    self.app.quit()
                elif _ACTIONS[signum] == "reload":
                    log.info("%s: reloading the configuration", name)
                    self.app.reload()
                else:
                    on = _ACTIONS[signum] == "on"
                    log.info("%s: effects %s", name, "on" if on else "off")
                    self.app.set("effects.enabled", on)
            except PixcamError as exc:
                log_each_line(log, logging.ERROR, str(exc), f" ({name})")
            except Exception:
                log.exception("%s handler", name)


def install_signal_handlers(app: App) -> SignalHandlers:
    """SIGHUP → reload, SIGUSR1 → effects on, SIGUSR2 → off, SIGTERM/SIGINT → quit. Call
    from the main thread."""
    return SignalHandlers(app).install()
