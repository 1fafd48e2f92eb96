"""`pixcam setup`: the plan it shows, the files it writes, and that only /etc and modprobe
go through sudo. Root steps are never executed here; user steps write into the test's
XDG_CONFIG_HOME (a fresh one per test)."""

from __future__ import annotations

import configparser
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from pixcam.errors import PixcamError
from pixcam.tools import install_system as inst

COMMAND = ["/opt/pix cam/bin/pixcam"]  # a space, to check the quoting of Exec lines


@pytest.fixture(autouse=True)
def _own_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test starts without pixcam's user files.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def _run_user_steps(steps: list[inst.Step]) -> None:
    for step in steps:
        if not step.root and step.action is not None:
            step.action()


def test_packaged_v4l2loopback_files() -> None:
    assert inst.packaged("modules-load.pixcam.conf").read_text().splitlines()[-1] == "v4l2loopback"
    options = [
        line
        for line in inst.packaged("modprobe.pixcam.conf").read_text().splitlines()
        if not line.startswith("#")
    ]
    assert options == [
        "options v4l2loopback devices=1 video_nr=10 card_label=pixcam exclusive_caps=1"
    ]


def test_only_etc_files_and_modprobe_need_root() -> None:
    steps = inst.plan_install(systemd=True, loaded=False, command=COMMAND)
    root = [s.command_line(["sudo"]) for s in steps if s.root]
    mods = inst.packaged("modules-load.pixcam.conf")
    probe = inst.packaged("modprobe.pixcam.conf")
    assert root == [
        f"sudo install -D -m 0644 {mods} /etc/modules-load.d/pixcam.conf",
        f"sudo install -D -m 0644 {probe} /etc/modprobe.d/pixcam.conf",
        "sudo modprobe v4l2loopback",
    ]
    user = [s.command_line(["sudo"]) for s in steps if not s.root and s.argv]
    assert user == [
        "systemctl --user daemon-reload",
        "systemctl --user enable --now pixcam.service",
    ]
    assert not any("sudo" in line for line in user)


def test_loaded_module_is_reloaded_to_apply_options_and_may_fail() -> None:
    steps = inst.plan_install(systemd=False, loaded=True, command=COMMAND)
    argvs = [s.argv for s in steps if s.root]
    unload = argvs.index(("modprobe", "-r", "v4l2loopback"))
    assert argvs[unload + 1] == ("modprobe", "v4l2loopback")
    assert steps[[s.argv for s in steps].index(("modprobe", "-r", "v4l2loopback"))].may_fail
    # Without a systemd user manager there is nothing to enable.
    assert not any(s.argv[:1] == ("systemctl",) for s in steps)


def test_no_modprobe_on_a_kernel_without_modules() -> None:
    steps = inst.plan_install(systemd=False, loaded=False, can_load=False, command=COMMAND)
    assert not any("modprobe" in s.argv for s in steps)
    assert sum(s.root for s in steps) == 2  # the /etc files are still installed for later


def test_user_files_are_written_with_the_absolute_command() -> None:
    _run_user_steps(inst.plan_install(systemd=False, loaded=False, command=COMMAND))
    unit = inst.unit_path().read_text()
    assert inst.unit_path() == Path(os.environ["XDG_CONFIG_HOME"], "systemd/user/pixcam.service")
    assert '\nExecStart="/opt/pix cam/bin/pixcam" daemon\n' in unit
    assert "Restart=on-failure" in unit
    assert "PartOf=graphical-session.target" in unit and "WantedBy=graphical-session.target" in unit
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.optionxform = str  # keys are case-sensitive in desktop files
    desktop.read(inst.desktop_path())
    entry = desktop["Desktop Entry"]
    assert entry["Exec"] == '"/opt/pix cam/bin/pixcam" daemon'
    assert entry["Type"] == "Application" and entry["X-systemd-skip"] == "true"
    assert "@PIXCAM@" not in unit + inst.desktop_path().read_text()


