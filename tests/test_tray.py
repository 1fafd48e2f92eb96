"""The real daemon's tray icon in a real tray: Xvfb + private D-Bus + trayer, driven by xdotool.

The daemon runs as a subprocess (`pixcam daemon --input clip --output file`), so no camera or
v4l2loopback is needed. The test clicks the icon and the menu like a user, then checks the
running settings (through `pixcam ctl status`), the config file on disk, and the icon's
colour on screen. The X fixture follows ../shared/notes/tray (tested set-up).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import wait_until
from pixcam.config import Config, load_config
from pixcam.control import send_command
from pixcam.errors import PixcamError
from pixcam.tray import (
    _COLOURS,
    BLUR_STEPS,
    PRIVACY_CHOICES,
    RESOLUTIONS,
    Tray,
    background_choices,
    icon_image,
    launch,
    model_choices,
    system_background_choices,
)

NEEDED = ["Xvfb", "dbus-daemon", "trayer", "xdotool", "import"]
REPO = Path(__file__).resolve().parents[1]


def _missing() -> str | None:
    tools = [t for t in NEEDED if shutil.which(t) is None]
    if tools:
        return f"needs {', '.join(tools)} (apt: xvfb dbus trayer xdotool imagemagick)"
    try:
        import gi

        gi.require_version("Gtk", "3.0")
        from gi.repository import Gtk  # noqa: F401
    except (ImportError, ValueError) as exc:
        return (
            f"needs PyGObject and Gtk typelibs ({exc}): pip install 'PyGObject<3.51', "
            "apt gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1 libgirepository1.0-dev"
        )
    return None


# ------------------------------------------------------------------- no X server needed
@pytest.mark.parametrize("state", list(_COLOURS))
def test_icon_colour_and_shape_show_the_state(state: str) -> None:
    img = np.asarray(icon_image(state))
    assert img.shape == (64, 64, 4)
    opaque = img[..., 3] > 0
    assert 0.2 < opaque.mean() < 0.8  # a glyph, not a filled square or nothing
    body = Counter(map(tuple, img[opaque][:, :3])).most_common(1)[0][0]
    assert body == _COLOURS[state]


def test_icon_states_differ_in_shape_too() -> None:
    # monochrome panels: the white marks alone must tell the states apart
    marks = {s: (np.asarray(icon_image(s))[..., :3] == 255).all(-1) for s in _COLOURS}
    states = list(marks)
    for i, a in enumerate(states):
        for b in states[i + 1 :]:
            assert (marks[a] != marks[b]).sum() > 20, (a, b)


def test_background_choices_list_bundled_and_user_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    bundled = {p.name for p in (REPO / "backgrounds").glob("*.png")}
    assert {"studio-grey.png", "bokeh-lights.png"} <= bundled
    assert {name for _l, name in background_choices()} == bundled
    user = tmp_path / "pixcam" / "backgrounds"
    user.mkdir(parents=True)
    (user / "my_beach.jpg").write_bytes(b"")
    (user / "notes.txt").write_bytes(b"")
    choices = dict((name, label) for label, name in background_choices())
    assert choices["my_beach.jpg"] == "My beach"
    assert "notes.txt" not in choices
    assert choices["studio-grey.png"] == "Studio grey"


def test_system_backgrounds_one_level_deep(tmp_path: Path) -> None:
    (tmp_path / "gnome").mkdir()
    (tmp_path / "gnome" / "deep").mkdir()
    (tmp_path / "top.png").write_bytes(b"")
    (tmp_path / "gnome" / "hills.jpg").write_bytes(b"")
    (tmp_path / "gnome" / "deep" / "too-deep.png").write_bytes(b"")
    paths = [path for _l, path in system_background_choices(tmp_path)]
    assert paths == [str(tmp_path / "top.png"), str(tmp_path / "gnome" / "hills.jpg")]
    assert system_background_choices(tmp_path / "absent") == []


class _App:
    def __init__(self, path: Path) -> None:
        self.config_path = path


def test_edit_config_creates_it_from_the_defaults_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    launched: list[list[str]] = []
    cfg = tmp_path / "config" / "pixcam" / "config.toml"
    tray = Tray(_App(cfg), launcher=launched.append)  # type: ignore[arg-type]
    tray._edit_config()
    assert launched == [["xdg-open", str(cfg)]]
    assert cfg.read_text() == (REPO / "config" / "default.toml").read_text()
    assert load_config(cfg) == Config()
    cfg.write_text("[effects]\nmirror = true\n")
    tray._edit_config()  # an existing file is opened as it is
    assert load_config(cfg).effects.mirror is True
    tray._open_backgrounds()
    folder = tmp_path / "data" / "pixcam" / "backgrounds"
    assert launched[-1] == ["xdg-open", str(folder)] and folder.is_dir()


class _FakePystray:
    """Just enough of pystray to build the menu and click its items without a display."""

    class MenuItem:
        def __init__(self, text: str, action: Any, checked: Any = None, **kw: Any) -> None:
            self.text, self.action, self._checked, self.kw = text, action, checked, kw

        @property
        def checked(self) -> bool:
            return bool(self._checked and self._checked(self))

        def click(self) -> None:
            self.action(None, self)

    class Menu:
        SEPARATOR = object()

        def __init__(self, *items: Any) -> None:
            self.items = [i for i in items if i is not _FakePystray.Menu.SEPARATOR]

        def item(self, text: str) -> Any:
            return next(i for i in self.items if i.text == text)


class _SetApp:
    """Records `set_many()` calls and applies them to its Config, like the daemon's set path."""

    def __init__(self) -> None:
        self.config = Config()
        self.calls: list[dict[str, Any]] = []
        self.camera_paused = False

    def set_many(self, values: Mapping[str, Any]) -> None:
        self.calls.append(dict(values))
        self.config = self.config.with_values(values)

    def toggle(self) -> bool:
        raise AssertionError("not clicked in this test")

    pause_camera = quit = toggle


