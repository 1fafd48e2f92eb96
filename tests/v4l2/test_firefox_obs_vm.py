"""Firefox ESR and OBS Studio as consumers of the on-demand daemon, beside Chromium
(test_browser_vm.py), on the same 640x360 presenter clip and with the same checks of the
picture (border magenta, torso kept).

In order, sharing one daemon (each program's start costs a minute under emulation):
1. a Firefox started while nobody writes: no "pixcam" (an output-only loopback is no camera);
   pixcam starts after it: that Firefox still does not list it (it keeps the camera list it
   first read; `pixcam doctor` says so), a new Firefox process does;
2. the new Firefox opens "pixcam" at 640x360 and receives the composite;
3. OBS's V4L2 source on pixcam's device (a scene written as a config file) shows it;
4. pixcam killed and restarted while both watch: both get the composite again on the same
   track / source.
Where Firefox or OBS is not installed the tests skip with the reason. Times are measured,
never asserted: under emulation they stretch 12-22x, more on a busy host (docs/consumers.md).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from firefox_page import FirefoxPage, find_firefox
from obs_studio import ObsStudio, find_obs
from test_browser_vm import (
    CLIP_FRAMES,
    CLIP_START_S,
    CLIP_VF,
    PRESENTER,
    RESTART_DELAY_S,
    START_DEADLINE_S,
    Bench,
    H,
    W,
    fractions,
    kind_of,
    open_pixcam,
    timed,
    wait_kind,
)
from v4l2_helpers import FPS, feed, make_raw_clip, measured, wait_for

from pixcam.tools import doctor
from pixcam.video import v4l2caps

# A browser's or OBS's start under emulation: Firefox 76 s on a quiet host, 167-402 s on one
# loaded by other work.
PROGRAM_START_S = 600.0
# ffmpeg's start under emulation until it streams into the "Camera" loopback (1-3 s quiet).
FEED_START_S = 120.0
# The mean change (0-255) between two looks at a live picture of the moving clip; a frozen
# one changes by 0 (the live composite: 5-7).
MOVED = 0.5
# OBS's V4L2 source logs this each time select() waits longer than 5 frame periods of the
# rate the device advertises.
OBS_TIMEOUT = "select timed out"


@dataclass
class Consumers:
    bench: Bench
    firefox: str
    work: Path
    obs: ObsStudio | None = None
    pages: list[FirefoxPage] = field(default_factory=list)
    started: int = 0  # Firefox processes so far (each has its own logs)

    def new_firefox(self) -> FirefoxPage:
        self.started += 1
        page = FirefoxPage(self.firefox, self.work, name=f"firefox-{self.started}")
        self.pages.append(page)
        return page


@pytest.fixture(scope="module")
def consumers(
    tmp_path_factory: pytest.TempPathFactory,
    camera_dev: str,
    pixcam_dev: str,
    models_installed: Path,
) -> Iterator[Consumers]:
    firefox = find_firefox()
    if firefox is None:
        pytest.skip("Firefox is not installed; on Debian: apt-get install firefox-esr")
    work = tmp_path_factory.mktemp("firefox-obs")
    raw = make_raw_clip(
        work / "clip.yuyv", CLIP_FRAMES, video=PRESENTER, vf=CLIP_VF, start_s=CLIP_START_S
    )
    with (
        feed(raw, camera_dev, work / "feed.log", size=(W, H)) as camera,
        contextlib.ExitStack() as stack,
    ):
        # Firefox keeps the camera list it first reads: the "physical camera" must be one (its
        # writer streaming, exclusive_caps=1) before any Firefox starts.
        wait_for(
            lambda: v4l2caps.query(camera_dev).can_capture or not camera.alive(),
            FEED_START_S,
            f"the camera feed on {camera_dev}",
        )
        assert camera.alive(), f"the camera feed ended:\n{camera.tail()}"
        c = Consumers(None, firefox, work)  # type: ignore[arg-type]
        stack.callback(lambda: [p.close() for p in c.pages])
        stack.callback(lambda: c.obs.close() if c.obs else None)
        # The first test starts a Firefox, then the daemon; the page follows the newest Firefox.
        c.bench = Bench(None, work, camera_dev, pixcam_dev)  # type: ignore[arg-type]
        stack.callback(c.bench.close)
        yield c
    for dev in (camera_dev, pixcam_dev):
        wait_for(lambda d=dev: not v4l2caps.query(d).can_capture, 60, f"{dev} to be released")


def diagnose(c: Consumers, page: FirefoxPage, answer: object) -> str:
    """What a Firefox that did not see the expected cameras had to go on."""
    devices = {d: v4l2caps.query(d) for d in (c.bench.camera, c.bench.output)}
    return (
        f"Firefox answered {answer}; devices now {devices}; pixcam: {c.bench.log(8)}\n"
        f"Firefox's camera log:\n{page.camera_log()}\nFirefox:\n{page.tail(15)}"
    )


def firefox_check(c: Consumers) -> doctor.Check:
    assert c.bench.daemon is not None
    (check,) = doctor.check_firefox(doctor.Env(), c.bench.daemon.popen.pid)
    return check


def test_firefox_lists_pixcam_only_if_pixcam_ran_first(
    consumers: Consumers, pixcam_dev: str
) -> None:
    c, bench = consumers, consumers.bench
    t0 = time.monotonic()
    bench.page = early = c.new_firefox()  # before pixcam runs
    early.wait_loaded(PROGRAM_START_S)
    measured(f"firefox: start to page loaded {time.monotonic() - t0:.1f} s")
    # Labels appear after one getUserMedia; with no pixcam running it can only pick "Camera".
    granted = early.command("grant", timeout=START_DEADLINE_S)
    assert granted.get("label") == "Camera", diagnose(c, early, granted)
    assert not v4l2caps.query(pixcam_dev).can_capture
    no_writer = early.labels()
    assert "Camera" in no_writer and "pixcam" not in no_writer, no_writer

    bench.ensure_daemon()  # its idle card makes the node a capture device
    assert v4l2caps.query(pixcam_dev).can_capture
    # The same Firefox asked again, and after a new getUserMedia: its list is the one it read.
    looks = [early.labels()]
    time.sleep(3)
    looks.append(early.labels())
    early.command("grant", timeout=START_DEADLINE_S)
    looks.append(early.labels())
    stale = ["pixcam" in labels for labels in looks]
    warned = firefox_check(c)
    measured(
        f"firefox: listed with no writer: no; the Firefox started before pixcam, asked 3 times "
        f"after pixcam started (the last after a new getUserMedia): {stale}; "
        f"doctor: {warned.line()}"
    )
    assert warned.status is doctor.Status.WARN and "restart Firefox" in warned.fix, warned

    # A Firefox started now lists pixcam.
    early.close()
    c.pages.remove(early)
    t0 = time.monotonic()
    bench.page = late = c.new_firefox()
    late.wait_loaded(PROGRAM_START_S)
    measured(f"firefox: a second Firefox, start to page loaded {time.monotonic() - t0:.1f} s")
    granted = late.command("grant", timeout=START_DEADLINE_S)
    listed = late.labels()
    assert "pixcam" in listed, diagnose(c, late, {"grant": granted, "listed": listed})
    assert firefox_check(c).status is doctor.Status.OK
    measured(f"firefox: a Firefox started after pixcam lists {listed}; doctor: ok")


def test_firefox_receives_the_composite(consumers: Consumers) -> None:
    bench = consumers.bench
    bench.ensure_daemon()
    asked = time.monotonic()
    res = open_pixcam(bench)
    settings = res["settings"]
    assert (settings["width"], settings["height"]) == (W, H), settings
    frame, seen = wait_kind(bench, "color", START_DEADLINE_S)
    composited = time.monotonic()
    stats = bench.page.command("stats")
    shares = [fractions(frame)]
    for _ in range(2):
        time.sleep(1)
        frame, _ = bench.page.frame()
        assert kind_of(frame, bench.image_bg) == "color", fractions(frame)
        shares.append(fractions(frame))
    measured(
        f"firefox: getUserMedia {res['gum_ms'] / 1e3:.1f} s (settings {settings['width']}x"
        f"{settings['height']} at {settings.get('frameRate')} fps), first frame "
        f"{(stats['first_frame_ms'] - res['resolved_ms']) / 1e3:.1f} s after it ({seen[0]}), "
        f"first composite {composited - asked:.1f} s after asking; magenta {'; '.join(shares)}"
    )


def obs_kinds(c: Consumers, want: str, deadline_s: float) -> tuple[np.ndarray, list[str]]:
    """OBS's source pictures until one is `want`; returns it and the kinds seen on the way."""
    assert c.obs is not None
    seen: list[str] = []
    end = time.monotonic() + deadline_s
    while True:
        frame = c.obs.frame()
        seen.append("none" if frame is None else kind_of(frame, c.bench.image_bg))
        if frame is not None and seen[-1] == want:
            return frame, seen
        assert time.monotonic() < end, (
            f"OBS never showed {want!r} in {deadline_s:.0f} s; saw {seen[-8:]}, last "
            f"{'-' if frame is None else fractions(frame)}; pixcam: {c.bench.status()['pipeline']}"
            f"\n{c.bench.log(15)}\nOBS:\n{c.obs.tail()}"
        )
        time.sleep(1.0)


