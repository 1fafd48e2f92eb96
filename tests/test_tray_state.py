"""The tray follows the daemon without a display (issue 15, faults 13, 14 and 15).

pystray's own `Menu`/`MenuItem` and its backend-independent `Icon` run here on a recording
backend that snapshots the menu whenever the backend would rebuild its native menu (as the
gtk and appindicator backends do), so a check mark the native menu never got is caught.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

from pixcam import models
from pixcam.config import Config
from pixcam.tray import Tray, model_choices, shorten_title

REPO = Path(__file__).resolve().parents[1]


class _App:
    """The daemon as the tray sees it: a config, a pause switch, a state."""

    def __init__(self) -> None:
        self.config = Config()
        self.config_path = Path("/nonexistent/config.toml")
        self.camera_paused = False
        self.state = ("active", "pixcam: background: blur")
        self.calls: list[Any] = []

    def tray_state(self) -> tuple[str, str]:
        return self.state

    def set(self, key: str, value: Any) -> None:
        self.calls.append((key, value))
        self.config = self.config.with_values({key: value})

    def toggle(self) -> bool:
        return True

    def pause_camera(self, paused: bool) -> None:
        self.camera_paused = paused

    def quit(self) -> None:
        pass


class _Status:
    ACTIVE, ATTENTION = "Active", "NeedsAttention"


class _Indicator:
    """libayatana-appindicator's Indicator, as far as the tray uses it."""

    def __init__(self) -> None:
        self.status = _Status.ACTIVE
        self.attention_icon: str | None = None

    def set_status(self, status: str) -> None:
        self.status = status

    def set_attention_icon_full(self, path: str, _description: str) -> None:
        self.attention_icon = path


AppIndicator = types.SimpleNamespace(IndicatorStatus=_Status)  # read by Tray._set_attention