def test_pixcam_command_is_this_install() -> None:
    cmd = inst.pixcam_command()
    assert Path(cmd[0]).is_absolute()
    assert cmd[0].endswith("/pixcam") or cmd[1:] == ["-m", "pixcam"]


def test_dry_run_prints_every_step_and_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    assert inst.run(dry_run=True, out=lines.append) == 0
    text = "\n".join(lines)
    assert "/etc/modprobe.d/pixcam.conf" in text and "/etc/modules-load.d/pixcam.conf" in text
    assert str(inst.unit_path()) in text and str(inst.desktop_path()) in text
    assert "dry run: nothing was changed" in text
    assert not inst.unit_path().exists() and not inst.desktop_path().exists()


def test_refuses_to_guess_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(PixcamError, match="--yes"):
        inst.run(out=lambda _: None)
    assert not inst.unit_path().exists()


def test_uninstall_removes_only_our_files(tmp_path: Path) -> None:
    _run_user_steps(inst.plan_install(systemd=False, loaded=False, command=COMMAND))
    assert inst.unit_path().exists() and inst.desktop_path().exists()
    # Someone replaced the autostart entry with their own: uninstall must keep it.
    inst.desktop_path().write_text("[Desktop Entry]\nExec=my-own-thing\n")
    steps = inst.plan_uninstall(systemd=False, loaded=False)
    assert [s.what for s in steps] == [f"remove {inst.unit_path()}"]
    _run_user_steps(steps)
    assert not inst.unit_path().exists()
    assert inst.desktop_path().read_text() == "[Desktop Entry]\nExec=my-own-thing\n"


def test_failed_root_step_names_the_command_and_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `false` stands in for a modprobe that cannot find the module.
    step = inst.Step("load v4l2loopback", ("modprobe", "v4l2loopback"), root=True)
    monkeypatch.setattr(
        inst.subprocess,
        "run",
        lambda argv, **kw: inst.subprocess.CompletedProcess(
            argv, 1, "", "modprobe: FATAL: Module v4l2loopback not found"
        ),
    )
    with pytest.raises(PixcamError) as exc:
        inst.execute([step], ["sudo"], lambda _: None)
    msg = str(exc.value)
    assert msg.startswith("`sudo modprobe v4l2loopback` failed: modprobe: FATAL")
    assert "v4l2loopback-dkms" in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("tool", "name"),
    [
        (["systemd-analyze", "verify"], "pixcam.service"),
        (["desktop-file-validate"], "pixcam.desktop"),
    ],
)
def test_installed_files_pass_the_official_validators(
    tool: list[str], name: str, tmp_path: Path
) -> None:
    if shutil.which(tool[0]) is None:
        pytest.skip(f"{tool[0]} not installed")
    # The file as setup writes it, pointing at this install (verify checks ExecStart exists).
    path = tmp_path / name
    path.write_text(inst.render(name, inst.pixcam_command()))
    res = subprocess.run([*tool, str(path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), res.stdout + res.stderr


def test_models_are_a_step_while_the_default_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIXCAM_MODELS_DIR", str(tmp_path / "models"))
    lines: list[str] = []
    assert inst.run(dry_run=True, out=lines.append) == 0
    [step] = [line for line in lines if "download the models" in line]
    assert "`pixcam models install`" in step
    # No network (a port nobody listens on): one line that says how to get them later.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv("PIXCAM_MODEL_MIRROR", f"http://127.0.0.1:{sock.getsockname()[1]}")
    action = inst._models_step(lines.append)
    assert action is not None
    action()
    assert lines[-1].startswith("models not installed: cannot reach 127.0.0.1")
    assert lines[-1].endswith("run `pixcam models install` later")


def test_no_models_step_once_the_default_is_installed(models_installed: Path) -> None:
    lines: list[str] = []
    assert inst.run(dry_run=True, out=lines.append) == 0
    assert not [line for line in lines if "models install" in line]
