"""The daemon wired to the real pipeline, control socket, config watcher and on-demand watcher.

The virtual camera is stood in for by a regular file that our sink keeps open for writing,
like pyvirtualcam keeps /dev/videoN open; "applications watching" are real open() calls on
it, which inotify reports exactly as for a device node. No camera, model or X needed.
"""

from __future__ import annotations

import contextlib
import os
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
from pixcam.control import send_command
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
