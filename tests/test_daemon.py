"""The daemon wired to the real pipeline, control socket, config watcher and on-demand watcher.

The virtual camera is stood in for by a regular file that our sink keeps open for writing,
like pyvirtualcam keeps /dev/videoN open; "applications watching" are real open() calls on
it, which inotify reports exactly as for a device node. No camera, model or X needed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import pixcam
from conftest import wait_until
from pixcam.config import Config, load_config
from pixcam.control import install_signal_handlers, send_command
from pixcam.daemon import Daemon
from pixcam.errors import PixcamError
from pixcam.runner.pipeline import Pipeline
from pixcam.video.sinks import Sink, SinkSpec
from pixcam.video.sources import SourceSpec


class NodeSink(Sink):
    """Holds the stand-in device open for writing, as the v4l2 writer does."""

    def __init__(self, path: str, width: int, height: int, fps: float) -> None:
        self._f = open(path, "wb")  # noqa: SIM115 - held open for the sink's lifetime
        self.name, self.width, self.height, self.fps = path, width, height, fps

    def send(self, frame: np.ndarray) -> None:
        self.check_shape(frame)

    def close(self) -> None:
        self._f.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (160, 120))
    assert writer.isOpened()
    for i in range(15):
        writer.write(np.full((120, 160, 3), 40 + i * 10, np.uint8))
    writer.release()
    return path


class RecordingPipeline(Pipeline):
    """The real pipeline, writing to `NodeSink`, remembering every configuration handed in."""

    made: list[RecordingPipeline] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, sink_opener=_node_sink, **kwargs)
        self.applied: list[Config] = []
        RecordingPipeline.made.append(self)

    def apply(self, cfg: Config) -> None:
        self.applied.append(cfg)
        super().apply(cfg)


class Running:
    def __init__(self, daemon: Daemon, sock: Path, node: Path, cfg: Path) -> None:
        self.daemon, self.sock, self.node, self.cfg = daemon, sock, node, cfg
        self.result: list[Any] = []
        self.pipeline = RecordingPipeline.made[-1] if RecordingPipeline.made else None

    def status(self) -> dict[str, Any]:
        reply = send_command("status", path=self.sock, timeout=5)
        assert reply["ok"], reply
        return reply["status"]

    def ctl(self, cmd: str, **fields: Any) -> dict[str, Any]:
        return send_command(cmd, path=self.sock, timeout=5, **fields)

    def state(self) -> str:
        return self.status()["pipeline"]["state"]

    def events(self) -> int:
        return self.status()["on_demand"]["events"]


@pytest.fixture
def running(tmp_path: Path, clip: Path) -> Iterator[Running]:
    node = tmp_path / "video10"
    node.touch()
    cfg = tmp_path / "config.toml"
    cfg.write_text('[effects]\nbackground = "none"\n')
    sock = tmp_path / "ctl.sock"
    daemon = Daemon(
        cfg,
        source=SourceSpec(path=str(clip), loop=True, realtime=True),
        sink=SinkSpec(device=str(node)),
        socket_path=sock,
        tray=False,
        pipeline_factory=RecordingPipeline,
        ondemand_delays=(0.5, 0.3),
    )
    RecordingPipeline.made.clear()
    run = Running(daemon, sock, node, cfg)

    def target() -> None:
        try:
            run.result.append(daemon.run())
        except BaseException as exc:
            run.result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    # wait for the inotify watch: the probes below come from this very process, which the
    # /proc seed skips, so only opens after the watch exists are seen
    wait_until(
        lambda: sock.exists() and (daemon.status()["on_demand"] or {}).get("watching"),
        what="daemon started",
    )
    run.pipeline = RecordingPipeline.made[-1]
    try:
        yield run
    finally:
        daemon.quit()
        thread.join(20)
        assert not thread.is_alive()
    assert run.result == [0]


@contextlib.contextmanager
def viewer(node: Path) -> Iterator[None]:
    """An application in another process watching the virtual camera until the block ends.

    Another process, as in real life: the daemon's /proc check rightly ignores opens made by
    its own process."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; f = open(sys.argv[1]); print(1, flush=True); input()"]
        + [str(node)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "1\n"
        yield
    finally:
        proc.communicate("\n")


def _node_sink(spec: SinkSpec, width: int, height: int, fps: float) -> Sink:
    return NodeSink(spec.device, width, height, fps)


def test_camera_runs_only_while_watched(running: Running) -> None:
    status = running.status()
    assert status["version"] == pixcam.__version__  # `pixcam ctl status` shows it first
    assert status["pipeline"]["state"] == "paused"  # our own writer does not count
    assert status["on_demand"]["watchers"] == 0
    with viewer(running.node):  # an application starts using the camera
        wait_until(lambda: running.state() == "running", what="camera on")
        frames = running.status()["pipeline"]["frames"]
        wait_until(lambda: running.status()["pipeline"]["frames"] > frames + 3, what="frames flow")
        assert running.status()["state"] == "off"  # streaming, background "none"
    wait_until(lambda: running.state() == "paused", what="camera off after the hold time")


def test_probes_leave_the_camera_off(running: Running) -> None:
    before = running.events()
    for _ in range(10):  # a browser enumerating devices
        fd = os.open(running.node, os.O_RDONLY)
        os.close(fd)
    wait_until(lambda: running.events() >= before + 20, what="probe events handled")
    # 20 events, each pair microseconds apart: far below the 0.5 s start delay
    assert running.state() == "paused"
    assert not running.status()["on_demand"]["active"]


def test_always_on_switches_live_and_is_persisted(running: Running) -> None:
    assert running.ctl("set", key="daemon.always_on", value=True)["ok"]
    assert load_config(running.cfg).daemon.always_on is True
    wait_until(lambda: running.state() == "running", what="camera on without a viewer")
    assert running.status()["on_demand"] is None
    assert running.ctl("set", key="daemon.always_on", value=False)["ok"]
    wait_until(lambda: running.state() == "paused", what="back to on demand")


def test_user_pause_overrides_a_viewer(running: Running) -> None:
    with viewer(running.node):
        wait_until(lambda: running.state() == "running", what="camera on")
        running.daemon.pause_camera(True)
        wait_until(lambda: running.state() == "paused", what="paused by the user")
        assert running.status()["state"] == "paused"
        running.daemon.pause_camera(False)
        wait_until(lambda: running.state() == "running", what="resumed")


def test_ctl_pause_and_resume(running: Running) -> None:
    with viewer(running.node):
        wait_until(lambda: running.state() == "running", what="camera on")
        assert running.ctl("pause") == {"ok": True, "paused": True}
        wait_until(lambda: running.state() == "paused", what="paused from ctl")
        status = running.status()
        assert status["paused"] is True and status["state"] == "paused"
        assert running.daemon.camera_paused  # the tray's check mark follows
        assert running.ctl("resume") == {"ok": True, "paused": False}
        wait_until(lambda: running.state() == "running", what="resumed from ctl")
        assert running.status()["paused"] is False


def test_a_change_is_written_once_and_applied_once(running: Running) -> None:
    pipeline = running.pipeline
    assert pipeline is not None and pipeline.applied == []
    assert running.ctl("set", key="effects.blur_strength", value=77)["ok"]
    # The tray's "image" choice: two keys, valid only together, one write and one apply.
    image = running.cfg.parent / "bg.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    running.daemon.set_many({"effects.image": str(image), "effects.background": "image"})
    time.sleep(3 * 0.5)  # a few of the watcher's polls: they must not apply our writes again
    assert [c.effects.blur_strength for c in pipeline.applied] == [77, 77]
    assert [c.effects.background for c in pipeline.applied] == ["none", "image"]
    assert load_config(running.cfg) == running.daemon.config == pipeline.applied[-1]


def test_ctl_sets_framing_and_auto_tune_and_the_tooltip_says_so(running: Running) -> None:
    assert running.ctl("set", key="framing.mode", value="auto")["ok"]
    assert running.ctl("set", key="model.auto_tune", value=False)["ok"]
    cfg = load_config(running.cfg)
    assert cfg.framing.mode == "auto" and cfg.model.auto_tune is False
    assert running.status()["settings"]["framing.mode"] == "auto"
    with viewer(running.node):
        wait_until(lambda: running.state() == "running", what="camera on")
        assert "auto-frame" in running.daemon.tray_state()[1]
    reply = running.ctl("set", key="framing.mode", value="on")
    assert not reply["ok"] and '"off", "auto"' in reply["error"]


def test_setting_a_bad_edit_back_clears_the_error(running: Running) -> None:
    text = running.cfg.read_text()
    running.cfg.write_text(text.replace('"none"', '"blurr"'))
    wait_until(lambda: running.status()["config_error"], what="config error reported")
    # the running value: the settings don't change, but the file is good again
    assert running.ctl("set", key="effects.background", value="none")["ok"]
    assert running.status()["config_error"] is None


def test_changes_are_refused_once_quitting(running: Running) -> None:
    running.daemon.quit()
    with pytest.raises(PixcamError, match="shutting down"):
        running.daemon.set("effects.mirror", True)
    with pytest.raises(PixcamError, match="shutting down"):
        running.daemon.pause()
    assert load_config(running.cfg).effects.mirror is False


def test_ctl_set_toggle_and_bad_values(running: Running) -> None:
    assert running.ctl("set", key="effects.blur_strength", value=55)["ok"]
    assert running.status()["settings"]["effects.blur_strength"] == 55
    assert load_config(running.cfg).effects.blur_strength == 55
    reply = running.ctl("set", key="effects.blur_strength", value=500)
    assert not reply["ok"] and "out of range" in reply["error"]
    assert running.status()["settings"]["effects.blur_strength"] == 55
    assert running.ctl("toggle") == {"ok": True, "enabled": False}
    assert load_config(running.cfg).effects.enabled is False


def test_invalid_edit_keeps_last_good_settings_and_reports(running: Running) -> None:
    text = running.cfg.read_text()
    running.cfg.write_text(text + "\n[effects2]\n")
    wait_until(lambda: running.status()["config_error"], what="config error reported")
    status = running.status()
    assert status["state"] == "error"
    assert "effects2" in status["config_error"]
    reply = running.ctl("reload")
    assert not reply["ok"] and "effects2" in reply["error"]
    running.cfg.write_text(text.replace('"none"', '"color"'))
    wait_until(lambda: running.status()["settings"]["effects.background"] == "color", what="fixed")
    assert running.status()["config_error"] is None


def test_second_instance_is_refused(running: Running, tmp_path: Path) -> None:
    other = Daemon(running.cfg, socket_path=running.sock, tray=False)
    with pytest.raises(PixcamError, match="already running"):
        other.run()
    assert running.status()["pipeline"]["state"] == "paused"  # the first one is untouched


def test_a_late_watcher_callback_does_not_undo_a_newer_set(tmp_path: Path) -> None:
    # The watcher calls on_change outside its lock: a poll's callback can arrive after a
    # set() that wrote a newer value. The daemon must end at the newest config, not the late one.
    daemon = Daemon(tmp_path / "config.toml", tray=False)
    old = load_config(tmp_path / "config.toml")
    new = old.with_values({"effects.blur_strength": 90})

    class Watcher:
        current = new

    daemon._watcher = Watcher()  # type: ignore[assignment]
    daemon._on_config(new)
    daemon._on_config(old)  # the late one
    assert daemon.config == new


def test_tray_tooltip_names_the_part_effects(running: Running) -> None:
    with viewer(running.node):
        wait_until(lambda: running.state() == "running", what="camera on")
        reply = running.ctl("set", key="parts.privacy", value="blur")
        assert reply["ok"], reply
        assert running.daemon.tray_state() == ("active", "pixcam: background: none, blur face")
        assert running.ctl("set", key="parts.view", value=True)["ok"]
        tooltip = running.daemon.tray_state()[1]
        assert tooltip == "pixcam: background: none, coloured parts, blur face"


def test_a_fifo_config_leaves_ctl_and_quit_working(running: Running) -> None:
    running.cfg.unlink()
    os.mkfifo(running.cfg)
    time.sleep(1.2)  # a few of the watcher's polls
    t0 = time.monotonic()
    reply = running.ctl("set", key="effects.blur_strength", value=60)
    assert not reply["ok"] and "not a regular file" in reply["error"]
    assert running.status()["config_error"] and time.monotonic() - t0 < 3
    # the fixture's teardown then checks that quit() still stops the daemon


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"effects.background": "image", "effects.image": "/nowhere/bg.png"}, "not found"),
        ({"effects.background": "image", "effects.image": "TEXT"}, "not an image"),
        ({"effects.background": "video", "effects.video": "/nowhere/v.mp4"}, "not found"),
        ({"model.name": "no-such-model"}, "unknown model"),
        ({"model.name": "DAMAGED"}, "damaged"),
        ({"model.name": "MISSING"}, "not installed"),
    ],
)
def test_set_refuses_values_the_stream_cannot_use(
    running: Running, values: dict[str, str], error: str
) -> None:
    from pixcam import models

    before = running.cfg.read_text()
    specs = models.list_models()
    damaged, missing = specs[0], specs[1]
    text_file = running.cfg.parent / "bg.png"
    text_file.write_text("not a picture")
    subst = {"TEXT": str(text_file), "DAMAGED": damaged.name, "MISSING": missing.name}
    values = {k: subst.get(v, v) for k, v in values.items()}
    # This run's own data folder (conftest); the real files are put back afterwards.
    saved = {s.path: s.path.read_bytes() for s in (damaged, missing) if s.path.is_file()}
    try:
        missing.path.unlink(missing_ok=True)
        damaged.path.parent.mkdir(parents=True, exist_ok=True)
        damaged.path.write_bytes(b"TFL3 but cut short")
        with pytest.raises(PixcamError, match=error) as caught:
            running.daemon.set_many(values)
        if len(values) == 1:  # the same through `pixcam ctl set`
            ((key, value),) = values.items()
            reply = running.ctl("set", key=key, value=value)
            assert not reply["ok"] and error in reply["error"]
    finally:
        for spec in (damaged, missing):
            spec.path.unlink(missing_ok=True)
            if spec.path in saved:
                spec.path.write_bytes(saved[spec.path])
    assert "\n" not in str(caught.value) and "nothing was changed" in str(caught.value)
    assert running.cfg.read_text() == before
    assert running.status()["settings"]["effects.background"] == "none"


