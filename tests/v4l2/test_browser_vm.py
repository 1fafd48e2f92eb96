"""A real browser as the consumer: headless Chromium, with its own V4L2 capture, watches the
pixcam daemon in its default on-demand mode, the way Meet or Zoom's web client would.

One Chromium and one page serve the four tests, in order (each starts from the state the
previous one left: a browser start costs a minute under emulation):
1. discovery: while nobody watches, the daemon's idle card keeps the device a capture device,
   so Chromium lists "pixcam" (with exclusive_caps=1 a loopback without a writer is
   output-only and Chromium hides it, so the user could not pick pixcam at all); Chromium's
   device probes (it opens every /dev/video* on each enumerateDevices) leave the camera off;
2. on demand: getUserMedia on "pixcam" starts the camera after the start delay and delivers
   composited 640x360 frames; stopping the track, or leaving the page, closes it after the
   stop delay;
3. restart while watched: pixcam killed and started again (as systemd does after a crash)
   while the page holds the track: how long until frames flow again, and whether the same
   track carries them (Chromium ends a track after 10 s without frames);
4. mode changes while watched: background image, then colour, then pause: no gap over 1 s
   in the frames the page receives, and each change reaches the page.
The figures measured are printed in the run's summary ("measured").
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chromium_page import ChromiumPage, find_chromium
from test_ondemand_vm import opened_by
from test_run_vm import write_config
from v4l2_helpers import REPO, Proc, background, feed, make_raw_clip, measured, wait_for

from pixcam import cli
from pixcam.chain.compose import cover_fit, load_image
from pixcam.control import send_command
from pixcam.video import v4l2caps
from pixcam.video.ondemand import START_DELAY_S, STOP_DELAY_S

W, H = 640, 360
# 2 s of a presenter standing in a room, 640x360 at 15 fps (checked with Chromium: the
# regions below are wall and shirt all through it).
PRESENTER = REPO.parent / "shared" / "data" / "video" / "presenter-1280x720.mp4"
CLIP_VF, CLIP_START_S, CLIP_FRAMES = "fps=15,scale=640:360", 9.5, 30
# Background: the top 10 % of rows and the left 20 % / right 15 % of columns (the bottom
# edge cuts the presenter). Person: the middle of her shirt.
BORDER = np.zeros((H, W), bool)
BORDER[: H // 10] = True
BORDER[:, : W // 5] = True
BORDER[:, int(W * 0.85) :] = True
TORSO = (slice(int(H * 0.50), int(H * 0.85)), slice(int(W * 0.48), int(W * 0.62)))
MAGENTA_BGR = np.array([255, 0, 255], np.int16)
IDLE_GREY = 24  # pipeline.idle_frame's card
MAX_GAP_S = 1.0  # the longest a watched stream may go without a frame during a change
# Emulation (12-22x slower than a real machine) stretches every reaction; these margins
# only bound a hang, they are not speeds.
REACT_SLACK_S = 30.0
# The stream watched with nothing changing, before the mode changes: as long as the changes
# usually take under emulation (47-60 s), so both maxima of Chromium's own gaps come from
# windows of one length (a 30 s window's ranged 1.8-3.1 s over four runs and once failed the
# page bound). When the changes take longer (102 s once, on a busier host: the page's largest
# gap 4.85 s against 3.53 s in the 60 s before), the page is watched quiet again afterwards
# until its quiet time is as long as the changes': a maximum grows with its window.
QUIET_S = 60.0
# How often the page's frame is looked at: each look has Chromium encode a PNG, which under
# emulation costs enough CPU (every 0.3 s: the VM's 2 cores saturated, the page's own gaps
# up to 2.9 s with nothing changing) to make the gaps measured the test's own.
LOOK_EVERY_S = 1.0
CALM_SLACK_S = 0.5  # a change's gap may exceed the calm stream's largest by this much
PAGE_SLACK_S = 1.0  # the same on the page, where Chromium's own scheduling adds to it
# and never less than this on the page: its largest gap with nothing changing ranged 1.8-3.1 s
# over five runs (the VM's 2 saturated vCPUs), so a change's window could pass quiet + 1 s by
# chance (once: 3.27 against 1.82 s). Still well under Chromium's 10 s, and over what the
# bug this check found gave (6.5 s); pixcam's own output keeps its tight bound.
PAGE_FLOOR_S = 4.0
STALL_SLACK_S = 10.0  # and the time without a new frame made (inference: seconds each here)
START_DEADLINE_S = 300.0
# Chromium ends a track after 10 poll timeouts of 1 s without a frame.
CHROMIUM_TRACK_TIMEOUT_S = 10.0
# systemd starts pixcam again 3 s after a crash (pixcam.service's RestartSec), and on a real
# machine pixcam's keeper writes under 0.1 s after its launch (bench/keeper_start.py). Under
# emulation the launch alone takes 12-22x (more on a busy host) while those 3 s do not
# stretch: the restart here is immediate, leaving the keeper the budget it has for real.
RESTART_DELAY_S = 0.0


CLK_TCK = os.sysconf("SC_CLK_TCK")


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) of every live process in process group `pgid`."""
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp; utime and stime are fields 11 and 12 after it
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def busy_cpu_s() -> float:
    """CPU seconds the whole VM spent busy (all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK


class CpuLoad:
    """Cores used by process groups and by the whole VM, sampled on a thread: where a gap in
    the page's frames comes from, pixcam's work or Chromium's, or both wanting the 2 vCPUs."""

    def __init__(self, groups: dict[str, int], period_s: float = 0.5) -> None:
        self.groups, self.period_s = groups, period_s
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            used = {name: group_cpu_s(pgid) for name, pgid in self.groups.items()}
            self.samples.append((time.monotonic(), {**used, "vm": busy_cpu_s()}))
            if self._stop.wait(self.period_s):
                return

    def cores(self, t0: float, t1: float) -> str:
        """Cores each used from t0 to t1 (the samples around them), e.g. "pixcam 0.9 ..."."""
        before = [s for s in self.samples if s[0] <= t0] or self.samples[:1]
        after = [s for s in self.samples if s[0] >= t1] or self.samples[-1:]
        (ta, a), (tb, b) = before[-1], after[0]
        if tb <= ta:
            return "-"
        return " ".join(f"{k} {(b[k] - a[k]) / (tb - ta):.1f}" for k in a)


