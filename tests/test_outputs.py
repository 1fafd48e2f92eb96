"""Output backends without PipeWire: the link table, "auto", the fan-out, the CLI and config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pixcam.config import Config
from pixcam.errors import PixcamError
from pixcam.i420 import I420
from pixcam.video import outputs
from pixcam.video.pipewire_links import LinkTable
from pixcam.video.sinks import Sink, SinkError


def test_link_table_reads_pw_links_listing_and_changes() -> None:
    table = LinkTable("pixcam")
    for line in (
        "=   36 pixcam:out_0",
        "=   41   |->   39 firefox:input_0",
        "=   39 firefox:input_0",
        "=   41   |<-   36 pixcam:out_0",
        "=   50 other:out_0",
        "=   52   |->   51 obs:input_0",
    ):
        table.feed(line)
    assert table.links == {41}
    table.feed("+   43 pixcam:out_0 -> gst-launch-1.0:in_0")
    table.feed("+   44 other:out_0 -> gst-launch-1.0:in_1")
    assert table.count == 2
    table.feed("-   41 pixcam:out_0 -> firefox:input_0")
    table.feed("-   43 pixcam:out_0 -> gst-launch-1.0:in_0")
    table.feed("garbage that pw-link never prints")
    assert table.count == 0


def test_a_node_named_like_a_prefix_is_not_ours() -> None:
    table = LinkTable("pixcam")
    table.feed("+   43 pixcam-old:out_0 -> app:in_0")
    assert table.count == 0


def test_auto_follows_what_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    from pixcam.video import pipewire_sink

    for pipewire_ok, loopback, want in (
        (True, True, "both"),
        (True, False, "pipewire"),
        (False, True, "v4l2loopback"),
        (False, False, "v4l2loopback"),
    ):
        monkeypatch.setattr(pipewire_sink, "missing", lambda ok=pipewire_ok: None if ok else "no")
        monkeypatch.setattr(outputs, "loopback_present", lambda lb=loopback: lb)
        assert outputs.resolve("auto") == want
    assert outputs.resolve("pipewire") == "pipewire"


class Fake(Sink):
    reopenable = True

    def __init__(self, name: str, fail_after: int | None = None) -> None:
        self.name, self.width, self.height, self.fps = name, 64, 48, 15.0
        self.sent = 0
        self.fail_after = fail_after
        self.closed = 0

    def send(self, frame: object) -> None:
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise SinkError(f"{self.name} broke")
        self.sent += 1

    def close(self) -> None:
        self.closed += 1


def test_fan_out_keeps_the_healthy_branch_and_reopens_the_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(outputs.time, "monotonic", lambda: clock[0])
    made: dict[str, list[Fake]] = {"a": [], "b": []}

    def opener(key: str, fail_after: int | None) -> outputs.Opener:
        def make() -> Sink:
            sink = Fake(key, fail_after if not made[key] else None)
            made[key].append(sink)
            return sink

        return make

    fan = outputs.FanOutSink({"a": opener("a", None), "b": opener("b", 2)})
    frame = I420(np.zeros((72, 64), np.uint8))
    for _ in range(5):
        fan.send(frame)  # b fails at its third frame: no SinkError, a goes on
    assert made["a"][0].sent == 5 and made["b"][0].sent == 2 and made["b"][0].closed == 1
    clock[0] += outputs.RETRY_S + 0.1
    fan.send(frame)
    assert len(made["b"]) == 2 and made["b"][1].sent == 1
    fan.close()
    fan.close()
    assert made["a"][0].closed == 1 and made["b"][1].closed == 1


def test_fan_out_fails_only_when_every_branch_fails() -> None:
    def broken() -> Sink:
        raise SinkError("no device")

    with pytest.raises(SinkError, match="no device"):
        outputs.FanOutSink({"a": broken, "b": broken})


def test_fan_out_with_no_branch_says_it_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    # `run --output-backend both` with neither output printed a warning per branch ("the
    # other output goes on", which none did) and then the error repeating both.
    def broken() -> Sink:
        raise SinkError("no device")

    with pytest.raises(SinkError, match="no device; no device"):
        outputs.FanOutSink({"a": broken, "b": broken})
    assert [r for r in caplog.records if r.levelno >= 30] == []


def test_config_backend_values() -> None:
    assert Config().output.backend == "auto"
    assert Config().with_values({"output.backend": "pipewire"}).output.backend == "pipewire"
    with pytest.raises(PixcamError, match="output.backend"):
        Config().with_values({"output.backend": "kernel"})


def test_run_option_sets_the_backend() -> None:
    from pixcam.cli import build_parser
    from pixcam.run import overrides_from_args

    args = build_parser().parse_args(["run", "--output-backend", "pipewire"])
    assert overrides_from_args(args)["output.backend"] == "pipewire"


BOTH_BACKENDS_PROCESS = """
import cv2  # the daemon has it loaded, and with it a C++ exception after Gst.init crashes
from pixcam.video import pipewire_sink
print("why:", pipewire_sink.missing())
maps = open("/proc/self/maps").read()
print("gstreamer loaded:", "libgstreamer" in maps)
import pyvirtualcam
try:
    pyvirtualcam.Camera(64, 48, 30, device="/dev/null", backend="v4l2loopback")
