"""The frame-gap guarantee (issue 15): while the stream runs, the sink gets a frame at least
every 250 ms whatever is slow elsewhere. Each slow thing is stalled on purpose by a fake that
sleeps (a model load, a failing model, an image or video background, the camera opening);
the sink records when each frame arrives and the largest gap is asserted and printed.

The keep-alive is off here: the worker itself must never wait on a slow thing.

On a loaded machine the scheduler alone holds a stream back for a few hundred ms now and then,
so each stalled stream is held against two baselines measured in the same test: its own
largest gap just before the stall, and that of a twin stream (the same pipeline, nothing
stalled) over the very window of the stall. A stall that blocked the worker still shows its
full 1.5 s; a busy machine shows in the twin as well.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import wait_until
from fakes import FakeCamera, FlakySegmenter, cfg_with
from pixcam import paths
from pixcam.chain.effects import Effects
from pixcam.config import Config
from pixcam.runner.pipeline import Pipeline
from pixcam.video.sinks import Sink, SinkSpec
from pixcam.video.sources import Source, SourceSpec

MAX_GAP_S = 0.25
STALL_S = 1.5  # every fake stalls this long: six times the allowed gap
# Over the baselines: the stream's own largest gap before + this; the twin's largest gap
# times TWIN_FACTOR + this (a window's largest gap varies a lot on a loaded machine: up to
# 2.2 times between two such streams over 65 windows at load 10).
MARGIN_S = 0.1
TWIN_FACTOR = 2.5
GAPS: dict[str, float] = {}  # the largest gap per stall source
QUIET: dict[str, float] = {}  # the same stream's largest gap with nothing stalled
TWIN: dict[str, float] = {}  # the twin stream's largest gap over the stall's window


class TimedSink(Sink):
    """Records when each frame arrived (monotonic seconds)."""

    def __init__(self, width: int, height: int, fps: float) -> None:
        self.name, self.width, self.height, self.fps = "timed", width, height, fps
        self.times: list[float] = []
        self.lock = threading.Lock()

    def send(self, frame: np.ndarray) -> None:
        self.check_shape(frame)
        with self.lock:
            self.times.append(time.monotonic())

    def largest_gap(self, since: float) -> float:
        with self.lock:  # from the last frame before `since`: a stall at once counts too
            before = [t for t in self.times if t < since][-1:]
            times = before + [t for t in self.times if t >= since]
        assert len(times) > 2, "frames stopped"
        return max(b - a for a, b in zip(times, times[1:], strict=False))


class SlowLoader:
    """The model loader, stalled for `STALL_S` on every load after the first; `fail` makes
    those loads fail after the stall."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.loads = fail, 0
        self.done = threading.Event()

    def __call__(self, name: str | None, threads: int, resolution: int, quality: str) -> Any:
        self.loads += 1
        if self.loads > 1:
            time.sleep(STALL_S)
            self.done.set()
            if self.fail:
                raise RuntimeError("the model file is damaged")
        return FlakySegmenter()


class SlowCameras:
    """The camera opener: every open after the first takes `STALL_S`."""

    def __init__(self) -> None:
        self.opens = 0

    def __call__(self, spec: SourceSpec) -> Source:
        self.opens += 1
        if self.opens > 1:
            time.sleep(STALL_S)
        cam = FakeCamera(200, None)
        cam.width, cam.height = spec.width, spec.height
        cam.start()
        return cam


class Stream:
    def __init__(
        self, pipeline: Pipeline, sink: list[TimedSink], cameras: SlowCameras, twin: list[TimedSink]
    ) -> None:
        self.pipeline, self.cameras = pipeline, cameras
        self._sink, self._twin = sink, twin

    @property
    def sink(self) -> TimedSink:
        return self._sink[0]

    def measure(self, source: str, stall: Callable[[], None], done: Callable[[], bool]) -> None:
        """Run `stall`, wait until `done` (and a little more), record the largest gap.

        The bound is 250 ms, or more where the machine is busy: the stream's own largest gap
        over as long a window just before (in the same state: paused, say) plus 100 ms, or
        2.5 times the twin's largest gap over the stall's window plus 100 ms. Where that
        nears the stall itself, a blocked worker cannot be told from the machine: skipped."""
        wait_until(lambda: len(self.sink.times) > 10, what="frames flowing")
        t0 = time.monotonic()
        time.sleep(STALL_S + 0.3)
        quiet = self.sink.largest_gap(t0)
        t0 = time.monotonic()
        stall()
        wait_until(done, what=f"{source} finished", timeout=30)
        time.sleep(0.3)
        gap, twin = self.sink.largest_gap(t0), self._twin[0].largest_gap(t0)
        GAPS[source] = max(gap, GAPS.get(source, 0.0))
        QUIET[source] = max(quiet, QUIET.get(source, 0.0))
        TWIN[source] = max(twin, TWIN.get(source, 0.0))
        bound = max(MAX_GAP_S, quiet + MARGIN_S, TWIN_FACTOR * twin + MARGIN_S)
        seen = f"{gap * 1e3:.0f} ms (before {quiet * 1e3:.0f}, twin {twin * 1e3:.0f})"
        if bound > 0.8 * STALL_S:
            pytest.skip(f"{source}: machine too busy to tell a blocked worker: {seen}")
        assert gap < bound, f"{source}: {seen} without a frame"


