"""`pixcam doctor`: check the environment, one line per check, each problem with its fix.

Every check returns `Check`s; a FAIL is something pixcam cannot run without (the exit code is
then 1), a WARN limits a feature (tray, Chrome support) but streaming still works. The roots of
/sys, /proc, /dev and /lib/modules are parameters so tests can point them at fake trees.
"""

from __future__ import annotations

import enum
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixcam.errors import PixcamError
from pixcam.paths import installed_version
from pixcam.tray.host import tray_host
from pixcam.video.devices import MODPROBE_OPTS

SETUP_FIX = "run `pixcam setup`"
INSTALL_V4L2LOOPBACK = (
    "install v4l2loopback (Debian/Ubuntu: sudo apt install v4l2loopback-dkms; Fedora: sudo dnf "
    "install v4l2loopback; Arch: sudo pacman -S v4l2loopback-dkms), then `pixcam setup`"
)


_VM_HINT = "tests/v4l2/run-in-vm.sh runs the v4l2loopback tests in a VM"


class Status(enum.Enum):
    OK = "ok"
    INFO = "info"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "--"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status.value:<5} {self.name:<14} {self.detail}"
        return f"{text} -> fix: {self.fix}" if self.fix else text


@dataclass
class Env:
    """Where to look; the defaults are the real system."""

    sys_root: Path = Path("/sys")
    proc_root: Path = Path("/proc")
    dev_root: Path = Path("/dev")
    lib_modules: Path = Path("/lib/modules")
    etc_root: Path = Path("/etc")
    config_path: Path | None = None
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    # Open devices with ioctls; tests with fake sysfs trees turn it off.
    query_devices: bool = True

    @property
    def v4l_class(self) -> Path:
        return self.sys_root / "class" / "video4linux"

    @property
    def loopback_module(self) -> Path:
        return self.sys_root / "module" / "v4l2loopback"


# --------------------------------------------------------------------------- python
def check_python() -> list[Check]:
    # pip's requires-python already refuses older versions; report which one runs.
    return [
        Check("pixcam", Status.OK, f"{installed_version()} ({Path(__file__).parents[1]})"),
        Check("python", Status.OK, f"{platform.python_version()} ({sys.executable})"),
    ]


def _dist_version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _import_check(
    name: str, module: str, dists: tuple[str, ...], fix: str, required: bool = True
) -> Check:
    # Importing (not just finding) catches broken wheels, e.g. cv2 without its shared libs.
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # ImportError, or OSError from a missing .so
        status = Status.FAIL if required else Status.WARN
        return Check(name, status, f"cannot import {module}: {exc}".splitlines()[0], fix)
    ver = _dist_version(*dists) or str(getattr(mod, "__version__", "?"))
    return Check(name, Status.OK, ver)


def check_packages() -> list[Check]:
    pip = f"{Path(sys.executable).parent / 'pip'} install"
    checks = [
        _import_check("numpy", "numpy", ("numpy",), f"{pip} 'numpy>=2'"),
        _import_check(
            "opencv",
            "cv2",
            ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
            f"{pip} opencv-python-headless",
        ),
        _import_check("pyvirtualcam", "pyvirtualcam", ("pyvirtualcam",), f"{pip} pyvirtualcam"),
        _import_check("pydantic", "pydantic", ("pydantic",), f"{pip} pydantic"),
        _import_check("tomlkit", "tomlkit", ("tomlkit",), f"{pip} tomlkit"),
    ]
    # LiteRT, or the older tflite_runtime the engine falls back to.
    litert = _import_check("litert", "ai_edge_litert.interpreter", ("ai-edge-litert",), "")
    if litert.status is not Status.OK:
        tfl = _import_check("litert", "tflite_runtime.interpreter", ("tflite-runtime",), "")
        if tfl.status is Status.OK:
            litert = Check("litert", Status.OK, f"tflite_runtime {tfl.detail} (no ai-edge-litert)")
        else:
            litert = Check(
                "litert",
                Status.FAIL,
                "neither ai_edge_litert nor tflite_runtime imports",
                f"{pip} ai-edge-litert",
            )
    checks.insert(2, litert)
    # pystray picks its backend at import time (and may talk to the display), so only look.
    if importlib.util.find_spec("pystray") is None:
        checks.append(
            Check("pystray", Status.WARN, "not installed: no tray icon", f"{pip} pystray")
        )
    else:
        checks.append(Check("pystray", Status.OK, _dist_version("pystray") or "?"))
    if importlib.util.find_spec("gi") is None:
        checks.append(
            Check(
                "gi",
                Status.WARN,
                "PyGObject missing: the tray icon falls back to pystray's xorg backend (no menu)",
                "apt install libgirepository1.0-dev libcairo2-dev pkg-config gcc; "
                f"{pip} 'PyGObject<3.51'",
            )
        )
    else:
        checks.append(Check("gi", Status.OK, _dist_version("PyGObject", "pygobject") or "?"))
        checks.append(_tray_backend_check())
    return checks


