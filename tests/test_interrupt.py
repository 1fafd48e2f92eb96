"""Ctrl-C during start-up: `pixcam` always ends, promptly, the usual way."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO, read_video
from pixcam import cli

# `pixcam run`, with a Ctrl-C swallowed during its start-up the way Python swallows one that
# lands in the import machinery's module-lock callback (a weakref callback): the
# KeyboardInterrupt is only reported ("Exception ignored in …") and the program runs on.
SWALLOWING_RUN = """
import sys, weakref
from pixcam import cli

def swallow_a_ctrl_c():
    class ModuleLock:
        pass

    def callback(_ref):
        raise KeyboardInterrupt  # what SIGINT raises when it lands here

    lock = ModuleLock()
    ref = weakref.ref(lock, callback)
    del lock
    print("swallowed", flush=True)

build_parser = cli.build_parser

def build_parser_after_a_ctrl_c():
    swallow_a_ctrl_c()
    return build_parser()

cli.build_parser = build_parser_after_a_ctrl_c
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.fixture
def still(tmp_path: Path) -> Path:
    path = tmp_path / "still.png"
    assert cv2.imwrite(str(path), np.full((48, 64, 3), 90, np.uint8))
    return path


def _run_argv(still: Path, out: Path) -> list[str]:
    # A still looped for a million frames: runs for minutes unless stopped.
    return ["run", "--input", str(still), "--output", str(out), "--frames", "1000000"] + [
        "--background",
        "none",
    ]


def test_a_swallowed_ctrl_c_still_ends_the_run(tmp_path: Path, still: Path) -> None:
    out = tmp_path / "out.mp4"
    proc = subprocess.run(
        [sys.executable, "-c", SWALLOWING_RUN, *_run_argv(still, out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.strip() == "swallowed"
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert len(read_video(out, limit=10_000)) < 10_000  # stopped, not run to the end


def test_a_ctrl_c_python_wraps_in_another_error_still_exits_130(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Interrupted:
        def __set_name__(self, owner: type, name: str) -> None:
            raise KeyboardInterrupt  # a Ctrl-C landing while a class is made (an import)

    def import_a_model(_argv: object) -> int:
        type("Settings", (), {"field": Interrupted()})  # Python 3.11: a RuntimeError
        return 0

    monkeypatch.setattr(cli, "_main", import_a_model)
    assert cli.main([]) == 130

    def fail(_argv: object) -> int:
        raise RuntimeError("a real fault")

    monkeypatch.setattr(cli, "_main", fail)
    with pytest.raises(RuntimeError, match="a real fault"):
        cli.main([])


def test_ctrl_c_in_the_first_moments_always_ends_pixcam(tmp_path: Path, still: Path) -> None:
    """SIGINT at random moments of the first 0.4 s (interpreter start, imports, opening the
    input): every run ends within seconds, with Ctrl-C's exit (130, or killed by SIGINT
    before Python has its handler), and no traceback but a KeyboardInterrupt's."""
    rng = random.Random(13)
    for n in range(20):
        delay = rng.uniform(0.0, 0.4)
        argv = [sys.executable, "-m", "pixcam", *_run_argv(still, tmp_path / f"o{n}.mp4")]
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path
        )
        time.sleep(delay)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail(f"#{n}: Ctrl-C {delay:.2f} s after the start: still running 15 s later")
        took = time.monotonic() - sent
        what = f"#{n} Ctrl-C at {delay:.2f} s -> {proc.returncode} after {took:.1f} s: {err[-600:]}"
        # The interpreter's own start-up may fail with 1 when interrupted, before any pixcam
        # code runs: its init phases (site, the standard streams, ...) or runpy.
        interpreter = "Fatal Python error: init_" in err or "Could not import runpy" in err
        assert proc.returncode in (130, -signal.SIGINT) or interpreter, what
        assert "Traceback" not in err or err.rstrip().endswith("KeyboardInterrupt"), what