except RuntimeError:
    print("pyvirtualcam error caught")
"""


def test_the_pipewire_check_keeps_gstreamer_out_of_the_daemon(tmp_path: Path) -> None:
    """The "both" backend: asking whether PipeWire works leaves GStreamer (and libunwind) out
    of the daemon, so a failed loopback open raises a plain error, not a segfault."""
    import os
    import subprocess
    import sys

    pytest.importorskip("pyvirtualcam")
    (tmp_path / "pipewire-0").touch()  # a PipeWire socket as far as the check looks: it asks
    env = dict(os.environ, PYTHONPATH=str(Path(outputs.__file__).resolve().parents[2]))
    env.update(XDG_RUNTIME_DIR=str(tmp_path))
    env.pop("PIPEWIRE_RUNTIME_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", BOTH_BACKENDS_PROCESS],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "why:" in out.stdout and "not running" not in out.stdout, out.stdout  # asked GStreamer
    assert "gstreamer loaded: False" in out.stdout, out.stdout
    assert "pyvirtualcam error caught" in out.stdout, out.stdout


def test_the_relay_says_why_gstreamer_cannot_publish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pipewiresink (GStreamer without its plugins): the relay, which alone loads
    GStreamer, exits with the reason, and the writer's SinkError carries it in one line."""
    from pixcam.video.pipewire_relay import RelaySink

    (tmp_path / "pipewire-0").touch()  # a PipeWire socket, as far as the writer looks
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("PIPEWIRE_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("GST_PLUGIN_SYSTEM_PATH_1_0", str(tmp_path / "no-plugins"))
    monkeypatch.setenv("GST_PLUGIN_PATH_1_0", str(tmp_path / "no-plugins"))
    monkeypatch.setenv("GST_REGISTRY_1_0", str(tmp_path / "registry.bin"))
    monkeypatch.setenv("PYTHONPATH", str(Path(outputs.__file__).resolve().parents[2]))
    with pytest.raises(SinkError) as info:
        RelaySink(64, 48, 15, path=tmp_path / "relay.sock")
    msg = str(info.value)
    assert "\n" not in msg and "did not start" in msg and "no PipeWire camera" in msg, msg


def test_fan_out_passes_a_new_rate_to_every_branch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each branch advertises the stream's rate, a branch reopened later too."""
    clock = [100.0]
    monkeypatch.setattr(outputs.time, "monotonic", lambda: clock[0])
    made: list[Fake] = []

    def make_b() -> Sink:
        made.append(Fake("b", 0 if not made else None))
        return made[-1]

    a = Fake("a")
    fan = outputs.FanOutSink({"a": lambda: a, "b": make_b})
    fan.retime(30.0)
    assert fan.fps == a.fps == made[0].fps == 30.0
    frame = I420(np.zeros((72, 64), np.uint8))
    fan.send(frame)  # b fails: closed, reopened after RETRY_S at its first rate (15)
    clock[0] += outputs.RETRY_S + 0.1
    fan.send(frame)
    assert len(made) == 2 and made[1].fps == 30.0
    fan.close()