def _tray_backend_check() -> Check:
    from pixcam import tray

    backend = tray.tray_backend()
    if backend == "appindicator":
        return Check("tray backend", Status.OK, "appindicator (StatusNotifier and XEmbed trays)")
    if backend == "gtk":
        return Check(
            "tray backend",
            Status.WARN,
            "no AyatanaAppIndicator3 typelib: the icon uses the gtk backend, which only "
            "XEmbed trays show (not GNOME's or KDE's StatusNotifier panels)",
            f"sudo apt install {tray.INDICATOR_PACKAGE}",
        )
    return Check(
        "tray backend",
        Status.WARN,
        "no Gtk 3 typelib: no tray icon",
        f"sudo apt install gir1.2-gtk-3.0 {tray.INDICATOR_PACKAGE}",
    )


# --------------------------------------------------------------------------- config
def _cfg(config: Any, dotted: str, default: Any) -> Any:
    obj = config
    for part in dotted.split("."):
        obj = getattr(obj, part, None) if obj is not None else None
    return default if obj is None else obj


def check_config(env: Env) -> tuple[list[Check], Any]:
    """Validate the config file; returns the checks and the loaded config (or None)."""
    from pixcam import config as cfgmod

    path = env.config_path or cfgmod.config_path()
    if not path.exists() and env.config_path is None:
        return [Check("config", Status.OK, f"no {path}: using the defaults")], None
    try:
        config = cfgmod.load_config(path)
    except PixcamError as exc:
        # One line per problem in the message; show the first and count the rest.
        lines = str(exc).strip().splitlines() or ["invalid"]
        more = f" (+{len(lines) - 1} more)" if len(lines) > 1 else ""
        return [Check("config", Status.FAIL, lines[0] + more, f"edit {path}")], None
    return [Check("config", Status.OK, f"{path} is valid")], config


# --------------------------------------------------------------------------- models
def check_models(model_name: str | None) -> list[Check]:
    """Which models are installed, whether each file is intact, and where it came from."""
    from pixcam import models

    try:
        wanted = models.get_spec(model_name)
    except PixcamError as exc:
        return [Check("model", Status.FAIL, str(exc), "set [model] name to a listed model")]
    by_default = models.is_default(model_name)
    origins = models.origins()
    checks, absent = [], []
    for spec in models.list_models():
        is_wanted = spec.name == wanted.name
        if not spec.installed:
            base = models.get_spec(spec.derived_from) if spec.derived_from else None
            if is_wanted and by_default and base is not None and base.installed:
                # models.resolve falls back to the float original, so pixcam still runs.
                detail = f"{spec.name} (configured) is not made yet; {base.name} serves instead"
                checks.append(Check("model", Status.WARN, detail, "pixcam models install"))
            elif is_wanted:
                checks.append(
                    Check(
                        "model",
                        Status.FAIL,
                        f"{spec.name} (the configured model) is not installed in "
                        f"{models.models_dir()}",
                        f"pixcam models install --name {spec.name}",
                    )
                )
            else:
                absent.append(spec.name)
            continue
        try:
            models.verify(spec)
        except PixcamError as exc:
            # A damaged spare model only matters once someone picks it.
            status = Status.FAIL if is_wanted else Status.WARN
            fix = f"pixcam models install --name {spec.name} --force"
            detail = f"{spec.name}: {str(exc).split('; reinstall')[0]}"
            checks.append(Check("model", status, detail, fix))
            continue
        mark = " (configured)" if is_wanted else ""
        origin = origins.get(spec.name, {}).get("origin", "origin not recorded")
        checks.append(Check("model", Status.OK, f"{spec.name}{mark}: sha256 ok, from {origin}"))
    if absent:
        detail = f"not installed: {', '.join(absent)}"
        checks.append(Check("model", Status.INFO, detail, "pixcam models install"))
    return checks