@pytest.fixture
def pystray(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Real pystray on its display-less backend, with a recording Icon."""
    monkeypatch.setenv("PYSTRAY_BACKEND", "dummy")
    monkeypatch.setenv("DISPLAY", ":99")  # Tray.start() wants one; nothing connects to it
    for name in [m for m in sys.modules if m == "pystray" or m.startswith("pystray.")]:
        monkeypatch.delitem(sys.modules, name)
    module = importlib.import_module("pystray")

    class RecordingIcon(module.Icon):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.builds: list[tuple[Any, ...]] = []  # the native menu, each time it is made
            self._icon_path = "/tmp/pixcam-icon.png"

        def _update_menu(self) -> None:
            self.builds.append(Tray._menu_signature(self.menu))

        def _update_icon(self) -> None:
            pass

        def _update_title(self) -> None:
            pass

        def _show(self) -> None:
            pass

        def _hide(self) -> None:
            pass

    RecordingIcon.__module__ = __name__
    monkeypatch.setattr(module, "Icon", RecordingIcon)
    yield module
    for name in [m for m in sys.modules if m == "pystray" or m.startswith("pystray.")]:
        del sys.modules[name]


def _started(app: _App) -> tuple[Tray, Any]:
    tray = Tray(app)  # type: ignore[arg-type]
    assert tray.start()
    icon = tray._icon
    icon.visible = True
    return tray, icon


def _checked(signature: tuple[Any, ...], text: str) -> bool:
    return next(checked for label, checked, _sub in signature if label == text)


def test_pause_check_follows_ctl_pause(pystray: Any) -> None:
    app = _App()
    tray, icon = _started(app)
    app.camera_paused = True  # `pixcam ctl pause`: daemon state, no settings change
    app.state = ("paused", "pixcam: camera paused")
    tray.refresh(menu=False)  # what the daemon asks for after a pause: "the icon"
    assert icon.builds and _checked(icon.builds[-1], "Pause camera") is True
    app.camera_paused = False
    tray.poll()  # or the tray's own once-a-second look
    assert _checked(icon.builds[-1], "Pause camera") is False


def test_an_outside_change_rebuilds_the_menu_only_when_it_shows(pystray: Any) -> None:
    app = _App()
    tray, icon = _started(app)
    app.config = app.config.with_values({"camera.fps": 15})  # not in the menu
    tray.refresh()
    tray.poll()
    assert icon.builds == []  # an open menu stays open
    app.config = app.config.with_values({"effects.mirror": True})
    tray.refresh()
    tray.refresh()
    assert len(icon.builds) == 1 and _checked(icon.builds[0], "Mirror") is True


class _GtkMenu:
    def __init__(self) -> None:
        self.shown = True

    def get_mapped(self) -> bool:
        return self.shown

    def get_visible(self) -> bool:
        return True  # pystray show_all()s every menu it builds, open or not


def test_a_menu_open_on_screen_is_rebuilt_after_it_closes(pystray: Any) -> None:
    app = _App()
    tray, icon = _started(app)
    icon._menu_handle = menu = _GtkMenu()  # the gtk backend's popup, open
    app.config = app.config.with_values({"effects.mirror": True})
    tray.refresh()
    tray.poll()
    assert icon.builds == []
    menu.shown = False
    tray.poll()
    assert len(icon.builds) == 1 and _checked(icon.builds[0], "Mirror") is True


def test_tooltip_is_shortened_by_words_and_keeps_the_hint(pystray: Any) -> None:
    app = _App()
    hint = "allowed: 1..100 (see config/default.toml)"
    error = f"config.toml:12 effects.blur_strength: 5000 is out of range for the blur; {hint}"
    app.state = ("error", f"pixcam: config error (last good settings running): {error}")
    assert len(app.state[1]) > 127
    _tray, icon = _started(app)
    assert len(icon.title) <= 127
    assert icon.title.startswith("pixcam:") and icon.title.endswith(hint)
    words = app.state[1].split(" ")
    assert all(word in words for word in icon.title.split(" ") if word != "…")


def test_shorten_title_edge_cases() -> None:
    assert shorten_title("pixcam: fine") == "pixcam: fine"
    assert len(shorten_title("x" * 300)) == 127  # one endless word: cut, marked
    text = "pixcam: " + " ".join(f"w{i}" for i in range(100))
    short = shorten_title(text, 40)
    assert len(short) <= 40 and short.startswith("pixcam: w0") and short.endswith("w99")


def test_error_state_asks_the_sni_host_for_attention(
    pystray: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    glib = types.SimpleNamespace(idle_add=lambda fn, *a: fn(*a))  # run at once
    gi = types.ModuleType("gi")
    repository = types.ModuleType("gi.repository")
    repository.GLib = glib  # type: ignore[attr-defined]
    gi.repository = repository  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gi", gi)
    monkeypatch.setitem(sys.modules, "gi.repository", repository)
    app = _App()
    tray, icon = _started(app)
    icon._appindicator = indicator = _Indicator()
    tray.refresh()
    assert indicator.status == _Status.ACTIVE
    app.state = ("error", "pixcam: camera unavailable")
    tray.refresh()
    assert indicator.status == _Status.ATTENTION
    assert indicator.attention_icon == icon._icon_path
    app.state = ("active", "pixcam: background: blur")
    tray.refresh()
    assert indicator.status == _Status.ACTIVE


def test_quality_lists_the_default_model_once(models_installed: Path, pystray: Any) -> None:
    default = models.default_model_name()
    names = [name for _label, name in model_choices()]
    assert names[0] == "default" and default not in names
    app = _App()
    for chosen in ("default", default):
        app.config = Config().with_values({"model.name": chosen})
        tray = Tray(app)  # type: ignore[arg-type]
        quality = next(i for i in tray._menu(pystray).items if i.text == "Quality").submenu
        checked = [i.text for i in quality.items if i.checked]
        # The models come first, then the resolutions (then presets and auto-tune).
        assert checked[:2] == [f"Default ({default})", "Model's own size"], chosen


_FAKE_GI = '''
"""PyGObject on a desktop with Gtk but without any AppIndicator typelib."""
import types

MISSING = ("AyatanaAppIndicator3", "AppIndicator3")


def require_version(namespace, version):
    if namespace in MISSING:  # what the real gi does for an absent typelib
        raise ValueError(f"Namespace {namespace} not available")


class _Repository:
    def enumerate_versions(self, namespace):
        return [] if namespace in MISSING else ["3.0"]


class Repository:
    @staticmethod
    def get_default():
        return _Repository()
'''

_FAKE_REPOSITORY = '''
class _Anything:
    """Gtk, GLib, Gio...: any attribute, any call."""

    def __getattr__(self, name):
        return _Anything()

    def __call__(self, *args, **kwargs):
        return _Anything()

    def __getitem__(self, key):
        return _Anything()


def __getattr__(name):
    if name in ("AyatanaAppIndicator3", "AppIndicator3"):
        raise ImportError(name)
    return _Anything()
'''


def test_without_the_indicator_typelib_the_gtk_backend_serves(tmp_path: Path) -> None:
    (tmp_path / "gi" / "repository").mkdir(parents=True)
    (tmp_path / "gi" / "__init__.py").write_text(_FAKE_GI)
    (tmp_path / "gi" / "repository" / "__init__.py").write_text(_FAKE_REPOSITORY)
    code = textwrap.dedent(
        """
        import logging, sys
        sys.path.insert(0, sys.argv[1])
        sys.path.insert(1, sys.argv[2])
        from test_tray_state import _App
        from pixcam.tray import Tray
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        tray = Tray(_App())
        print("started", tray.start(), type(tray._icon).__module__)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYSTRAY_BACKEND"}
    env["DISPLAY"] = ":99"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), str(REPO / "tests")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.stdout.strip() == "started True pystray._gtk", proc.stderr
    assert "sudo apt install gir1.2-ayatanaappindicator3-0.1" in proc.stderr


