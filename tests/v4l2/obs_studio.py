"""OBS Studio as a consumer: a real OBS under Xvfb whose scene (obs-config/, written as OBS
itself saves it) holds one "Video Capture Device (V4L2)" source on pixcam's device, driven
through obs-websocket (bundled with OBS 28+) by a small standard-library client.

`GetSourceScreenshot` returns the source's current frame: what OBS received from pixcam.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

CONFIG = Path(__file__).resolve().parent / "obs-config" / "obs-studio"
SOURCE = "pixcam cam"  # the V4L2 source's name in the scene
TEMPLATE_DEVICE = "/dev/video11"  # the scene file's device_id, replaced by the real one
DISPLAY = ":97"
PORT = 4455  # obs-websocket's default, set in global.ini (no password)


class ObsWs:
    """obs-websocket 5 (RPC 1): the handshake, identify, then requests and their replies."""

    # A request's answer may take minutes: OBS renders in software under emulation, slower
    # still on a busy host (a screenshot once took over 60 s).
    def __init__(self, port: int = PORT, timeout: float = 300.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: obswebsocket.json\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("obs-websocket closed during the handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"obs-websocket refused the handshake: {head!r}")
        hello = self._recv()
        if hello.get("d", {}).get("authentication"):
            raise ConnectionError("obs-websocket asks for a password (global.ini says none)")
        self._send({"op": 1, "d": {"rpcVersion": 1, "eventSubscriptions": 0}})
        assert self._recv()["op"] == 2  # Identified
        self._next = 1

    def _send(self, obj: dict[str, Any]) -> None:
        data = json.dumps(obj).encode()
        n = len(data)
        head = bytearray([0x81])  # a final text frame, masked as a client must
        if n < 126:
            head.append(0x80 | n)
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(bytes(head) + mask + body)

    def _exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("obs-websocket closed the connection")
            buf += chunk
        return bytes(buf)

    def _recv(self) -> dict[str, Any]:
        payload = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            data = self._exact(n)  # a server's frames are not masked
            op = b0 & 0x0F
            if op == 0x8:
                raise ConnectionError(f"OBS closed the connection: {data!r}")
            if op == 0x9:  # ping: an empty masked pong
                self.sock.sendall(bytes([0x8A, 0x80]) + os.urandom(4))
            elif op in (0x0, 0x1):
                payload += data
                if b0 & 0x80:
                    return json.loads(payload)

    def call(self, request: str, **data: Any) -> dict[str, Any]:
        rid = str(self._next)
        self._next += 1
        self._send({"op": 6, "d": {"requestType": request, "requestId": rid, "requestData": data}})
        while True:
            msg = self._recv()
            if msg.get("op") == 7 and msg["d"].get("requestId") == rid:
                status = msg["d"].get("requestStatus", {})
                if not status.get("result"):
                    raise RuntimeError(f"{request}: {status}")
                return msg["d"].get("responseData") or {}

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(bytes([0x88, 0x80]) + os.urandom(4))
        self.sock.close()


def find_obs() -> str | None:
    return shutil.which("obs")


def _killpg(popen: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, sig)
        try:
            popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()


class ObsStudio:
    """Xvfb and OBS with the scene on `device`, started at once; `connect()` waits for
    obs-websocket; `close()` ends both."""

    def __init__(self, obs: str, device: str, workdir: Path) -> None:
        self._config = Path(tempfile.mkdtemp(prefix="pixcam-obs-"))  # XDG_CONFIG_HOME
        shutil.copytree(CONFIG, self._config / "obs-studio")
        scene = self._config / "obs-studio" / "basic" / "scenes" / "pixcam.json"
        scene.write_text(scene.read_text().replace(TEMPLATE_DEVICE, device))
        self.log = workdir / "obs.log"
        self.started = time.monotonic()
        with (workdir / "xvfb.log").open("wb") as out:
            self._xvfb = subprocess.Popen(
                ["Xvfb", DISPLAY, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        env = {**os.environ, "DISPLAY": DISPLAY, "XDG_CONFIG_HOME": str(self._config),
               "QT_QPA_PLATFORM": "xcb"}  # fmt: skip
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(
                ["obs", "--multi", "--disable-updater", "--disable-shutdown-check",
                 "--collection", "pixcam", "--profile", "pixcam", "--scene", "Scene",
                 "--verbose"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )  # fmt: skip
        self.ws: ObsWs | None = None

    def connect(self, deadline_s: float) -> ObsWs:
        end = time.monotonic() + deadline_s
        while self.ws is None:
            if self._proc.poll() is not None:
                raise AssertionError(f"OBS exited with {self._proc.returncode}:\n{self.tail()}")
            try:
                self.ws = ObsWs()
            except OSError:
                if time.monotonic() > end:
                    raise AssertionError(
                        f"no obs-websocket after {deadline_s:.0f} s:\n{self.tail()}"
                    ) from None
                time.sleep(2)
        return self.ws

    def devices(self) -> list[str]:
        """The device list of the source's properties dialog, as "name -> device"."""
        assert self.ws is not None
        items = self.ws.call(
            "GetInputPropertiesListPropertyItems", inputName=SOURCE, propertyName="device_id"
        )["propertyItems"]
        return [f"{i['itemName']} -> {i['itemValue']}" for i in items]

    def frame(self) -> np.ndarray | None:
        """The source's current picture (BGR), None while it has none."""
        assert self.ws is not None
        try:
            data = self.ws.call(
                "GetSourceScreenshot", sourceName=SOURCE, imageFormat="png", imageWidth=640
            )["imageData"]
        except RuntimeError:
            return None
        raw = np.frombuffer(base64.b64decode(data.split(",", 1)[1]), np.uint8)
        return cv2.imdecode(raw, cv2.IMREAD_COLOR)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        _killpg(self._proc)
        _killpg(self._xvfb)
        shutil.rmtree(self._config, ignore_errors=True)