def magenta(frame: np.ndarray, where: Any) -> float:
    """Share of pixels that are the magenta background (the rule of test_run_vm)."""
    return float((np.abs(frame[where].astype(np.int16) - MAGENTA_BGR).sum(axis=-1) < 90).mean())


def kind_of(frame: np.ndarray, image_bg: np.ndarray) -> str:
    """What the page is showing: "color" (magenta background, person kept), "image" (the
    background picture around the person), "idle" (the camera-off card) or "other"."""
    if (np.abs(frame.astype(np.int16) - IDLE_GREY).max(axis=2) < 12).mean() > 0.9:
        return "idle"
    person_kept = magenta(frame, TORSO) < 0.1
    if magenta(frame, BORDER) > 0.9 and person_kept:
        return "color"
    diff = np.abs(frame[BORDER].astype(np.int16) - image_bg[BORDER].astype(np.int16)).mean()
    if diff < 20 and person_kept and magenta(frame, BORDER) < 0.05:
        return "image"
    return "other"


def fractions(frame: np.ndarray) -> str:
    return f"border {magenta(frame, BORDER):.3f} / torso {magenta(frame, TORSO):.3f}"


class Bench:
    """The camera feed, the page, and the pixcam daemon (restartable) for the four tests."""

    def __init__(self, page: ChromiumPage, work: Path, camera: str, output: str) -> None:
        self.page, self.work, self.camera, self.output = page, work, camera, output
        self.config = write_config(
            work / "config.toml", camera, output, always_on=False, size=(W, H)
        )
        # Not in `work`: a Unix socket needs a local file system (work may be a 9p share).
        self.socket = Path(tempfile.mkdtemp(prefix="pixcam-ctl-")) / "control.sock"
        self.image_bg = cover_fit(load_image("studio-grey.png"), (W, H))
        self.daemon: Proc | None = None
        self.starts = 0
        self.daemon_gap_ms = 0.0  # the largest gap between pixcam's frames out, see watch_gap
        self.made: list[tuple[float, int]] = []  # (when, new frames made so far), see watch_gap
        self._stack = contextlib.ExitStack()

    def start_daemon(self) -> Proc:
        self.starts += 1
        # The `pixcam` command, as systemd starts it: `python -m` would import runpy and 15
        # modules more before pixcam's keeper (a second under emulation). -v: the INFO lines.
        command = Path(sys.executable).with_name("pixcam")
        launch = [str(command)] if command.exists() else [sys.executable, "-m", "pixcam"]
        argv = [*launch, "-v", "daemon", "--config", str(self.config), "--no-tray",
                "--socket", str(self.socket)]  # fmt: skip
        log = self.work / f"pixcam-{self.starts}.log"
        self.daemon = self._stack.enter_context(background(argv, log, stamp=True))
        return self.daemon

    def ensure_daemon(self) -> None:
        """The daemon running and watching its virtual camera (started if it is not)."""
        if self.daemon is None or not self.daemon.alive():
            daemon = self.start_daemon()
            wait_for(
                lambda: "on demand: watching" in self.log() or not daemon.alive(),
                START_DEADLINE_S,
                "the daemon to watch its virtual camera",
            )
            assert daemon.alive(), self.log()

    def logged_at(self, text: str) -> float | None:
        """When the current daemon first logged `text` (time.monotonic(), from its stamped
        log), None if it has not."""
        assert self.daemon is not None
        line = next((ln for ln in self.daemon.tail(10**6).splitlines() if text in ln), None)
        return float(line.split()[0]) if line else None

    def watch_gap(self) -> None:
        """Keep the largest gap between frames pixcam sent (its status covers the last 10 s;
        called every few seconds, so nothing escapes), and how many new frames it had made
        (`frames`, without the keep-alive's repeats: those hide a frame thread that stalls).
        The page's gaps add Chromium's own."""
        pipeline = self.status()["pipeline"]
        self.daemon_gap_ms = max(self.daemon_gap_ms, pipeline["largest_gap_ms"] or 0.0)
        self.made.append((time.monotonic(), pipeline["frames"]))

    def longest_without_new_frame(self, since: float) -> float:
        """The longest pixcam's frame thread made no new frame since `since`, in s (to within
        the sampling of watch_gap)."""
        samples = [(t, n) for t, n in self.made if t >= since]
        longest, changed_at = 0.0, samples[0][0]
        for (_, before), (t, n) in zip(samples, samples[1:], strict=False):
            if n != before:
                longest, changed_at = max(longest, t - changed_at), t
        return max(longest, samples[-1][0] - changed_at)

    def page_clock(self) -> float:
        """time.monotonic() minus the page's clock (its ms / 1000), to within a round trip."""
        t0 = time.monotonic()
        now_ms = self.page.command("stats")["now_ms"]
        return (t0 + time.monotonic()) / 2 - now_ms / 1e3

    def kill_daemon(self) -> None:
        """A crash: SIGKILL, no clean-up of any kind."""
        assert self.daemon is not None
        os.killpg(self.daemon.popen.pid, signal.SIGKILL)
        self.daemon.popen.wait()

    def camera_open(self) -> bool:
        return self.daemon is not None and opened_by(self.daemon.popen.pid, self.camera)

    def status(self) -> dict[str, Any]:
        return send_command("status", path=self.socket)["status"]

    def ctl(self, *args: str) -> None:
        """`pixcam ctl ARGS`, run in this process: the same code without a Python start-up
        per command, which costs seconds of CPU under emulation and would itself slow the
        stream being measured."""
        assert cli.main(["ctl", *args, "--socket", str(self.socket)]) == 0, args

    def log(self, n: int = 60) -> str:
        return self.daemon.tail(n) if self.daemon else ""

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="module")
def bench(
    tmp_path_factory: pytest.TempPathFactory,
    camera_dev: str,
    pixcam_dev: str,
    models_installed: Path,
) -> Iterator[Bench]:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            "Chromium is not installed; on Debian: apt-get install chromium fonts-dejavu-core"
        )
    work = tmp_path_factory.mktemp("browser")
    raw = make_raw_clip(
        work / "clip.yuyv", CLIP_FRAMES, video=PRESENTER, vf=CLIP_VF, start_s=CLIP_START_S
    )
    with feed(raw, camera_dev, work / "feed.log", size=(W, H)):
        t0 = time.monotonic()
        page = ChromiumPage(chromium, work)
        bench = Bench(page, work, camera_dev, pixcam_dev)
        try:
            page.wait_loaded(START_DEADLINE_S)
            measured(f"browser: Chromium start to page loaded {time.monotonic() - t0:.1f} s")
            yield bench
        finally:
            bench.close()
            page.close()
    # The next tests expect both loopbacks idle (output-only): nothing of ours may hold them.
    for dev in (camera_dev, pixcam_dev):
        wait_for(lambda d=dev: not v4l2caps.query(d).can_capture, 60, f"{dev} to be released")


