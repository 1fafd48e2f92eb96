"""`pixcam setup`: install the autostart files and the v4l2loopback configuration.

The plan is built first and printed in full, so the user sees every file and every command
before anything happens. Only the /etc files and `modprobe` need root: those steps run through
`sudo` one by one (or are printed, with `--dry-run`); the systemd user unit and the autostart
entry go to the user's own config folder without sudo.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pixcam import paths
from pixcam.errors import PixcamError
from pixcam.video.v4l2caps import LOOPBACK_MODULE

UNIT_NAME = "pixcam.service"
DESKTOP_NAME = "pixcam.desktop"
MODULES_LOAD = Path("/etc/modules-load.d/pixcam.conf")
MODPROBE = Path("/etc/modprobe.d/pixcam.conf")
# Packaged file -> where it goes under /etc.
ETC_FILES = {"modules-load.pixcam.conf": MODULES_LOAD, "modprobe.pixcam.conf": MODPROBE}
PLACEHOLDER = "@PIXCAM@"
# Written into every file we install, so uninstall never removes a file someone else wrote.
OUR_MARK = "pixcam setup"


@dataclass(frozen=True)
class Step:
    """One thing setup does: a sentence for the user plus how to do it.

    Root steps are always a command line (so `--dry-run` can print exactly what to run);
    user steps may be a Python action instead.
    """

    what: str
    argv: tuple[str, ...] = ()
    action: Callable[[], None] | None = None
    root: bool = False
    # Best effort: report a failure and go on (e.g. unloading a module that is in use).
    may_fail: bool = False

    def command_line(self, sudo: Sequence[str]) -> str:
        prefix = list(sudo) if self.root else []
        return " ".join(shlex.quote(a) for a in [*prefix, *self.argv])


def packaged(name: str) -> Path:
    """Path of a file shipped in the wheel under pixcam/packaging/."""
    path = Path(str(resources.files("pixcam") / "packaging" / name))
    if not path.is_file():
        raise PixcamError(f"packaged file {name} missing from the pixcam install; reinstall pixcam")
    return path


def pixcam_command() -> list[str]:
    """The absolute command that starts this very pixcam (venv, pipx or system install)."""
    # Not resolved: a venv's python is a symlink, and resolving it would leave the venv.
    script = Path(sys.executable).parent / "pixcam"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "pixcam"]


def _exec_quote(args: Sequence[str]) -> str:
    """Quote for systemd ExecStart= and desktop Exec= (both accept double quotes)."""
    out = []
    for a in args:
        if any(c in a for c in ' \t"\\$%'):
            a = '"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out.append(a)
    return " ".join(out)


def render(name: str, command: Sequence[str]) -> str:
    return packaged(name).read_text(encoding="utf-8").replace(PLACEHOLDER, _exec_quote(command))


def unit_path() -> Path:
    return paths.config_home() / "systemd" / "user" / UNIT_NAME


def desktop_path() -> Path:
    return paths.config_home() / "autostart" / DESKTOP_NAME


def has_systemd_user() -> bool:
    """True when a systemd user manager answers (not in containers, CI or non-systemd distros)."""
    if shutil.which("systemctl") is None:
        return False
    try:
        res = subprocess.run(
            ["systemctl", "--user", "is-system-running"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except subprocess.TimeoutExpired:
        return False
    # "degraded" still means a working manager; only "offline"/errors mean none.
    return res.stdout.strip() in {"running", "degraded", "starting", "initializing"}


def module_loaded() -> bool:
    return Path(LOOPBACK_MODULE).is_dir()


def kernel_loads_modules() -> bool:
    # /proc/modules exists only on kernels built with CONFIG_MODULES=y.
    return Path("/proc/modules").exists()


def _write_file(path: Path, text: str) -> Callable[[], None]:
    def action() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)  # atomic: a half-written unit is never picked up

    return action


def _remove_file(path: Path) -> Callable[[], None]:
    return lambda: path.unlink(missing_ok=True)


def _is_ours(path: Path) -> bool:
    try:
        return OUR_MARK in path.read_text(encoding="utf-8")
    except OSError:
        return False


def plan_install(
    *,
    systemd: bool,
    loaded: bool,
    can_load: bool = True,
    start: bool = True,
    command: Sequence[str] | None = None,
    install_models: Callable[[], None] | None = None,
) -> list[Step]:
    """The install steps; `install_models` (when the default model is missing) runs before
    the service starts, so the daemon finds its model."""
    command = list(command or pixcam_command())
    steps: list[Step] = []
    for src, dest in ETC_FILES.items():
        steps.append(
            Step(
                f"install {dest} (as root)",
                ("install", "-D", "-m", "0644", str(packaged(src)), str(dest)),
                root=True,
            )
        )
    if loaded and can_load:
        # Options only apply when the module loads; a loaded module keeps its old ones.
        steps.append(
            Step(
                "unload v4l2loopback to apply the new options (fails harmlessly if a program "
                "uses the camera; then reboot instead)",
                ("modprobe", "-r", "v4l2loopback"),
                root=True,
                may_fail=True,
            )
        )
    if can_load:
        steps.append(
            Step(
                "load v4l2loopback with those options (as root)",
                ("modprobe", "v4l2loopback"),
                root=True,
            )
        )
    unit = unit_path()
    steps.append(
        Step(
            f"write the systemd user unit {unit}",
            action=_write_file(unit, render(UNIT_NAME, command)),
        )
    )
    desktop = desktop_path()
    steps.append(
        Step(
            f"write the autostart entry {desktop} (for non-systemd sessions)",
            action=_write_file(desktop, render(DESKTOP_NAME, command)),
        )
    )
    if install_models is not None:
        steps.append(
            Step(
                "download the models from their public origins, check them, make the int8 "
                "default (`pixcam models install`)",
                action=install_models,
            )
        )
    if systemd:
        steps.append(
            Step("reload the systemd user manager", ("systemctl", "--user", "daemon-reload"))
        )
        enable = ["systemctl", "--user", "enable", UNIT_NAME]
        if start:
            enable.insert(3, "--now")
        steps.append(
            Step(
                f"enable pixcam in the desktop session{' and start it now' if start else ''}",
                tuple(enable),
            )
        )
    return steps


def plan_uninstall(*, systemd: bool, loaded: bool, can_load: bool = True) -> list[Step]:
    steps: list[Step] = []
    if systemd:
        steps.append(
            Step(
                "stop and disable the pixcam user service",
                ("systemctl", "--user", "disable", "--now", UNIT_NAME),
                may_fail=True,
            )
        )
    for path in (unit_path(), desktop_path()):
        if path.exists() and _is_ours(path):
            steps.append(Step(f"remove {path}", action=_remove_file(path)))
    if systemd:
        steps.append(
            Step("reload the systemd user manager", ("systemctl", "--user", "daemon-reload"))
        )
    for dest in ETC_FILES.values():
        if dest.exists() and _is_ours(dest):
            steps.append(Step(f"remove {dest} (as root)", ("rm", "-f", str(dest)), root=True))
    if loaded and can_load:
        steps.append(
            Step(
                "unload v4l2loopback (fails harmlessly if a program uses the camera)",
                ("modprobe", "-r", "v4l2loopback"),
                root=True,
                may_fail=True,
            )
        )
    return steps


def sudo_prefix() -> list[str]:
    """[] when already root, ["sudo"] otherwise; an error when sudo is needed but missing."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") is None:
        raise PixcamError(
            "sudo is not installed; run `pixcam setup --dry-run` and run the root commands "
            "it prints as root"
        )
    return ["sudo"]