# ---------------------------------------------------------------------------- video
@dataclass(frozen=True)
class Node:
    path: str
    label: str
    loopback: bool
    info: Any = None  # v4l2caps.DeviceInfo when the ioctls worked
    error: str = ""


def _nodes(env: Env) -> list[Node]:
    from pixcam.video import v4l2caps
    from pixcam.video.devices import list_video_nodes

    out = []
    for n in list_video_nodes(env.v4l_class, env.dev_root):
        info, error = None, ""
        if env.query_devices:
            try:
                info = v4l2caps.query(n.path)
            except OSError as exc:
                error = v4l2caps.explain_oserror(exc)
        out.append(
            Node(n.path, n.label, n.loopback or bool(info and info.is_loopback), info, error)
        )
    return out


def _formats(node: Node) -> str:
    info = node.info
    if info is None:
        return f"({node.error})" if node.error else ""
    parts = []
    if info.can_capture:
        parts.append("capture " + (_shorten(info.capture_formats) or "(no formats yet)"))
    if info.can_output:
        parts.append("output " + (_shorten(info.output_formats) or "any"))
    return "; ".join(parts) or "no video capture/output"


def _shorten(formats: tuple[str, ...], keep: int = 6) -> str:
    # A loopback's output side accepts ~50 formats; the first few say enough on one line.
    more = f",… ({len(formats)} formats)" if len(formats) > keep else ""
    return ",".join(formats[:keep]) + more


def check_cameras(nodes: list[Node], camera_device: Any) -> list[Check]:
    wanted = str(camera_device if camera_device is not None else "auto")
    if wanted.isdigit():
        wanted = f"/dev/video{wanted}"
    checks = []
    cameras = []
    for n in nodes:
        if n.info is not None and n.info.is_metadata_only:
            continue  # a UVC camera's second node: metadata only, not a picture
        if n.loopback and n.path != wanted:
            continue  # virtual cameras are reported by the v4l2loopback check
        driver = f" ({n.info.driver})" if n.info is not None else ""
        checks.append(Check("camera", Status.OK, f"{n.path} {n.label!r}{driver}: {_formats(n)}"))
        cameras.append(n.path)
    if wanted != "auto" and wanted not in cameras:
        checks.append(
            Check(
                "camera",
                Status.FAIL,
                f"the configured camera {wanted} does not exist",
                'plug it in, or set [camera] device = "auto"',
            )
        )
    elif not cameras:
        checks.append(
            Check(
                "camera",
                Status.FAIL,
                "no camera found (no non-virtual /dev/video* capture device)",
                "plug in a webcam; check `ls /sys/class/video4linux`",
            )
        )
    return checks


def _param(env: Env, name: str) -> list[str]:
    try:
        text = (env.loopback_module / "parameters" / name).read_text().strip()
    except OSError:
        return []
    return text.split(",")


def _module_file_exists(env: Env) -> bool:
    kdir = env.lib_modules / platform.release()
    if not kdir.is_dir():
        return False
    return any(kdir.rglob("v4l2loopback.ko*"))