def watch_quiet(bench: Bench, seconds: float) -> dict[str, Any]:
    """The page's stats over `seconds` of the stream with nothing changing, watched as
    wait_kind does during the changes (pixcam's status, a frame from the page), so both load
    the VM alike; pixcam's largest gap out meanwhile is in `bench.daemon_gap_ms`."""
    bench.page.command("mark")
    bench.daemon_gap_ms = 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        bench.watch_gap()
        bench.page.frame()
        time.sleep(LOOK_EVERY_S)
    return bench.page.command("stats")


def wait_kind(
    bench: Bench, want: str, deadline_s: float, watch_gap: bool = False
) -> tuple[np.ndarray, list[str]]:
    """Frames from the page until one is `want`; returns it and the kinds seen on the way.
    `watch_gap`: also keep pixcam's largest gap between frames out (Bench.watch_gap)."""
    seen: list[str] = []
    end = time.monotonic() + deadline_s
    # A track just opened may have no frame yet (the page then has none to give).
    timed(lambda: bench.page.command("stats").get("frames", 0) > 0, deadline_s,
          "a first frame on the page", step=0.3)  # fmt: skip
    while True:
        if watch_gap:
            bench.watch_gap()
        frame, info = bench.page.frame()
        seen.append(kind_of(frame, bench.image_bg))
        if seen[-1] == want:
            return frame, seen
        # An ended track shows its last frame for ever: no use waiting for a change.
        assert time.monotonic() < end and info["ready_state"] == "live", (
            f"the page never showed {want!r} in {deadline_s:.0f} s; saw {seen[-8:]} "
            f"({len(seen)} looks), last {fractions(frame)}; page: {bench.page.command('stats')}; "
            f"pixcam: {bench.status()['pipeline']}; pixcam log:\n{bench.log()}"
        )
        time.sleep(LOOK_EVERY_S)


