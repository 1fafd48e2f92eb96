"""Is there a tray host to show the icon? One probe for the tray's warning and `pixcam doctor`.

A StatusNotifier watcher on the session bus (KDE, GNOME's AppIndicator extension, most
panels) or an XEmbed system tray on the X display (older panels) can show the icon.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping

SNI_WATCHER = "org.kde.StatusNotifierWatcher"


def _dbus_has_name(name: str) -> bool | None:
    """Does the session bus have `name`? None when it cannot be asked."""
    tool = shutil.which("dbus-send")
    if tool is None:
        return None
    try:
        res = subprocess.run(
            [
                tool,
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                f"string:{name}",
            ],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    if res.returncode != 0:
        return None
    return "boolean true" in res.stdout


def _xembed_tray(display: str) -> bool | None:
    """Is there an XEmbed system tray on `display`? None when python-xlib is missing."""
    try:
        from Xlib import display as xdisplay
    except ImportError:
        return None
    try:
        d = xdisplay.Display(display)
    except Exception:
        return False
    try:
        atom = d.intern_atom(f"_NET_SYSTEM_TRAY_S{d.get_default_screen()}")
        return d.get_selection_owner(atom) != 0
    finally:
        d.close()


def tray_host(environ: Mapping[str, str]) -> tuple[bool | None, bool | None]:
    """(StatusNotifier watcher, XEmbed tray) for the session in `environ`; None = can't tell."""
    sni = _dbus_has_name(SNI_WATCHER) if environ.get("DBUS_SESSION_BUS_ADDRESS") else None
    display = environ.get("DISPLAY", "")
    xembed = _xembed_tray(display) if display else None
    return sni, xembed
