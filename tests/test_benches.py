"""Every bench runs on a few frames, so none breaks silently when the code it measures moves.

Each `bench/*.py` and `bench/studies/*.py` (found by glob: a new bench gets a test without
editing this file, and fails until `SMOKE` gives it its smoke arguments), each `pixcam bench`
subcommand (as the CLI's parser lists them) and the int8 calibration tool runs in a
subprocess with this Python, on the real models installed for the session, with the smallest
work its options allow, and must exit 0 and print its result lines.
A bench that needs what this machine lacks says so and exits with `bench/_needs.py`'s LACKING
status (`pixcam bench`: its one-line error): the test is skipped with that line. These are not
speed tests: the figures printed are not checked, only that they are there.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pytest

from conftest import REPO, SHARED_DATA

BENCH = REPO / "bench"
LACKING = 77  # bench/_needs.py: this machine lacks something (checked by a test below)
NUM = r"[-+]?\d+\.\d+"  # a printed figure (signed where it is a difference)
TIMEOUT_S = 180  # a bench here takes a few seconds; this only ends a hung one


class Smoke(NamedTuple):
    args: tuple[str, ...]  # "{tmp}" stands for a fresh temporary folder
    prints: tuple[str, ...]  # regular expressions, each must match a line of stdout


# Each bench (a bench/ script by its file name, or `pixcam bench COMMAND`) -> its smoke run.
SMOKE: dict[str, Smoke] = {
    "studies/alpha_handover.py": Smoke(
        ("--frames", "4", "--rounds", "1", "--sizes", "720"),  # 3 warm-up frames, 1 timed
        (rf"^720p hand-over +upscale \+ compose +{NUM} ms +{NUM} ms +output diff max \d+",),
    ),
    "studies/autotune_steps.py": Smoke(
        ("--frames", "3"),
        (rf"^untouched +{NUM} +{NUM} ", rf"^stride 16 +{NUM} +{NUM} +{NUM} +{NUM}"),
    ),
    "autotune_trace.py": Smoke(
        ("--seconds", "2", "--every", "0.5", "--hog-at", "0.5", "--hog-until", "1.5"),
        (rf"^ *{NUM} +{NUM} +{NUM} +\d+/\d+ +{NUM} +{NUM} +yes +{NUM} ",),
    ),
    "studies/band_colour.py": Smoke(("--limit", "1"), (rf"^default +{NUM} +{NUM} +{NUM} ",)),
    "studies/big_camera.py": Smoke(
        ("--frames", "1", "--live", "1", "--heights", "720"),
        (rf"^  network +{NUM}$", rf"^frame +{NUM}$", rf"into 720p: {NUM} fps out"),
    ),
    "boundary_error.py": Smoke(
        ("--source", "model", "--limit", "1"),
        (r"photos=1$", rf"^refine feather=0 +{NUM} +{NUM} +{NUM} +{NUM} +{NUM} \|"),
    ),
    "pixcam models calibrate": Smoke(
        # The ranges go into a temporary folder, not into the package.
        ("--data", "{data}", "--model", "bodypix-050-s16-int8", "--frames-per-video", "1")
        + ("--limit", "1", "--out", "{tmp}"),
        (
            r"^bodypix-050-s16-int8: \d+ ranges -> \S+\.json; sha256 [0-9a-f]{64} \(\d+ bytes\);"
            rf" dev IoU float {NUM} int8 {NUM} \(1 photos\)$",
        ),
    ),
    "change_seen.py": Smoke(
        ("--rounds", "1", "--settle", "0.5"),
        (
            r"^  image +median +\d+ ms \(max \d+ ms\)$",
            r"^largest gap between frames out: \d+ ms during the changes, \d+ ms with",
        ),
    ),
    "idle_cpu.py": Smoke(
        ("--seconds", "0.5", "--settle", "0.5"),
        (rf"^idle over \d+ s: {NUM}% of one core, {NUM} idle frames/s sent, state paused$",),
    ),
    "idle_daemon.py": Smoke(
        ("--seconds", "0.5", "--settle", "0.5"),
        (rf"^daemon idle over \d+ s: {NUM}% of one core \(state paused, tray \w+\)$",),
    ),
    "studies/int8_vs_float.py": Smoke(
        ("--runs", "4"),  # the medians leave out the first 3
        (rf"^417x241: float {NUM} +int8 {NUM} +float builtin {NUM} .* float/int8 {NUM}×$",),
    ),
    "studies/held_error.py": Smoke(
        ("--frames", "3", "--every", "2"), (rf"^\S+ +2 +{NUM} +{NUM}$",)
    ),
    "keeper_start.py": Smoke(("--runs", "1"), (rf"^the keeper is there {NUM}x sooner",)),
    "network_bill.py": Smoke(
        ("--frames", "1", "--sizes", "360"),
        (rf"^frame +{NUM} +{NUM} +{NUM} +{NUM}$", rf"^× fast +1\.000 +{NUM} +{NUM} +{NUM}$"),
    ),
    "people_cost.py": Smoke(
        ("--frames", "3"),
        (
            rf"^  keep me +median CPU +{NUM} ms/frame +\({NUM} ms\), mean",
            r"^  people stage alone: ",
        ),
    ),
    "partfx_bench.py": Smoke(
        ("--frames", "2", "--repeats", "1"),
        (rf"^  parts read +{NUM} ms$", rf"^  view \+ blur face \+ parts read +{NUM} ms$"),
    ),
    "studies/placements.py": Smoke(
        ("--limit", "1"),
        (rf"^mean of 6 placements +{NUM} +", rf"^mirrored in 2 px left, 2 px top +{NUM} "),
    ),
    "quantize_bench.py": Smoke(
        ("--rounds", "1", "--per", "1", "--limit", "1"),
        (
            rf"^bodypix-050-s8 +2 +481x641 +{NUM} +{NUM} +{NUM}x$",
            rf"^  bodypix-050-s8-int8 +res 641: {NUM}$",
        ),
    ),
    "studies/range_mapping.py": Smoke(
        ("--frames", "2", "--sizes", "720", "--subsampling", "422"),
        (rf"^  deferred +decode +{NUM} .* ratio {NUM}$", rf"^  deferred saves {NUM} ms"),
    ),
    "studies/segment_outside.py": Smoke(
        ("--frames", "2", "--sizes", "720"),
        (rf"^720p: segment stage outside the networks {NUM} CPU ms, networks {NUM} ms",),
    ),
    "stages.py": Smoke(
        ("--frames", "2", "--sizes", "720p", "--threads", "1"),
        # The chain row is there only when the real model loaded (else a synthetic mask).
        (rf"^refine \(default\) +{NUM}/{NUM}", rf"^chain \(Effects\) +{NUM}/{NUM}"),
    ),
    "still_skip.py": Smoke(
        ("--frames", "4", "presenter-1280x720.mp4"),
        (rf"^presenter-1280x720 +4 +\d+% +{NUM} +{NUM} +{NUM} +\d+ +{NUM} / {NUM} +{NUM} / ",),
    ),
    "temporal_flicker.py": Smoke(
        ("--frames", "3", "--video", "presenter"),
        (rf"^presenter-1280x720 +0\.95 +{NUM} +{NUM}$",),
    ),
    # Every installed model (each family's decoding), one photo for the IoU.
    "pixcam bench segment": Smoke(
        ("--threads", "1", "--repeat", "1", "--limit", "1"),
        (
            rf"^bodypix-050-s16-int8 +int8 .* 1 +{NUM} +{NUM} +{NUM} +{NUM}$",
            rf"^selfie-general +float16 .* 1 +{NUM} +{NUM} +{NUM} +{NUM}$",
        ),
    ),
    "pixcam bench pipeline": Smoke(
        ("--threads", "1", "--frames", "2", "--sizes", "360", "--live", "1"),
        (rf"^frame +{NUM} / {NUM}", rf"^  360p: {NUM} fps out, capture-to-sink latency"),
    ),
}

# `pixcam bench`'s and the calibration tool's one-line errors that mean this machine lacks
# something.
PIXCAM_LACKS = re.compile(
    r"^pixcam: (model \S+ is not installed|benchmark video .* not found"
    r"|making the int8 models needs ai-edge-quantizer|the calibration set not found)"
)
# Build tools run like the benches: they too must not break unseen.
TOOLS = ["pixcam models calibrate"]


def benches() -> list[str]:
    """Every bench: the scripts in bench/ and bench/studies/ (not their helper modules, with a
    leading underscore), the subcommands `pixcam bench --help` lists (from the CLI's parser),
    then the build `TOOLS`."""
    from pixcam.cli import build_parser

    def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return {name: p for a in actions for name, p in a.choices.items()}

    found = [*BENCH.glob("*.py"), *BENCH.glob("studies/*.py")]
    scripts = sorted(str(p.relative_to(BENCH)) for p in found if not p.name.startswith("_"))
    commands = sorted(subcommands(subcommands(build_parser())["bench"]))
    return scripts + [f"pixcam bench {c}" for c in commands] + TOOLS


def command(bench: str) -> list[str]:
    """How to start `bench` with this Python."""
    if bench.startswith("pixcam "):
        return [sys.executable, "-m", *bench.split()]
    return [sys.executable, str(BENCH / bench)]


def bench_env(models_dir: Path, tmp: Path) -> dict[str, str]:
    """This session's installed models; a config, cache and runtime folder of the bench's own
    (a bench reads the user's config as the daemon does); no display (no tray to wait for)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PIXCAM_MODELS_DIR"] = str(models_dir)
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        folder = tmp / name.lower()
        folder.mkdir(mode=0o700)
        env[name] = str(folder)
    return env


def repo_status() -> str:
    """`git status` of the working tree (empty without git): a bench must not write into it."""
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 else ""


def run_group(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a bench in a process group of its own, so a hung one is ended with what it started
    (autotune_trace's busy hogs), not just the bench itself."""
    with subprocess.Popen(
        argv, env=env, cwd=cwd, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as proc:  # fmt: skip
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"still running after {TIMEOUT_S} s: {' '.join(argv)}\n{err[-3000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def run_smoke(argv: list[str], smoke: Smoke, env: dict[str, str], tmp: Path) -> None:
    """Run one bench; skip when it lacks something, else check its exit and result lines."""
    args = (a.replace("{tmp}", str(tmp)).replace("{data}", str(SHARED_DATA)) for a in smoke.args)
    argv = [*argv, *args]
    before = repo_status()
    start = time.monotonic()
    done = run_group(argv, env, tmp)
    assert repo_status() == before, "the bench changed files in the repository"
    print(f"{' '.join(argv[1:])}: {time.monotonic() - start:.1f} s\n{done.stdout}")
    err = done.stderr.strip().splitlines()
    if done.returncode == LACKING or (done.returncode == 1 and err and PIXCAM_LACKS.match(err[-1])):
        pytest.skip(err[-1] if err else f"exit status {done.returncode} without a reason")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    missing = [p for p in smoke.prints if not re.search(p, done.stdout, re.MULTILINE)]
    assert not missing, f"no line matches {missing} in:\n{done.stdout}"


def test_every_smoke_entry_names_a_bench_that_exists() -> None:
    assert not set(SMOKE) - set(benches()), "SMOKE names a bench that is gone"


@pytest.mark.parametrize("bench", benches())
def test_bench_runs_on_a_few_frames(bench: str, models_installed: Path, tmp_path: Path) -> None:
    if bench not in SMOKE:
        pytest.fail(f"{bench} has no smoke arguments: give it an entry in SMOKE ({__file__})")
    env = bench_env(models_installed, tmp_path)
    run_smoke(command(bench), SMOKE[bench], env, tmp_path)


@pytest.mark.parametrize("bench", ["studies/int8_vs_float.py", "pixcam bench pipeline"])
def test_a_bench_without_its_model_is_skipped_with_the_reason(bench: str, tmp_path: Path) -> None:
    """What `run_smoke` skips on: the bench's own line (and status), not a traceback."""
    env = bench_env(tmp_path / "no-models", tmp_path)
    lacks = r"^[\w.]+: model bodypix-050-\S+ is not installed \(.*\); install it with `pixcam"
    with pytest.raises(pytest.skip.Exception, match=lacks):
        run_smoke(command(bench), SMOKE[bench], env, tmp_path)


def test_a_bench_given_a_bad_value_says_so_in_one_line(tmp_path: Path) -> None:
    env = bench_env(tmp_path / "no-models", tmp_path)
    argv = [*command("pixcam models calibrate"), "--data", str(tmp_path)]
    argv += ["--model", "selfie-general", "--out", str(tmp_path)]
    done = run_group(argv, env, tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "pixcam: selfie-general is not derived from a float model: nothing to make"
    )


@pytest.mark.parametrize(
    ("option", "said"),
    [
        (["--frames-per-video", "-3"], "--frames-per-video -3: give a whole number of 1 or more"),
        (["--limit", "0"], "--limit 0: give a whole number of 1 or more"),
        (["--out", "FILE"], "is not a folder: give a folder for the ranges files"),
    ],
)
def test_calibrate_refuses_bad_options_before_it_works(
    tmp_path: Path, option: list[str], said: str
) -> None:
    # Before: -3 frames a video made (and wrote) ranges of the photos alone, exit 0, and a
    # file as --out was a NotADirectoryError traceback after the calibration had run.
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    assert cv2.imwrite(str(data / "images" / "a.jpg"), np.full((64, 64, 3), 90, np.uint8))
    (tmp_path / "FILE").write_text("x")
    option = [str(tmp_path / "FILE") if o == "FILE" else o for o in option]
    out = ["--out", str(tmp_path / "out")] if "--out" not in option else []
    argv = [*command("pixcam models calibrate"), "--data", str(data), "--no-iou", *out, *option]
    argv += ["--model", "bodypix-050-s16-int8"]
    done = run_group(argv, bench_env(tmp_path / "no-models", tmp_path), tmp_path)
    assert done.returncode == 1, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("bench", "option", "said"),
    [
        ("segment", ["--threads", "0"], "--threads 0: give whole numbers 1..64"),
        ("segment", ["--threads", "1,x"], "--threads 1,x: give whole numbers 1..64"),
        ("segment", ["--threads", "999999999999"], "--threads 999999999999: give whole"),
        ("segment", ["--repeat", "-3"], "--repeat -3: give a whole number of 1 or more"),
        ("segment", ["--internal-resolution", "-5"], "or 64..4096, got -5"),
        ("pipeline", ["--threads", "-1"], "--threads -1: give whole numbers 1..64"),
        ("pipeline", ["--frames", "0"], "--frames 0: give a whole number of 1 or more"),
    ],
)
def test_bench_refuses_bad_counts_before_it_works(
    models_installed: Path, tmp_path: Path, bench: str, option: list[str], said: str
) -> None:
    # Before: "model file … could not be loaded; reinstall it" for 0 threads, a ValueError,
    # pybind TypeError or StatisticsError traceback, -5 benched as a size (IoU 0).
    argv = [*command(f"pixcam bench {bench}"), *option]
    argv += ["--model", "bodypix-050-s16-int8"]
    done = run_group(argv, bench_env(models_installed, tmp_path), tmp_path)
    assert done.returncode == 1, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], done.stderr