def obs_rate(c: Consumers) -> str:
    """The frame rate OBS read from the device ("30.00"), from its log."""
    assert c.obs is not None
    rates = re.findall(r"Framerate: ([\d.]+) fps", c.obs.log_text())
    return rates[-1] if rates else "?"


def test_obs_shows_the_composite(consumers: Consumers) -> None:
    c = consumers
    obs = find_obs()
    if obs is None:
        pytest.skip("OBS Studio is not installed; on Debian: apt-get install obs-studio xvfb")
    c.bench.ensure_daemon()
    # After the browsers: a program's start under emulation slows every other one a lot.
    c.obs = ObsStudio(obs, c.bench.output, c.work)
    c.obs.connect(PROGRAM_START_S)
    connected = time.monotonic() - c.obs.started
    devices = c.obs.devices()
    assert any(d.startswith("pixcam") for d in devices), devices
    first = timed(lambda: c.obs is not None and c.obs.frame() is not None, START_DEADLINE_S,
                  "a first picture from OBS's source", step=1.0)  # fmt: skip
    frame, seen = obs_kinds(c, "color", START_DEADLINE_S)
    composited = time.monotonic()
    streaming_from = c.obs.log_text().count(OBS_TIMEOUT)
    shares, pictures = [fractions(frame)], [frame]
    for _ in range(2):
        time.sleep(3)
        frame, _ = obs_kinds(c, "color", START_DEADLINE_S)
        shares.append(fractions(frame))
        pictures.append(frame)
    moved = [
        float(np.abs(a.astype(np.int16) - b).mean())
        for a, b in zip(pictures, pictures[1:], strict=False)
    ]
    log = c.obs.log_text()
    negotiated = [
        ln.split("]", 1)[-1].strip()
        for ln in log.splitlines()
        if "v4l2-input" in ln and re.search(r"Resolution|Pixelformat|Framerate", ln)
    ]
    timeouts = log.count(OBS_TIMEOUT) - streaming_from
    pipeline = c.bench.status()["pipeline"]
    measured(
        f"obs: start to obs-websocket {connected:.1f} s, first picture "
        f"{first - c.obs.started:.1f} s, first composite {composited - c.obs.started:.1f} s "
        f"after its start (seen {seen[:6]}); devices {devices}; negotiated {negotiated[-4:]}; "
        f"magenta {'; '.join(shares)}; mean change between looks {[round(m, 1) for m in moved]}; "
        f"'{OBS_TIMEOUT}' while streaming: {timeouts} (advertised {obs_rate(c)} fps, pixcam "
        f"writes at most {FPS}; pixcam's largest gap out in the last 10 s "
        f"{pipeline['largest_gap_ms']} ms, {pipeline['repeated']} repeats)"
    )
    assert all(m > MOVED for m in moved), f"OBS's picture did not change: {moved}"
    # OBS reads the rate pixcam writes from the device (its select timeout is 5 periods of
    # it). Its timeouts are counted, not asserted: under emulation pixcam's own output has
    # gaps longer than that (its largest is in the line above), a matter of speed.
    assert obs_rate(c) == f"{FPS:.2f}", f"OBS read {obs_rate(c)} fps; pixcam writes {FPS}"


