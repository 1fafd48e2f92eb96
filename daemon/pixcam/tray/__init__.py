"""The system tray icon and its menu (pystray, gtk or appindicator backend).

Every menu action goes through the daemon's `set()`, the same path as `pixcam ctl set`: the
value is validated and written to the config file (`config.set_value`), then handed to the
running pipeline, which applies it before the next frame.

pystray is imported lazily and any failure means "no tray": without a display, `import
pystray` raises Xlib's DisplayNameError (not an ImportError); without PyGObject it silently
falls back to its xorg backend, which has no menu and whose clicks never arrive (pystray
0.19.5), so that counts as "no tray" too. Without the AyatanaAppIndicator3 typelib pystray's
appindicator backend raises ValueError (it falls back only on ImportError): pixcam then asks
for its gtk backend (XEmbed trays). The daemon then runs headless and says so once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from PIL import Image, ImageDraw

from pixcam import paths
from pixcam.errors import PixcamError
from pixcam.modes import QUALITIES
from pixcam.tray.host import tray_host

log = logging.getLogger(__name__)

ICON_SIZE = 64
APP_ID = "pixcam"  # icon name, and GLib prgname: the tray window's WM_CLASS
STATES = ("active", "paused", "off", "error")
BLUR_STEPS = (("Light", 15), ("Medium", 40), ("Strong", 70), ("Maximum", 100))
RESOLUTIONS: tuple[tuple[int, str], ...] = (
    (0, "Model's own size"),
    (256, "256 px (fastest)"),
    (384, "384 px"),
    (512, "512 px"),
    (640, "640 px (sharpest)"),
)
# Quality ▸ presets (`[model] quality`), after the resolutions.
PRESETS = tuple((q, f"Preset: {q}") for q in QUALITIES)
# Body parts ▸ privacy: (label, parts.privacy, parts.privacy_parts); "none" keeps the parts.
PRIVACY_CHOICES: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("No privacy effect", "none", None),
    ("Blur face", "blur", ("face",)),
    ("Pixelate face", "pixelate", ("face",)),
    ("Blur face and hands", "blur", ("face", "hands")),
)
SYSTEM_BACKGROUNDS = Path("/usr/share/backgrounds")
MAX_SYSTEM_IMAGES = 40  # a menu of hundreds of wallpapers is unusable
STATE_POLL_S = 1.0  # how often the icon follows camera faults and on-demand changes
TITLE_MAX = 127  # tooltips longer than this are cut by some hosts
# The SNI icon (libayatana-appindicator) needs one of these typelibs; Debian/Ubuntu package.
INDICATOR_NAMESPACES = ("AyatanaAppIndicator3", "AppIndicator3")
INDICATOR_PACKAGE = "gir1.2-ayatanaappindicator3-0.1"


class TrayApp(Protocol):
    """What the tray needs from the daemon (which also implements `control.App`)."""

    @property
    def config(self) -> Any:
        """The Config the pipeline currently runs with."""
        ...

    @property
    def config_path(self) -> Path: ...

    @property
    def camera_paused(self) -> bool:
        """The user's "pause camera" switch (not the on-demand state)."""
        ...

    def set_many(self, values: Mapping[str, Any]) -> None:
        """Several keys validated together, written once, applied once."""
        ...

    def toggle(self) -> bool: ...

    def pause_camera(self, paused: bool) -> None: ...

    def tray_state(self) -> tuple[str, str]:
        """(one of STATES, a one-line tooltip)."""
        ...

    def quit(self) -> None: ...


# ------------------------------------------------------------------------------- icon
_COLOURS = {
    "active": (46, 160, 67),
    "paused": (120, 124, 130),
    "off": (33, 118, 210),
    "error": (211, 47, 47),
}