@pytest.mark.parametrize(
    ("key", "value"),
    [("model.threshold", 1), ("model.threshold", 0), ("parts.privacy_parts", [])],
)
def test_ctl_refuses_what_a_stage_cannot_take_and_later_changes_apply(
    running: Running, key: str, value: Any
) -> None:
    """Issue 23 fault 3: these were saved, refused by the chain, and every later change was
    answered ok but not applied (the next start then ended in a ValueError)."""
    if key.startswith("parts."):
        assert running.ctl("set", key="parts.privacy", value="blur")["ok"]
    before = running.cfg.read_text()
    reply = running.ctl("set", key=key, value=value)
    assert not reply["ok"] and "\n" not in reply["error"] and key in reply["error"]
    assert running.cfg.read_text() == before
    assert running.ctl("set", key="effects.mirror", value=True)["ok"]
    pipeline = running.pipeline
    assert pipeline is not None
    wait_until(lambda: pipeline._cfg.effects.mirror, what="the next change applied")
    assert "settings" not in str(running.status()["pipeline"]["last_error"])
    load_config(running.cfg)  # the next start reads it


def _damaged_pngs(folder: Path) -> list[Path]:
    """A real PNG whose header is intact and whose pixel data is damaged, five ways."""
    import struct

    from pixcam.paths import BUNDLED_BACKGROUNDS

    src = (BUNDLED_BACKGROUNDS / "studio-grey.png").read_bytes()
    i = src.index(b"IDAT") + 4
    n = struct.unpack(">I", src[i - 8 : i - 4])[0]
    cases = [
        src[: i + n // 2] + bytes([src[i + n // 2] ^ 0xFF]) + src[i + n // 2 + 1 :],
        src[: i + 100] + bytes(n - 200) + src[i + n - 100 :],
        src[: i + n // 2],
        src[:i],
        src[:i] + bytes(range(256)) * (n // 256) + src[i + n // 256 * 256 :],
    ]
    out = []
    for k, data in enumerate(cases):
        path = folder / f"damaged-{k}.png"
        path.write_bytes(data)
        out.append(path)
    return out


def _wav() -> bytes:
    import io
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(16000))
    return out.getvalue()


def _bad_videos(folder: Path, clip: Path) -> list[Path]:
    """Seven files named like videos that no decoder can use."""
    good = clip.read_bytes()
    cases = {
        "empty.mp4": b"",
        "text.mp4": b"this is not a video\n" * 50,
        "noise.mp4": np.random.default_rng(1).integers(0, 256, 50_000, np.uint8).tobytes(),
        "header-only.mp4": good[:64],
        "cut.mp4": good[: len(good) // 8],
        "zeros.webm": bytes(100_000),
        "audio.mp4": _wav(),  # sound, no picture
    }
    out = []
    for name, data in cases.items():
        (folder / name).write_bytes(data)
        out.append(folder / name)
    return out


def test_unusable_backgrounds_are_refused_before_they_are_saved(
    running: Running, clip: Path
) -> None:
    """Issue 23 fault 5: a PNG with a valid header and damaged data (4 of 5), and any
    unusable video (7 of 7), were saved and answered ok while the stream kept the old one."""
    folder = running.cfg.parent
    cases = [("image", p) for p in _damaged_pngs(folder)]
    cases += [("video", p) for p in _bad_videos(folder, clip)]
    saved: list[str] = []
    for kind, path in cases:
        good = "studio-grey.png" if kind == "image" else str(clip)
        running.daemon.set_many({"effects.background": kind, f"effects.{kind}": good})
        before = running.cfg.read_text()
        reply = running.ctl("set", key=f"effects.{kind}", value=str(path))
        if reply["ok"] or running.cfg.read_text() != before:
            saved.append(path.name)
        else:
            assert "\n" not in reply["error"] and "nothing was changed" in reply["error"]
    assert saved == [], f"saved though unusable: {saved}"


def test_an_unusable_away_card_image_is_refused_before_it_is_saved(running: Running) -> None:
    """The away card's image is checked like a background's: a damaged one is refused with
    one line and nothing saved; a good one is saved."""
    folder = running.cfg.parent
    running.daemon.set_many({"people.away": "card"})
    for path in _damaged_pngs(folder)[:2]:
        before = running.cfg.read_text()
        reply = running.ctl("set", key="people.away_image", value=str(path))
        assert not reply["ok"] and running.cfg.read_text() == before
        assert "people.away_image" in reply["error"] and "\n" not in reply["error"]
    assert running.ctl("set", key="people.away_image", value="studio-grey.png")["ok"]
    assert 'away_image = "studio-grey.png"' in running.cfg.read_text()


def test_a_successful_change_clears_the_last_settings_error(running: Running) -> None:
    """Issue 23 fault 7: `pipeline.last_error` kept an old error after a change that worked.
    An edit made outside (not checked before saving) names an image that is not there: the
    stream keeps its background and says why; a later change that works clears it."""
    running.cfg.write_text('[effects]\nbackground = "image"\nimage = "/nowhere/bg.png"\n')
    wait_until(
        lambda: "not found" in str(running.status()["pipeline"]["last_error"]),
        what="the load error shown",
    )
    running.daemon.set_many({"effects.background": "none", "effects.mirror": True})
    pipeline = running.pipeline
    assert pipeline is not None
    wait_until(lambda: pipeline._cfg.effects.mirror, what="the change applied")
    assert running.status()["pipeline"]["last_error"] is None


def test_temp_files_left_by_a_killed_save_are_removed(tmp_path: Path, clip: Path) -> None:
    """Issue 23 fault 8: a daemon killed mid-save left `.config.toml.*.tmp` for good. The next
    start removes them (it alone writes this config: it holds the single-instance lock), and
    a save removes those older than a minute."""
    cfg = tmp_path / "config.toml"
    cfg.write_text('[effects]\nbackground = "none"\n')
    left = tmp_path / ".config.toml.k1ll3d.tmp"
    left.write_text("[effects]\nback")
    daemon = Daemon(
        cfg,
        source=SourceSpec(path=str(clip), loop=True, realtime=True),
        sink=SinkSpec(device=str(tmp_path / "video10")),
        socket_path=tmp_path / "ctl.sock",
        tray=False,
        pipeline_factory=RecordingPipeline,
    )
    (tmp_path / "video10").touch()
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: daemon.status()["pipeline"], what="daemon started")
        assert not left.exists()
        old = tmp_path / ".config.toml.0ld.tmp"
        fresh = tmp_path / ".config.toml.fr3sh.tmp"  # another writer's, mid-save
        for path in (old, fresh):
            path.write_text("x")
        os.utime(old, (time.time() - 3600, time.time() - 3600))
        daemon.set_many({"effects.blur_strength": 30})
        assert not old.exists() and fresh.exists()
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".config")) == [
            fresh.name
        ]
    finally:
        daemon.quit()
        thread.join(20)