def test_body_parts_menu_sets_view_and_privacy_through_set() -> None:
    app = _SetApp()
    tray = Tray(app)  # type: ignore[arg-type]

    def parts_menu() -> Any:
        return tray._menu(_FakePystray).item("Body parts").action

    menu = parts_menu()
    labels = [i.text for i in menu.items]
    assert labels == ["Show coloured parts"] + [label for label, _m, _p in PRIVACY_CHOICES]
    assert [i.text for i in menu.items if i.checked] == ["No privacy effect"]

    menu.item("Blur face and hands").click()
    # the parts and the effect in one change: it never shows on the old parts
    assert app.calls == [{"parts.privacy_parts": ("face", "hands"), "parts.privacy": "blur"}]
    menu = parts_menu()
    assert [i.text for i in menu.items if i.checked] == ["Blur face and hands"]

    menu.item("Pixelate face").click()
    menu.item("Show coloured parts").click()
    parts = app.config.parts
    assert (parts.privacy, parts.privacy_parts, parts.view) == ("pixelate", ("face",), True)
    menu = parts_menu()
    checked = [i.text for i in menu.items if i.checked]
    assert checked == ["Show coloured parts", "Pixelate face"]
    menu.item("No privacy effect").click()
    assert app.config.parts.privacy == "none" and app.calls[-1] == {"parts.privacy": "none"}


def test_auto_frame_and_auto_tune_items_go_through_set() -> None:
    app = _SetApp()
    tray = Tray(app)  # type: ignore[arg-type]
    frame = tray._menu(_FakePystray).item("Auto-frame")
    assert not frame.checked
    frame.click()
    assert app.calls[-1] == {"framing.mode": "auto"}
    frame = tray._menu(_FakePystray).item("Auto-frame")
    assert frame.checked
    frame.click()
    assert app.config.framing.mode == "off"
    tune = tray._menu(_FakePystray).item("Quality").action.item("Auto-tune to hold the frame rate")
    assert tune.checked  # on by default
    tune.click()
    assert app.calls[-1] == {"model.auto_tune": False}


def test_launch_without_the_helper_is_a_user_error() -> None:
    with pytest.raises(PixcamError, match="not found"):
        launch(["pixcam-no-such-helper", "/tmp"])


