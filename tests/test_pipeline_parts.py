"""Body-part effects in the live pipeline: privacy and the coloured-parts view on top of any
background, live switching, models without parts, and parts read only when needed. Also the
pipeline's keep-alive and its camera-reopen log levels."""

from __future__ import annotations

import logging
import re
import threading
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
    cfg_with,
    run_file_to_file,
)
from pixcam.chain.effects import EffectsSettings, effects_active
from pixcam.parts import part_ids
from pixcam.runner import camera
from pixcam.runner.loader import default_loader
from pixcam.video.sources import Source, SourceSpec

FACE = part_ids(["face"])


@pytest.fixture(scope="module")
def doctor() -> Path:
    return need(VIDEOS / "doctor-desk-960x540.mp4", "test video")


@pytest.fixture(scope="module")
def seg(models_installed: Path) -> Any:
    from pixcam.chain.segment import load_segmenter

    return load_segmenter(None, threads=2)


def face_zone(seg: Any, frame: np.ndarray, feather: float = 6.0) -> np.ndarray:
    """Where privacy may act: the model's face pixels grown by a few network cells (the mask
    is generous and feathered on purpose; see test_partfx's BAND_CELLS)."""
    out = seg.run(frame, parts=True)
    face = np.isin(out.part_ids(0.5), FACE)
    assert face.sum() > 500, "the test video lost its face"
    m = out.mapping
    band = 3.5 * m.stride * m.frame_size[0] / m.content[0] + 2 * feather
    return cv2.distanceTransform((~face).astype(np.uint8), cv2.DIST_L2, 5) <= band


class StillCamera(FakeCamera):
    """A camera that keeps sending one real picture."""

    def __init__(self, picture: np.ndarray) -> None:
        super().__init__(0, None)
        self.picture = picture
        self.height, self.width = picture.shape[:2]

    def publish(self, frame: np.ndarray) -> None:
        super().publish(self.picture.copy())


def still_pipeline(picture: np.ndarray, cfg: Any, **kw: Any) -> FakePipeline:
    def opener(spec: SourceSpec) -> Source:
        cam = StillCamera(picture)
        cam.start()
        return cam

    return FakePipeline(cfg, cameras=opener, **kw)


# ------------------------------------------------------------ real model, real video
def _render(doctor: Path, out: Path, n: int, **parts: Any) -> tuple[list[np.ndarray], dict]:
    cfg = cfg_with(effects={"background": "none"}, parts=parts, refine={"smoothing": 0.0})
    p = run_file_to_file(cfg, doctor, out, n)
    return read_video(out), p.status()


