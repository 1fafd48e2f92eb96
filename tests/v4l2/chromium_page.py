"""Headless Chromium (and Firefox, firefox_page.py) with its real V4L2 capture, driven through
browser_page.html.

A small HTTP server on 127.0.0.1 (a secure context, so the page may use cameras) serves the
page and a command queue: `ChromiumPage.command("open", label="pixcam", ...)` queues a command,
the page runs it with the web APIs a video call uses and posts the result back. No fake
capture device: Chromium lists and opens /dev/video* itself. Permission prompts are answered
by --use-fake-ui-for-media-stream, the only thing a user would have clicked.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np

PAGE = Path(__file__).resolve().parent / "browser_page.html"
# Debian's package name, then the upstream binary names.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
    "--disable-component-update", "--disable-background-networking",
    # A hidden headless page must keep its timers and capture at full speed.
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows", "--enable-logging=stderr", "--v=0",
]  # fmt: skip


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


class _Queue:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.pending: list[dict[str, Any]] = []
        self.results: dict[int, dict[str, Any]] = {}
        self.loads = 0
        self.next_id = 1


def _handler(queue: _Queue) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:  # the page polls every 100 ms
            pass

        def _reply(self, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(200)
            self.send_header("content-type", ctype)
            self.send_header("cache-control", "no-store")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/cmd":
                with queue.cond:
                    cmd = queue.pending.pop(0) if queue.pending else {}
                self._reply(json.dumps(cmd).encode())
            else:
                self._reply(PAGE.read_bytes(), "text/html; charset=utf-8")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            with queue.cond:
                if self.path == "/loaded":
                    queue.loads += 1
                elif self.path == "/result":
                    queue.results[body.pop("id")] = body
                queue.cond.notify_all()
            self._reply(b"{}")

    return Handler


class BrowserPage:
    """One browser process showing the test page; `close()` ends both. `launch(url, profile)`
    gives the browser's command line and environment (None: this process's)."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        launch: Callable[[str, Path], tuple[list[str], dict[str, str] | None]],
    ) -> None:
        self._queue = _Queue()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self._queue))
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.log = workdir / f"{name}.log"
        url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._profile = tempfile.mkdtemp(prefix=f"pixcam-{name}-")  # scratch, never shared
        argv, env = launch(url, Path(self._profile))
        with self.log.open("wb") as out:
            self._proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env,
            )  # fmt: skip

    def wait_loaded(self, deadline_s: float, count: int = 1) -> None:
        """Until the page has loaded `count` times (a reload counts), or AssertionError."""
        with self._queue.cond:
            ok = self._queue.cond.wait_for(
                lambda: self._queue.loads >= count or self._proc.poll() is not None, deadline_s
            )
        if not ok or self._queue.loads < count:
            raise AssertionError(f"the page did not load in {deadline_s:.0f} s:\n{self.tail()}")

    @property
    def loads(self) -> int:
        return self._queue.loads

    def command(self, op: str, timeout: float = 120.0, **args: Any) -> dict[str, Any]:
        """Run one page command; AssertionError if the page does not answer in time."""
        q = self._queue
        with q.cond:
            cid = q.next_id
            q.next_id += 1
            q.pending.append({"id": cid, "op": op, **args})
            if not q.cond.wait_for(lambda: cid in q.results, timeout):
                q.pending[:] = [c for c in q.pending if c["id"] != cid]
                raise AssertionError(f"the page did not answer {op!r} in {timeout:.0f} s")
            return q.results.pop(cid)

    def labels(self) -> list[str]:
        return [d["label"] for d in self.command("enumerate")["devices"]]

    def frame(self) -> tuple[np.ndarray, dict[str, Any]]:
        """The newest frame the page received, as BGR, and the page's counters with it."""
        res = self.command("frame")
        if "png" not in res:
            raise AssertionError(f"no frame on the page: {res}")
        data = base64.b64decode(res.pop("png").split(",", 1)[1])
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return image, res

    @property
    def pgid(self) -> int:
        """Chromium's process group: the browser and every process it started."""
        return self._proc.pid

    def tail(self, n: int = 30) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        # dbus and GPU noise of a headless browser in a VM: not what failed.
        return "\n".join([ln for ln in lines if "dbus" not in ln.lower()][-n:])

    def close(self) -> None:
        self._server.shutdown()  # first: no request is cut off by the browser going away
        self._server.server_close()
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        shutil.rmtree(self._profile, ignore_errors=True)


class ChromiumPage(BrowserPage):
    """Headless Chromium with a fresh profile showing the test page."""

    def __init__(self, chromium: str, workdir: Path) -> None:
        super().__init__(
            "chromium",
            workdir,
            lambda url, profile: ([chromium, *FLAGS, f"--user-data-dir={profile}", url], None),
        )
