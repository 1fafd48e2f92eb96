"""`pixcam doctor`'s PipeWire checks: is PipeWire (and WirePlumber) running, can pixcam
publish a camera node, is the Camera portal there, and which apps will see which device."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from pixcam.tools.doctor import Check, Status
from pixcam.video import outputs, pipewire_sink

PORTAL_CAMERA = "org.freedesktop.portal.Camera"
# Who reads what (their code and issue threads, late 2026): see README "Who sees pixcam".
SEES_LOOPBACK = "Zoom, Discord, Slack, Chrome/Chromium, Firefox (not Fedora's), OBS (V4L2)"
SEES_PIPEWIRE = (
    "Fedora's Firefox, OBS 30.1+ (PipeWire capture), GNOME Snapshot; behind a switch: "
    "Firefox (media.webrtc.camera.allow-pipewire), Chromium/Chrome (WebRtcPipeWireCamera)"
)


def _run(argv: list[str], timeout: float = 3.0) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _clients() -> list[str] | None:
    out = _run(["pw-dump"])
    if out is None:
        return None
    try:
        objects: list[dict[str, Any]] = json.loads(out)
    except ValueError:
        return None
    return [
        str(o.get("info", {}).get("props", {}).get("application.name", ""))
        for o in objects
        if o.get("type") == "PipeWire:Interface:Client"
    ]


def check_portal() -> Check:
    out = _run(
        [
            "gdbus", "introspect", "--session", "--dest", "org.freedesktop.portal.Desktop",
            "--object-path", "/org/freedesktop/portal/desktop",
        ]
    )  # fmt: skip
    if out is None:
        return Check(
            "camera portal",
            Status.WARN,
            "xdg-desktop-portal does not answer on the session bus (or gdbus is missing)",
            "sandboxed apps (Flatpak, Snap) and Firefox find PipeWire cameras through it: "
            "sudo apt install xdg-desktop-portal xdg-desktop-portal-gtk",
        )
    if PORTAL_CAMERA not in out:
        return Check(
            "camera portal",
            Status.WARN,
            "xdg-desktop-portal runs but offers no Camera interface",
            "update xdg-desktop-portal (1.8 or later has the Camera portal)",
        )
    return Check("camera portal", Status.OK, "xdg-desktop-portal offers the Camera portal")


def check_pipewire(backend: str) -> list[Check]:
    """PipeWire's checks for `[output] backend` (a FAIL only when it is "pipewire")."""
    needed = backend in ("pipewire", "both")
    bad = Status.FAIL if backend == "pipewire" else Status.WARN
    checks: list[Check] = []
    if pipewire_sink.pipewire_socket() is None:
        checks.append(
            Check(
                "pipewire",
                bad if needed else Status.WARN,
                "PipeWire is not running in this session: no PipeWire camera",
                "log in to a desktop session with PipeWire (Fedora, Ubuntu 22.10+, Debian 12 "
                "GNOME), or: systemctl --user enable --now pipewire wireplumber",
            )
        )
    else:
        clients = _clients()
        wp = clients is not None and any("wireplumber" in c.lower() for c in clients)
        detail = "running" + (", WirePlumber manages it" if wp else "")
        checks.append(Check("pipewire", Status.OK, detail))
        if clients is not None and not wp:
            checks.append(
                Check(
                    "wireplumber",
                    Status.WARN,
                    "no WirePlumber: nothing links cameras to apps",
                    "sudo apt install wireplumber; systemctl --user enable --now wireplumber",
                )
            )
    why = pipewire_sink.missing()
    if why and pipewire_sink.pipewire_socket() is not None:
        checks.append(Check("pipewire cam", bad, why))
    elif why is None:
        checks.append(Check("pipewire cam", Status.OK, "GStreamer's pipewiresink is there"))
    tools = pipewire_sink.tools_missing()
    if tools:
        checks.append(
            Check(
                "pipewire tools",
                bad if needed else Status.WARN,
                f"{', '.join(tools)} missing: the daemon can't tell when an app watches",
                "sudo apt install pipewire-bin (Fedora: pipewire-utils)",
            )
        )
    checks.append(check_portal())
    return checks


def who_sees(backend: str) -> Check:
    """Which apps will see pixcam with this backend, here."""
    chosen = outputs.resolve(backend)
    parts = []
    if chosen in ("v4l2loopback", "both"):
        parts.append(f"the /dev/video device: {SEES_LOOPBACK}")
    if chosen in ("pipewire", "both"):
        parts.append(f"the PipeWire node 'pixcam': {SEES_PIPEWIRE}")
    extra = " (a browser reading both lists pixcam twice)" if chosen == "both" else ""
    return Check("who sees it", Status.INFO, f"backend {chosen}: " + "; ".join(parts) + extra)
