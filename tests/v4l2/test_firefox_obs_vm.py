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
Where Firefox or OBS is not installed the tests skip with the reason. They do not pass yet in
the emulated VM (Firefox lists no camera, OBS's picture is never the composite): they run only
with PIXCAM_VM_CONSUMERS=1 until they do (docs/consumers.md).
"""

from __future__ import annotations

import contextlib
import os
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
    CHROMIUM_TRACK_TIMEOUT_S,
    CLIP_FRAMES,
    CLIP_START_S,
    CLIP_VF,
    PRESENTER,
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

pytestmark = pytest.mark.skipif(
    os.environ.get("PIXCAM_VM_CONSUMERS") != "1",
    reason="Firefox and OBS in the VM do not pass yet: PIXCAM_VM_CONSUMERS=1 runs them",
)

# A browser's or OBS's start under emulation: Firefox 76 s on a quiet host, 167-402 s on one
# loaded by other work.
PROGRAM_START_S = 600.0
# ffmpeg's start under emulation until it streams into the "Camera" loopback (1-3 s quiet).
FEED_START_S = 120.0
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

    def new_firefox(self) -> FirefoxPage:
        page = FirefoxPage(self.firefox, self.work, name=f"firefox-{len(self.pages) + 1}")
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
    measured(
        f"obs: start to obs-websocket {connected:.1f} s, first picture "
        f"{first - c.obs.started:.1f} s, first composite {composited - c.obs.started:.1f} s "
        f"after its start (seen {seen[:6]}); devices {devices}; negotiated {negotiated[-4:]}; "
        f"magenta {'; '.join(shares)}; mean change between looks {[round(m, 1) for m in moved]}; "
        f"'{OBS_TIMEOUT}' while streaming: {timeouts} (advertised {obs_rate(c)} fps, pixcam "
        f"writes at most {FPS})"
    )
    assert all(m > 0.5 for m in moved), f"OBS's picture did not change: {moved}"
    if obs_rate(c) not in ("?", "30.00"):  # pixcam advertises its own rate (issue 24)
        assert timeouts == 0, f"OBS timed out {timeouts} times:\n{c.obs.tail()}"


def test_restart_while_firefox_and_obs_watch(consumers: Consumers) -> None:
    """pixcam killed and started again while Firefox holds the track and OBS shows the source:
    the keeper's card bridges the gap, then the new pixcam's composite arrives on both."""
    c, bench = consumers, consumers.bench
    page = bench.page
    if page.command("stats").get("ready_state") != "live":
        open_pixcam(bench)
    wait_kind(bench, "color", START_DEADLINE_S)
    timeouts_before = c.obs.log_text().count(OBS_TIMEOUT) if c.obs else 0
    page.command("mark")
    bench.kill_daemon()
    killed = time.monotonic()
    bench.start_daemon()
    _, seen = wait_kind(bench, "color", START_DEADLINE_S)
    firefox_back = time.monotonic() - killed
    stats = page.command("stats")
    assert stats["ready_state"] == "live", stats
    assert stats["max_gap_ms"] < CHROMIUM_TRACK_TIMEOUT_S * 1e3, stats
    line = (
        f"restart while watched: firefox same track, largest gap {stats['max_gap_ms'] / 1e3:.1f}"
        f" s, composite again {firefox_back:.1f} s after the kill (saw {sorted(set(seen))})"
    )
    if c.obs is not None and c.obs.ws is not None:
        _, obs_seen = obs_kinds(c, "color", START_DEADLINE_S)
        log = c.obs.log_text()
        line += (
            f"; obs same source, composite again {time.monotonic() - killed:.1f} s after the "
            f"kill (saw {sorted(set(obs_seen))}), '{OBS_TIMEOUT}' "
            f"{log.count(OBS_TIMEOUT) - timeouts_before} times meanwhile, "
            f"{log.count(OBS_TIMEOUT)} in all"
        )
    measured(line)
