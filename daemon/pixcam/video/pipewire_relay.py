"""The PipeWire camera node in a small process of its own, so it outlives a pixcam restart.

A PipeWire node belongs to the client that made it: when pixcam exits, its node goes, and
every app linked to it loses its camera for good (a browser ends the track; WirePlumber does
not link the app to the next node of the same name). A v4l2loopback device is the kernel's
and survives the writer. So pixcam does not publish the node itself: it starts this relay
(once per session) and writes its frames to it over a Unix socket; the relay publishes them
through `PipeWireSink`. When pixcam goes away the relay repeats the last frame for
`LINGER_S`, long enough for a restarted pixcam (systemd restarts it 3 s after a crash) to
connect again; then it removes the node and exits.

Wire format: one header (magic, width, height, fps×1000: `HEADER`), then I420 frames of
exactly width×height×3/2 bytes. The relay answers a connection with one byte: `ACCEPTED`, or
`REFUSED` (also sent to a writer it drops). One writer at a time; a new one replaces the old,
and the replaced process is refused while the newer one writes: two pixcams took the node
from each other every 2 s (their outlets reopen), flipping the picture between the two.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from pixcam.i420 import I420, Frame, as_i420
from pixcam.paths import runtime_dir
from pixcam.video.sinks import Sink, SinkError

log = logging.getLogger("pixcam.video.pipewire")

HEADER = struct.Struct("<4sIII")
MAGIC = b"PXC1"
LINGER_S = 10.0  # the node stays this long after its writer left (a restart takes ~3 s)
START_WAIT_S = 10.0  # how long a writer waits for a relay it started to listen
ACCEPTED, REFUSED = b"A", b"R"  # the relay's answer to a writer
ANSWER_WAIT_S = 0.5  # no answer by then (a relay of an older pixcam): taken as accepted
TAKEN = "another pixcam writes the PipeWire camera; this one takes it back when that one stops"


def socket_path() -> Path:
    return runtime_dir() / "pipewire-camera.sock"


# --------------------------------------------------------------------------- the writer
class RelaySink(Sink):
    """pixcam's side: frames to the relay (started here when none runs)."""

    reopenable = True

    def __init__(self, width: int, height: int, fps: float, *, path: Path | None = None) -> None:
        from pixcam.video import pipewire_sink

        # GStreamer is the relay's to check (it says why in "did not start"): loading it here
        # would put libunwind beside cv2 and pyvirtualcam (docs/pipewire.md, trap 8).
        if pipewire_sink.pipewire_socket() is None:
            raise SinkError("no PipeWire camera: PipeWire is not running in this session")
        self._path = path or socket_path()
        self.name = f"pipewire:{pipewire_sink.NODE_NAME}"
        self.width, self.height, self.fps = width, height, fps
        self._size = width * height * 3 // 2
        self._sock: socket.socket | None = self._connect()
        try:
            self._sock.sendall(HEADER.pack(MAGIC, width, height, int(round(fps * 1000))))
        except OSError as exc:  # a refusal closes the connection at once
            refused = _answer(self._sock, 0.0) == REFUSED
            self.close()
            why = TAKEN if refused else f"the PipeWire camera relay went away ({exc})"
            raise SinkError(why) from None
        if _answer(self._sock, ANSWER_WAIT_S) == REFUSED:
            self.close()
            raise SinkError(TAKEN)
        log.info("PipeWire camera: %dx%d@%g, through the relay %s", width, height, fps, self._path)

    def _connect(self) -> socket.socket:
        sock = _try_connect(self._path)
        if sock is not None:
            return sock
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        logfile = self._path.with_suffix(".log")
        with open(logfile, "ab") as errfile:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pixcam.video.pipewire_relay", str(self._path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errfile,
                start_new_session=True,  # not ended with pixcam: outliving it is its job
            )
        end = time.monotonic() + START_WAIT_S
        while time.monotonic() < end:
            sock = _try_connect(self._path)
            if sock is not None:
                return sock
            if proc.poll() is not None:
                err = logfile.read_text(errors="replace").strip()
                last = err.splitlines()[-1] if err else f"exit {proc.returncode}"
                raise SinkError(f"the PipeWire camera relay did not start: {last}")
            time.sleep(0.05)
        proc.kill()
        raise SinkError("the PipeWire camera relay did not start in time")

    def send(self, frame: Frame) -> None:
        if self._sock is None:
            raise SinkError(f"{self.name} is closed")
        self.check_shape(frame)
        try:
            self._sock.sendall(as_i420(frame).data.tobytes())
        except OSError as exc:
            if _answer(self._sock, 0.0) == REFUSED:
                raise SinkError(TAKEN) from None
            raise SinkError(f"the PipeWire camera relay went away ({exc})") from None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def _try_connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def _answer(sock: socket.socket, wait: float) -> bytes:
    """The relay's last answer waiting on `sock` (b"" when none came within `wait` s)."""
    try:
        ready, _, _ = select.select([sock], [], [], wait)
        data = sock.recv(64, socket.MSG_DONTWAIT) if ready else b""
    except OSError:
        return b""
    return data[-1:]


def _peer_pid(conn: socket.socket) -> int:
    from pixcam.video.pipewire_sink import peer_pid

    return peer_pid(conn) or 0