def icon_image(state: str, size: int = ICON_SIZE) -> Image.Image:
    """A camera glyph whose colour and badge show the state.

    active: green camera with a lens; paused: grey with pause bars; off (effects off, plain
    camera picture): blue; error: red with "!". Shape and colour differ, so the state reads
    also in monochrome panels.
    """
    s = size / 64
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    colour = _COLOURS[state]
    # camera body and the viewfinder wedge on the right
    d.rounded_rectangle((4 * s, 16 * s, 44 * s, 50 * s), radius=7 * s, fill=colour)
    d.polygon([(46 * s, 28 * s), (60 * s, 19 * s), (60 * s, 47 * s), (46 * s, 38 * s)], fill=colour)
    white = (255, 255, 255, 255)
    cx, cy = 24 * s, 33 * s
    if state == "paused":
        d.rectangle((cx - 8 * s, cy - 9 * s, cx - 3 * s, cy + 9 * s), fill=white)
        d.rectangle((cx + 3 * s, cy - 9 * s, cx + 8 * s, cy + 9 * s), fill=white)
    elif state == "error":
        d.rectangle((cx - 2.5 * s, cy - 11 * s, cx + 2.5 * s, cy + 3 * s), fill=white)
        d.ellipse((cx - 3 * s, cy + 6 * s, cx + 3 * s, cy + 12 * s), fill=white)
    else:
        d.ellipse((cx - 10 * s, cy - 10 * s, cx + 10 * s, cy + 10 * s), fill=white)
        d.ellipse((cx - 5 * s, cy - 5 * s, cx + 5 * s, cy + 5 * s), fill=colour)
        if state == "off":  # a slash: effects off
            d.line(
                (cx - 12 * s, cy + 12 * s, cx + 12 * s, cy - 12 * s), fill=white, width=round(3 * s)
            )
    return img


# ------------------------------------------------------------------------- menu choices
def _label(path: Path) -> str:
    return path.stem.replace("-", " ").replace("_", " ").capitalize()


def background_choices() -> list[tuple[str, str]]:
    """(label, effects.image value) for the user's and the bundled images.

    Bare file names, looked up by the compositor in the same folders, user's first; a name
    in both shows once (the user's copy wins there too).
    """
    seen: dict[str, str] = {}
    for folder in paths.background_dirs():
        for path in paths.background_images(folder):
            seen.setdefault(path.name, _label(path))
    return sorted(((label, name) for name, label in seen.items()), key=lambda c: c[0].lower())


def system_background_choices(root: Path = SYSTEM_BACKGROUNDS) -> list[tuple[str, str]]:
    """(label, absolute path) for the desktop's wallpapers, one folder level deep."""
    if not root.is_dir():
        return []
    found = paths.background_images(root)
    with contextlib.suppress(OSError):
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            found += paths.background_images(sub)
    return [(_label(p), str(p)) for p in found[:MAX_SYSTEM_IMAGES]]


def model_choices() -> list[tuple[str, str]]:
    """(label, model.name value): the default, then every installed model."""
    from pixcam import models

    try:
        default = models.default_model_name()
        installed = [m.name for m in models.list_models() if m.installed]
    except (PixcamError, OSError) as exc:  # a broken manifest must not kill the tray
        log.error("tray: can't list models: %s", exc)
        return [("Default", "default")]
    # The default's own name would be a second item selecting the very same model.
    others = [(name, name) for name in installed if name != default]
    return [(f"Default ({default})", "default")] + others


def tray_backend() -> str | None:
    """The pystray backend the tray will get: "appindicator" (StatusNotifier hosts, and
    XEmbed trays through its fallback), "gtk" (XEmbed trays only), or None without PyGObject
    or the Gtk 3 typelib (no tray). Looks at the typelibs only, loads nothing."""
    try:
        import gi

        repo = gi.Repository.get_default()
        if "3.0" not in repo.enumerate_versions("Gtk"):
            return None
        if any(repo.enumerate_versions(ns) for ns in INDICATOR_NAMESPACES):
            return "appindicator"
        return "gtk"
    except Exception:  # ImportError, a broken gi
        return None


