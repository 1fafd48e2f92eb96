"""`pixcam doctor`: each problem is reported on one line with its fix, and the exit code says
whether something required is missing. The v4l2loopback cases use fake /sys and /proc trees;
the real loaded module is checked in the VM (tests/v4l2/test_doctor_vm.py)."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

import pytest

from conftest import SHARED_MODELS, need
from pixcam import models
from pixcam.cli import main
from pixcam.tools import doctor
from pixcam.tools.doctor import Env, Status
from pixcam.video import v4l2caps


def _by_name(checks: list[doctor.Check], name: str) -> list[doctor.Check]:
    return [c for c in checks if c.name == name]


# ---------------------------------------------------------------------- this machine
@pytest.mark.skipif(
    Path("/sys/module/v4l2loopback").is_dir(),
    reason="v4l2loopback is loaded here; the loaded case runs in tests/v4l2",
)
def test_this_machine_reports_v4l2loopback_missing_with_the_fix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["doctor"])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.split()[1:2] == ["v4l2loopback"]]
    assert len(lines) == 1, out
    line = lines[0]
    assert line.startswith("FAIL  v4l2loopback")
    assert "-> fix:" in line
    # The fix matches why it is missing on this kernel.
    if Path("/proc/modules").exists():
        assert "modprobe" in line or "apt install v4l2loopback-dkms" in line
    else:
        assert "no loadable module support" in line and "CONFIG_MODULES=n" in line
    # Nothing to write to, so the output check is skipped rather than failed twice.
    assert any(ln.startswith("--    output") for ln in out.splitlines()), out
    assert code == 1


def test_every_check_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    checks = doctor.run_checks()
    assert checks
    for c in checks:
        assert "\n" not in c.line(), c
        # A problem always comes with its fix.
        if c.status in (Status.FAIL, Status.WARN):
            assert c.fix, c


# ------------------------------------------------------------------ fake kernel trees
def _fake_env(tmp_path: Path, *, proc_modules: bool, ko: bool = False) -> Env:
    sys_root, proc_root, lib = tmp_path / "sys", tmp_path / "proc", tmp_path / "lib_modules"
    (sys_root / "class" / "video4linux").mkdir(parents=True)
    (sys_root / "module").mkdir(parents=True)
    proc_root.mkdir()
    if proc_modules:
        (proc_root / "modules").write_text("videodev 1 0 - Live 0x0\n")
    if ko:
        dkms = lib / platform.release() / "updates" / "dkms"
        dkms.mkdir(parents=True)
        (dkms / "v4l2loopback.ko.xz").write_bytes(b"\0")
    return Env(
        sys_root=sys_root,
        proc_root=proc_root,
        lib_modules=lib,
        etc_root=tmp_path / "etc",
        query_devices=False,
        environ={},
    )


def _add_loopback(env: Env, num: int, label: str) -> None:
    real = env.sys_root / "devices" / "virtual" / "video4linux" / f"video{num}"
    real.mkdir(parents=True)
    (real / "name").write_text(label + "\n")
    (env.v4l_class / f"video{num}").symlink_to(real)


def _load_module(env: Env, exclusive_caps: str, video_nr: str) -> None:
    params = env.loopback_module / "parameters"
    params.mkdir(parents=True)
    (params / "exclusive_caps").write_text(exclusive_caps + "\n")
    (params / "video_nr").write_text(video_nr + "\n")
    (env.loopback_module / "version").write_text("0.12.7\n")


def test_kernel_without_module_support(tmp_path: Path) -> None:
    env = _fake_env(tmp_path, proc_modules=False)
    checks, out = doctor.check_loopback(env, doctor._nodes(env), "auto")
    assert out == ""
    c = checks[0]
    assert c.status is Status.FAIL
    assert "no loadable module support" in c.detail
    assert "kernel with module support" in c.fix


def test_module_installed_but_not_loaded(tmp_path: Path) -> None:
    env = _fake_env(tmp_path, proc_modules=True, ko=True)
    [c, boot], _ = doctor.check_loopback(env, [], "auto")
    assert (c.status, c.detail) == (Status.FAIL, "installed but not loaded")
    assert (boot.name, boot.status) == ("boot config", Status.WARN)
    assert "pixcam setup" in c.fix
    assert "modprobe v4l2loopback devices=1 video_nr=10 card_label=pixcam exclusive_caps=1" in c.fix


def test_module_not_installed(tmp_path: Path) -> None:
    env = _fake_env(tmp_path, proc_modules=True, ko=False)
    [c, _boot], _ = doctor.check_loopback(env, [], "auto")
    assert (c.status, c.detail) == (Status.FAIL, "not installed")
    assert "apt install v4l2loopback-dkms" in c.fix


def test_loaded_module_with_pixcam_device_and_boot_config(tmp_path: Path) -> None:
    env = _fake_env(tmp_path, proc_modules=True)
    _load_module(env, "Y,N,N,N,N,N,N,N", "10,-1,-1,-1,-1,-1,-1,-1")
    _add_loopback(env, 10, "pixcam")
    for sub, name in (("modules-load.d", "modules-load.pixcam.conf"),
                      ("modprobe.d", "modprobe.pixcam.conf")):  # fmt: skip
        (env.etc_root / sub).mkdir(parents=True)
        shutil.copy(doctor_packaged(name), env.etc_root / sub / "pixcam.conf")
    nodes = doctor._nodes(env)
    checks, out = doctor.check_loopback(env, nodes, "auto")
    assert out == "/dev/video10"
    lines = [c.line() for c in checks]
    assert checks[0].status is Status.OK and "loaded 0.12.7: 1 device(s)" in checks[0].detail
    assert any("/dev/video10 'pixcam' exclusive_caps=Y" in line for line in lines), lines
    assert _by_name(checks, "boot config")[0].status is Status.OK
    assert not [c for c in checks if c.status in (Status.WARN, Status.FAIL)], lines


def test_loaded_without_exclusive_caps_or_label_warns(tmp_path: Path) -> None:
    env = _fake_env(tmp_path, proc_modules=True)
    _load_module(env, "N,N,N,N,N,N,N,N", "3,-1,-1,-1,-1,-1,-1,-1")
    _add_loopback(env, 3, "Dummy video device (0x0000)")
    checks, out = doctor.check_loopback(env, doctor._nodes(env), "auto")
    assert out == "/dev/video3"
    warns = [c for c in checks if c.status is Status.WARN]
    details = " | ".join(c.detail for c in warns)
    assert "no virtual camera is labelled 'pixcam'" in details
    assert "exclusive_caps off" in details and "Chrome" in details
    assert "not set to load at boot" in details
    assert all("pixcam setup" in c.fix for c in warns)
    # Warnings only: streaming to it works, so nothing required is missing.
    assert doctor.exit_code(checks) == 0


def test_loaded_without_devices_fails(tmp_path: Path) -> None:
    env = _fake_env(tmp_path, proc_modules=True)
    _load_module(env, "N", "-1")
    checks, out = doctor.check_loopback(env, [], "auto")
    assert out == "" and checks[0].status is Status.FAIL
    assert "modprobe -r v4l2loopback" in checks[0].fix


def doctor_packaged(name: str) -> Path:
    from pixcam.tools.install_system import packaged

    return packaged(name)


# --------------------------------------------------------------------------- models
def test_broken_model_hash_is_reported_with_the_reinstall_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PIXCAM_MODELS_DIR", str(tmp_path / "models"))
    spec = models.get_spec(None)
    spec.path.parent.mkdir(parents=True)
    spec.path.write_bytes(b"not a tflite model")
    checks = doctor.check_models(None)
    fails = [c for c in checks if c.status is Status.FAIL]
    assert len(fails) == 1, checks
    assert spec.name in fails[0].detail and "damaged or altered" in fails[0].detail
    assert fails[0].fix == f"pixcam models install --name {spec.name} --force"
    assert main(["doctor"]) == 1
    line = f"FAIL  model          {spec.name}: model file {spec.path} is damaged"
    assert line in capsys.readouterr().out


def test_missing_configured_model_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXCAM_MODELS_DIR", str(tmp_path / "empty"))
    c, others = doctor.check_models("selfie-general")
    assert others.status is Status.INFO and others.fix == "pixcam models install"
    assert others.detail.startswith("not installed: bodypix-050-s16-float, ")
    assert (
        c.status is Status.FAIL
        and "selfie-general (the configured model) is not installed" in c.detail
    )
    assert "--name selfie-general" in c.fix


def test_unmade_int8_default_is_a_warning_when_its_float_original_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need(SHARED_MODELS, "shared models")
    monkeypatch.setenv("PIXCAM_MODELS_DIR", str(tmp_path))
    default = models.get_spec(None)
    assert default.derived_from, "the default is the int8 model made by `models install`"
    list(models.install(str(SHARED_MODELS), names=[default.derived_from]))
    [check] = [c for c in doctor.check_models(None) if default.name in c.detail]
    assert check.status is Status.WARN and "serves instead" in check.detail
    assert check.fix == "pixcam models install"
    assert models.resolve(None).name == default.derived_from
    [named] = [c for c in doctor.check_models(default.name) if default.name in c.detail]
    assert named.status is Status.FAIL


def test_installed_models_pass(models_installed: Path) -> None:
    checks = doctor.check_models(None)
    assert checks and all(c.status is Status.OK for c in checks), checks
    assert sum("(configured)" in c.detail for c in checks) == 1
    # Where each came from, as recorded at install time.
    [default] = [c for c in checks if "(configured)" in c.detail]
    assert "sha256 ok, from quantized from bodypix-050-s16-float" in default.detail
    assert all("origin not recorded" not in c.detail for c in checks)


# --------------------------------------------------------------------------- config
def test_broken_config_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text('[effects]\nbackground = "sparkles"\nblurr = 3\n', encoding="utf-8")
    [c], config = doctor.check_config(Env(config_path=bad))
    assert config is None
    assert c.status is Status.FAIL
    assert "background" in c.detail and "(+1 more)" in c.detail
    assert c.fix == f"edit {bad}"
    assert main(["doctor", "--config", str(bad)]) == 1
    assert "FAIL  config" in capsys.readouterr().out


def test_valid_config_feeds_the_other_checks(tmp_path: Path) -> None:
    good = tmp_path / "config.toml"
    good.write_text('[camera]\ndevice = "/dev/video42"\n', encoding="utf-8")
    [c], config = doctor.check_config(Env(config_path=good))
    assert c.status is Status.OK
    cams = doctor.check_cameras([], config.camera.device)
    assert cams[-1].status is Status.FAIL and "/dev/video42 does not exist" in cams[-1].detail


def test_missing_user_config_means_defaults(tmp_path: Path) -> None:
    # conftest points XDG_CONFIG_HOME at an empty folder.
    assert not Path(os.environ["XDG_CONFIG_HOME"], "pixcam", "config.toml").exists()
    [c], config = doctor.check_config(Env())
    assert c.status is Status.OK and "using the defaults" in c.detail and config is None


# ------------------------------------------------------------------------- display
def test_no_display_is_a_warning_not_a_failure() -> None:
    checks = doctor.check_desktop(Env(environ={}))
    assert [c.status for c in checks] == [Status.WARN]
    assert doctor.exit_code(checks) == 0


@pytest.mark.parametrize(
    ("backend", "sni", "xembed", "status", "words"),
    [
        ("appindicator", True, False, Status.OK, "StatusNotifier host"),
        ("gtk", True, False, Status.WARN, "gir1.2-ayatanaappindicator3-0.1"),
        ("gtk", False, True, Status.OK, "XEmbed system tray"),
        ("gtk", True, True, Status.OK, "XEmbed system tray"),
        (None, True, True, Status.WARN, "gir1.2-gtk-3.0"),
    ],
)
def test_tray_line_tells_whether_the_icon_can_show(
    monkeypatch: pytest.MonkeyPatch,
    backend: str | None,
    sni: bool,
    xembed: bool,
    status: Status,
    words: str,
) -> None:
    from pixcam import tray

    monkeypatch.setattr(tray, "tray_backend", lambda: backend)
    monkeypatch.setattr(doctor, "tray_host", lambda _environ: (sni, xembed))
    env = Env(environ={"DISPLAY": ":5", "DBUS_SESSION_BUS_ADDRESS": "unix:path=/x"})
    (line,) = [c for c in doctor.check_desktop(env) if c.name == "tray"]
    assert line.status is status and words in line.line(), line.line()
    if backend == "gtk":
        check = doctor._tray_backend_check()
        assert check.status is Status.WARN
        assert check.fix == "sudo apt install gir1.2-ayatanaappindicator3-0.1"


# --------------------------------------------------------------------------- ioctls
def test_v4l2_ioctl_numbers_match_videodev2_h() -> None:
    # Values from <linux/videodev2.h> on x86-64 (`_IOR('V', 0, struct v4l2_capability)`).
    assert v4l2caps.VIDIOC_QUERYCAP == 0x80685600
    assert v4l2caps.VIDIOC_ENUM_FMT == 0xC0405602
    assert v4l2caps.fourcc_text(0x56595559) == "YUYV"
    assert v4l2caps.fourcc_text(0x47504A4D) == "MJPG"


def test_query_of_a_non_v4l2_file_raises(tmp_path: Path) -> None:
    f = tmp_path / "not-a-device"
    f.write_bytes(b"")
    with pytest.raises(OSError) as exc:
        v4l2caps.query(str(f))
    assert v4l2caps.explain_oserror(exc.value) == "not a V4L2 device"


def test_instance_check_sees_a_running_pixcam(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pixcam.control import ControlServer

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    (check,) = doctor.check_instance()
    assert (check.status, check.detail) == (Status.OK, "no other pixcam is running")

    class App:  # the running daemon's version and pid come from its status
        def status(self) -> dict[str, object]:
            return {"version": "9.8.7", "pid": 4242}

    with ControlServer(App()):  # type: ignore[arg-type]
        (check,) = doctor.check_instance()
    assert check.status is Status.INFO
    assert check.detail.startswith("pixcam 9.8.7, pid 4242, is running (control socket ")


# ------------------------------------------------------------------------ version, firefox
def test_version_in_cli_and_doctor(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.metadata

    import pixcam

    # The installed metadata carries the package's own __version__ (pyproject reads it).
    assert importlib.metadata.version("pixcam") == pixcam.__version__
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"pixcam {pixcam.__version__}"
    (line,) = [c for c in doctor.check_python() if c.name == "pixcam"]
    assert line.detail.startswith(pixcam.__version__ + " (")


def _fake_proc(root: Path, pid: int, comm: str, start_ticks: int) -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "comm").write_text(comm + "\n")
    # comm in parentheses may hold spaces and ")"; field 22 is the start time.
    fields = ["S", *["0"] * 18, str(start_ticks), "0"]
    (d / "stat").write_text(f"{pid} ({comm} x) y) " + " ".join(fields) + "\n")


def test_firefox_started_before_pixcam_warns(tmp_path: Path) -> None:
    env = Env(proc_root=tmp_path)
    assert doctor.check_firefox(env, None)[0].status is Status.INFO  # no Firefox running
    _fake_proc(tmp_path, 100, "firefox-esr", 5000)
    _fake_proc(tmp_path, 101, "Isolated Web Co", 900)  # a content process is not the browser
    _fake_proc(tmp_path, 200, "pixcam", 7000)
    (before,) = doctor.check_firefox(env, 200)
    assert before.status is Status.WARN and "restart Firefox" in before.fix
    (none,) = doctor.check_firefox(env, None)
    assert none.status is Status.WARN and "pixcam is not" in none.detail
    _fake_proc(tmp_path, 300, "pixcam", 4000)
    (after,) = doctor.check_firefox(env, 300)
    assert after.status is Status.OK, after