def timed(predicate: Callable[[], bool], deadline_s: float, what: str, step: float = 0.1) -> float:
    """When `predicate()` became true (time.monotonic()); AssertionError past the deadline."""
    end = time.monotonic() + deadline_s
    while not predicate():
        assert time.monotonic() < end, f"timed out after {deadline_s:.0f} s waiting for {what}"
        time.sleep(step)
    return time.monotonic()


def open_pixcam(bench: Bench) -> dict[str, Any]:
    res = bench.page.command("open", label="pixcam", width=W, height=H, timeout=START_DEADLINE_S)
    assert res.get("ok"), f"getUserMedia on pixcam failed: {res}\n{bench.page.tail()}"
    return res


def test_idle_pixcam_is_listed_and_probes_leave_the_camera_off(
    bench: Bench, pixcam_dev: str
) -> None:
    page = bench.page
    # Labels appear after one getUserMedia; with no pixcam running it can only pick "Camera".
    assert page.command("grant", timeout=START_DEADLINE_S).get("label") == "Camera"
    # No writer: exclusive_caps=1 makes the node output-only, and Chromium does not list it.
    assert not v4l2caps.query(pixcam_dev).can_capture
    before = page.labels()
    assert "Camera" in before and "pixcam" not in before, before

    t0 = time.monotonic()
    bench.ensure_daemon()
    measured(f"browser: daemon start to idle card {time.monotonic() - t0:.1f} s")
    # Nobody watches, the camera is off, yet the idle card makes it a camera Chromium lists.
    assert v4l2caps.query(pixcam_dev).can_capture
    assert not bench.camera_open(), bench.log()
    events0 = bench.status()["on_demand"]["events"]
    for _ in range(4):
        assert "pixcam" in page.labels()
        end = time.monotonic() + 1.5 * START_DELAY_S
        while time.monotonic() < end:
            assert not bench.camera_open(), f"a device probe started the camera:\n{bench.log()}"
            time.sleep(0.1)
    probes = bench.status()["on_demand"]["events"] - events0
    assert probes >= 4, f"Chromium's enumerateDevices never opened {pixcam_dev} ({probes} events)"
    assert "camera on" not in bench.log(), bench.log()
    measured(f"browser: {probes} device opens by enumerateDevices, camera stayed off")