def fresh_composite(bench: Bench, after_frames: int, deadline_s: float) -> list[str]:
    """Looks at the page until it shows the composite in a frame that came after the first
    `after_frames` (a frozen picture shows the last composite too); the kinds seen."""
    seen: list[str] = []
    end = time.monotonic() + deadline_s
    while True:
        frame, info = bench.page.frame()
        seen.append(kind_of(frame, bench.image_bg))
        if info["frames"] > after_frames and seen[-1] == "color":
            return seen
        assert time.monotonic() < end and info["ready_state"] == "live", (
            f"no new composite on the page in {deadline_s:.0f} s; saw {seen[-8:]}; page: "
            f"{bench.page.command('stats')}\n{bench.log()}"
        )
        time.sleep(1.0)


def live_obs_composite(c: Consumers, deadline_s: float) -> list[str]:
    """OBS's source pictures until two in a row are the composite and differ (the source
    keeps showing the last frame it got: a frozen composite does not change)."""
    seen: list[str] = []
    end = time.monotonic() + deadline_s
    before = None
    while True:
        frame, kinds = obs_kinds(c, "color", max(1.0, end - time.monotonic()))
        seen += kinds
        fresh = len(kinds) == 1 and before is not None
        if fresh and float(np.abs(frame.astype(np.int16) - before).mean()) > MOVED:
            return seen
        assert time.monotonic() < end, f"OBS's composite never moved in {deadline_s:.0f} s"
        before = frame
        time.sleep(1.0)