def import_pystray() -> Any:
    """`import pystray`, on its gtk backend when no AppIndicator typelib is installed."""
    if "PYSTRAY_BACKEND" not in os.environ and tray_backend() == "gtk":
        # pystray would raise ValueError from gi.require_version instead of falling back.
        log.warning(
            "no AyatanaAppIndicator3 typelib: using the gtk tray icon (XEmbed trays only); "
            "for StatusNotifier panels: sudo apt install %s",
            INDICATOR_PACKAGE,
        )
        os.environ["PYSTRAY_BACKEND"] = "gtk"
    try:
        import pystray
    except ValueError:
        if os.environ.get("PYSTRAY_BACKEND") == "gtk":
            raise
        # A typelib that is listed but does not load: the same fallback, then again.
        os.environ["PYSTRAY_BACKEND"] = "gtk"
        for name in [m for m in sys.modules if m == "pystray" or m.startswith("pystray.")]:
            del sys.modules[name]
        import pystray
    return pystray


def shorten_title(text: str, limit: int = TITLE_MAX) -> str:
    """`text` within `limit` characters, cut only between words: the start and as much of
    the end as fits (a config error's hint is at its end), joined by "…"."""
    if len(text) <= limit:
        return text
    words = text.split(" ")
    head = [words[0]]
    tail: list[str] = []
    room = limit - len(words[0]) - 2  # " …"
    for word in reversed(words[1:]):
        if len(word) + 1 > room:
            break
        tail.insert(0, word)
        room -= len(word) + 1
    for word in words[1 : len(words) - len(tail)]:
        if len(word) + 1 > room:
            break
        head.append(word)
        room -= len(word) + 1
    short = " ".join([*head, "…", *tail])
    return short if len(short) <= limit else text[: limit - 1] + "…"  # one huge word


def default_config_text() -> str:
    """The documented default config (config/default.toml, shipped in the package) for a new
    user config file."""
    with contextlib.suppress(OSError):
        return resources.files("pixcam").joinpath("default.toml").read_text(encoding="utf-8")
    from pixcam.config import NEW_FILE_HEADER

    return NEW_FILE_HEADER