def test_stream_runs_the_camera_only_while_the_page_watches(bench: Bench) -> None:
    page = bench.page
    asked = time.monotonic()
    res = open_pixcam(bench)
    settings = res["settings"]
    assert (settings["width"], settings["height"]) == (W, H), settings
    on = timed(bench.camera_open, START_DEADLINE_S, "the camera to open")
    # The camera starts only after the consumer held the device for the start delay.
    assert on - asked >= START_DELAY_S
    frame, _ = wait_kind(bench, "color", START_DEADLINE_S)
    composited = time.monotonic()
    stats = page.command("stats")
    shares = [fractions(frame)]
    for _ in range(2):
        time.sleep(1)
        frame, _ = bench.page.frame()
        assert kind_of(frame, bench.image_bg) == "color", fractions(frame)
        shares.append(fractions(frame))
    measured(
        f"browser: getUserMedia {res['gum_ms'] / 1e3:.1f} s, then first frame "
        f"{(stats['first_frame_ms'] - res['resolved_ms']) / 1e3:.1f} s, camera on "
        f"{on - asked:.1f} s and first composited frame {composited - asked:.1f} s after asking"
    )
    measured(f"browser: magenta {'; '.join(shares)}")

    # Stopping the track: the camera closes after the stop delay, not before.
    asked = time.monotonic()
    page.command("stop")
    stopped = time.monotonic()
    off = timed(lambda: not bench.camera_open(), STOP_DELAY_S + REACT_SLACK_S, "camera off")
    assert off - asked >= STOP_DELAY_S, f"closed {off - asked:.1f} s after the stop"
    measured(f"browser: track stopped, camera off after {off - stopped:.1f} s")

    # Leaving the page (a reload) while watching releases the camera the same way.
    open_pixcam(bench)
    timed(bench.camera_open, START_DEADLINE_S, "the camera to open again")
    loads = page.loads
    asked = time.monotonic()
    page.command("reload")
    page.wait_loaded(START_DEADLINE_S, count=loads + 1)
    off = timed(lambda: not bench.camera_open(), STOP_DELAY_S + REACT_SLACK_S, "camera off")
    assert off - asked >= STOP_DELAY_S, f"closed {off - asked:.1f} s after leaving"
    measured(f"browser: page left, camera off after {off - asked:.1f} s")
    log = bench.log(400)
    assert log.count("camera on") == 2 and log.count("camera off") == 2, log


