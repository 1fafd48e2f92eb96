"""The PipeWire camera: a `Video/Source` node with `media.role = Camera`, no kernel module.

Built on GStreamer's `pipewiresink` through PyGObject: it is PipeWire's own producer code
(shipped with PipeWire as gstreamer1.0-pipewire), and PyGObject is already pixcam's tray
binding; there is no maintained Python binding of libpipewire's stream API itself.

The pipeline is `appsrc (I420, explicit caps) ! pipewiresink mode=provide`. Each `send` pushes
one buffer, so the node runs at the rate pixcam really writes. Two traps of pipewiresink
0.3.x, both handled here:
- a consumer without fixed caps leaves the stream in PAUSED: the caps are set on appsrc;
- when the upstream element negotiates the sink's own buffer pool (appsrc does, as any
  GstBaseSrc) the pool is configured with size 0 and every buffer PipeWire hands out is
  empty: the first consumer crashes the process. An allocation-query probe keeps appsrc on
  its own buffers, and pipewiresink copies them into its pool, sized from our caps.
And one of PipeWire 0.3.x: a consumer that fails ends the producer's stream; a bus error
makes `send` rebuild the pipeline in place (the node comes back under the same name).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pixcam.i420 import Frame, as_i420
from pixcam.video.sinks import Sink, SinkError

log = logging.getLogger("pixcam.video.pipewire")

NODE_NAME = "pixcam"  # node.name: what `target-object=pixcam` and pw-link show
NODE_DESCRIPTION = "pixcam"  # what camera pickers list
REBUILDS_PER_MINUTE = 6  # more failures than this in a minute: give up, the outlet retries
# How often `send` looks at PipeWire's socket: pipewiresink says nothing when the server goes
# (killed, restarted), and its node is gone for good while frames go on being "sent".
SERVER_CHECK_S = 1.0
PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def pipewire_socket() -> str | None:
    """The PipeWire socket of this session, or None (the daemon is not running)."""
    runtime = os.environ.get("PIPEWIRE_RUNTIME_DIR") or os.environ.get("XDG_RUNTIME_DIR")
    if not runtime:
        return None
    path = os.path.join(runtime, os.environ.get("PIPEWIRE_REMOTE", "pipewire-0"))
    return path if os.path.exists(path) else None


def server_id() -> int | None:
    """The running PipeWire server's identity (its process id, from the socket's peer
    credentials: a restart is a new one; the socket file's inode can be reused), or None when
    no server answers on the socket."""
    path = pipewire_socket()
    if path is None:
        return None
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)  # refused: a socket file left by a server that was killed
        return peer_pid(probe)
    except OSError:
        return None
    finally:
        probe.close()


def peer_pid(sock: socket.socket) -> int | None:
    """The process id at the other end of a connected Unix socket, None if unknown."""
    try:
        cred = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size)
    except OSError:
        return None
    return int(PEERCRED.unpack(cred)[0])


def _gst() -> Any:
    """Gst, initialised; SinkError with the package to install when it can't be."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
    except (ImportError, ValueError) as exc:
        raise SinkError(
            f"the PipeWire camera needs GStreamer's introspection data and PyGObject ({exc}); "
            "install: sudo apt install gir1.2-gstreamer-1.0 gstreamer1.0-pipewire, "
            "and pip install 'pixcam[pipewire]'"
        ) from None
    if not Gst.is_initialized():
        Gst.init(None)
    return Gst


def gst_missing() -> str | None:
    """Why GStreamer cannot publish a PipeWire camera in this process (one line), or None.
    Initialises Gst here: only the process that publishes (the relay) calls it."""
    try:
        gst = _gst()
    except SinkError as exc:
        return str(exc)
    if gst.ElementFactory.find("pipewiresink") is None:
        return "GStreamer has no pipewiresink; install: sudo apt install gstreamer1.0-pipewire"
    return None


@functools.lru_cache(maxsize=1)
def _gst_missing_in_child() -> str | None:
    """`gst_missing()` asked in a child process: a process that ran Gst.init (it loads
    libunwind) segfaults on the next C++ exception pyvirtualcam throws once cv2 is loaded
    (docs/pipewire.md), so the daemon never initialises GStreamer itself."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    code = "from pixcam.video.pipewire_sink import gst_missing as m; print(m() or '')"
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not check GStreamer ({exc})"
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        return f"could not check GStreamer ({last})"
    return out.stdout.strip() or None


def missing() -> str | None:
    """Why the PipeWire camera cannot work here (one line), or None. Never loads GStreamer
    into this process."""
    if pipewire_socket() is None:  # asked first: it costs nothing, the child seconds
        return "PipeWire is not running in this session (no pipewire-0 socket)"
    return _gst_missing_in_child()


def tools_missing() -> list[str]:
    """PipeWire's command-line tools pixcam reads the graph with (pw-link, pw-dump)."""
    return [tool for tool in ("pw-link", "pw-dump") if shutil.which(tool) is None]


