"""Who holds a device open (one /proc scanner), and the one v4l2loopback options line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, wait_until
from pixcam.tools import doctor
from pixcam.video import devices, sinks


def test_holders_names_other_processes_not_ours(tmp_path: Path) -> None:
    node = tmp_path / "video10"
    node.touch()
    ours = os.open(node, os.O_RDONLY)
    try:
        assert devices.holders(node) == []  # our own fd is never "someone else"
        assert devices.own_fds(node) == {ours}
        holder = subprocess.Popen(
            [sys.executable, "-c", f"f = open({str(node)!r}); import time; time.sleep(60)"]
        )
        try:
            found = wait_until(lambda: devices.holders(node), what="the other process's fd")
            assert len(found) == 1 and found[0].endswith(f"({holder.pid})")
            assert devices.count_openers(node) == 1
        finally:
            holder.kill()
            holder.wait()
    finally:
        os.close(ours)
    assert devices.own_fds(node) == set() and devices.holders(node) == []


def test_the_modprobe_line_is_the_packaged_one_everywhere() -> None:
    conf = (REPO / "packaging" / "modprobe.pixcam.conf").read_text()
    assert f"options v4l2loopback {devices.MODPROBE_OPTS}\n" in conf
    assert "video_nr=10" in devices.MODPROBE_OPTS
    assert f"sudo modprobe v4l2loopback {devices.MODPROBE_OPTS}" == sinks.MODPROBE_FIX
    assert doctor.MODPROBE_OPTS is devices.MODPROBE_OPTS