def test_restart_while_watched(bench: Bench) -> None:
    """pixcam killed and started again (as systemd does after a crash): its keeper (keeper.py)
    writes the last card from the standard library alone, long before the heavy imports are
    done, so the page's track never goes 10 s without a frame and carries the new pixcam."""
    page = bench.page
    bench.ensure_daemon()  # (started by the first test; here too when run alone)
    if page.command("stats").get("ready_state") != "live":
        if "pixcam" not in page.labels():  # run alone: no getUserMedia yet shows no labels
            page.command("grant", timeout=START_DEADLINE_S)
        open_pixcam(bench)
    wait_kind(bench, "color", START_DEADLINE_S)
    page.command("mark")
    bench.kill_daemon()
    killed = time.monotonic()
    time.sleep(RESTART_DELAY_S)
    bench.start_daemon()
    # The device side: someone writes again once the node stops offering OUTPUT.
    written = timed(lambda: not v4l2caps.query(bench.output).can_output, START_DEADLINE_S,
                    "a writer on the virtual camera", step=0.2)  # fmt: skip

    def flowing_or_ended() -> bool:
        s = page.command("stats")
        return bench.logged_at("virtual camera") is not None or s["ready_state"] == "ended"

    timed(flowing_or_ended, START_DEADLINE_S, "the new pixcam's sink or the end of the track")
    # A few frames of the new sink's own, through the same track.
    time.sleep(2.0)
    after = page.command("stats")
    clock = bench.page_clock()

    def since_kill(page_ms: float) -> float:
        return page_ms / 1e3 + clock - killed

    def logged(text: str) -> str:
        at = bench.logged_at(text)
        return "-" if at is None else f"{at - killed:.1f}"

    # "keeper: held DEV for S s ..." is logged at the hand-over: its first card came S s before.
    held = re.search(r"keeper: held \S+ for ([\d.]+) s", bench.log(400))
    handed = bench.logged_at("keeper: held")
    keeper_from = (
        "-" if held is None or handed is None else f"{handed - float(held[1]) - killed:.1f}"
    )
    gaps = [(round(since_kill(at - gap), 1), round(gap / 1e3, 2)) for at, gap in after["gaps"]]
    survived = after["ready_state"] == "live"
    measured(
        f"browser: restart (after {RESTART_DELAY_S:g} s), s after the kill: a writer on the "
        f"device {written - killed:.1f}, the new pixcam keeper's first card {keeper_from} "
        f"(its command line parsed {logged('keeper: holding')}), its sink "
        f"{logged('virtual camera')}, "
        f"model loaded {logged('pixcam running')}; the page's gaps over 0.5 s (start, "
        f"length s): {gaps}, largest {after['max_gap_ms'] / 1e3:.1f} s; same track "
        + ("kept" if survived else f"ENDED {since_kill(after['ended_ms']):.1f}")
    )
    assert survived, (
        f"the track ended: the page got no frame for {CHROMIUM_TRACK_TIMEOUT_S:g} s across the "
        f"restart; page {after}\n{bench.log()}"
    )
    assert held is not None, f"the keeper never held the virtual camera:\n{bench.log(400)}"
    assert after["max_gap_ms"] < CHROMIUM_TRACK_TIMEOUT_S * 1e3, after
    wait_kind(bench, "color", START_DEADLINE_S)
    measured(
        f"browser: pixcam killed and restarted while watched: largest gap on the page "
        f"{after['max_gap_ms'] / 1e3:.1f} s, composited again {time.monotonic() - killed:.1f} s "
        "after the kill, same track"
    )


def test_mode_changes_while_watched(bench: Bench) -> None:
    page = bench.page
    if page.command("stats").get("ready_state") != "live":
        open_pixcam(bench)
    wait_kind(bench, "color", START_DEADLINE_S)
    assert bench.daemon is not None
    groups = {"pixcam": bench.daemon.popen.pid, "chromium": page.pgid}
    with CpuLoad(groups) as load:
        changes_while_watched(bench, load)


