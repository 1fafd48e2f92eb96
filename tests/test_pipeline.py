"""The pipeline: file → real model → file, every background, fault recovery, live settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import VIDEOS, need, read_video, wait_until
from fakes import (
    CameraFactory,
    FakeCamera,
    FakePipeline,
    FlakySegmenter,
    H,
    SinkFactory,
    W,
    cfg_with,
    run_file_to_file,
)
from pixcam.cli import main
from pixcam.config import load_config
from pixcam.errors import PixcamError
from pixcam.runner import camera, outlet
from pixcam.runner.pipeline import Pipeline
from pixcam.runner.timings import RateLimitedLog
from pixcam.video import sources
from pixcam.video.sinks import SinkError, SinkSpec
from pixcam.video.sources import Source, SourceSpec


# ------------------------------------------------------------ real model, real video
@pytest.fixture
def doctor() -> Path:
    return need(VIDEOS / "doctor-desk-960x540.mp4", "test video")


def _sharpness(img: np.ndarray, mask: np.ndarray) -> float:
    lap = cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_32F)
    return float(np.abs(lap)[mask].mean())


def _regions(frame: np.ndarray, seg: Any) -> tuple[np.ndarray, np.ndarray]:
    """Sure person and sure background of the *input*, away from the uncertain edge."""
    from pixcam.chain.segment import segment_person

    prob = segment_person(seg, frame).probabilities
    kernel = np.ones((25, 25), np.uint8)
    person = cv2.erode((prob > 0.8).astype(np.uint8), kernel).astype(bool)
    background = cv2.erode((prob < 0.1).astype(np.uint8), kernel).astype(bool)
    return person, background


@pytest.mark.slow
@pytest.mark.parametrize("background", ["blur", "color", "image", "video", "none"])
def test_file_to_file_with_the_real_model(
    models_installed: Path, doctor: Path, tmp_path: Path, background: str
) -> None:
    from pixcam.chain.segment import load_segmenter

    effects: dict[str, Any] = {"background": background, "color": "#ff00ff", "blur_strength": 60}
    if background == "image":
        img = np.zeros((300, 400, 3), np.uint8)
        img[:, :, 1] = 255  # pure green
        cv2.imwrite(str(tmp_path / "bg.png"), img)
        effects["image"] = str(tmp_path / "bg.png")
    if background == "video":
        effects["video"] = str(need(VIDEOS / "walking-640x360.mp4", "background video"))
    cfg = cfg_with(effects=effects, refine={"smoothing": 0.0})
    out = tmp_path / "out.mp4"
    n = 6
    p = run_file_to_file(cfg, doctor, out, n)
    assert p.status()["errors"] == 0, p.status()["last_error"]

    got = read_video(out)
    inputs = read_video(doctor, n)
    assert len(got) == n
    assert got[0].shape == (540, 960, 3)
    seg = load_segmenter(None, threads=2)
    for i in (0, n - 1):  # lock-step file source: output frame i is input frame i
        person, bg = _regions(inputs[i], seg)
        assert person.sum() > 5000 and bg.sum() > 5000, "test video lost its person/background"
        diff = cv2.absdiff(got[i], inputs[i]).max(axis=2)
        # The person is kept (mp4v re-encoding costs a few levels).
        assert float(diff[person].mean()) < 10.0
        if background == "none":
            assert float(diff[bg].mean()) < 10.0
        elif background == "blur":
            assert _sharpness(got[i], bg) < 0.6 * _sharpness(inputs[i], bg)
        else:
            assert float(diff[bg].mean()) > 40.0  # replaced, not just re-encoded
        if background == "color":
            b, g, r = np.median(got[i][bg], axis=0)
            assert r > 200 and b > 200 and g < 60  # #ff00ff in BGR
        if background == "image":
            b, g, r = np.median(got[i][bg], axis=0)
            assert g > 200 and r < 60 and b < 60


@pytest.mark.slow
def test_cli_run_file_to_file(models_installed: Path, doctor: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.mp4"
    rc = main(
        ["run", "--input", str(doctor), "--output", str(out), "--frames", "4", "--mirror"]
        + ["--background", "color", "--color", "#0000ff"]
    )
    assert rc == 0
    got = read_video(out)
    assert len(got) == 4 and got[0].shape == (540, 960, 3)


def test_cli_run_still_picture_with_frames_is_a_clip_of_it(tmp_path: Path) -> None:
    picture = tmp_path / "still.png"
    assert cv2.imwrite(str(picture), np.full((48, 64, 3), (10, 120, 230), np.uint8))
    out = tmp_path / "still.mp4"
    argv = ["run", "--input", str(picture), "--output", str(out), "--background", "none"]
    assert main([*argv, "--frames", "12"]) == 0
    got = read_video(out)
    assert len(got) == 12 and all(np.abs(f.astype(int) - (10, 120, 230)).max() < 12 for f in got)
    # Without --frames a picture is rendered once, as before.
    assert main(argv) == 0 and len(read_video(out)) == 1


def test_cli_run_without_camera_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sources, "list_cameras", lambda: [])
    # No effect: no model to load first, so the camera is the first thing that can fail.
    assert main(["run", "--frames", "1", "--background", "none"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no camera" in err and "--input FILE" in err


def test_cli_run_bad_output_folder_is_one_line(
    doctor: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "no/x.mp4")
    rc = main(["run", "--input", str(doctor), "--output", out, "--background", "none"])
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err


def test_cli_run_invalid_option_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--blur", "500", "--frames", "1"]) == 1
    assert "blur_strength" in capsys.readouterr().err


@pytest.fixture
def fast_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(camera, "BACKOFF_S", (0.01, 0.02, 0.05))
    monkeypatch.setattr(camera, "STALL_S", 0.3)
    monkeypatch.setattr(outlet, "SINK_RETRY_S", 0.01)


@pytest.mark.parametrize("stall", [False, True], ids=["unplugged", "stalled"])
def test_camera_loss_shows_placeholder_and_recovers(fast_faults: None, stall: bool) -> None:
    cams = CameraFactory(good=5, down=3, stall=stall)

    def recovered() -> bool:
        k = p.sink.kinds()
        return "placeholder" in k and k[k.index("placeholder") :].count("camera") >= 5

    with FakePipeline(cameras=cams) as p:
        wait_until(recovered, "placeholder then camera frames again")
        status = p.status()
    kinds = p.sink.kinds()
    first_ph = kinds.index("placeholder")
    # Newest frame only: some of the 5 camera frames may be skipped, never queued; while the
    # stalled camera sends nothing, the last one is held (repeated) until the placeholder.
    assert set(kinds[:first_ph]) == {"camera"} and first_ph >= 1
    assert stall or first_ph <= 5
    assert set(kinds) <= {"camera", "placeholder"}, set(kinds)
    assert len(cams.opened) >= 2
    wait_until(lambda: cams.opened[0].closed, "the dead camera to be released")
    assert cams.failures == 3  # reopened with backoff until it came back
    assert status["state"] == "running" and status["errors"] >= 1
    assert len(p.sinks.sinks) == 1  # the virtual camera stayed open throughout


def test_exception_in_one_frame_does_not_stop_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seg = FlakySegmenter(bad=3)
    # Every frame inferred: the fake camera's flat frames would otherwise carry the mask.
    cfg = cfg_with(
        effects={"background": "color", "color": "#000000"},
        refine={"smoothing": 0},
        model={"skip_still": False},
    )
    with FakePipeline(cfg, segmenter=seg) as p:
        wait_until(lambda: len(p.frames) >= 10, "10 frames")
        status = p.status()
    frames = p.frames
    # Composed frames: person half kept (200), background half black.
    composed = [f for f in frames if f[:, -5:].max() <= 5 and f[:, :5].min() >= 195]
    raw = [f for f in frames if f.min() == 200]
    assert len(raw) == 1  # the failing frame went out unprocessed...
    assert len(composed) >= 8  # ...and the stream went on composing
    assert status["errors"] == 1 and "interpreter exploded" in status["last_error"]
    assert sum("frame failed" in r.message for r in caplog.records) == 1


def test_exceptions_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    ratelog = RateLimitedLog(period=3600)
    for _ in range(50):
        ratelog("frame", 40, "frame failed: boom")
    assert len(caplog.records) == 1


def test_pause_closes_camera_and_sends_idle_then_resumes(fast_faults: None) -> None:
    cams = CameraFactory(good=10**9, down=0)
    with FakePipeline(cameras=cams, idle_fps=200.0) as p:
        wait_until(lambda: p.sink.kinds().count("camera") >= 3, "camera frames")
        p.pause()
        wait_until(lambda: p.sink.kinds()[-3:] == ["idle"] * 3, "idle frames")
        assert cams.opened[0].closed and p.status()["state"] == "paused"
        p.resume()
        wait_until(lambda: p.sink.kinds()[-3:] == ["camera"] * 3, "camera again")
        assert len(cams.opened) == 2 and p.status()["state"] == "running"


def test_start_paused_never_opens_the_camera(fast_faults: None) -> None:
    cams = CameraFactory(good=10**9, down=0)
    with FakePipeline(cameras=cams, start_paused=True, idle_fps=200.0) as p:
        wait_until(lambda: len(p.frames) >= 3, "idle frames")
        assert not cams.opened
        assert (p.sink.width, p.sink.height) == (1280, 720)  # config size
    assert set(p.sink.kinds()) == {"idle"}


def test_failed_file_sink_ends_the_run_with_its_message() -> None:
    sinks = SinkFactory(fail_at=4, reopenable=False)
    with FakePipeline(sinks=sinks) as p, pytest.raises(SinkError, match="disappeared"):
        wait_until(lambda: p.wait(0.05), "the run to end")
    assert len(p.frames) == 4


def test_lost_virtual_camera_is_reopened(fast_faults: None) -> None:
    sinks = SinkFactory(fail_at=4, reopenable=True)
    with FakePipeline(sinks=sinks) as p:
        wait_until(lambda: len(sinks.sinks) == 2 and len(sinks.sinks[1].frames) >= 3, "new sink")
        assert "disappeared" in p.status()["last_error"]


def test_apply_switches_effects_and_model_live() -> None:
    loaded: list[tuple[Any, ...]] = []

    def loader(*key: Any) -> FlakySegmenter:
        loaded.append(key)
        return FlakySegmenter()

    with FakePipeline(cfg_with(effects={"background": "none"}), loader=loader) as p:
        wait_until(lambda: len(p.frames) >= 3, "pass-through frames")
        assert loaded == []  # background none: no model loaded, no inference
        assert p.frames[-1].min() == 200
        p.apply(cfg_with(effects={"background": "color", "color": "#000000"}))
        wait_until(lambda: p.frames[-1][:, -5:].max() <= 5, "composed frames")
        assert loaded == [(None, 2, 0, "balanced")]
        p.apply(cfg_with(effects={"background": "color"}, model={"name": "bodypix-050-s8-float"}))
        wait_until(lambda: p.status()["model"] == "bodypix-050-s8-float", "the new model")
        n = len(p.frames)
        wait_until(lambda: len(p.frames) >= n + 3, "frames after the switch")
        assert loaded[-1] == ("bodypix-050-s8-float", 2, 0, "balanced")


def test_failing_model_load_keeps_the_stream_and_says_why() -> None:
    def loader(*key: Any) -> FlakySegmenter:
        if key[0] == "broken":
            raise PixcamError("model broken is not installed")
        return FlakySegmenter()

    with FakePipeline(cfg_with(effects={"background": "color"}), loader=loader) as p:
        p.apply(cfg_with(effects={"background": "color"}, model={"name": "broken"}))
        wait_until(lambda: "not installed" in (p.status()["last_error"] or ""), "the load error")
        n = len(p.frames)
        wait_until(lambda: len(p.frames) >= n + 3, "frames after the failure")
        assert p.status()["model"] == "default"


def test_mirror_applies_once_with_and_without_effects() -> None:
    ramp = np.tile(np.arange(W, dtype=np.uint8)[None, :, None] * 4, (H, 1, 3))

    class RampCamera(FakeCamera):
        def publish(self, frame: np.ndarray) -> None:
            super().publish(ramp)

    def opener(spec: SourceSpec) -> Source:
        cam = RampCamera(0, None)
        cam.start()
        return cam

    for background in ("none", "blur"):
        cfg = cfg_with(effects={"background": background, "mirror": True})
        p = FakePipeline(cfg, cameras=opener, segmenter=FlakySegmenter(), keepalive=None)
        with p:
            wait_until(lambda p=p: len(p.frames) >= 3, "frames")
        out = p.frames[-1]
        # Left half is "person" for FlakySegmenter, so it is kept as is: mirrored ramp.
        np.testing.assert_array_equal(out[:, : W // 4], ramp[:, ::-1][:, : W // 4])


def test_status_has_stage_timings_and_fps() -> None:
    with FakePipeline(cfg_with(effects={"background": "blur"}), segmenter=FlakySegmenter()) as p:
        wait_until(lambda: len(p.frames) >= 5, "frames")
        s = p.status()
    assert set(s["stages_ms"]) >= {"segment", "refine", "compose", "sink", "total"}
    assert all(v >= 0 for v in s["stages_ms"].values())
    assert s["fps"] > 0 and s["frames"] >= 5 and s["sink"] == "memory"
    assert (s["width"], s["height"]) == (W, H)
    # Capture to sink write: at least the chain's own time, and far below the run time.
    lat = s["latency_ms"]
    assert 0 < lat["median"] <= lat["p95"] < 5000


def test_run_options_become_config_overrides() -> None:
    from pixcam.cli import build_parser
    from pixcam.run import overrides_from_args

    def over(*argv: str) -> dict[str, Any]:
        return overrides_from_args(build_parser().parse_args(["run", *argv]))

    assert over() == {}
    assert over("--color", "#123456") == {"effects.color": "#123456", "effects.background": "color"}
    assert over("--background", "none", "--blur", "9")["effects.background"] == "none"
    assert over("--image", "a.png") == {"effects.image": "a.png", "effects.background": "image"}
    assert over("--auto-frame") == {"framing.mode": "auto"}
    assert over("--no-auto-frame") == {"framing.mode": "off"}
    got = over("--mirror", "--model", "m", "--device", "2", "--output-device", "/dev/video9")
    assert got == {
        "effects.mirror": True,
        "model.name": "m",
        "camera.device": 2,
        "output.device": "/dev/video9",
    }
    cfg = load_config(None).with_values(got | {"model.name": "default"})
    assert cfg.output.device == "/dev/video9" and cfg.effects.mirror is True


def test_stop_waits_for_a_frame_inside_the_model_however_long() -> None:
    """Issue 15, fault 4: stop() used to join the worker for 5 s only, so a frame still
    inside LiteRT outlived the interpreter (SIGABRT at exit). No thread it started survives."""
    import threading
    import time

    entered = threading.Event()

    class SlowSegmenter(FlakySegmenter):
        def run(self, frame: np.ndarray, parts: bool = True, pyramid: Any = None) -> Any:
            if self.calls == 2:  # the third frame
                entered.set()
                time.sleep(5.5)
            return super().run(frame, parts, pyramid)

    before = set(threading.enumerate())
    p = FakePipeline(
        # The fake camera's frames never move: every one must reach the network.
        cfg_with(effects={"background": "blur"}, model={"skip_still": False}),
        cameras=CameraFactory(good=10_000, down=0),
        segmenter=SlowSegmenter(),
        source=None,
        keepalive=True,
    )
    p.start()
    assert entered.wait(20)
    p.stop()
    left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert left == [], left


class GatedLoader:
    """The model loader, held until `release` is set (a slow first load: seconds on a slow
    machine, longer than Chromium's 10 s without a frame); `error` makes it fail then."""

    def __init__(self, error: Exception | None = None) -> None:
        import threading

        self.release, self.error = threading.Event(), error

    def __call__(self, *key: Any) -> FlakySegmenter:
        assert self.release.wait(20), "never released"
        if self.error is not None:
            raise self.error
        return FlakySegmenter()


@pytest.mark.parametrize("paused", [True, False], ids=["on-demand", "always-on"])
def test_virtual_camera_shows_a_card_while_the_first_model_loads(
    fast_faults: None, paused: bool
) -> None:
    """A restarted daemon takes the virtual camera over before its model is loaded, so an app
    still watching keeps getting frames: the idle card (on demand) or "starting"."""
    import threading

    loader = GatedLoader()
    cfg = cfg_with(effects={"background": "color", "color": "#000000"})
    p = FakePipeline(cfg, loader=loader, start_paused=paused, idle_fps=50.0)
    starting = threading.Thread(target=p.start)
    starting.start()
    try:
        wait_until(lambda: p.sinks.sinks and len(p.frames) >= 5, "cards during the load")
        assert starting.is_alive() and set(p.sink.kinds()) == {"idle"}  # same grey
        assert p.status()["model"] is None
        loader.release.set()
        starting.join(20)
        if paused:
            wait_until(lambda: len(p.frames) >= 10, "idle frames after it")
            assert set(p.sink.kinds()) == {"idle"}
        else:  # composited: the background side is the colour
            wait_until(lambda: p.frames[-1][:, -5:].max() <= 5, "composited frames")
        assert p.status()["model"] == "default"
    finally:
        loader.release.set()
        starting.join(20)
        p.stop()


def test_first_model_failing_releases_the_virtual_camera_and_the_camera() -> None:
    loader = GatedLoader(PixcamError("model default is not installed"))
    loader.release.set()
    cams = CameraFactory(good=10**9, down=0)
    p = FakePipeline(cfg_with(effects={"background": "color"}), cameras=cams, loader=loader)
    with pytest.raises(PixcamError, match="not installed"):
        p.start()
    assert cams.opened and cams.opened[0].closed
    assert p.sink.closed


def test_file_output_loads_the_model_before_creating_the_file() -> None:
    loader = GatedLoader(PixcamError("model default is not installed"))
    loader.release.set()
    sinks = SinkFactory()
    p = Pipeline(cfg_with(effects={"background": "color"}), SourceSpec(device="/dev/fake0"),
                 SinkSpec(path="out.mp4"), source_opener=CameraFactory(good=1, down=0),
                 sink_opener=sinks, segmenter_loader=loader)  # fmt: skip
    with pytest.raises(PixcamError, match="not installed"):
        p.start()
    assert sinks.sinks == []


def test_status_reports_the_largest_gap_between_frames_out() -> None:
    import time

    from pixcam.runner.outlet import Outlet
    from pixcam.runner.timings import Timings

    sinks = SinkFactory()
    out = Outlet(SinkSpec(device="memory"), sinks, Timings(), RateLimitedLog(), lambda m: None)
    assert out.largest_gap() is None  # nothing sent yet
    out.open(W, H, 30.0)
    frame = np.zeros((H, W, 3), np.uint8)
    out.send(frame)
    time.sleep(0.3)
    out.send(frame, repeat=True)  # a keep-alive copy ends a gap too
    out.send(frame)
    gap = out.largest_gap()
    assert gap is not None and 0.3 <= gap < 2.0
    time.sleep(0.2)
    # Only the last 0.1 s: the gap still open since the last frame (>= 0.2 s) counts.
    assert 0.2 <= (out.largest_gap(window_s=0.1) or 0) < gap