def describe(steps: Sequence[Step], sudo: Sequence[str]) -> list[str]:
    lines = []
    for i, step in enumerate(steps, 1):
        line = f"{i}. {step.what}"
        if step.argv:
            line += f"\n     $ {step.command_line(sudo)}"
        lines.append(line)
    return lines


def execute(steps: Sequence[Step], sudo: Sequence[str], out: Callable[[str], None]) -> int:
    """Run the steps in order; returns the number of failed best-effort steps."""
    soft_failures = 0
    for step in steps:
        if step.action is not None:
            step.action()
            out(f"done: {step.what}")
            continue
        argv = [*(sudo if step.root else []), *step.argv]
        res = subprocess.run(argv, check=False, capture_output=True, text=True)
        if res.returncode == 0:
            out(f"done: {step.what}")
            continue
        detail = (res.stderr or res.stdout).strip().splitlines()
        reason = detail[-1] if detail else f"exit code {res.returncode}"
        if step.may_fail:
            soft_failures += 1
            out(f"skipped: {step.what}: {reason}")
            continue
        hint = ""
        if step.argv[:2] == ("modprobe", "v4l2loopback"):
            hint = (
                "; is v4l2loopback installed? (Debian/Ubuntu: sudo apt install "
                "v4l2loopback-dkms; Fedora: sudo dnf install v4l2loopback; Arch: sudo pacman -S "
                "v4l2loopback-dkms)"
            )
        raise PixcamError(f"`{step.command_line(sudo)}` failed: {reason}{hint}")
    return soft_failures


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise PixcamError("not asking on a non-interactive input; add --yes to go ahead")
    return input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}


