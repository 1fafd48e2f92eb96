"""Headless Firefox ESR with its real V4L2 capture, showing the same test page as Chromium
(browser_page.html, which counts frames on a <video> where MediaStreamTrackProcessor is
missing). Each page is a new Firefox process with a fresh profile: Firefox reads its camera
list once per process, which is what test_firefox_obs_vm.py shows.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from chromium_page import BrowserPage

FIREFOX_NAMES = ("firefox-esr", "firefox")
# The profile's prefs: cameras without a prompt (what a user allows once), the real V4L2
# devices (no fake stream, not the PipeWire portal), and a quiet offline start.
PREFS = {
    "media.navigator.permission.disabled": True,
    "media.navigator.streams.fake": False,
    "media.webrtc.camera.allow-pipewire": False,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "media.block-autoplay-until-in-foreground": False,
    "media.suspend-bkgnd-video.enabled": False,
    # A headless window may never count as focused: camera calls must not wait for focus.
    "media.devices.unfocused.enabled": True,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "extensions.update.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "media.gmp-manager.url": "http://127.0.0.1:9/",
    "services.settings.server": "http://127.0.0.1:9/",
    "browser.sessionstore.resume_from_crash": False,
    # Fewer processes on the VM's 2 vCPUs; a headless page keeps its timers at full speed.
    "dom.ipc.processPrelaunch.enabled": False,
    "dom.ipc.processCount": 1,
    "dom.min_background_timeout_value": 4,
    "dom.timeout.enable_budget_timer_throttling": False,
}
# The VM runs its command in a chroot that refuses CLONE_NEWUSER, so Firefox's child-process
# sandboxes cannot start; camera capture runs in the (unsandboxed) parent process anyway.
NO_SANDBOX = {
    f"MOZ_DISABLE_{name}_SANDBOX": "1"
    for name in ("CONTENT", "RDD", "SOCKET_PROCESS", "GMP", "UTILITY")
}


# Firefox's camera side (which devices it enumerated, when): read on a failure.
MOZ_LOG = "timestamp,MediaManager:4,CamerasParent:4,CamerasChild:4"


CAMERA_LINES = r"(?i)device|capture|enumerat|NotFound|camera"


def find_firefox() -> str | None:
    return next((p for p in map(shutil.which, FIREFOX_NAMES) if p), None)


def _pref(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int) else f'"{value}"'


class FirefoxPage(BrowserPage):
    """A new headless Firefox process, fresh profile, showing the test page."""

    def __init__(
        self, firefox: str, workdir: Path, name: str = "firefox", prefs: dict | None = None
    ) -> None:
        """`prefs` adds to PREFS (media.navigator.streams.fake for a dry run on a host)."""

        def launch(url: str, profile: Path) -> tuple[list[str], dict[str, str]]:
            all_prefs = {**PREFS, **(prefs or {})}
            (profile / "user.js").write_text(
                "".join(f'user_pref("{k}", {_pref(v)});\n' for k, v in all_prefs.items())
            )
            env = {**os.environ, **NO_SANDBOX, "MOZ_CRASHREPORTER_DISABLE": "1",
                   "MOZ_LOG": MOZ_LOG, "MOZ_LOG_FILE": str(workdir / f"{name}.moz")}  # fmt: skip
            env.pop("DISPLAY", None)
            argv = [firefox, "--headless", "--no-remote", "--new-instance", "--profile",
                    str(profile), url]  # fmt: skip
            return argv, env

        super().__init__(name, workdir, launch)
        self._workdir, self._name = workdir, name

    def camera_log(self, n: int = 25) -> str:
        """The last lines of Firefox's own log about cameras (all its processes)."""
        lines: list[str] = []
        for path in sorted(self._workdir.glob(f"{self._name}.moz*")):
            text = path.read_text(errors="replace")
            lines += [ln for ln in text.splitlines() if re.search(CAMERA_LINES, ln)]
        return "\n".join(lines[-n:]) or "(no camera lines in Firefox's log)"