def _boot_config(env: Env) -> Check:
    """Is v4l2loopback configured to load at boot with options (pixcam setup's files)?"""
    loads = any(
        "v4l2loopback" in _read(p) for p in sorted((env.etc_root / "modules-load.d").glob("*.conf"))
    )
    opts = [
        line
        for p in sorted((env.etc_root / "modprobe.d").glob("*.conf"))
        for line in _read(p).splitlines()
        if line.strip().startswith("options v4l2loopback")
    ]
    if loads and opts:
        return Check("boot config", Status.OK, f"loads at boot: {opts[-1].strip()}")
    return Check(
        "boot config",
        Status.WARN,
        "v4l2loopback is not set to load at boot with pixcam's options",
        SETUP_FIX,
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def check_loopback(env: Env, nodes: list[Node], output_device: Any) -> tuple[list[Check], str]:
    """The v4l2loopback module, its devices and its boot configuration; returns the checks and
    the output node ("" if there is none)."""
    checks, out = _check_module(env, nodes, output_device)
    # Where the module is missing, knowing that setup already ran narrows the fix down.
    return [*checks[:1], _boot_config(env), *checks[1:]], out


def _check_module(env: Env, nodes: list[Node], output_device: Any) -> tuple[list[Check], str]:
    """The module, its devices and the one pixcam writes to (its path, "" when none)."""
    if not env.loopback_module.is_dir():
        return [_module_missing(env)], ""
    version = _read(env.loopback_module / "version").strip()
    loops = [n for n in nodes if n.loopback]
    if not loops:
        fix = f"sudo modprobe -r v4l2loopback && sudo modprobe v4l2loopback {MODPROBE_OPTS}"
        return [Check("v4l2loopback", Status.FAIL, "loaded but without devices", fix)], ""
    loaded = f"loaded{' ' + version if version else ''}: {len(loops)} device(s)"
    checks = [Check("v4l2loopback", Status.OK, loaded)]
    flags = _exclusive_caps(env, loops)
    for n in loops:
        detail = f"{n.path} {n.label!r} exclusive_caps={flags[n.path]}: {_formats(n)}"
        checks.append(Check("virtual cam", Status.OK, detail))
    more, out = _check_output_device(env, loops, flags, output_device)
    return checks + more, out


def _module_missing(env: Env) -> Check:
    """Why v4l2loopback is not loaded, and what to do."""
    if not (env.proc_root / "modules").exists():
        return Check(
            "v4l2loopback",
            Status.FAIL,
            "cannot be loaded: this kernel has no loadable module support "
            "(CONFIG_MODULES=n, no /proc/modules)",
            "boot a kernel with module support (any distribution kernel) or with "
            f"v4l2loopback built in, then `pixcam setup`; for tests: {_VM_HINT}",
        )
    if _module_file_exists(env):
        fix = f"{SETUP_FIX} (or now: sudo modprobe v4l2loopback {MODPROBE_OPTS})"
        return Check("v4l2loopback", Status.FAIL, "installed but not loaded", fix)
    return Check("v4l2loopback", Status.FAIL, "not installed", INSTALL_V4L2LOOPBACK)


def _exclusive_caps(env: Env, loops: list[Node]) -> dict[str, str]:
    """Each loopback node's exclusive_caps value: "Y", "N", or "?" when unknown."""
    excl = _param(env, "exclusive_caps")
    video_nr = _param(env, "video_nr")
    flags: dict[str, str] = {}
    for pos, n in enumerate(loops):
        idx = n.info.loopback_index if n.info is not None else None
        if idx is None:
            # Without the ioctl, video_nr's order maps positions to nodes when it was given.
            num = n.path.removeprefix(str(env.dev_root / "video"))
            idx = video_nr.index(num) if num in video_nr else pos
        flags[n.path] = excl[idx] if idx < len(excl) else "?"
    return flags


def _check_output_device(
    env: Env, loops: list[Node], flags: dict[str, str], output_device: Any
) -> tuple[list[Check], str]:
    """The device pixcam would write to: found, labelled "pixcam", listed by browsers."""
    from pixcam.video.sinks import SinkError, pick_output_device

    try:
        out = pick_output_device(str(output_device or "auto"), env.v4l_class, env.loopback_module)
    except SinkError as exc:
        return [Check("output", Status.FAIL, str(exc).split("; ")[0], SETUP_FIX)], ""
    checks: list[Check] = []
    node = next((n for n in loops if n.path == out), None)
    if node is not None and "pixcam" not in node.label.lower():
        checks.append(
            Check(
                "output",
                Status.WARN,
                f"no virtual camera is labelled 'pixcam'; using {out} {node.label!r}",
                SETUP_FIX,
            )
        )
    if flags.get(out, "?") not in ("Y", "1", "?"):
        checks.append(
            Check(
                "output",
                Status.WARN,
                f"{out} has exclusive_caps off: Chrome, Meet and other WebRTC apps will not "
                "list it",
                f"{SETUP_FIX}, then reboot (or reload v4l2loopback with exclusive_caps=1)",
            )
        )
    return checks, out


def check_output_writable(out: str, nodes: list[Node], pixcam_running: bool) -> list[Check]:
    if not out:
        return [Check("output", Status.SKIP, "no virtual camera to write to (see above)")]
    if not os.access(out, os.W_OK):
        return [
            Check(
                "output",
                Status.FAIL,
                f"{out} is not writable by you",
                "sudo usermod -aG video $USER, then log out and in",
            )
        ]
    node = next((n for n in nodes if n.path == out), None)
    if node is not None and node.error:
        return [Check("output", Status.FAIL, f"{out}: {node.error}", SETUP_FIX)]
    if node is not None and node.info is not None and not node.info.can_output:
        # exclusive_caps=1 drops OUTPUT while a writer streams: someone already feeds it.
        if pixcam_running:
            return [Check("output", Status.OK, f"{out} is being written by the running pixcam")]
        return [
            Check(
                "output",
                Status.WARN,
                f"{out} is being written by another program (it offers capture only now)",
                "stop the other writer, or choose another device ([output] device or "
                "`pixcam run --output-device`)",
            )
        ]
    return [Check("output", Status.OK, f"{out} is writable")]


# ----------------------------------------------------------------------- desktop/tray
def check_desktop(env: Env) -> list[Check]:
    display = env.environ.get("DISPLAY", "")
    wayland = env.environ.get("WAYLAND_DISPLAY", "")
    if not display and not wayland:
        return [
            Check(
                "display",
                Status.WARN,
                "no DISPLAY or WAYLAND_DISPLAY: no tray icon (the camera still works)",
                "run pixcam inside your desktop session (systemd user unit or autostart: "
                f"{SETUP_FIX})",
            )
        ]
    checks = [Check("display", Status.OK, f"DISPLAY={display!r} WAYLAND_DISPLAY={wayland!r}")]
    sni, xembed = tray_host(env.environ)
    from pixcam import tray

    backend = tray.tray_backend()
    if backend is None:
        checks.append(
            Check(
                "tray",
                Status.WARN,
                "no tray icon: PyGObject or the Gtk 3 typelib is missing (see above)",
                f"sudo apt install gir1.2-gtk-3.0 {tray.INDICATOR_PACKAGE}",
            )
        )
    elif sni and backend == "appindicator":
        checks.append(Check("tray", Status.OK, "StatusNotifier host on the session bus"))
    elif xembed:
        checks.append(Check("tray", Status.OK, "XEmbed system tray on the display"))
    elif sni:  # the gtk backend docks only in an XEmbed tray
        checks.append(
            Check(
                "tray",
                Status.WARN,
                "a StatusNotifier host runs, but without the AyatanaAppIndicator3 typelib "
                "the icon can only dock in an XEmbed tray: it will not show",
                f"sudo apt install {tray.INDICATOR_PACKAGE}",
            )
        )
    elif sni is None and xembed is None:
        checks.append(Check("tray", Status.INFO, "cannot tell whether a tray host runs"))
    else:
        checks.append(
            Check(
                "tray",
                Status.WARN,
                "no tray host (StatusNotifier or XEmbed): the tray icon will not show",
                "GNOME: install the AppIndicator extension "
                "(apt install gnome-shell-extension-appindicator)",
            )
        )
    return checks


# -------------------------------------------------------------------- running instance
def check_instance() -> list[Check]:
    from pixcam import control

    path = control.socket_path()
    try:
        alive = control.is_alive(path)  # the same probe the server uses to refuse a second one
    except PixcamError as exc:
        return [Check("instance", Status.WARN, str(exc))]
    if alive:
        return [
            Check(
                "instance",
                Status.INFO,
                f"pixcam {_running_version(path)} is running (control socket {path})",
            )
        ]
    return [Check("instance", Status.OK, "no other pixcam is running")]


def _running_status(path: Path | None = None) -> dict[str, Any]:
    # The running daemon may be an older install than this command (an upgrade not restarted).
    from pixcam import control

    try:
        return control.send_command("status", path=path, timeout=5.0).get("status") or {}
    except PixcamError:
        return {}


def _running_version(path: Path) -> str:
    status = _running_status(path)
    return f"{status.get('version', '(version unknown)')}, pid {status.get('pid', '?')},"


# ------------------------------------------------------------------------------ firefox
FIREFOX_NAMES = ("firefox", "firefox-esr", "firefox-bin")
FIREFOX_FIX = (
    "start pixcam before Firefox (`pixcam setup` starts it with the desktop), or restart Firefox"
)


def _start_ticks(proc: Path) -> int | None:
    # Field 22 of /proc/PID/stat: start time in clock ticks after boot (comm may hold spaces).
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _firefox_starts(env: Env) -> list[int]:
    starts = []
    for proc in env.proc_root.glob("[0-9]*"):
        try:
            comm = (proc / "comm").read_text().strip()
        except OSError:
            continue
        ticks = _start_ticks(proc) if comm in FIREFOX_NAMES else None
        if ticks is not None:
            starts.append(ticks)
    return starts


def check_firefox(env: Env, pixcam_pid: int | None) -> list[Check]:
    """Firefox reads the camera list once per process and only notices cameras whose device
    node appears or goes; a loopback node that gets a writer does neither, so a Firefox that
    looked before pixcam wrote does not list pixcam until it is restarted."""
    starts = _firefox_starts(env)
    if not starts:
        return [
            Check(
                "firefox",
                Status.INFO,
                "Firefox lists pixcam only if pixcam runs when "
                "Firefox starts: start pixcam first (autostart)",
            )
        ]
    pixcam_start = _start_ticks(env.proc_root / str(pixcam_pid)) if pixcam_pid else None
    if pixcam_start is None:
        return [
            Check(
                "firefox",
                Status.WARN,
                "Firefox is running and pixcam is not: that "
                "Firefox will not list pixcam when it starts",
                FIREFOX_FIX,
            )
        ]
    if min(starts) < pixcam_start:
        return [
            Check(
                "firefox",
                Status.WARN,
                "Firefox started before pixcam: it may not list "
                "pixcam (it keeps the camera list it first read)",
                FIREFOX_FIX,
            )
        ]
    return [Check("firefox", Status.OK, "Firefox started after pixcam: it lists pixcam")]


def check_autostart(env: Env) -> list[Check]:
    from pixcam.tools import install_system

    found = [p for p in (install_system.unit_path(), install_system.desktop_path()) if p.exists()]
    if found:
        return [Check("autostart", Status.OK, ", ".join(str(p) for p in found))]
    return [Check("autostart", Status.INFO, "pixcam does not start with the desktop", SETUP_FIX)]


# ------------------------------------------------------------------------------ all
def run_checks(env: Env | None = None) -> list[Check]:
    env = env or Env()
    checks: list[Check] = []
    checks += check_python()
    checks += check_packages()
    cfg_checks, config = check_config(env)
    checks += cfg_checks
    checks += _guard("model", lambda: check_models(_cfg(config, "model.name", None)))
    nodes = _nodes(env)
    checks += check_cameras(nodes, _cfg(config, "camera.device", "auto"))
    loop_checks, out = check_loopback(env, nodes, _cfg(config, "output.device", "auto"))
    backend = str(_cfg(config, "output.backend", "auto"))
    pw_checks = _guard("pipewire", lambda: _pipewire_checks(backend))
    if backend == "pipewire" or (backend == "auto" and not out and _pipewire_ok(pw_checks)):
        # No kernel module needed: the PipeWire camera is the output.
        loop_checks = [_not_needed(c) for c in loop_checks]
    checks += loop_checks
    checks += pw_checks
    instance = check_instance()
    running = instance[0].status is Status.INFO  # INFO is only used for "pixcam is running"
    checks += check_output_writable(out, nodes, running)
    checks += check_desktop(env)
    checks += instance
    checks += _guard("autostart", lambda: check_autostart(env))
    pid = _running_status().get("pid") if running else None
    checks += _guard("firefox", lambda: check_firefox(env, pid if isinstance(pid, int) else None))
    return checks


def _pipewire_checks(backend: str) -> list[Check]:
    from pixcam.tools import doctor_pipewire

    return [*doctor_pipewire.check_pipewire(backend), doctor_pipewire.who_sees(backend)]


def _pipewire_ok(checks: list[Check]) -> bool:
    return any(c.name == "pipewire cam" and c.status is Status.OK for c in checks)


def _not_needed(check: Check) -> Check:
    if check.status is not Status.FAIL:
        return check
    return Check(
        check.name,
        Status.WARN,
        f"{check.detail} (not needed: the PipeWire camera is used)",
        check.fix,
    )


def _guard(name: str, fn: Callable[[], Iterable[Check]]) -> list[Check]:
    # One broken check must not hide the others' answers.
    try:
        return list(fn())
    except Exception as exc:
        return [Check(name, Status.FAIL, f"check crashed: {type(exc).__name__}: {exc}")]


def exit_code(checks: Iterable[Check]) -> int:
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def run(config_path: str | None = None, out: Callable[[str], None] = print) -> int:
    """The `pixcam doctor` command."""
    env = Env(config_path=Path(config_path) if config_path else None)
    checks = run_checks(env)
    for c in checks:
        out(c.line())
    fails = sum(c.status is Status.FAIL for c in checks)
    warns = sum(c.status is Status.WARN for c in checks)
    out(f"{fails} problem(s) to fix, {warns} warning(s)" if fails or warns else "all good")
    return exit_code(checks)
