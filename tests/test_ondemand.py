"""On-demand camera: inotify open/close counting on real files, and the debounce rules."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pixcam.video.devices import count_openers
from pixcam.video.ondemand import Debouncer, Inotify, OnDemand


# ------------------------------------------------------------------------------ debounce
def test_probe_shorter_than_start_delay_never_activates() -> None:
    d = Debouncer(start_delay=1.0, stop_delay=3.0)
    t = 100.0
    for _ in range(10):  # a browser probing every 2 s, holding the device 50 ms
        assert d.update(True, t) is None
        assert d.update(False, t + 0.05) is None
        assert d.poll(t + 1.9) is None
        t += 2.0
    assert not d.active
    assert d.deadline() is None


def test_long_open_activates_after_start_delay_and_idles_after_stop_delay() -> None:
    d = Debouncer(start_delay=1.0, stop_delay=3.0)
    assert d.update(True, 10.0) is None
    assert d.deadline() == 11.0
    assert d.poll(10.99) is None
    assert d.poll(11.0) == "active"
    assert d.poll(20.0) is None  # stays active, reports the flip once
    assert d.update(False, 30.0) is None
    assert d.poll(32.9) is None
    assert d.active
    assert d.poll(33.0) == "idle"
    assert not d.active


def test_quick_reopen_while_active_keeps_the_camera_on() -> None:
    d = Debouncer(start_delay=1.0, stop_delay=3.0)
    d.update(True, 0.0)
    assert d.poll(1.0) == "active"
    # an app renegotiating the format: close, reopen 200 ms later
    assert d.update(False, 5.0) is None
    assert d.update(True, 5.2) is None
    assert d.poll(9.0) is None
    assert d.active
    assert d.deadline() is None


def test_zero_delays_follow_the_raw_state() -> None:
    d = Debouncer(start_delay=0.0, stop_delay=0.0)
    assert d.update(True, 1.0) == "active"
    assert d.update(False, 1.0) == "idle"


# ------------------------------------------------------------------------------- inotify
@pytest.fixture
def node(tmp_path: Path) -> Path:
    path = tmp_path / "video10"
    path.write_bytes(b"")
    return path


def test_inotify_reports_open_and_close(node: Path) -> None:
    ino = Inotify(node)
    try:
        fd = os.open(node, os.O_RDONLY)
        os.close(fd)
        with open(node, "wb"):
            pass
        masks: list[int] = []
        while len(masks) < 4:
            got = ino.read(10.0)
            assert got, f"only {masks} arrived"
            masks += got
        kinds = [
            "open" if m & 0x20 else "close_write" if m & 0x08 else "close_nowrite" for m in masks
        ]
        assert kinds == ["open", "close_nowrite", "open", "close_write"]
    finally:
        ino.close()
    assert ino.read(0) is None


def test_inotify_missing_path_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        Inotify(tmp_path / "nope")


def test_count_openers_sees_other_processes_not_ours(node: Path) -> None:
    mine = os.open(node, os.O_RDONLY)
    try:
        assert count_openers(node) == 0  # our own fd never counts
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys; f = open(sys.argv[1]); sys.stdin.read()", node],
            stdin=subprocess.PIPE,
        )
        try:
            # the child opens the file after start-up; count it from /proc once it has
            for _ in range(500):
                if count_openers(node) == 1:
                    break
                threading.Event().wait(0.02)
            assert count_openers(node) == 1
        finally:
            holder.communicate(b"")
        assert count_openers(node) == 0
    finally:
        os.close(mine)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.changed = threading.Condition()

    def active(self) -> None:
        with self.changed:
            self.calls.append("active")
            self.changed.notify_all()

    def idle(self) -> None:
        with self.changed:
            self.calls.append("idle")
            self.changed.notify_all()

    def wait_for(self, n: int, timeout: float = 20.0) -> list[str]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.calls) >= n, timeout)
            return list(self.calls)


def test_own_writer_opened_first_does_not_count(node: Path) -> None:
    rec = Recorder()
    # left to right: our v4l2 writer is opened before watching starts
    with (
        open(node, "wb") as writer,
        OnDemand(
            node, rec.active, rec.idle, start_delay=0.0, stop_delay=0.0, resync_interval=None
        ) as od,
    ):
        assert od.count == 0
        assert not od.active
        writer.write(b"frame")  # writing generates no open/close
        writer.flush()
        fd = os.open(node, os.O_RDONLY)
        assert od.wait_events(1)
        assert od.count == 1
        os.close(fd)
        assert od.wait_events(2)
        assert od.count == 0
    assert rec.calls == ["active", "idle"]


def test_probes_do_not_start_the_camera(node: Path) -> None:
    rec = Recorder()
    # A long start delay: the probes below take microseconds each.
    with OnDemand(
        node, rec.active, rec.idle, start_delay=5.0, stop_delay=0.0, resync_interval=None
    ) as od:
        for _ in range(20):
            fd = os.open(node, os.O_RDONLY)
            os.close(fd)
        assert od.wait_events(40)
        assert od.count == 0
        assert not od.active
    assert rec.calls == []


def test_long_open_starts_then_close_stops_after_hold(node: Path) -> None:
    rec = Recorder()
    with OnDemand(
        node, rec.active, rec.idle, start_delay=0.3, stop_delay=0.3, resync_interval=None
    ) as od:
        fd = os.open(node, os.O_RDONLY)
        try:
            assert rec.wait_for(1) == ["active"]
            assert od.active
            # a second consumer joins and leaves: still watched, no change
            fd2 = os.open(node, os.O_RDWR)
            os.close(fd2)
            assert od.wait_events(3)
            assert od.count == 1
        finally:
            os.close(fd)
        assert od.wait_events(4)
        assert od.count == 0
        assert rec.wait_for(2) == ["active", "idle"]
        assert not od.active


def test_consumer_already_watching_at_start_is_counted(node: Path) -> None:
    holder = _holder(node)
    try:
        rec = Recorder()
        with OnDemand(
            node, rec.active, rec.idle, start_delay=0.0, stop_delay=0.0, resync_interval=None
        ) as od:
            assert od.count == 1
            assert rec.calls == ["active"]
            holder.communicate("")
            assert rec.wait_for(2) == ["active", "idle"]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_callback_errors_are_logged_not_fatal(node: Path, caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> None:
        raise RuntimeError("pipeline exploded")

    rec = Recorder()
    with OnDemand(
        node, boom, rec.idle, start_delay=0.0, stop_delay=0.0, resync_interval=None
    ) as od:
        fd = os.open(node, os.O_RDONLY)
        assert od.wait_events(1)
        os.close(fd)
        assert rec.wait_for(1) == ["idle"]  # the thread survived the failing callback
    assert "pipeline exploded" in caplog.text


def _holder(node: Path) -> subprocess.Popen[str]:
    """Another process holding `node` open until its stdin closes."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; f = open(sys.argv[1]); print('open', flush=True); sys.stdin.read()",
            node,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "open\n"
    return proc


def test_resync_drops_our_own_reopened_writer(node: Path) -> None:
    # The sink reopening the device after watching started looks like a consumer to
    # inotify; /proc (which skips our pid) corrects it, so the camera does not stay on.
    rec = Recorder()
    with OnDemand(
        node, rec.active, rec.idle, start_delay=0.0, stop_delay=0.0, resync_interval=0.05
    ) as od:
        with open(node, "wb"):
            assert rec.wait_for(1) == ["active"]
            assert rec.wait_for(2) == ["active", "idle"]
            assert od.count == 0
        assert od.wait_events(2)
        assert od.count == 0


def test_resync_keeps_a_real_consumer(node: Path) -> None:
    rec = Recorder()
    with OnDemand(
        node, rec.active, rec.idle, start_delay=0.0, stop_delay=0.0, resync_interval=0.05
    ) as od:
        holder = _holder(node)
        try:
            assert rec.wait_for(1) == ["active"]
            before = od.status()["resyncs"]
            assert od.wait_resyncs(before + 3)
            assert od.count == 1
            assert rec.calls == ["active"]
        finally:
            holder.communicate("")
        assert rec.wait_for(2) == ["active", "idle"]