def changes_while_watched(bench: Bench, load: CpuLoad) -> None:
    page = bench.page
    # The same stream with nothing changing first: what emulation alone does to the gaps.
    quiet_from = time.monotonic()
    quiet = watch_quiet(bench, QUIET_S)
    quiet_daemon_ms = bench.daemon_gap_ms
    quiet_stall = bench.longest_without_new_frame(quiet_from)
    quiet_cores = load.cores(quiet_from, time.monotonic())

    changes_from = time.monotonic()
    page.command("mark")
    bench.daemon_gap_ms = 0.0
    clock = bench.page_clock()
    changes, asked_at = [], []
    for args, want in (
        (("set", "effects.background", "image"), "image"),
        (("set", "effects.background", "color"), "color"),
        (("pause",), "idle"),
    ):
        asked = time.monotonic()
        asked_at.append(asked)
        bench.ctl(*args)
        _, seen = wait_kind(bench, want, START_DEADLINE_S, watch_gap=True)
        changes.append(f"{want} after {time.monotonic() - asked:.1f} s")
    bench.watch_gap()
    stall = bench.longest_without_new_frame(changes_from)
    stats = page.command("stats")
    assert stats["ready_state"] == "live", stats
    daemon_gap_ms, took = bench.daemon_gap_ms, time.monotonic() - changes_from
    quiet_page_ms, quiet_s = quiet["max_gap_ms"], QUIET_S
    if took > QUIET_S:
        # The page's reference over as long as the changes took: the same stream again.
        bench.ctl("resume")
        wait_kind(bench, "color", START_DEADLINE_S)
        quiet_page_ms = max(quiet_page_ms, watch_quiet(bench, took - QUIET_S)["max_gap_ms"])
        quiet_s = took
    gaps = [(round(at / 1e3 + clock - asked_at[0], 1), round(gap / 1e3, 2))
            for at, gap in stats["gaps"]]  # fmt: skip
    # Cores used during each of the page's gaps, against the calm stream's.
    gap_cores = [f"{gap / 1e3:.1f} s: {load.cores(at / 1e3 + clock - gap / 1e3, at / 1e3 + clock)}"
                 for at, gap in stats["gaps"] if gap >= 1000]  # fmt: skip
    changes_cores = load.cores(asked_at[0], changes_from + took)
    measured(
        f"browser: cores used with nothing changing: {quiet_cores}; during the page's gaps "
        f"over 1 s: {gap_cores}; over all the changes: {changes_cores}"
    )
    measured(
        f"browser: mode changes seen ({', '.join(changes)}); largest gap between frames: "
        f"page {stats['max_gap_ms'] / 1e3:.2f} s, pixcam out {daemon_gap_ms / 1e3:.2f} s; "
        f"with no change for {QUIET_S:.0f} s before: page {quiet['max_gap_ms'] / 1e3:.2f} s "
        f"({quiet_page_ms / 1e3:.2f} s over {quiet_s:.0f} s quiet in all), "
        f"pixcam out {quiet_daemon_ms / 1e3:.2f} s; longest without a new frame made: "
        f"{stall:.1f} s, with no change {quiet_stall:.1f} s; page gaps over 0.5 s (s after the "
        f"first change, s): {gaps}; changes asked at "
        f"{[round(t - asked_at[0], 1) for t in asked_at]}"
    )
    # Under emulation the same stream already has gaps over 1 s with nothing changing (the
    # VM's scheduling, for pixcam's keep-alive and more so for Chromium): a change may not
    # add to them. pixcam's frames out (the keep-alive's repeats included): what a watcher
    # gets from pixcam. The page's add Chromium's scheduling on a shared host (1.3 s seen
    # while pixcam's never passed 0.6 s), hence its wider margin and its floor: it still
    # catches a stream that stops for seconds (a paused worker, a reopened device). New
    # frames made: a frame thread waiting on a change (an image decoded or a model loaded on
    # it: tens of seconds here) would stop them while the keep-alive's repeats go on.
    for what, gap, calm, slack, floor in (
        ("pixcam out", daemon_gap_ms, quiet_daemon_ms, CALM_SLACK_S, MAX_GAP_S),
        ("the page", stats["max_gap_ms"], quiet_page_ms, PAGE_SLACK_S, PAGE_FLOOR_S),
    ):
        bound = max(floor * 1e3, calm + slack * 1e3)
        assert gap <= bound, f"{what}: {gap:.0f} ms without a frame; {stats}\n{bench.log()}"
    assert stall <= max(2 * quiet_stall, quiet_stall + STALL_SLACK_S), (
        f"pixcam made no new frame for {stall:.1f} s during the changes ({quiet_stall:.1f} s "
        f"with none):\n{bench.log()}"
    )
