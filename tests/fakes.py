"""Stand-ins shared by the tests: a camera, a sink and a segmenter that need no hardware or
model, `cfg_with` for a validated `Config` with a few values changed, and `FakePipeline`, the
live runner on them. They plug into the real seams (`Source`'s producer side, `Sink`, the
`Segmenter` protocol, the `Pipeline` constructor), never into internals."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pytest

from pixcam.config import Config, load_config
from pixcam.i420 import Frame, as_bgr
from pixcam.runner.camera import SourceOpener
from pixcam.runner.loader import SegmenterLoader
from pixcam.runner.pipeline import Pipeline
from pixcam.video.sinks import Sink, SinkError, SinkSpec
from pixcam.video.sources import Source, SourceError, SourceSpec

W, H = 64, 48


def cfg_with(**sections: dict[str, Any]) -> Config:
    values = {f"{s}.{k}": v for s, keys in sections.items() for k, v in keys.items()}
    return load_config(None).with_values(values)


def run_file_to_file(cfg: Config, source: Path, out: Path, frames: int) -> Pipeline:
    """The real runner on a video file into a video file, as fast as it goes (`pixcam run
    --input --output`); returns it stopped, for its status."""
    p = Pipeline(
        cfg,
        SourceSpec(path=str(source), loop=False, realtime=False),
        SinkSpec(path=str(out)),
        frames=frames,
    )
    p.run()
    return p


class FakeCamera(Source):
    """A camera that sends flat frames of `value`, then fails (or stalls) after `good`."""

    def __init__(self, value: int, good: int | None, stall: bool = False) -> None:
        super().__init__()
        self.name, self.width, self.height, self.fps = "/dev/fake0", W, H, 30.0
        self.value, self.good, self.stall = value, good, stall
        self.closed = False

    def capture(self) -> None:
        sent = 0
        while not self.stopping.is_set():
            if self.good is not None and sent >= self.good:
                if not self.stall:
                    self.fail("camera /dev/fake0 was unplugged")
                return
            self.publish(np.full((H, W, 3), self.value, np.uint8))
            sent += 1
            self.stopping.wait(0.005)

    def release(self) -> None:
        self.closed = True


class CameraFactory:
    """open_source stand-in: camera #1 dies, the next `down` opens fail, then one that lives."""

    def __init__(self, good: int, down: int, stall: bool = False) -> None:
        self.good, self.down, self.stall = good, down, stall
        self.opened: list[FakeCamera] = []
        self.failures = 0

    def __call__(self, spec: SourceSpec) -> Source:
        if self.opened and self.failures < self.down:
            self.failures += 1
            raise SourceError("camera /dev/fake0 does not exist; use --input FILE to use a video")
        first = not self.opened
        cam = FakeCamera(200, self.good if first else None, self.stall and first)
        cam.start()
        self.opened.append(cam)
        return cam


class MemorySink(Sink):
    def __init__(self, width: int, height: int, fail_at: int | None = None) -> None:
        self.name, self.width, self.height, self.fps = "memory", width, height, 30.0
        self.frames: list[np.ndarray] = []
        self.fail_at = fail_at
        self.lock = threading.Lock()
        self.closed = False

    def send(self, frame: Frame) -> None:
        self.check_shape(frame)
        with self.lock:
            if self.fail_at is not None and len(self.frames) >= self.fail_at:
                raise SinkError("virtual camera memory disappeared (v4l2loopback unloaded?)")
            self.frames.append(as_bgr(frame).copy())  # kept as BGR, whatever was sent

    def close(self) -> None:
        self.closed = True

    def kinds(self) -> list[str]:
        with self.lock:
            return [_kind(f) for f in self.frames]


def _kind(frame: np.ndarray) -> str:
    med = int(np.median(frame))
    if med == 200:
        return "camera"
    if 60 <= med <= 80 and frame.max() == 255:
        return "placeholder"  # 200 dimmed to ~70, with white text
    if med == 24:
        return "idle"
    return f"other({med})"


class SinkFactory:
    def __init__(self, fail_at: int | None = None, reopenable: bool = True) -> None:
        self.sinks: list[MemorySink] = []
        self.fail_at, self.reopenable = fail_at, reopenable

    def __call__(self, spec: SinkSpec, width: int, height: int, fps: float) -> Sink:
        sink = MemorySink(width, height, self.fail_at if not self.sinks else None)
        sink.reopenable = self.reopenable
        self.sinks.append(sink)
        return sink


class FlakySegmenter:
    """Person everywhere in the left half; raises on call number `bad`. No part heads."""

    has_parts = False
    cell = 16.0  # frame pixels per output cell, as BodyPix's stride 16

    def __init__(self, bad: int | None = None) -> None:
        self.calls, self.bad = 0, bad

    def run(self, frame: np.ndarray, parts: bool = True, pyramid: Any = None) -> Any:
        self.calls += 1
        if self.calls == self.bad:
            raise RuntimeError("interpreter exploded")
        return self

    def person_probability(self, size: tuple[int, int]) -> np.ndarray:
        prob = np.zeros((size[1], size[0]), np.float32)
        prob[:, : size[0] // 2] = 1.0
        return prob


def no_model(*key: Any) -> Any:
    """The loader of a stream that must need no model (background "none")."""
    pytest.fail(f"no model needed, but {key} was loaded")


FAKE_CAMERA = SourceSpec(device="/dev/fake0")


class FakePipeline(Pipeline):
    """The live runner on the stand-ins: `cameras` opens the camera (a `CameraFactory` whose
    camera lives for ever, unless given), `sinks` the virtual cameras (a `SinkFactory`), and
    `segmenter` is what every model load gives (or `loader` loads; neither: no model may be
    loaded). The camera is `source` (None: the config's, which then follows its settings).
    Keep-alive off unless asked (these tests count frames); `keepalive=None` is the runner's
    default. `with FakePipeline(...) as p:` starts it and stops it after."""

    def __init__(
        self,
        cfg: Config | None = None,
        *,
        cameras: SourceOpener | None = None,
        sinks: SinkFactory | None = None,
        segmenter: Any = None,
        loader: SegmenterLoader | None = None,
        source: SourceSpec | None = FAKE_CAMERA,
        keepalive: bool | None = False,
        **kw: Any,
    ) -> None:
        self.cameras = cameras if cameras is not None else CameraFactory(good=10**9, down=0)
        self.sinks = sinks if sinks is not None else SinkFactory()
        if loader is None:
            loader = no_model if segmenter is None else lambda *key: segmenter
        super().__init__(
            cfg or cfg_with(effects={"background": "none"}),
            source,
            SinkSpec(device="memory"),
            source_opener=self.cameras,
            sink_opener=self.sinks,
            segmenter_loader=loader,
            keepalive=keepalive,
            **kw,
        )

    @property
    def sink(self) -> MemorySink:
        """The first virtual camera opened."""
        return self.sinks.sinks[0]

    @property
    def frames(self) -> list[np.ndarray]:
        """What the first virtual camera got, BGR."""
        return self.sink.frames

    def __enter__(self) -> FakePipeline:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