def test_headless_daemon_says_so_once_and_obeys_ctl(tmp_path: Path, clip: Path) -> None:
    env = _daemon_env(tmp_path)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    cfg = _write_config(tmp_path)
    sock = tmp_path / "ctl.sock"
    proc = _start_daemon(env, cfg, clip, tmp_path, sock)
    try:
        wait_until(lambda: (_status(sock) or {}).get("tray") == "headless", what="headless")
        send_command("set", path=sock, key="effects.mirror", value=True)
        assert _status(sock)["settings"]["effects.mirror"] is True
        assert load_config(cfg).effects.mirror is True
        send_command("quit", path=sock)
        assert proc.wait(30) == 0
    finally:
        _kill(proc)
    log = (tmp_path / "daemon.log").read_text()
    assert log.count("without a tray icon") == 1, log


# ------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s 320×240 test video (a moving bright square) for the daemon's --input."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (320, 240))
    assert writer.isOpened()
    for i in range(30):
        frame = np.full((240, 320, 3), 60, np.uint8)
        cv2.rectangle(frame, (10 + i * 6, 80), (90 + i * 6, 200), (200, 180, 160), -1)
        writer.write(frame)
    writer.release()
    return path


def _daemon_env(tmp_path: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    from pixcam.models import models_dir

    env = dict(base or os.environ)
    env.update(
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_RUNTIME_DIR=str(tmp_path),
        PIXCAM_MODELS_DIR=str(models_dir()),  # the real models, if installed
        PYTHONPATH=str(REPO / "daemon"),
        NO_AT_BRIDGE="1",
    )
    return env


def _write_config(tmp_path: Path) -> Path:
    # background "none": no model is loaded at start, so the test needs none installed;
    # picking an image later loads one if present and keeps streaming if not.
    cfg = tmp_path / "pixcam.toml"
    cfg.write_text(
        "# my settings\n[camera]\nwidth = 320\nheight = 240\n\n"
        '[effects]\nbackground = "none"  # keep this comment\n'
    )
    return cfg


def _start_daemon(
    env: dict[str, str], cfg: Path, clip: Path, tmp_path: Path, sock: Path
) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "pixcam", "-v", "daemon", "--config", str(cfg)]
    argv += ["--input", str(clip), "--output", str(tmp_path / "out.mp4"), "--socket", str(sock)]
    # the log goes to a file: an unread pipe could fill up and block the daemon
    with open(tmp_path / "daemon.log", "a") as log:
        return subprocess.Popen(argv, env=env, stderr=log, text=True)


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _status(sock: Path) -> dict[str, Any] | None:
    try:
        reply = send_command("status", path=sock, timeout=5)
    except PixcamError:
        return None
    return reply["status"] if reply["ok"] else None