def test_restart_while_firefox_and_obs_watch(consumers: Consumers) -> None:
    """pixcam killed and started again while Firefox holds the track and OBS shows the source:
    the keeper's card bridges the gap, the new pixcam counts both as consumers and turns its
    camera on, and its composite arrives on the same track and the same source."""
    c, bench = consumers, consumers.bench
    page = bench.page
    if page.command("stats").get("ready_state") != "live":
        open_pixcam(bench)
    wait_kind(bench, "color", START_DEADLINE_S)
    watching_obs = c.obs is not None and c.obs.ws is not None
    timeouts_before = c.obs.log_text().count(OBS_TIMEOUT) if c.obs else 0
    page.command("mark")
    bench.kill_daemon()
    killed = time.monotonic()
    time.sleep(RESTART_DELAY_S)
    daemon = bench.start_daemon()
    # Nobody opens the device anew: the new pixcam finds its consumers by its /proc scan.
    on = timed(lambda: bench.logged_at("camera on") is not None or not daemon.alive(),
               START_DEADLINE_S, "the new pixcam to turn its camera on", step=0.5)  # fmt: skip
    assert daemon.alive(), bench.log()
    held = re.search(r"keeper: held \S+ for ([\d.]+) s", bench.log(400))
    assert held is not None, f"the keeper never held the virtual camera:\n{bench.log(400)}"
    seen = fresh_composite(bench, page.command("stats")["frames"], START_DEADLINE_S)
    firefox_back = time.monotonic() - killed
    stats = page.command("stats")
    # Firefox's reader waits on without a limit (no track timeout like Chromium's 10 s): the
    # gap is measured, the track must stay the same one.
    assert stats["ready_state"] == "live", stats
    line = (
        f"restart while watched: the new pixcam's camera on {on - killed:.1f} s after the kill "
        f"(keeper held the device {held[1]} s); firefox same track (events "
        f"{[e['type'] for e in stats['events']]}), largest gap {stats['max_gap_ms'] / 1e3:.1f} s,"
        f" new composite {firefox_back:.1f} s after the kill (saw {sorted(set(seen))})"
    )
    if watching_obs:
        obs_seen = live_obs_composite(c, START_DEADLINE_S)
        log = c.obs.log_text()  # type: ignore[union-attr]
        line += (
            f"; obs same source, new composite {time.monotonic() - killed:.1f} s after the "
            f"kill (saw {sorted(set(obs_seen))}), '{OBS_TIMEOUT}' "
            f"{log.count(OBS_TIMEOUT) - timeouts_before} times meanwhile, "
            f"{log.count(OBS_TIMEOUT)} in all"
        )
    measured(line)