# ------------------------------------------------------------- the live menu (gtk backends)
class _GtkItem:
    """A Gtk.MenuItem/CheckMenuItem as pystray makes it: "activate" toggles a check item
    first, then runs pystray's handler (which runs the action, then `update_menu()`)."""

    def __init__(self, label: str, check: bool, active: bool, submenu: Any = None) -> None:
        self.label, self.check, self.active, self.submenu = label, check, active, submenu
        self.on_activate: Any = None

    def get_label(self) -> str:
        return self.label

    def set_label(self, label: str) -> None:
        self.label = label

    def get_submenu(self) -> Any:
        return self.submenu

    def get_active(self) -> bool:
        return self.active

    def set_active(self, active: bool) -> None:
        if active != self.active:  # GTK: set_active() activates the item
            self.activate()

    def activate(self) -> None:  # a click
        if self.check:
            self.active = not self.active
        if self.on_activate is not None:
            self.on_activate()


class _GtkMenuOfItems:
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def get_children(self) -> list[Any]:
        return self.items

    def get_mapped(self) -> bool:
        return True  # open on screen all along: the user is about to click in it

    def item(self, label: str) -> _GtkItem:
        return next(i for i in self.items if getattr(i, "label", None) == label)


@pytest.fixture
def gtk_pystray(pystray: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """pystray whose Icon makes a (fake) Gtk menu like its gtk backend, and a GLib loop that
    runs what is queued at once."""
    glib = types.SimpleNamespace(idle_add=lambda fn, *a: fn(*a))
    repository = types.ModuleType("gi.repository")
    repository.GLib = glib  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gi.repository", repository)

    class GtkIcon(pystray.Icon):
        def _update_menu(self) -> None:
            super()._update_menu()
            self._menu_handle = self._gtk_menu(self.menu)

        def _gtk_menu(self, menu: Any) -> _GtkMenuOfItems:
            items: list[Any] = []
            for d in menu:
                if d is menu.SEPARATOR:
                    items.append(object())
                    continue
                sub = self._gtk_menu(d.submenu) if d.submenu else None
                item = _GtkItem(d.text, d.checked is not None, bool(d.checked), sub)
                if sub is None:
                    item.on_activate = self._handler(d)
                items.append(item)
            return _GtkMenuOfItems(items)

    GtkIcon.__module__ = "pystray._gtk"  # what Tray edits in place
    monkeypatch.setattr(pystray, "Icon", GtkIcon)
    return pystray


class _SettingApp(_App):
    def set_many(self, values: Any) -> None:
        self.calls.append(dict(values))
        self.config = self.config.with_values(values)


def test_a_change_edits_the_live_menu_and_a_click_in_it_lands(gtk_pystray: Any) -> None:
    app = _SettingApp()
    tray, icon = _started(app)
    icon.update_menu()  # pystray's start: the native menu is made
    menu = icon._menu_handle
    builds = len(icon.builds)
    # Mirror from the open menu: the same Gtk menu stays up, its check mark follows
    menu.item("Mirror").activate()
    assert app.calls == [{"effects.mirror": True}]
    assert icon._menu_handle is menu and len(icon.builds) == builds
    assert menu.item("Mirror").active
    # `pixcam ctl set` from outside: labels and radio marks are edited, nothing is clicked
    app.config = app.config.with_values({"effects.color": "#123456", "effects.mirror": False})
    tray.refresh()
    background = menu.item("Background").submenu
    assert background.item("Colour (#123456)") and not menu.item("Mirror").active
    assert icon._menu_handle is menu and len(icon.builds) == builds
    assert app.calls == [{"effects.mirror": True}]  # the edits activated no action
    # A click right after, in the same menu: it acts on the current state
    menu.item("Mirror").activate()
    blur = menu.item("Blur strength").submenu
    blur.item("Strong (70)").activate()
    assert app.calls[1:] == [{"effects.mirror": True}, {"effects.blur_strength": 70}]
    assert [i.label for i in blur.items if i.active] == ["Strong (70)"]
    assert icon._menu_handle is menu and len(icon.builds) == builds


def test_a_new_background_image_makes_a_new_menu(
    gtk_pystray: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    app = _SettingApp()
    tray, icon = _started(app)
    icon.update_menu()
    menu = icon._menu_handle
    (tmp_path / "pixcam" / "backgrounds").mkdir(parents=True)
    (tmp_path / "pixcam" / "backgrounds" / "my_beach.jpg").write_bytes(b"")
    tray.refresh()
    assert icon._menu_handle is menu  # not while it is open: it would close under the user
    menu.get_mapped = lambda: False  # type: ignore[method-assign]
    tray.poll()
    assert icon._menu_handle is not menu
    assert icon._menu_handle.item("Background").submenu.item("My beach")