# --------------------------------------------------------------------------- X session
@pytest.fixture
def xsession(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Xvfb + private session bus + trayer (an XEmbed tray host). Yields an env dict."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    procs: list[subprocess.Popen[bytes]] = []
    r, w = os.pipe()  # -displayfd: Xvfb picks a free display and writes it when ready
    procs.append(
        subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-screen", "0", "640x480x24", "-nolisten", "tcp"],
            pass_fds=(w,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    os.close(w)
    with os.fdopen(r) as f:
        display = ":" + f.readline().strip()
    env = dict(os.environ, DISPLAY=display, NO_AT_BRIDGE="1")
    env.pop("WAYLAND_DISPLAY", None)
    out = subprocess.run(
        ["dbus-daemon", "--session", "--fork", "--nosyslog", "--print-address=1", "--print-pid=1"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    env["DBUS_SESSION_BUS_ADDRESS"], dbus_pid = out[0], int(out[1])
    try:
        procs.append(
            subprocess.Popen(
                ["trayer", "--edge", "top", "--align", "left", "--widthtype", "request"]
                + ["--height", "32", "--transparent", "false", "--SetDockType", "true"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        import Xlib.display

        d = Xlib.display.Display(display)
        try:
            sel = d.intern_atom("_NET_SYSTEM_TRAY_S0")
            wait_until(lambda: d.get_selection_owner(sel) != 0, what="tray host")
        finally:
            d.close()
        yield env
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        with contextlib.suppress(ProcessLookupError):
            os.kill(dbus_pid, signal.SIGTERM)


def _icon_window(display: str, name: str) -> tuple[int, int, int, int] | None:
    """(centre x, centre y, width, height) of the embedded window whose WM_CLASS has `name`."""
    import Xlib.display
    import Xlib.error

    d = Xlib.display.Display(display)
    root = d.screen().root
    try:
        stack = [(c, 1) for c in root.query_tree().children]
        while stack:
            w, depth = stack.pop()
            try:  # windows (menus) come and go while we walk the tree
                cls = w.get_wm_class() or ()
                if depth > 1 and any(name in c.lower() for c in cls):
                    g = w.get_geometry()
                    pos = w.translate_coords(root, 0, 0)
                    return (-pos.x + g.width // 2, -pos.y + g.height // 2, g.width, g.height)
                stack += [(c, depth + 1) for c in w.query_tree().children]
            except Xlib.error.XError:
                continue
    finally:
        d.close()
    return None


def _popups(display: str) -> int:
    """Mapped override-redirect windows: open menus and submenus."""
    import Xlib.display
    import Xlib.error
    import Xlib.X

    d = Xlib.display.Display(display)
    try:
        n = 0
        for w in d.screen().root.query_tree().children:
            try:
                a = w.get_attributes()
                visible = a.override_redirect and a.map_state == Xlib.X.IsViewable
                if visible and w.get_geometry().height > 20:
                    n += 1
            except Xlib.error.XError:  # gone meanwhile
                continue
        return n
    finally:
        d.close()


def _xdo(env: dict[str, str], *args: str) -> None:
    subprocess.run(["xdotool", *args], env=env, check=True)


class TrayDriver:
    """Clicks the icon and walks the menu with the keyboard (item order is stable), once per
    choice, as a user does: a click the tray loses fails the test."""

    def __init__(self, env: dict[str, str], backend: str, tmp_path: Path) -> None:
        self.env, self.backend, self.tmp_path = env, backend, tmp_path
        self.locate()

    def locate(self) -> None:
        """Find the icon; it starts 1 px wide until the tray has sized the embedded window."""

        def sized() -> tuple[int, int, int, int] | None:
            found = _icon_window(self.env["DISPLAY"], "pixcam")
            return found if found and found[2] > 8 and found[3] > 8 else None

        self.x, self.y, self.w, self.h = wait_until(sized, what="embedded tray icon")

    def open_menu(self) -> None:
        # gtk: right click = menu (left = default action); appindicator: any click = menu
        wait_until(lambda: _popups(self.env["DISPLAY"]) == 0, what="menus closed")
        _xdo(self.env, "mousemove", str(self.x), str(self.y), "click", "3")
        wait_until(lambda: _popups(self.env["DISPLAY"]) >= 1, timeout=8, what="menu open")
        time.sleep(0.2)  # let GTK grab the keyboard before the first key arrives

    def choose(
        self, index: int, sub_index: int | None = None, *, effect: Callable[[], object]
    ) -> None:
        """Activate the menu item `index` (0-based, separators skipped) or its submenu's, and
        wait until `effect()` is true. One try: the tray edits its menu in place after a
        change, so keys typed into a menu opened right after the last choice still land."""
        self._press(index, sub_index)
        wait_until(effect, timeout=8, what=f"the effect of menu item {index}/{sub_index}")

    def _press(self, index: int, sub_index: int | None) -> None:
        self.open_menu()
        _xdo(self.env, "key", *["Down"] * (index + 1))
        if sub_index is not None:
            _xdo(self.env, "key", "Right")
            wait_until(lambda: _popups(self.env["DISPLAY"]) >= 2, timeout=8, what="submenu open")
            time.sleep(0.1)
            # Right opens the submenu with its first item selected
            if sub_index:
                _xdo(self.env, "key", *["Down"] * sub_index)
        _xdo(self.env, "key", "Return")

    def left_click(self) -> None:
        _xdo(self.env, "mousemove", str(self.x), str(self.y), "click", "1")

    def icon_state(self) -> str | None:
        """The state whose colour dominates the icon on screen."""
        self.locate()
        shot = self.tmp_path / "shot.png"
        subprocess.run(["import", "-window", "root", str(shot)], env=self.env, check=True)
        img = cv2.imread(str(shot))[..., ::-1]
        x0, y0 = self.x - self.w // 2, self.y - self.h // 2
        patch = img[y0 : y0 + self.h, x0 : x0 + self.w].reshape(-1, 3)
        counts = Counter(map(tuple, patch))
        for colour, _n in counts.most_common(6):
            for state, rgb in _COLOURS.items():
                if np.abs(np.array(colour, int) - rgb).max() <= 12:
                    return state
        return None

    def shot(self, name: str) -> None:
        subprocess.run(
            ["import", "-window", "root", str(self.tmp_path / name)], env=self.env, check=True
        )


# Menu positions (separators skipped), as built by pixcam.tray.Tray._menu.
(
    EFFECTS,
    BACKGROUND,
    BLUR,
    QUALITY,
    PARTS,
    AUTO_FRAME,
    ONLY_ME,
    MIRROR,
    PAUSE,
    AWAY,
    OPEN_FOLDER,
    EDIT,
    QUIT,
) = range(13)


@pytest.mark.parametrize("backend", ["gtk", "appindicator"])
def test_tray_menu_drives_the_running_daemon(
    xsession: dict[str, str],
    tmp_path: Path,
    clip: Path,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    # With the shared models present the stream really segments once a background is
    # picked; without them the daemon logs the missing model and keeps streaming.
    try:
        request.getfixturevalue("models_installed")
        have_model = True
    except pytest.skip.Exception:
        have_model = False
    env = _daemon_env(tmp_path, xsession)
    env["PYSTRAY_BACKEND"] = backend
    # a stand-in xdg-open that records what the menu asked it to open
    opened = tmp_path / "xdg-open.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "xdg-open").write_text(f'#!/bin/sh\necho "$@" >> {opened}\n')
    (bin_dir / "xdg-open").chmod(0o755)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    cfg = _write_config(tmp_path)
    sock = tmp_path / "ctl.sock"
    monkeypatch.setenv("XDG_DATA_HOME", env["XDG_DATA_HOME"])
    monkeypatch.setenv("PIXCAM_MODELS_DIR", env["PIXCAM_MODELS_DIR"])
    images = [name for _label, name in background_choices()]
    n_models = len(model_choices())  # the Quality menu lists these, then the resolutions
    assert "bokeh-lights.png" in images
    proc = _start_daemon(env, cfg, clip, tmp_path, sock)
    try:
        wait_until(lambda: _status(sock), what="daemon control socket")
        tray = TrayDriver(env, backend, tmp_path)

        def setting(key: str) -> Any:
            return _status(sock)["settings"][key]  # type: ignore[index]

        def is_set(key: str, value: Any) -> Callable[[], bool]:
            return lambda: setting(key) == value

        def wait_setting(key: str, value: Any) -> None:
            wait_until(is_set(key, value), what=f"{key} = {value!r}")

        def paused() -> Any:
            return _status(sock)["paused"]  # type: ignore[index]

        wait_until(lambda: tray.icon_state() == "off", what="icon shows effects off")

        # Background ▸ Bokeh lights: 3 fixed entries (blur, colour, none) come first
        bokeh = 3 + images.index("bokeh-lights.png")
        tray.choose(BACKGROUND, bokeh, effect=is_set("effects.background", "image"))
        assert setting("effects.image") == "bokeh-lights.png"
        saved = load_config(cfg).effects
        assert (saved.background, saved.image) == ("image", "bokeh-lights.png")
        assert "keep this comment" in cfg.read_text()
        wait_until(lambda: tray.icon_state() == "active", what="icon shows active")
        if have_model:  # the new background goes through real BodyPix inference
            wait_until(
                lambda: "segment" in _status(sock)["pipeline"]["stages_ms"],  # type: ignore[index]
                timeout=60,
                what="segmentation running",
            )

        # Blur strength ▸ Strong
        strong = [v for _n, v in BLUR_STEPS].index(70)
        tray.choose(BLUR, strong, effect=is_set("effects.blur_strength", 70))
        assert load_config(cfg).effects.blur_strength == 70

        # Quality ▸ 256 px
        px256 = n_models + [v for v, _l in RESOLUTIONS].index(256)
        tray.choose(QUALITY, px256, effect=is_set("model.internal_resolution", 256))
        assert load_config(cfg).model.internal_resolution == 256

        # Body parts ▸ Pixelate face (item 0 is the coloured-parts checkbox)
        pixelate = [label for label, _m, _p in PRIVACY_CHOICES].index("Pixelate face")
        tray.choose(PARTS, 1 + pixelate, effect=is_set("parts.privacy", "pixelate"))
        assert load_config(cfg).parts.privacy == "pixelate"

        # Open backgrounds folder / Edit configuration: xdg-open on the right paths
        folder = Path(env["XDG_DATA_HOME"]) / "pixcam" / "backgrounds"
        tray.choose(
            OPEN_FOLDER, effect=lambda: opened.exists() and str(folder) in opened.read_text()
        )
        assert folder.is_dir()
        tray.choose(EDIT, effect=lambda: str(cfg) in opened.read_text())

        # Mirror (checkbox)
        tray.choose(MIRROR, effect=is_set("effects.mirror", True))
        assert load_config(cfg).effects.mirror is True

        # Pause camera: the pipeline idles and the icon turns grey; again to resume
        tray.choose(PAUSE, effect=lambda: paused() is True)
        wait_until(lambda: _status(sock)["pipeline"]["state"] == "paused", what="pipeline paused")
        wait_until(lambda: tray.icon_state() == "paused", what="icon shows paused")
        tray.choose(PAUSE, effect=lambda: paused() is False)
        wait_until(lambda: _status(sock)["pipeline"]["state"] != "paused", what="pipeline resumed")

        # Only me (a setting) and Be right back (by hand, not saved)
        tray.choose(ONLY_ME, effect=is_set("people.keep", "me"))
        assert load_config(cfg).people.keep == "me"
        tray.choose(AWAY, effect=lambda: _status(sock)["pipeline"]["people"]["away_manual"])  # type: ignore[index]
        tray.choose(AWAY, effect=lambda: not _status(sock)["pipeline"]["people"]["away_manual"])  # type: ignore[index]

        # Effects checkbox (gtk: also the left-click default action)
        if backend == "gtk":
            tray.left_click()
        else:
            tray.choose(EFFECTS, effect=is_set("effects.enabled", False))
        wait_setting("effects.enabled", False)
        assert load_config(cfg).effects.enabled is False
        wait_until(lambda: tray.icon_state() == "off", what="icon shows effects off")

        # an invalid edit by hand: the tray turns red, the stream keeps the last good config
        frames = _status(sock)["pipeline"]["frames"]  # type: ignore[index]
        cfg.write_text(cfg.read_text().replace("blur_strength = 70", "blur_strength = 700"))
        wait_until(lambda: tray.icon_state() == "error", what="icon shows the config error")
        status = _status(sock)
        assert status is not None and "blur_strength" in status["config_error"]
        assert status["settings"]["effects.blur_strength"] == 70
        wait_until(lambda: _status(sock)["pipeline"]["frames"] > frames, what="stream goes on")
        cfg.write_text(cfg.read_text().replace("blur_strength = 700", "blur_strength = 30"))
        wait_setting("effects.blur_strength", 30)
        wait_until(lambda: tray.icon_state() == "off", what="icon back to normal")

        tray.open_menu()
        tray.shot(f"menu-{backend}.png")  # for a human to look at
        _xdo(env, "key", "Escape")

        tray.choose(QUIT, effect=lambda: proc.poll() is not None)
        assert proc.wait(30) == 0
        assert not sock.exists()
    finally:
        _kill(proc)


def test_sigterm_with_the_tray_running_shuts_down_cleanly(
    xsession: dict[str, str], tmp_path: Path, clip: Path
) -> None:
    # pystray resets SIGINT when its loop starts; the daemon must still stop cleanly.
    env = _daemon_env(tmp_path, xsession)
    env["PYSTRAY_BACKEND"] = "gtk"
    sock = tmp_path / "ctl.sock"
    proc = _start_daemon(env, _write_config(tmp_path), clip, tmp_path, sock)
    try:
        # "running": the tray's loop is up and our SIGINT handler is back in place
        wait_until(lambda: (_status(sock) or {}).get("tray") == "running", what="tray running")
        TrayDriver(env, "gtk", tmp_path)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert not sock.exists()  # closed through the normal shutdown path
    finally:
        _kill(proc)