def _say(conn: socket.socket, answer: bytes) -> None:
    with contextlib.suppress(OSError):
        conn.send(answer, socket.MSG_DONTWAIT)


# ---------------------------------------------------------------------------- the relay
class _Writer:
    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.pid = _peer_pid(conn)
        self.buf = bytearray()
        self.dims: tuple[int, int, float] | None = None


def serve(path: Path, linger: float = LINGER_S) -> int:
    """Run the relay on `path` until no writer was connected for `linger` seconds."""
    listener = _listen(path)
    if listener is None:
        return 0
    relay = _Relay(listener, linger)
    try:
        relay.run()
    finally:
        relay.close()
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return 0


def _listen(path: Path) -> socket.socket | None:
    """A socket listening on `path`; None when a relay already listens there."""
    from pixcam.video.pipewire_sink import gst_missing

    if _try_connect(path) is not None:
        log.info("a relay already listens on %s", path)
        return None
    why = gst_missing()
    if why:
        raise SinkError(f"no PipeWire camera: {why}")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)
    return listener


class _Relay:
    """The node's sink, fed by one writer at a time; the last frame repeats while none writes."""

    def __init__(self, listener: socket.socket, linger: float) -> None:
        self.listener = listener
        self.linger = linger
        self.sink: Sink | None = None
        self.writer: _Writer | None = None
        self.replaced: set[int] = set()  # processes whose connection a newer writer replaced
        self.last: I420 | None = None
        self.last_sent = time.monotonic()
        self.left_at = time.monotonic()  # when the relay last had no writer

    def run(self) -> None:
        """Serve writers until none was connected for `linger` seconds."""
        while True:
            period = 1.0 / max(1.0, self.sink.fps) if self.sink is not None else 0.5
            fds = [self.listener] + ([self.writer.conn] if self.writer is not None else [])
            ready, _, _ = select.select(fds, [], [], period)
            now = time.monotonic()
            if self.listener in ready:
                self._accept()
            if self.writer is not None and self.writer.conn in ready:
                self._receive(self.writer, now)
            if self.writer is None and now - self.left_at > self.linger:
                return
            self._repeat_last(now, period)

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()

    def _accept(self) -> None:
        """Answer a new connection: it replaces the writer, unless the writer replaced it."""
        conn, _ = self.listener.accept()
        pid = _peer_pid(conn)
        old = self.writer
        if old is not None and pid != old.pid and pid in self.replaced:
            _say(conn, REFUSED)  # replaced: it waits until the newer one leaves
            conn.close()
            return
        if old is not None:  # a new pixcam replaces a stale one (or another)
            if old.pid != pid:
                self.replaced.add(old.pid)
            _say(old.conn, REFUSED)
            old.conn.close()
        _say(conn, ACCEPTED)
        self.writer = _Writer(conn)

    def _receive(self, writer: _Writer, now: float) -> None:
        """Read what `writer` sent and publish its newest whole frame; note when it left."""
        chunk = writer.conn.recv(1 << 20)
        if not chunk:
            writer.conn.close()
            self.writer, self.left_at = None, now
            self.replaced.clear()  # a replaced pixcam may write again
            log.info("relay: the writer left; keeping the node for %g s", self.linger)
            return
        writer.buf += chunk
        frame, self.sink = _take(writer, self.sink)
        if frame is not None and self.sink is not None:
            self.sink.send(frame)
            self.last, self.last_sent = frame, now

    def _repeat_last(self, now: float, period: float) -> None:
        """Nothing new for 3 frame times (pixcam restarting): the last frame again."""
        if self.sink is not None and self.last is not None and now - self.last_sent > 3 * period:
            self.sink.send(self.last)
            self.last_sent = now


def _take(writer: _Writer, sink: Sink | None) -> tuple[I420 | None, Sink | None]:
    """Parse what `writer` sent: the header (opening or reopening the sink for its size), then
    frames; returns the newest whole frame (older ones are dropped) and the sink."""
    from pixcam.video.pipewire_sink import PipeWireSink

    if writer.dims is None:
        if len(writer.buf) < HEADER.size:
            return None, sink
        magic, w, h, fps_milli = HEADER.unpack_from(writer.buf)
        del writer.buf[: HEADER.size]
        if magic != MAGIC:
            raise SinkError("relay: a writer spoke another protocol")
        writer.dims = (w, h, fps_milli / 1000.0)
        # Only a new size makes a new node: a linked app keeps its node across a restart that
        # writes at another rate (the node repeats frames at its own rate meanwhile).
        if sink is None or (sink.width, sink.height) != writer.dims[:2]:
            if sink is not None:
                sink.close()
            sink = PipeWireSink(*writer.dims)
    w, h, _ = writer.dims
    size = w * h * 3 // 2
    whole = len(writer.buf) // size
    if whole == 0:
        return None, sink
    start = (whole - 1) * size
    data = bytes(writer.buf[start : start + size])
    del writer.buf[: whole * size]
    import numpy as np

    return I420(np.frombuffer(data, np.uint8).reshape(h * 3 // 2, w).copy()), sink


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="pixcam relay: %(message)s")
    path = Path(args[0]) if args else socket_path()
    try:
        return serve(path)
    except SinkError as exc:
        print(f"pixcam relay: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    os.environ.setdefault("PIXCAM_RELAY", "1")
    sys.exit(main())
