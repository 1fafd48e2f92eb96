"""Who reads the PipeWire camera: links out of its node, from PipeWire's own registry.

A consumer of a PipeWire node is a link from one of the node's output ports; PipeWire
announces every link as it is made and destroyed. `pw-link --links --id --monitor` prints the
links there are, then one line per change, so a thread reading it knows the count without
polling. (`pw-link` ships with PipeWire itself: pipewire-bin on Debian, pipewire on Fedora.)

`PipeWireOnDemand` is a `ConsumerWatch` like the loopback's `OnDemand` (the same debounce,
callbacks and interface), so the daemon treats both alike.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import subprocess
import threading
import time
from collections.abc import Callable

from pixcam.video.ondemand import START_DELAY_S, STOP_DELAY_S, ConsumerWatch

log = logging.getLogger("pixcam.video.pipewire")

RESTART_S = 1.0  # pw-link ended (PipeWire restarted): start it again after this long

# "+   43 pixcam:out_0 -> firefox:input_0" (a change) or, under a port line "=   36 pixcam:out_0",
# "=   41   |->   39 firefox:input_0" (the listing at start).
_FLAT = re.compile(r"^([=+-])\s+(\d+)\s+(\S+)\s+->\s+(\S.*)$")
_PORT = re.compile(r"^([=+-])\s+(\d+)\s+(\S.*)$")
_UNDER = re.compile(r"^([=+-])\s+(\d+)\s+\|([-<>]+)\s+(\d+)\s+(\S.*)$")


class LinkTable:
    """The links out of node `node`'s ports, from pw-link's lines (pure: no I/O)."""

    def __init__(self, node: str) -> None:
        self.prefix = f"{node}:"
        self.links: set[int] = set()
        self._port = ""  # the port line the indented link lines belong to

    @property
    def count(self) -> int:
        return len(self.links)

    def feed(self, line: str) -> None:
        line = line.rstrip("\n")
        if m := _UNDER.match(line):
            sign, link, arrow = m.group(1), int(m.group(2)), m.group(3)
            if arrow == "->" and self._port.startswith(self.prefix):
                self._apply(sign, link)
            elif sign == "-":
                self.links.discard(link)
        elif m := _FLAT.match(line):
            sign, link, out = m.group(1), int(m.group(2)), m.group(3)
            if out.startswith(self.prefix):
                self._apply(sign, link)
            elif sign == "-":
                self.links.discard(link)
        elif m := _PORT.match(line):
            self._port = m.group(3)
            if m.group(1) == "-":
                self.links.discard(int(m.group(2)))

    def _apply(self, sign: str, link: int) -> None:
        if sign == "-":
            self.links.discard(link)
        else:
            self.links.add(link)


def count_links(node: str, timeout: float = 3.0) -> int | None:
    """Links out of `node` right now (`pw-link -lI`), None if PipeWire can't be asked."""
    try:
        out = subprocess.run(
            ["pw-link", "--links", "--id"], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    table = LinkTable(node)
    for line in out.stdout.splitlines():
        table.feed("= " + line)  # the plain listing has no sign column
    return table.count


class PipeWireOnDemand(ConsumerWatch):
    """Calls `on_active()` / `on_idle()` (debounced) as consumers link to and unlink from the
    node named `node`. Callbacks run on the watcher thread; their exceptions are logged."""

    def __init__(
        self,
        node: str,
        on_active: Callable[[], None],
        on_idle: Callable[[], None],
        *,
        start_delay: float = START_DELAY_S,
        stop_delay: float = STOP_DELAY_S,
    ) -> None:
        super().__init__(on_active, on_idle, start_delay, stop_delay)
        self.node = node
        self.device = f"pipewire:{node}"
        self._table = LinkTable(node)
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending = b""  # a line pw-link has not finished yet

    @property
    def count(self) -> int:
        return self._table.count

    def start(self) -> PipeWireOnDemand:
        """Start watching; OSError when pw-link can't run."""
        self._spawn()
        self._thread = threading.Thread(target=self._run, name="pixcam-pw-ondemand", daemon=True)
        self._thread.start()
        self._log_watching(f"PipeWire links of node {self.node!r}")
        return self

    def _spawn(self) -> None:
        self._table = LinkTable(self.node)
        self._proc = subprocess.Popen(
            ["pw-link", "--links", "--id", "--monitor"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._pending = b""

    def stop(self) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2.0)
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            proc = self._proc
            if proc is None or proc.stdout is None:
                return
            due = self._debounce.deadline()
            timeout = 1.0 if due is None else max(0.0, min(1.0, due - time.monotonic()))
            ready, _, _ = select.select([proc.stdout], [], [], timeout)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:  # pw-link ended: PipeWire went away or restarted
                    proc.wait()
                    if self._stop.wait(RESTART_S):
                        return
                    log.info("on demand: PipeWire's link monitor ended; starting it again")
                    try:
                        self._spawn()
                    except OSError as exc:
                        log.warning("on demand: pw-link: %s", exc)
                    continue
                *lines, self._pending = (self._pending + chunk).split(b"\n")
                with self._changed:
                    for line in lines:
                        self._table.feed(line.decode("utf-8", "replace"))
                        self._events += 1
                    self._changed.notify_all()
            self._react(time.monotonic())

    def _who(self) -> str:
        return f"{self.count} consumer(s) of PipeWire node {self.node!r}"