def test_long_names_through_ctl_are_one_line(running: Running) -> None:
    """Issue 23 fault 9: `ctl set effects.image <300 chars>`, then `effects.background image`,
    answered "internal error in set: OSError"."""
    long = "n" * 300
    for key, value in [
        ("effects.image", f"{long}.png"),
        ("effects.image", f"/tmp/{long}/bg.png"),
        ("effects.video", f"{long}.mp4"),
        ("effects.video", f"{running.cfg.parent}/{long}.mp4"),
    ]:
        kind = key.split(".")[1]
        running.daemon.set_many({"effects.background": "none"})
        assert running.ctl("set", key=key, value=value)["ok"]  # not in use: not checked
        reply = running.ctl("set", key="effects.background", value=kind)
        assert not reply["ok"], reply
        error = reply["error"]
        assert "internal error" not in error and "too long" in error and "\n" not in error
        assert len(error) < 400, error  # the long name shortened


EIGHT_BAD_KEYS = (
    '[camera]\nfps = "x"\nwidth = -1\n[model]\nthreshold = 7\nthreads = 0\n'
    '[effects]\nblur_strength = 0\ncolor = "red"\n[refine]\nfeather = -1\nsmoothing = 2\n'
)


def test_each_line_of_a_config_error_is_marked_as_an_error(
    running: Running, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Issue 23 fault 13: an 8-key config error gave 8 lines, only the first marked as an
    error (the daemon's log of an outside edit, SIGHUP's, and the command line's line)."""
    from pixcam.cli import main

    caplog.set_level(logging.INFO, logger="pixcam")
    running.cfg.write_text(EIGHT_BAD_KEYS)
    wait_until(lambda: running.status()["config_error"], what="the error reported")
    # The fixture's daemon runs in a thread: its signal handlers are installed here.
    handlers = install_signal_handlers(running.daemon)
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(lambda: any("SIGHUP" in r.getMessage() for r in caplog.records), "SIGHUP")
    finally:
        handlers.restore()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    for record in errors:
        assert "\n" not in record.getMessage()
    assert sum("out of range" in r.getMessage() for r in errors) >= 2 * 6
    capfd.readouterr()
    assert main(["run", "--config", str(running.cfg), "--input", "x.mp4", "--frames", "1"]) == 1
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 8 and all(line.startswith("pixcam: ") for line in lines), lines


@pytest.mark.parametrize("pause", [0.7, 1.2, 1.8])
def test_a_save_that_pauses_half_way_is_never_applied(running: Running, pause: float) -> None:
    """Issue 23 fault 4: an editor that writes half the file in place, pauses, then writes
    the rest had the half applied (3 of 3 at 1.2 s): the half is a valid file. New content
    acts only once the file has not changed for `ConfigWatcher.SETTLE_S` (2 s)."""
    pipeline = running.pipeline
    assert pipeline is not None
    whole = '[effects]\nbackground = "none"\nmirror = true\n[refine]\nfeather = 9\n'
    half = whole[: whole.index("[refine]")]  # valid on its own: mirror on, feather 2
    with open(running.cfg, "w") as f:  # in place, like editors that keep the inode
        f.write(half)
        f.flush()
        time.sleep(pause)
        f.write(whole[len(half) :])
    wait_until(lambda: running.daemon.config.refine.feather == 9, what="the whole file")
    applied = [(c.effects.mirror, c.refine.feather) for c in pipeline.applied]
    assert (True, 2) not in applied and applied[-1] == (True, 9)
    assert running.status()["config_error"] is None