class PipeWireSink(Sink):
    """Publishes frames as a PipeWire camera node until `close()`."""

    reopenable = True

    def __init__(self, width: int, height: int, fps: float, *, node: str = NODE_NAME) -> None:
        why = gst_missing() or (None if pipewire_socket() else "PipeWire is not running")
        if why:
            raise SinkError(f"no PipeWire camera: {why}")
        self._gst = _gst()
        self.name, self.width, self.height, self.fps = f"pipewire:{node}", width, height, fps
        self.node = node
        self._lock = threading.Lock()
        self._closed = False
        self._failures: list[float] = []
        self._pipeline: Any = None
        self._src: Any = None
        self._server = server_id()  # the server the node lives in
        self._checked = time.monotonic()
        self._build()
        log.info("PipeWire camera %r: %dx%d@%g I420 (media.role=Camera)", node, width, height, fps)

    # ------------------------------------------------------------------ pipeline
    def _caps(self) -> str:
        num, den = _fraction(self.fps)
        return (
            f"video/x-raw,format=I420,width={self.width},height={self.height},"
            f"framerate={num}/{den},pixel-aspect-ratio=1/1,interlace-mode=progressive"
        )

    def _build(self) -> None:
        gst = self._gst
        pipeline = gst.Pipeline.new(f"pixcam-{self.node}")
        src = gst.ElementFactory.make("appsrc", "src")
        sink = gst.ElementFactory.make("pipewiresink", "sink")
        if src is None or sink is None:
            raise SinkError("GStreamer could not make appsrc or pipewiresink")
        caps = gst.Caps.from_string(self._caps())
        src.set_property("caps", caps)
        src.set_property("format", gst.Format.TIME)
        src.set_property("is-live", True)
        src.set_property("do-timestamp", True)
        # Never queue behind a stalled consumer: at most two frames wait, older ones drop.
        src.set_property("max-buffers", 2)
        src.set_property("leaky-type", 2)  # downstream: drop the oldest
        sink.set_property("mode", "provide")
        sink.set_property("client-name", self.node)
        props = gst.Structure.new_empty("props")
        for key, value in (
            ("media.class", "Video/Source"),
            ("media.role", "Camera"),
            ("node.name", self.node),
            ("node.description", NODE_DESCRIPTION),
            ("media.name", NODE_DESCRIPTION),
            ("pixcam.pid", str(os.getpid())),
        ):
            props.set_value(key, value)
        sink.set_property("stream-properties", props)
        # A sink that waits for the clock would hold frames back; we send at our own rate.
        sink.set_property("sync", False)
        pipeline.add(src)
        pipeline.add(sink)
        if not src.link(sink):
            raise SinkError("GStreamer could not link appsrc to pipewiresink")
        _size_pool(gst, sink, caps, self.width * self.height * 3 // 2)
        src.get_static_pad("src").add_probe(gst.PadProbeType.QUERY_DOWNSTREAM, _no_allocation)
        if pipeline.set_state(gst.State.PLAYING) == gst.StateChangeReturn.FAILURE:
            pipeline.set_state(gst.State.NULL)
            raise SinkError(f"PipeWire camera: {self._bus_error(pipeline) or 'cannot start'}")
        self._pipeline, self._src = pipeline, src

    def _bus_error(self, pipeline: Any) -> str | None:
        gst = self._gst
        bus = pipeline.get_bus()
        error = None
        while True:
            msg = bus.pop_filtered(gst.MessageType.ERROR)
            if msg is None:
                return error
            err, _debug = msg.parse_error()
            error = error or err.message

    def _rebuild(self, why: str) -> None:
        now = time.monotonic()
        self._failures = [t for t in self._failures if t > now - 60.0] + [now]
        self._teardown()
        if len(self._failures) > REBUILDS_PER_MINUTE:
            count = len(self._failures)
            raise SinkError(f"PipeWire camera failed {count} times in a minute: {why}")
        log.warning("PipeWire camera: %s; publishing it again", why)
        self._build()

    def _teardown(self) -> None:
        pipeline, self._pipeline, self._src = self._pipeline, None, None
        if pipeline is not None:
            pipeline.set_state(self._gst.State.NULL)

    # ------------------------------------------------------------------ Sink
    def send(self, frame: Frame) -> None:
        self.check_shape(frame)
        data = as_i420(frame).data.tobytes()
        gst = self._gst
        with self._lock:
            if self._closed:
                raise SinkError(f"{self.name} is closed")
            self._check_server()
            error = self._bus_error(self._pipeline)
            if error:
                self._rebuild(error)
            flow = self._src.emit("push-buffer", gst.Buffer.new_wrapped(data))
            if flow != gst.FlowReturn.OK:
                self._rebuild(f"the stream refused a frame ({flow.value_nick})")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._teardown()

    def _check_server(self) -> None:
        """Once a second: a PipeWire that went away is a `SinkError` (the outlet retries), one
        restarted under the node gets the node again."""
        now = time.monotonic()
        if now - self._checked < SERVER_CHECK_S:
            return
        self._checked = now
        server = server_id()
        if server is None:
            raise SinkError("no PipeWire camera: PipeWire stopped")
        if server != self._server:
            self._server = server
            self._rebuild("PipeWire was restarted")


def _no_allocation(_pad: Any, info: Any) -> Any:
    """Drop appsrc's allocation query (see the module doc): pipewiresink then sizes its pool
    from our caps instead of taking appsrc's size-0 configuration."""
    from gi.repository import Gst

    query = info.get_query()
    if query is not None and query.type == Gst.QueryType.ALLOCATION:
        return Gst.PadProbeReturn.DROP
    return Gst.PadProbeReturn.OK


def _size_pool(gst: Any, sink: Any, caps: Any, size: int) -> None:
    """Give pipewiresink's (inactive) pool our caps and frame size before it starts."""
    query = gst.Query.new_allocation(caps, True)
    if not sink.get_static_pad("sink").query(query) or query.get_n_allocation_pools() < 1:
        return
    pool = query.parse_nth_allocation_pool(0)[0]
    if pool is None or pool.is_active():
        return
    config = pool.get_config()
    gst.BufferPool.config_set_params(config, caps, size, 0, 0)
    pool.set_config(config)


def _fraction(fps: float) -> tuple[int, int]:
    """fps as the caps' whole-number fraction (Firefox's PipeWire capture does not start on a
    fractional rate: docs/pipewire.md); frames go out at pixcam's real rate either way."""
    return max(1, int(round(fps))) if fps > 0 else 30, 1