@pytest.fixture
def stream_factory() -> Iterator[Callable[..., Stream]]:
    """A stream stalled as each test says, and its twin: the same, never stalled."""
    made: list[Pipeline] = []

    def run(cfg: Config, cameras: SlowCameras, loader: Any) -> tuple[Pipeline, list[TimedSink]]:
        sinks: list[TimedSink] = []

        def open_sink(spec: SinkSpec, w: int, h: int, fps: float) -> Sink:
            sinks.append(TimedSink(w, h, fps))
            return sinks[-1]

        pipeline = Pipeline(
            cfg,
            sink_spec=SinkSpec(device="timed"),
            source_opener=cameras,
            sink_opener=open_sink,
            segmenter_loader=loader,
            keepalive=False,
        )
        pipeline.start()
        made.append(pipeline)
        return pipeline, sinks

    def make(cfg: Config | None = None, loader: Any = None) -> Stream:
        cfg = cfg or cfg_with(effects={"background": "blur"})
        cameras = SlowCameras()
        pipeline, sinks = run(cfg, cameras, loader or SlowLoader())
        _, twin = run(cfg, SlowCameras(), SlowLoader())  # opened and loaded once: never slow
        return Stream(pipeline, sinks, cameras, twin)

    yield make
    for pipeline in made:
        pipeline.stop()


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    print("\nlargest frame gap per stall source, ms (just before; the twin meanwhile):")
    for source, gap in GAPS.items():
        print(f"  {source}: {gap * 1e3:.0f} ({QUIET[source] * 1e3:.0f}; {TWIN[source] * 1e3:.0f})")


def effects(s: Stream) -> Effects:
    fx = s.pipeline._effects
    assert fx is not None
    return fx


def _threads(cfg: Config, n: int) -> Config:
    return cfg.with_values({"model.threads": n})


def test_a_model_loading(stream_factory: Callable[..., Stream]) -> None:
    loader = SlowLoader()
    s = stream_factory(loader=loader)
    cfg = _threads(s.pipeline._cfg, 3)  # another model choice: a new load
    s.measure(
        "model loading",
        lambda: s.pipeline.apply(cfg),
        lambda: effects(s).model == (None, 3, cfg.model.internal_resolution, "balanced"),
    )


def test_a_model_failing(stream_factory: Callable[..., Stream]) -> None:
    loader = SlowLoader(fail=True)
    s = stream_factory(loader=loader)
    cfg = _threads(s.pipeline._cfg, 3)
    s.measure(
        "model failing",
        lambda: s.pipeline.apply(cfg),
        lambda: "damaged" in (s.pipeline.status()["last_error"] or ""),
    )


@pytest.fixture
def slow_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Path]:
    """A real image and video whose lookup stalls (as a slow disk or a huge decode would)."""
    image = tmp_path / "bg.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 90, np.uint8))
    video = tmp_path / "bg.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()
    real = paths.find_background

    def slow_find(name: str) -> Path:
        time.sleep(STALL_S)
        return real(name)

    monkeypatch.setattr(paths, "find_background", slow_find)
    return {"image": image, "video": video}


@pytest.mark.parametrize("kind", ["image", "video"])
def test_a_background_loading(
    stream_factory: Callable[..., Stream], slow_files: dict[str, Path], kind: str
) -> None:
    s = stream_factory()
    cfg = s.pipeline._cfg.with_values(
        {"effects.background": kind, f"effects.{kind}": str(slow_files[kind])}
    )
    s.measure(
        f"{kind} background loading",
        lambda: s.pipeline.apply(cfg),
        lambda: effects(s).settings.background == kind,
    )


def test_a_missing_background_keeps_the_old_one(
    stream_factory: Callable[..., Stream], slow_files: dict[str, Path]
) -> None:
    s = stream_factory()
    cfg = s.pipeline._cfg.with_values({"effects.background": "image", "effects.image": "/no.png"})
    s.measure(
        "background failing",
        lambda: s.pipeline.apply(cfg),
        lambda: "not found" in (s.pipeline.status()["last_error"] or ""),
    )
    assert effects(s).settings.background == "blur"


def test_the_camera_reopening(stream_factory: Callable[..., Stream]) -> None:
    s = stream_factory()
    cfg = s.pipeline._cfg.with_values({"camera.width": 80, "camera.height": 60})
    s.measure(
        "camera reopening (new settings)",
        lambda: s.pipeline.apply(cfg),
        lambda: s.cameras.opens == 2 and s.pipeline.state.value == "running",
    )


def test_the_camera_resuming(stream_factory: Callable[..., Stream]) -> None:
    s = stream_factory()
    s.pipeline.pause()
    wait_until(lambda: s.pipeline.state.value == "paused", what="paused")
    s.measure(
        "camera opening (resume)",
        s.pipeline.resume,
        lambda: s.cameras.opens == 2 and s.pipeline.state.value == "running",
    )


def test_a_storm_of_config_reloads(
    stream_factory: Callable[..., Stream], slow_files: dict[str, Path]
) -> None:
    s = stream_factory()
    base = s.pipeline._cfg
    variants = [
        base.with_values(
            {"effects.background": "image", "effects.image": str(slow_files["image"])}
        ),
        base.with_values({"effects.background": "color", "effects.color": "#112233"}),
        base.with_values(
            {"effects.background": "video", "effects.video": str(slow_files["video"])}
        ),
        base.with_values({"effects.blur_strength": 70, "model.threads": 3}),
        base.with_values({"effects.mirror": True}),
    ]

    def storm() -> None:
        for i in range(25):
            s.pipeline.apply(variants[i % len(variants)])
            time.sleep(0.02)

    last = variants[24 % len(variants)]
    s.measure(
        "config reloads (25 in 0.5 s)",
        storm,
        lambda: s.pipeline._cfg == last,
    )
