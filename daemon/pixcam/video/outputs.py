"""Which virtual camera(s) to publish: the loopback device, the PipeWire node, or both.

`resolve` turns `[output] backend` into what this machine can do ("auto": both where
PipeWire runs and a loopback exists, else whichever there is). `FanOutSink` sends every frame
to several sinks; one that fails is reopened on its own while the others go on, so a lost
loopback never costs the PipeWire readers a frame (and the other way round).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from pixcam.i420 import Frame
from pixcam.video import keeper, pipewire_sink
from pixcam.video.sinks import Sink, SinkError, VirtualCameraSink, list_video_nodes

log = logging.getLogger("pixcam.video.outputs")

RETRY_S = 2.0  # a failed branch of a fan-out is reopened this often
Opener = Callable[[], Sink]


def loopback_present() -> bool:
    return any(node.loopback for node in list_video_nodes())


def resolve(backend: str) -> str:
    """The concrete backend for `backend` here: "v4l2loopback", "pipewire" or "both"."""
    if backend != "auto":
        return backend
    if pipewire_sink.missing() is not None:
        return "v4l2loopback"
    return "both" if loopback_present() else "pipewire"


class FanOutSink(Sink):
    """Every frame to each branch; raises `SinkError` only when no branch is left."""

    reopenable = True

    def __init__(self, openers: dict[str, Opener]) -> None:
        self._openers = openers
        self._sinks: dict[str, Sink | None] = {}
        self._retry_at: dict[str, float] = {}
        errors: list[tuple[str, str]] = []
        for key, opener in openers.items():
            try:
                self._sinks[key] = opener()
            except SinkError as exc:
                self._sinks[key] = None
                self._retry_at[key] = time.monotonic() + RETRY_S
                errors.append((key, str(exc)))
        live = [s for s in self._sinks.values() if s is not None]
        if not live:
            raise SinkError("; ".join(e for _, e in errors))  # the one line: no warnings first
        for key, error in errors:
            log.warning("%s: %s (the other output goes on)", key, error)
        first = live[0]
        self.width, self.height, self.fps = first.width, first.height, first.fps
        self.name = " + ".join(s.name for s in live)
        self._closed = False

    @property
    def branches(self) -> dict[str, Sink | None]:
        return dict(self._sinks)

    def send(self, frame: Frame) -> None:
        if self._closed:
            raise SinkError(f"{self.name} is closed")
        self.check_shape(frame)
        now = time.monotonic()
        errors = []
        for key, sink in list(self._sinks.items()):
            if sink is None:
                sink = self._reopen(key, now)
                if sink is None:
                    continue
            try:
                sink.send(frame)
            except SinkError as exc:
                log.error("%s", exc)
                errors.append(str(exc))
                sink.close()
                self._sinks[key] = None
                self._retry_at[key] = now + RETRY_S
        if all(s is None for s in self._sinks.values()):
            raise SinkError("; ".join(errors) or "every output failed")

    def retime(self, fps: float) -> None:
        super().retime(fps)
        for sink in self._sinks.values():
            if sink is not None:
                sink.retime(fps)

    def _reopen(self, key: str, now: float) -> Sink | None:
        if now < self._retry_at.get(key, 0.0):
            return None
        try:
            sink = self._openers[key]()
        except SinkError:
            self._retry_at[key] = now + RETRY_S
            return None
        if (sink.width, sink.height) != (self.width, self.height):
            sink.close()
            self._retry_at[key] = now + RETRY_S
            return None
        if sink.fps != self.fps:
            sink.retime(self.fps)  # opened at the first rate; the stream's may have changed
        log.warning("output %s is back", sink.name)
        self._sinks[key] = sink
        return sink

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for key, sink in self._sinks.items():
            self._sinks[key] = None
            if sink is not None:
                sink.close()


def open_backend(backend: str, device: str, width: int, height: int, fps: float) -> Sink:
    """The sink for `backend` ("auto" resolved here)."""
    chosen = resolve(backend)

    def loopback() -> Sink:
        return VirtualCameraSink(width, height, fps, device)

    def pipewire() -> Sink:
        from pixcam.video.pipewire_relay import RelaySink  # the node outlives a restart

        return RelaySink(width, height, fps)

    if chosen == "v4l2loopback":
        return loopback()
    if chosen == "pipewire":
        keeper.release()  # it may hold a loopback since start-up: that one is not written now
        return pipewire()
    return FanOutSink({"pipewire": pipewire, "v4l2loopback": loopback})


# ----------------------------------------------------------------------------- on demand
class Watcher(Protocol):
    @property
    def active(self) -> bool: ...
    def status(self) -> dict[str, object]: ...
    def start(self) -> Any: ...
    def stop(self) -> None: ...


class AnyWatcher:
    """Several on-demand watchers as one: active while any of them is."""

    def __init__(self, watchers: list[Watcher]) -> None:
        self.watchers = watchers

    @property
    def active(self) -> bool:
        return any(w.active for w in self.watchers)

    def status(self) -> dict[str, object]:
        parts = [w.status() for w in self.watchers]
        return {
            "device": " + ".join(str(p.get("device")) for p in parts),
            "watchers": sum(int(str(p.get("watchers") or 0)) for p in parts),
            "active": self.active,
            "outputs": parts,
        }

    def start(self) -> AnyWatcher:
        started: list[Watcher] = []
        try:
            for w in self.watchers:
                w.start()
                started.append(w)
        except OSError:
            for w in started:
                w.stop()
            raise
        return self

    def stop(self) -> None:
        for w in self.watchers:
            w.stop()


def watcher_for(
    sink_name: str,
    on_change: Callable[[], None],
    start_delay: float,
    stop_delay: float,
) -> Watcher:
    """What tells whether anyone reads the sink called `sink_name` (a device path,
    "pipewire:NODE", or both joined by " + "): inotify opens, PipeWire links, or both."""
    from pixcam.video.ondemand import OnDemand
    from pixcam.video.pipewire_links import PipeWireOnDemand

    watchers: list[Watcher] = []
    for part in sink_name.split(" + "):
        if part.startswith("pipewire:"):
            node = part.partition(":")[2]
            watchers.append(
                PipeWireOnDemand(
                    node, on_change, on_change, start_delay=start_delay, stop_delay=stop_delay
                )
            )
        else:
            watchers.append(
                OnDemand(part, on_change, on_change, start_delay=start_delay, stop_delay=stop_delay)
            )
    return watchers[0] if len(watchers) == 1 else AnyWatcher(watchers)
