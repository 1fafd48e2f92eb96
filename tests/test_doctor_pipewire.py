"""`pixcam doctor`'s PipeWire lines: whether a missing PipeWire or loopback is a failure depends
on `[output] backend`, and the "who sees it" line names the apps of the backend in use."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixcam.tools import doctor, doctor_pipewire
from pixcam.video import outputs, pipewire_sink


def _no_pipewire(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipewire_sink, "pipewire_socket", lambda: None)
    monkeypatch.setattr(pipewire_sink, "missing", lambda: "PipeWire is not running")


def test_no_pipewire_fails_only_for_the_pipewire_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_pipewire(monkeypatch)
    monkeypatch.setattr(doctor_pipewire, "_run", lambda *a, **k: None)
    for backend, status in (
        ("pipewire", doctor.Status.FAIL),
        ("both", doctor.Status.WARN),
        ("auto", doctor.Status.WARN),
    ):
        checks = doctor_pipewire.check_pipewire(backend)
        first = checks[0]
        assert first.name == "pipewire" and first.status is status, (backend, first)
        assert "systemctl --user" in first.fix
    portal = doctor_pipewire.check_portal()
    assert portal.status is doctor.Status.WARN and "xdg-desktop-portal" in portal.fix


def test_who_sees_names_the_apps_of_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outputs, "resolve", lambda backend: backend)
    assert "Zoom" in doctor_pipewire.who_sees("v4l2loopback").detail
    assert "Zoom" not in doctor_pipewire.who_sees("pipewire").detail
    both = doctor_pipewire.who_sees("both").detail
    assert "OBS 30.1+" in both and "Zoom" in both and "twice" in both


def test_a_missing_loopback_only_warns_with_the_pipewire_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipewire_sink, "pipewire_socket", lambda: "/run/user/1000/pipewire-0")
    monkeypatch.setattr(pipewire_sink, "missing", lambda: None)
    monkeypatch.setattr(doctor_pipewire, "_run", lambda *a, **k: None)
    cfg = tmp_path / "pixcam.toml"
    for backend, loopback_fails in (("pipewire", False), ("v4l2loopback", True)):
        cfg.write_text(f'[output]\nbackend = "{backend}"\n', encoding="utf-8")
        env = doctor.Env(config_path=cfg, sys_root=tmp_path / "sys", proc_root=tmp_path / "proc")
        checks = doctor.run_checks(env)
        loop = next(c for c in checks if c.name == "v4l2loopback")
        assert (loop.status is doctor.Status.FAIL) is loopback_fails, (backend, loop)