def ensure_config_file(path: Path) -> Path:
    """Create the user's config from default.toml if it does not exist yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # "x" (O_EXCL): never clobber a file another writer created meanwhile
        with contextlib.suppress(FileExistsError), open(path, "x", encoding="utf-8") as f:
            f.write(default_config_text())
            log.info("created %s from the defaults", path)
    return path


def launch(argv: list[str]) -> None:
    """Start a desktop helper (xdg-open) without waiting for it; reap it in a thread."""
    if shutil.which(argv[0]) is None:
        raise PixcamError(f"{argv[0]} not found; install xdg-utils or open {argv[-1]} yourself")
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # our Ctrl-C must not reach the editor
    )
    threading.Thread(target=proc.wait, name="pixcam-launch", daemon=True).start()


# ------------------------------------------------------------------------------- tray
class Tray:
    """Builds the icon and menu from the app's state; `start()` then `run()` (main thread)."""

    def __init__(
        self,
        app: TrayApp,
        *,
        on_ready: Callable[[], None] | None = None,
        launcher: Callable[[list[str]], None] = launch,
    ) -> None:
        self.app = app
        self._on_ready = on_ready
        self._launch = launcher
        self._pystray: Any = None
        self._icon: Any = None
        self._state: tuple[str, str] | None = None
        self._menu_key: tuple[Any, ...] | None = None  # what a rebuilt native menu shows
        self._items_key: tuple[Any, ...] | None = None  # the menu's variable lists, as built
        self._built_from: Any = None  # the pystray Menu the native menu was made from
        self._syncing = False  # in-place check updates (GTK activates the items it flips)
        self._shown_paused: bool | None = None  # the "Pause camera" check as last shown
        self._attention: bool | None = None  # the SNI status last set
        self._menu_pending = False  # a rebuild waits for the open menu to close
        self._action_error: str | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    # ---- lifecycle
    def start(self) -> bool:
        """Create the icon; False (logged once) when there is no usable display or backend."""
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            log.warning("no display: running without a tray icon (control it with `pixcam ctl`)")
            return False
        with contextlib.suppress(Exception):
            from gi.repository import GLib

            GLib.set_prgname(APP_ID)
        try:
            pystray = import_pystray()
        except Exception as exc:  # Xlib DisplayNameError/DisplayConnectionError, ImportError
            log.warning(
                "no tray icon (%s: %s); running headless, control it with `pixcam ctl`",
                type(exc).__name__,
                exc,
            )
            return False
        state = self._current_state()
        self._items_key = self._menu_items_key()
        icon = pystray.Icon(APP_ID, icon_image(state[0]), self._title(state), self._menu(pystray))
        # pystray rebuilds the native menu after every menu action, through this.
        icon.update_menu = lambda: self._update_native_menu(icon)
        if not getattr(icon, "HAS_MENU", False) or type(icon).__module__.endswith("_xorg"):
            log.warning(
                "no tray icon: the system tray needs PyGObject (pip install 'pixcam[tray]') "
                "and Gtk/AppIndicator typelibs; running headless, control it with `pixcam ctl`"
            )
            return False
        self._pystray, self._icon, self._state = pystray, icon, state
        self._menu_key = self._menu_signature(icon.menu)
        self._shown_paused = self.app.camera_paused
        return True

    def run(self) -> None:
        """Run the icon's main loop until stop(); call from the main thread."""
        assert self._icon is not None, "start() first"
        try:
            self._icon.run(setup=self._setup)
        except Exception as exc:
            # pystray 0.19.5: stop() makes run() raise GLib.Error from CloseNotification;
            # at start it means no session bus. Only the latter is worth a line.
            if not self._stopping.is_set():
                log.warning("tray icon failed (%s: %s); running headless", type(exc).__name__, exc)

    def stop(self) -> None:
        self._stopping.set()
        if self._icon is not None:
            with contextlib.suppress(Exception):
                self._icon.stop()

    def _setup(self, icon: Any) -> None:
        icon.visible = True
        if self._on_ready is not None:
            from gi.repository import GLib

            # pystray resets SIGINT to SIG_DFL when its loop starts; on_ready runs on the
            # main thread (GLib idle) where signal handlers may be installed again.
            GLib.idle_add(self._main_thread_ready)
        self._warn_if_no_host()
        threading.Thread(target=self._follow_state, name="pixcam-tray", daemon=True).start()

    def _main_thread_ready(self) -> bool:
        assert self._on_ready is not None
        self._on_ready()
        return False  # run once

    def _warn_if_no_host(self) -> None:
        """gtk/appindicator dock later when a tray appears; say once that none is there now."""
        if not any(tray_host(os.environ)):
            log.warning("no system tray found yet; the icon appears when one starts")

    def _follow_state(self) -> None:
        while not self._stopping.wait(STATE_POLL_S):
            self.poll()

    def poll(self) -> None:
        """Follow what changes without a settings change: camera faults and on-demand (the
        icon), `pixcam ctl pause` (the icon and the "Pause camera" check)."""
        self.refresh(menu=False)

    # ---- updates
    def _current_state(self) -> tuple[str, str]:
        if self._action_error:
            return "error", f"pixcam: {self._action_error}"
        try:
            return self.app.tray_state()
        except Exception as exc:  # the icon must keep working whatever the daemon does
            return "error", f"pixcam: {exc}"

    @staticmethod
    def _title(state: tuple[str, str]) -> str:
        return shorten_title(state[1])

    def refresh(self, menu: bool = True) -> None:
        """Follow the app's state: icon and tooltip when they change, the menu on request
        and whenever the pause switch differs from its check mark or a rebuild waits.

        Thread-safe: pystray's gtk backends schedule these on the GLib main loop.
        """
        icon = self._icon
        if icon is None or self._stopping.is_set():
            return
        with self._lock:
            state = self._current_state()
            if state != self._state:
                if self._state is None or state[0] != self._state[0]:
                    icon.icon = icon_image(state[0])
                icon.title = self._title(state)
                self._state = state
            self._set_attention(icon, state[0] == "error")
            # `pixcam ctl pause` changes no setting: the daemon asks for the icon only.
            menu = menu or self._menu_pending or self.app.camera_paused != self._shown_paused
            if not menu:
                return
            self._shown_paused = self.app.camera_paused
            items = self._menu_items_key()
            if items == self._items_key and _edits_in_place(icon):
                self._menu_pending = False
                icon.update_menu()  # the live menu's labels and check marks follow
                return
            # A new native menu closes the open one and briefly leaves the icon without a
            # menu (a click then is lost): only when the items changed (a new background or
            # model), or on backends whose menu can't be edited when something shown did.
            key = self._menu_signature(icon.menu)
            if items == self._items_key and key == self._menu_key:
                self._menu_pending = False
                return
            self._menu_pending = _menu_open(icon)  # poll() rebuilds it once it closes
            if self._menu_pending:
                return
            if items != self._items_key:
                self._items_key = items
                icon.menu = self._menu(self._pystray)  # → update_menu(): a new native menu
            else:
                icon.update_menu()
            self._menu_key = self._menu_signature(icon.menu)

    def _update_native_menu(self, icon: Any) -> None:
        """`icon.update_menu()`: the gtk backends' live menu is edited in place (the same
        Gtk.Menu stays up, so a click in it is never lost); a new pystray Menu, or another
        backend, gets pystray's own rebuild."""
        if icon.menu is not self._built_from or not _edits_in_place(icon):
            self._built_from = icon.menu
            icon._update_menu()
            return
        from gi.repository import GLib

        GLib.idle_add(self._show_state_in_native_menu, icon)

    def _show_state_in_native_menu(self, icon: Any) -> bool:
        """On the GLib loop: set the Gtk items' labels and check marks from the pystray
        items' current values; rebuild if the two menus no longer match."""
        handle = getattr(icon, "_menu_handle", None)
        if handle is not None:
            self._syncing = True
            try:
                matched = _show_in_gtk_menu(handle, icon.menu)
            finally:
                self._syncing = False
            if not matched:
                icon._update_menu()
        return False  # run once

    def _set_attention(self, icon: Any, attention: bool) -> None:
        """SNI Status NeedsAttention in the error state, so hosts highlight the item.

        Only the appindicator backend has an SNI status (libayatana-appindicator's
        ATTENTION, with the red icon as its attention icon); the gtk (XEmbed) one has none.
        """
        indicator = getattr(icon, "_appindicator", None)
        backend = sys.modules.get(type(icon).__module__)
        if attention == self._attention or indicator is None or backend is None:
            return
        self._attention = attention
        status = backend.AppIndicator.IndicatorStatus

        def apply() -> bool:
            # Queued after pystray's own icon update, so _icon_path is the red icon already.
            if attention:
                indicator.set_attention_icon_full(icon._icon_path, "pixcam error")
            if icon.visible:
                indicator.set_status(status.ATTENTION if attention else status.ACTIVE)
            return False

        from gi.repository import GLib

        GLib.idle_add(apply)

    # ---- menu
    @classmethod
    def _menu_signature(cls, menu: Any) -> tuple[Any, ...]:
        """Everything `menu` shows: each item's text and check mark, submenus included."""
        rows: list[Any] = []
        for item in getattr(menu, "items", ()):
            sub = item.submenu if hasattr(item, "submenu") else None
            if sub is None and hasattr(getattr(item, "action", None), "items"):
                sub = item.action  # test fakes keep a submenu as the action
            text = getattr(item, "text", None)
            checked = getattr(item, "checked", None)
            rows.append((text, checked, cls._menu_signature(sub) if sub is not None else None))
        return tuple(rows)

    def _act(self, fn: Callable[[], object]) -> Callable[[Any, Any], None]:
        """A menu callback: run `fn`, show a failure as the error state, refresh."""

        def action(_icon: Any, _item: Any) -> None:
            if self._syncing:
                return  # GTK activating an item whose check mark the tray set
            try:
                fn()
            except PixcamError as exc:
                log.error("%s", exc)
                self._action_error = str(exc).splitlines()[0]
            except Exception as exc:
                log.exception("tray action")
                self._action_error = f"{type(exc).__name__}: {exc}"
            else:
                self._action_error = None
            # GTK flipped the clicked item's check mark itself: this sets it right, whether
            # the choice took or failed.
            self.refresh()

        return action

    def _set(self, *pairs: tuple[str, Any]) -> Callable[[Any, Any], None]:
        return self._act(lambda: self.app.set_many(dict(pairs)))

    # The items live as long as the menu, so their check marks, labels and actions read the
    # state when they are shown or clicked, never when the menu was built.
    def _radio(
        self,
        pystray: Any,
        text: str | Callable[[Any], str],
        key: str,
        value: Any,
        *more: tuple[str, Any],
    ) -> Any:
        def chosen(_item: Any) -> bool:
            cfg = self.app.config
            return bool(cfg.get(key) == value and all(cfg.get(k) == v for k, v in more))

        # e.g. the image name and the background "image": one change
        return pystray.MenuItem(text, self._set(*more, (key, value)), checked=chosen, radio=True)

    def _switch(self, pystray: Any, text: str, key: str, on: Any = True, off: Any = False) -> Any:
        """A check item for `key`, checked when it holds `on`; a click sets the other value."""

        def is_on(_item: Any = None) -> bool:
            return bool(self.app.config.get(key) == on)

        return pystray.MenuItem(
            text, self._act(lambda: self.app.set_many({key: off if is_on() else on})), checked=is_on
        )

    def _menu_items_key(self) -> tuple[Any, ...]:
        """The menu's variable lists (backgrounds, models): a new menu when they change."""
        return (tuple(background_choices()), tuple(system_background_choices()), model_choices())

    def _menu(self, pystray: Any) -> Any:
        Item, Menu = pystray.MenuItem, pystray.Menu
        return Menu(
            # default=True: a left click (gtk) toggles the effects
            Item(
                "Effects",
                self._act(self.app.toggle),
                checked=lambda _i: self.app.config.effects.enabled,
                default=True,
            ),
            Item("Background", Menu(*self._background_items(pystray))),
            Item(
                "Blur strength",
                Menu(
                    *(
                        self._radio(pystray, f"{name} ({value})", "effects.blur_strength", value)
                        for name, value in BLUR_STEPS
                    )
                ),
            ),
            Item("Quality", Menu(*self._quality_items(pystray))),
            Item("Body parts", Menu(*self._parts_items(pystray))),
            self._switch(pystray, "Auto-frame", "framing.mode", "auto", "off"),
            self._switch(pystray, "Only me", "people.keep", "me", "all"),
            self._switch(pystray, "Mirror", "effects.mirror"),
            Item(
                "Pause camera",
                self._act(lambda: self.app.pause_camera(not self.app.camera_paused)),
                checked=lambda _i: self.app.camera_paused,
            ),
            Item(
                "Be right back",
                self._act(self._toggle_away),
                checked=lambda _i: self._away_on(),
                visible=hasattr(self.app, "away"),
            ),
            Menu.SEPARATOR,
            Item("Open backgrounds folder", self._act(self._open_backgrounds)),
            Item("Edit configuration", self._act(self._edit_config)),
            Menu.SEPARATOR,
            Item("Quit pixcam", self._act(self.app.quit)),
        )

    def _background_items(self, pystray: Any) -> Iterator[Any]:
        bg = "effects.background"
        yield self._radio(pystray, "Blur", bg, "blur")
        yield self._radio(
            pystray, lambda _i: f"Colour ({self.app.config.effects.color})", bg, "color"
        )
        yield self._radio(pystray, "None", bg, "none")
        yield pystray.Menu.SEPARATOR
        for label, name in background_choices():
            yield self._radio(pystray, label, bg, "image", ("effects.image", name))
        system = system_background_choices()
        if system:
            yield pystray.MenuItem(
                "System backgrounds",
                pystray.Menu(
                    *(
                        self._radio(pystray, label, bg, "image", ("effects.image", path))
                        for label, path in system
                    )
                ),
            )

    def _quality_items(self, pystray: Any) -> Iterator[Any]:
        from pixcam import models

        def chosen_model() -> str:
            chosen = str(self.app.config.get("model.name"))
            with contextlib.suppress(PixcamError, OSError):
                if chosen == models.default_model_name():
                    chosen = "default"  # the same model: its one item gets the check mark
            return chosen

        for label, name in model_choices():
            yield pystray.MenuItem(
                label,
                self._set(("model.name", name)),
                checked=lambda _i, name=name: chosen_model() == name,
                radio=True,
            )
        yield pystray.Menu.SEPARATOR
        for size, label in RESOLUTIONS:
            yield self._radio(pystray, label, "model.internal_resolution", size)
        yield pystray.Menu.SEPARATOR
        for quality, label in PRESETS:
            yield self._radio(pystray, label, "model.quality", quality)
        yield self._switch(pystray, "Auto-tune to hold the frame rate", "model.auto_tune")

    def _parts_items(self, pystray: Any) -> Iterator[Any]:
        yield self._switch(pystray, "Show coloured parts", "parts.view")
        yield pystray.Menu.SEPARATOR
        for label, mode, chosen in PRIVACY_CHOICES:
            if chosen is None:
                yield self._radio(pystray, label, "parts.privacy", mode)
            else:  # the parts are set first, so the effect never shows on the old ones
                yield self._radio(
                    pystray, label, "parts.privacy", mode, ("parts.privacy_parts", chosen)
                )

    # ---- desktop helpers
    def _away_on(self) -> bool:
        """The "Be right back" check: the card switched on by hand (an app without one: off)."""
        return bool(getattr(self.app, "away_on", False))

    def _toggle_away(self) -> None:
        away = getattr(self.app, "away", None)
        if away is not None:
            away(not self._away_on())

    def _open_backgrounds(self) -> None:
        folder = paths.backgrounds_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self._launch(["xdg-open", str(folder)])

    def _edit_config(self) -> None:
        self._launch(["xdg-open", str(ensure_config_file(self.app.config_path))])