def _models_step(out: Callable[[str], None]) -> Callable[[], None] | None:
    """`pixcam models install` as a best-effort step, or None when the default is in place.

    Best effort: without a network the system integration is still worth having, and the
    report says how to get the models later.
    """
    from pixcam import models

    default = models.get_spec(None)
    if default.installed and models.sha256_of(default.path) == default.sha256:
        return None

    def action() -> None:
        try:
            for line in models.install():
                out(line)
        except PixcamError as exc:
            out(f"models not installed: {exc}; run `pixcam models install` later")

    return action


def run(
    *,
    uninstall: bool = False,
    dry_run: bool = False,
    yes: bool = False,
    start: bool = True,
    out: Callable[[str], None] = print,
) -> int:
    """The `pixcam setup` command; returns the exit code."""
    systemd = has_systemd_user()
    loaded = module_loaded()
    can_load = kernel_loads_modules()
    steps = (
        plan_uninstall(systemd=systemd, loaded=loaded, can_load=can_load)
        if uninstall
        else plan_install(
            systemd=systemd,
            loaded=loaded,
            can_load=can_load,
            start=start,
            install_models=_models_step(out),
        )
    )
    if not steps:
        out("nothing to do: pixcam's system files are not installed")
        return 0
    # In a dry run nothing executes, so a missing sudo is shown rather than an error.
    sudo = (["sudo"] if os.geteuid() != 0 else []) if dry_run else sudo_prefix()
    verb = "remove" if uninstall else "install"
    out(f"pixcam setup will {verb} pixcam's system integration:")
    for line in describe(steps, sudo):
        out(line)
    if not systemd and not uninstall:
        out("(no systemd user manager found: the autostart entry starts pixcam at login)")
    if not can_load and not uninstall:
        out(
            "(this kernel has no loadable module support (CONFIG_MODULES=n): v4l2loopback "
            "cannot be loaded until you boot a kernel with modules; the /etc files apply then)"
        )
    if dry_run:
        out("dry run: nothing was changed; the commands above are what would run")
        return 0
    if any(s.root for s in steps) and sudo:
        out("sudo is used only for the steps marked 'as root'.")
    if not yes and not _confirm("Go ahead?"):
        out("cancelled; nothing was changed")
        return 1
    execute(steps, sudo, out)
    if not uninstall and not systemd:
        out("pixcam starts at your next login; run `pixcam daemon` to start it now")
    return 0