def _block_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean |a - b| (max over channels) per 16×16 block: mp4v's noise averages out."""
    d = cv2.absdiff(a, b).max(axis=2).astype(np.float32)
    return cv2.resize(d, (d.shape[1] // 16, d.shape[0] // 16), interpolation=cv2.INTER_AREA)


@pytest.mark.slow
def test_file_to_file_privacy_blur_changes_only_the_face(
    seg: Any, doctor: Path, tmp_path: Path
) -> None:
    n = 4
    got, status = _render(doctor, tmp_path / "blur.mp4", n, privacy="blur")
    assert status["errors"] == 0, status["last_error"]
    assert "parts" in status["stages_ms"] and status["effects"] and status["parts"]
    # The same clip through the same encoder without the effect: what mp4v alone changes.
    plain, _ = _render(doctor, tmp_path / "plain.mp4", n)
    inputs = read_video(doctor, n)
    assert len(got) == len(plain) == n
    for i in (0, n - 1):  # lock-step file source: output frame i is input frame i
        zone = face_zone(seg, inputs[i])
        blocks = _block_diff(got[i], plain[i])
        zone_blocks = cv2.resize(
            zone.astype(np.uint8), blocks.shape[::-1], interpolation=cv2.INTER_AREA
        )
        # Blocks wholly away from the face zone (one block of margin: the encoder's own).
        away = cv2.erode((zone_blocks == 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert away.mean() > 0.4
        assert float(blocks[away].max()) < 12.0, "pixels away from the face changed"
        face = np.isin(seg.run(inputs[i], parts=True).part_ids(0.5), FACE)
        diff = cv2.absdiff(got[i], inputs[i]).max(axis=2)
        assert float(diff[face].mean()) > 25.0, "the face is not blurred"


@pytest.mark.slow
@pytest.mark.parametrize("background", ["none", "color"])
def test_privacy_on_any_background_is_exact_away_from_the_face(
    seg: Any, doctor: Path, background: str
) -> None:
    picture = read_video(doctor, 1)[0]
    base = {"background": background, "color": "#000000"}
    cfg = cfg_with(effects=base, parts={"privacy": "pixelate"}, refine={"smoothing": 0.0})
    with still_pipeline(picture, cfg, loader=default_loader) as p:
        # The "starting" card goes out at the output's rate until the first processed frame.
        wait_until(lambda: len(p.frames) >= 3 and "idle" not in p.sink.kinds()[-2:], "frames")
        with_fx = p.frames[-1]
        plain = cfg_with(effects=base, refine={"smoothing": 0.0})
        p.apply(plain)
        n = len(p.frames)
        wait_until(lambda: len(p.frames) >= n + 3, "frames without privacy")
    without = p.frames[-1]
    zone = face_zone(seg, picture)
    changed = np.any(with_fx != without, axis=2)
    assert not changed[~zone].any(), "privacy touched pixels away from the face"
    face = np.isin(seg.run(picture, parts=True).part_ids(0.5), FACE)
    assert changed[face].mean() > 0.8
    if background == "none":  # the background is the camera's, untouched
        np.testing.assert_array_equal(without, picture)


@pytest.mark.slow
def test_parts_view_colours_the_person_and_switches_live(seg: Any, doctor: Path) -> None:
    picture = read_video(doctor, 1)[0]
    loads: list[tuple[Any, ...]] = []

    def loader(*key: Any) -> Any:
        loads.append(key)
        return seg

    off = cfg_with(effects={"background": "none"}, refine={"smoothing": 0.0})
    with still_pipeline(picture, off, loader=loader) as p:
        wait_until(lambda: len(p.frames) >= 2, "pass-through frames")
        assert loads == [] and not p.status()["effects"]  # nothing to do: no model at all
        p.apply(cfg_with(effects={"background": "none"}, parts={"view": True, "opacity": 1.0}))
        wait_until(lambda: "parts" in p.status()["stages_ms"], "the parts view")
        n = len(p.frames)
        wait_until(lambda: len(p.frames) >= n + 2, "view frames")
        view = p.frames[-1]
        p.apply(off)
        wait_until(lambda: np.array_equal(p.frames[-1], picture), "view off again")
    assert len(loads) == 1
    person = seg.run(picture, parts=False).person_probability() > 0.9
    background = seg.run(picture, parts=False).person_probability() < 0.02
    diff = cv2.absdiff(view, picture).max(axis=2)
    assert float((diff[person] > 30).mean()) > 0.8, "the person is not coloured"
    assert not diff[background].any(), "the view coloured the background"


# ------------------------------------------------------------------------ fake models
class RecordingSegmenter(FlakySegmenter):
    """Records the `parts` flag of every call; has no part heads (like the selfie models)."""

    has_parts = False

    def __init__(self) -> None:
        super().__init__()
        self.parts_flags: list[bool] = []

    def run(self, frame: np.ndarray, parts: bool = True, pyramid: Any = None) -> Any:
        self.parts_flags.append(parts)
        return super().run(frame, parts)


def test_model_without_parts_says_so_once_and_keeps_streaming(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seg = RecordingSegmenter()
    cfg = cfg_with(effects={"background": "color", "color": "#000000"}, parts={"privacy": "blur"})
    with FakePipeline(cfg, segmenter=seg) as p:
        wait_until(lambda: len(p.frames) >= 20, "20 frames")
        status = p.status()
        # background "none" with only an impossible part effect: plain pass-through
        p.apply(cfg_with(effects={"background": "none"}, parts={"privacy": "blur"}))
        wait_until(lambda: p.frames[-1].min() == 200, "pass-through")
        # the part effect switched off: the problem is gone from the status
        p.apply(cfg_with(effects={"background": "color", "color": "#000000"}))
        wait_until(lambda: p.status()["last_error"] is None, "the message cleared")
    warnings = [r for r in caplog.records if "has no body parts" in r.message]
    assert len(warnings) == 1, [r.message for r in warnings]
    assert warnings[0].levelno == logging.WARNING
    assert "has no body parts" in status["last_error"] and status["errors"] == 0
    assert not any(seg.parts_flags)  # never asked for what the model cannot give
    composed = [f for f in p.frames if f[:, -5:].max() <= 5]
    assert len(composed) >= 15  # the background effect went on


def test_parts_are_read_only_while_an_effect_needs_them(seg: Any, doctor: Path) -> None:
    calls: list[bool] = []

    class Spy:
        has_parts = True

        def __getattr__(self, name: str) -> Any:
            return getattr(seg, name)

        def run(self, frame: np.ndarray, parts: bool = True, pyramid: Any = None) -> Any:
            calls.append(parts)
            return seg.run(frame, parts=parts)

    picture = cv2.resize(read_video(doctor, 1)[0], (320, 180))
    with still_pipeline(picture, cfg_with(effects={"background": "blur"}), segmenter=Spy()) as p:
        wait_until(lambda: len(calls) >= 3, "plain frames")
        p.apply(cfg_with(effects={"background": "blur"}, parts={"privacy": "blur"}))
        wait_until(lambda: calls[-3:] == [True] * 3, "frames with parts")
        p.apply(cfg_with(effects={"background": "blur"}))
        wait_until(lambda: calls[-3:] == [False] * 3, "plain frames again")
        status = p.status()
    assert calls[0] is False
    assert status["errors"] == 0, status["last_error"]


def test_effects_active_counts_part_effects() -> None:
    none = {"background": "none"}
    for cfg, active in (
        (cfg_with(effects=none), False),
        (cfg_with(effects=none, parts={"privacy": "blur"}), True),
        (cfg_with(effects=none, parts={"view": True}), True),
        (cfg_with(effects={"background": "blur", "enabled": False}, parts={"view": True}), False),
    ):
        assert effects_active(cfg) is active
        assert EffectsSettings.from_config(cfg).active is active


# ------------------------------------------------------------------------ keep-alive
class BlockingSegmenter(FlakySegmenter):
    """Blocks inside run() until released: inference that lags far behind."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def run(self, frame: np.ndarray, parts: bool = True, pyramid: Any = None) -> Any:
        if self.calls >= 2:
            self.entered.set()
            self.release.wait(30)
        return super().run(frame, parts)


def test_keepalive_repeats_the_last_frame_while_inference_lags() -> None:
    seg = BlockingSegmenter()
    cfg = cfg_with(effects={"background": "color", "color": "#000000"}, refine={"smoothing": 0})
    p = FakePipeline(cfg, segmenter=seg, keepalive=None)
    p.start()  # the memory sink is reopenable (a device): keep-alive on by default
    try:
        wait_until(seg.entered.is_set, "inference to block")
        sent = p.status()["frames"]
        wait_until(lambda: p.status()["repeated"] >= 5, "repeated frames")
        got = p.frames
        assert p.status()["frames"] == sent  # no new frame was made meanwhile
        assert all(np.array_equal(f, got[-1]) for f in got[-5:])
        assert got[-1][:, -5:].max() <= 5  # the last composed frame, not a raw one
        seg.release.set()
    finally:
        seg.release.set()
        p.stop()


def test_keepalive_covers_the_frame_in_flight_when_pause_is_asked() -> None:
    """pause() while inference lags: the worker paces the idle card only once that frame is
    done, and until then the keep-alive goes on repeating the last frame (it stopped at the
    request: a watched stream went 6.5 s without a frame in the VM's browser test)."""
    seg = BlockingSegmenter()
    cfg = cfg_with(effects={"background": "color", "color": "#000000"}, refine={"smoothing": 0})
    p = FakePipeline(cfg, segmenter=seg, keepalive=None)
    p.start()
    try:
        wait_until(seg.entered.is_set, "inference to block")
        p.pause()
        repeated = p.status()["repeated"]
        wait_until(lambda: p.status()["repeated"] >= repeated + 5, "repeats after the pause")
        assert p.status()["state"] == "running"  # the worker is still in its frame
        seg.release.set()
        wait_until(lambda: p.status()["state"] == "paused", "the worker to pause")
    finally:
        seg.release.set()
        p.stop()


def test_keepalive_is_off_for_files(doctor: Path, tmp_path: Path) -> None:
    p = run_file_to_file(cfg_with(effects={"background": "none"}), doctor, tmp_path / "o.mp4", 3)
    assert p.status()["repeated"] == 0
    assert len(read_video(tmp_path / "o.mp4")) == 3


# --------------------------------------------------------------------- log levels
def test_resume_is_no_warning_but_a_real_failure_is(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(camera, "BACKOFF_S", (0.01, 0.02, 0.05))
    caplog.set_level(logging.INFO, logger="pixcam.runner.pipeline")
    cams = CameraFactory(good=10**9, down=0)
    with FakePipeline(cameras=cams, idle_fps=200.0) as p:
        wait_until(lambda: len(p.frames) >= 3, "frames")
        p.pause()
        wait_until(lambda: p.status()["state"] == "paused", "paused")
        p.resume()
        wait_until(lambda: len(cams.opened) == 2 and p.status()["state"] == "running", "resumed")
        assert p.status()["errors"] == 0
        resume_logs = [(r.levelno, r.message) for r in caplog.records if "camera" in r.message]
        # the camera dies for real: now "is back" is worth a warning
        cams.opened[-1].good = 0
        wait_until(lambda: len(cams.opened) == 3, "reopened after the failure")
        wait_until(lambda: any("is back" in r.message for r in caplog.records), "is back")
    assert all(level < logging.WARNING for level, _m in resume_logs), resume_logs
    back = [r for r in caplog.records if "is back" in r.message]
    assert [r.levelno for r in back] == [logging.WARNING]


def test_failed_default_model_is_named(caplog: pytest.LogCaptureFixture) -> None:
    from pixcam import models
    from pixcam.errors import PixcamError

    def loader(*key: Any) -> Any:
        raise PixcamError("not installed")

    with FakePipeline(loader=loader) as p:
        p.apply(cfg_with(effects={"background": "blur"}))
        wait_until(lambda: "not installed" in (p.status()["last_error"] or ""), "the load error")
    msgs = [r.message for r in caplog.records if "not loaded" in r.message]
    assert msgs and "None" not in msgs[0]
    assert f"default ({models.default_model_name()})" in msgs[0]


# --------------------------------------------------------------------------- bench
def test_bench_parts_option_is_checked() -> None:
    from pixcam.errors import PixcamError
    from pixcam.tools.bench_pipeline import PART_EFFECTS, parse_parts

    assert parse_parts(None) == [] and parse_parts("view, blur-face") == ["view", "blur-face"]
    assert parse_parts("all") == list(PART_EFFECTS)
    with pytest.raises(PixcamError, match="unknown part effect face"):
        parse_parts("view,face")


@pytest.mark.slow
def test_bench_pipeline_reports_the_added_cost_of_part_effects(
    models_installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pixcam.cli import main

    need(VIDEOS / "presenter-1280x720.mp4", "benchmark video")
    argv = ["bench", "pipeline", "--threads", "1", "--frames", "2", "--sizes", "720", "--live", "0"]
    argv += ["--parts", "view,blur-face"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    table = out[out.index("part effects, 720p 1t") :].splitlines()
    rows = {line.split()[0]: line for line in table[3:6]}
    assert set(rows) == {"plain", "view", "blur-face"}
    # effect rows: chain, the signed difference to plain, the part stage (wall / CPU each)
    for name in ("view", "blur-face"):
        chain_w, _c, added_w, _ac, stage_w, _sc = map(
            float, re.findall(r"[-+]?\d+\.\d", rows[name])
        )
        assert chain_w > 0 and stage_w > 0 and re.search(r"[-+]\d+\.\d / [-+]", rows[name])
        assert abs(added_w) < chain_w
    assert len(re.findall(r"\d+\.\d", rows["plain"])) == 2


@pytest.mark.slow
def test_bench_pipeline_counts_the_whole_frame_and_the_latency(
    models_installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pixcam.cli import main

    need(VIDEOS / "presenter-1280x720.mp4", "benchmark video")
    argv = ["bench", "pipeline", "--threads", "1", "--frames", "2", "--sizes", "360"]
    assert main([*argv, "--live", "3"]) == 0
    out = capsys.readouterr().out
    rows = {line[:18].strip(): line[18:] for line in out.splitlines()}
    cells = {
        k: [float(x) for x in re.findall(r"\d+\.\d", rows[k])]
        for k in rows
        if k in ("decode (MJPG)", "network", "segment", "sink (→I420)", "frame", "outside network")
    }
    assert len(cells) == 6 and all(len(v) == 2 for v in cells.values())
    # CPU column: the network is part of segment, and outside = frame - network.
    assert 0 < cells["network"][1] <= cells["segment"][1] + 0.1
    assert cells["outside network"][1] == pytest.approx(
        cells["frame"][1] - cells["network"][1], abs=0.15
    )
    # Frames come from the MJPG decode as I420 and go to the sink so: nothing to convert.
    assert cells["sink (→I420)"] == [0.0, 0.0]
    assert re.search(r"360p 1t: outside the network \d+\.\d CPU ms = \d+\.\d\d×", out)
    live = re.search(r"360p: \d+\.\d fps out, capture-to-sink latency median (\d+\.\d) ms", out)
    assert live and float(live.group(1)) > 0


# ------------------------------------------------------------- the advertised rate
def test_the_virtual_camera_follows_the_cameras_rate() -> None:
    """Opened paused at the configured 30 fps, the virtual camera takes the rate the camera
    really gives once it opens (15 fps), and its idle card goes at that rate too."""
    cams = CameraFactory(good=10**9, down=0)

    def at_15(spec: SourceSpec) -> Source:
        cam = cams(spec)
        cam.fps = 15.0
        return cam

    with FakePipeline(cameras=at_15, start_paused=True) as p:
        wait_until(lambda: len(p.frames) >= 2, "idle cards")
        assert p.sink.fps == 30.0  # the configured rate: no camera yet
        p.resume()
        wait_until(lambda: p.sink.fps == 15.0, "the camera's rate on the virtual camera")
        assert p._outlet.fps == 15.0
        p.pause()
        wait_until(lambda: p.status()["state"] == "paused", "paused")
        assert p.sink.fps == 15.0  # the idle card is paced at it, not at a rate of its own


def test_a_fixed_output_rate_is_kept_whatever_the_camera_gives() -> None:
    cams = CameraFactory(good=10**9, down=0)

    def at_15(spec: SourceSpec) -> Source:
        cam = cams(spec)
        cam.fps = 15.0
        return cam

    cfg = cfg_with(effects={"background": "none"}, output={"fps": 24})
    with FakePipeline(cfg, cameras=at_15, start_paused=True) as p:
        p.resume()
        wait_until(lambda: p.status()["state"] == "running", "running")
        wait_until(lambda: len(p.frames) >= 3, "frames")
        assert p.sink.fps == 24.0 and p._outlet.fps == 24.0