def _edits_in_place(icon: Any) -> bool:
    """Is the icon's native menu a Gtk.Menu the tray can edit (the gtk and appindicator
    backends; an SNI host shows the appindicator's through DBusMenu, which follows edits)?"""
    return type(icon).__module__ in ("pystray._gtk", "pystray._appindicator")


def _show_in_gtk_menu(gtk_menu: Any, menu: Any) -> bool:
    """Give each Gtk item of `gtk_menu` the label and check mark of its pystray item in
    `menu`; False when the two do not match item for item."""
    widgets = gtk_menu.get_children()
    items = list(menu)  # the visible items, as pystray built them
    if len(widgets) != len(items):
        return False
    for widget, item in zip(widgets, items, strict=True):
        if item is menu.SEPARATOR:
            continue
        if item.submenu is not None:
            sub = widget.get_submenu()
            if sub is None or not _show_in_gtk_menu(sub, item.submenu):
                return False
            continue
        if not item.default and widget.get_label() != item.text:  # the default's is bold
            widget.set_label(item.text)
        checked = item.checked
        if checked is not None and hasattr(widget, "set_active") and widget.get_active() != checked:
            widget.set_active(checked)
    return True


def _menu_open(icon: Any) -> bool:
    """Is the icon's menu on screen? Known only for menus GTK draws itself (the gtk
    backend's popup); an SNI host draws the appindicator menu, and says nothing.

    Mapped, not visible: pystray `show_all()`s every menu it builds, popped up or not.
    """
    handle = getattr(icon, "_menu_handle", None)
    with contextlib.suppress(Exception):
        return bool(handle is not None and handle.get_mapped())
    return False
