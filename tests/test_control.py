"""Control socket end to end, single instance, and signals (in a subprocess)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pixcam import control
from pixcam.cli import main
from pixcam.config import load_config
from pixcam.control import MAX_REQUEST_BYTES, ControlServer, run_ctl, send_command
from pixcam.errors import PixcamError

REPO = Path(__file__).resolve().parents[1]


class FakeApp:
    """Records calls; `set` refuses one key the way the daemon refuses a bad value."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.enabled = True
        self.quit_event = threading.Event()
        self.on_quit: Any = None

    def status(self) -> dict[str, Any]:
        self.calls.append(("status", None))
        return {
            "effects": {"enabled": self.enabled},
            "fps": 29.5,
            "model": "bodypix",
            "p": Path("/x"),
        }

    def set(self, key: str, value: Any) -> None:
        self.calls.append(("set", (key, value)))
        if key == "effects.background" and value == "blurr":
            raise PixcamError('effects.background: "blurr" is not one of the choices')
        if key == "crash":
            raise RuntimeError("boom")

    def toggle(self) -> bool:
        self.calls.append(("toggle", None))
        self.enabled = not self.enabled
        return self.enabled

    def reload(self) -> None:
        self.calls.append(("reload", None))

    def quit(self) -> None:
        self.calls.append(("quit", None))
        self.quit_event.set()
        if self.on_quit is not None:
            self.on_quit()

    def pause(self) -> bool:
        self.calls.append(("pause", None))
        return True

    def resume(self) -> bool:
        self.calls.append(("resume", None))
        return False

    def away(self, on: bool) -> bool:
        self.calls.append(("away", on))
        return on


class NoPauseApp(FakeApp):
    """An app such as a plain pipeline runner, with no camera pause."""

    pause = None  # type: ignore[assignment]
    resume = None  # type: ignore[assignment]


class SlowApp(FakeApp):
    """`status` blocks until released, so a test can close the server mid-request."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def status(self) -> dict[str, Any]:
        self.entered.set()
        self.release.wait()
        return {"slow": True}


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "control.sock"


@pytest.fixture
def server(sock_path: Path) -> Any:
    app = FakeApp()
    srv = ControlServer(app, sock_path).start()
    yield srv
    srv.close()


def _raw(path: Path, *payloads: bytes) -> list[dict[str, Any]]:
    """Send raw bytes on one connection; read one reply line per payload."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        replies = []
        reader = sock.makefile("rb")
        for payload in payloads:
            # The server hangs up on an oversized request; its reply is still queued.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(payload)
            replies.append(json.loads(reader.readline()))
        return replies


# ------------------------------------------------------------------------ commands
def test_status_set_toggle_reload_quit(server: ControlServer) -> None:
    app: FakeApp = server.app  # type: ignore[assignment]
    status = send_command("status", path=server.path)
    assert status == {
        "ok": True,
        "status": {"effects": {"enabled": True}, "fps": 29.5, "model": "bodypix", "p": "/x"},
    }
    assert send_command("set", path=server.path, key="effects.blur_strength", value=70) == {
        "ok": True
    }
    assert send_command("toggle", path=server.path) == {"ok": True, "enabled": False}
    assert send_command("toggle", path=server.path) == {"ok": True, "enabled": True}
    assert send_command("reload", path=server.path) == {"ok": True}
    assert send_command("quit", path=server.path) == {"ok": True}
    assert app.calls == [
        ("status", None),
        ("set", ("effects.blur_strength", 70)),
        ("toggle", None),
        ("toggle", None),
        ("reload", None),
        ("quit", None),
    ]
    assert app.quit_event.is_set()


def test_app_errors_become_error_replies(server: ControlServer) -> None:
    reply = send_command("set", path=server.path, key="effects.background", value="blurr")
    assert reply == {"ok": False, "error": 'effects.background: "blurr" is not one of the choices'}
    reply = send_command("set", path=server.path, key="crash", value=1)
    assert reply["ok"] is False
    assert reply["error"] == "internal error in set: RuntimeError: boom"
    assert send_command("status", path=server.path)["ok"] is True  # still serving


def test_bad_requests_get_error_replies_on_the_same_connection(server: ControlServer) -> None:
    replies = _raw(
        server.path,
        b"this is not json\n",
        b"[1, 2]\n",
        b'{"cmd": "explode"}\n',
        b'{"nocmd": 1}\n',
        b'{"cmd": "set", "key": "effects.mirror"}\n',
        b'{"cmd": "set", "key": 5, "value": 1}\n',
        b"\xff\xfe\n",
        b'\n  \n{"cmd": "toggle"}\n',  # blank lines are skipped
    )
    errors = [r.get("error", "") for r in replies]
    assert [r["ok"] for r in replies] == [False] * 7 + [True]
    assert errors[0].startswith("malformed request")
    assert errors[1].startswith("malformed request: expected a JSON object")
    assert errors[2] == (
        "unknown command 'explode'; commands: status, set, toggle, reload, quit, pause, "
        "resume, away"
    )
    assert errors[3].startswith("unknown command None")
    assert errors[4].startswith('set needs "key"') and errors[5].startswith('set needs "key"')
    assert errors[6].startswith("malformed request")
    assert replies[7] == {"ok": True, "enabled": False}


@pytest.mark.parametrize("newline", [b"", b"\n"])
def test_oversized_request_is_refused_and_server_keeps_serving(
    server: ControlServer, newline: bytes
) -> None:
    big = b'{"cmd": "status", "pad": "' + b"x" * (MAX_REQUEST_BYTES + 10) + b'"}' + newline
    (reply,) = _raw(server.path, big)
    assert reply == {"ok": False, "error": f"request too large (over {MAX_REQUEST_BYTES} bytes)"}
    assert send_command("status", path=server.path)["ok"] is True


def test_client_hanging_up_mid_request_does_not_hurt(server: ControlServer) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(server.path))
        sock.sendall(b'{"cmd": "sta')
    assert send_command("status", path=server.path)["ok"] is True


def test_quit_that_closes_the_server_still_answers(sock_path: Path) -> None:
    app = FakeApp()
    srv = ControlServer(app, sock_path).start()
    app.on_quit = srv.close  # the daemon may tear everything down from inside quit()
    assert send_command("quit", path=sock_path) == {"ok": True}
    assert not sock_path.exists()
    with pytest.raises(PixcamError, match="pixcam is not running"):
        send_command("status", path=sock_path)


def test_pause_and_resume(server: ControlServer) -> None:
    app: FakeApp = server.app  # type: ignore[assignment]
    assert send_command("pause", path=server.path) == {"ok": True, "paused": True}
    assert send_command("resume", path=server.path) == {"ok": True, "paused": False}
    assert app.calls == [("pause", None), ("resume", None)]


def test_pause_without_a_pause_concept_is_a_clear_error(sock_path: Path) -> None:
    with ControlServer(NoPauseApp(), sock_path):
        reply = send_command("pause", path=sock_path)
    assert reply == {"ok": False, "error": "pause: this pixcam has no camera pause"}


def test_away_on_and_off(server: ControlServer) -> None:
    app: FakeApp = server.app  # type: ignore[assignment]
    assert send_command("away", path=server.path, on=True) == {"ok": True, "away": True}
    assert send_command("away", path=server.path, on=False) == {"ok": True, "away": False}
    assert send_command("away", path=server.path)["error"] == 'away needs "on": true or false'
    assert app.calls == [("away", True), ("away", False)]
    lines: list[str] = []
    assert run_ctl("away", "on", path=server.path, out=lines.append) == 0
    assert lines == ["away card on"]
    with pytest.raises(PixcamError, match="away takes on or off"):
        run_ctl("away", "maybe", path=server.path)


def _send_in_thread(path: Path, cmd: str) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def target() -> None:
        try:
            result.append(send_command(cmd, path=path, timeout=60))
        except PixcamError as exc:
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def _wait_gone(path: Path) -> None:
    for _ in range(3000):  # only a hang guard: the socket goes as soon as close() starts
        if not path.exists():
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{path} still exists")


def test_close_lets_a_request_in_flight_answer(sock_path: Path) -> None:
    app = SlowApp()
    srv = ControlServer(app, sock_path).start()
    client, result = _send_in_thread(sock_path, "status")
    assert app.entered.wait(60)
    closer = threading.Thread(target=srv.close, daemon=True)
    closer.start()
    _wait_gone(sock_path)
    # Give an eager close() the chance to hang up first; the fixed one waits for the reply.
    closer.join(0.5)
    app.release.set()
    client.join(60)
    closer.join(60)
    assert result == [{"ok": True, "status": {"slow": True}}]
    assert not closer.is_alive()


def test_close_gives_up_on_a_stuck_request_after_the_grace_period(sock_path: Path) -> None:
    app = SlowApp()
    srv = ControlServer(app, sock_path, close_grace=0.05).start()
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.settimeout(60)
    idle.connect(str(sock_path))
    # One answered request first, so the connection is surely accepted; then it idles.
    idle.sendall(b'{"cmd": "toggle"}\n')
    assert json.loads(idle.makefile("rb").readline()) == {"ok": True, "enabled": False}
    client, result = _send_in_thread(sock_path, "status")
    assert app.entered.wait(60)
    try:
        srv.close()  # returns although `status` never does
        assert idle.recv(100) == b""  # the idle connection was let go
    finally:
        idle.close()
        app.release.set()
    client.join(60)
    assert len(result) == 1 and isinstance(result[0], PixcamError)
    assert "without answering" in str(result[0])


def test_close_answers_clients_still_in_the_backlog(tmp_path: Path) -> None:
    path = tmp_path / "backlog.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(4)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))  # never accepted
            client.sendall(b'{"cmd": "status"}\n')
            ControlServer._refuse_backlog(listener)
            client.settimeout(60)
            reply = client.makefile("rb").readline()
    assert json.loads(reply) == {"ok": False, "error": "pixcam is shutting down"}


# ------------------------------------------------------------------- socket and instances
def test_socket_is_private(server: ControlServer) -> None:
    assert stat.S_ISSOCK(os.stat(server.path).st_mode)
    assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600


def test_default_path_is_in_a_private_runtime_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert control.socket_path() == tmp_path / "pixcam" / "control.sock"
    with ControlServer(FakeApp()) as srv:
        assert srv.path == tmp_path / "pixcam" / "control.sock"
        assert stat.S_IMODE(os.stat(tmp_path / "pixcam").st_mode) == 0o700
        assert send_command("status")["ok"] is True


def test_fallback_without_xdg_runtime_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    private = tmp_path / f"pixcam-{os.getuid()}"
    private.mkdir(mode=0o755)  # pre-existing but too open: tightened
    private.chmod(0o755)
    assert control.socket_path() == private / "control.sock"
    with ControlServer(FakeApp()) as srv:
        assert srv.path.parent == private
        assert stat.S_IMODE(os.stat(private).st_mode) == 0o700


def test_fallback_dir_that_is_a_symlink_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / f"pixcam-{os.getuid()}").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PixcamError, match="is not a directory owned by you"):
        ControlServer(FakeApp()).start()


def test_second_instance_is_refused(server: ControlServer) -> None:
    with pytest.raises(PixcamError, match=r"^pixcam is already running \(control socket .*\)"):
        ControlServer(FakeApp(), server.path).start()
    assert send_command("status", path=server.path)["ok"] is True  # the first is unharmed


def test_second_instance_in_another_process_is_refused(server: ControlServer) -> None:
    code = (
        "import sys\nfrom pixcam.control import ControlServer\nfrom pixcam.errors import "
        "PixcamError\ntry:\n    ControlServer(object(), sys.argv[1]).start()\n"
        "except PixcamError as e:\n    print(e)\n    sys.exit(3)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(server.path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.startswith("pixcam is already running")


def test_live_socket_without_lock_is_not_stolen(sock_path: Path) -> None:
    # e.g. an instance of an older version: nobody holds the lock but the socket answers.
    sock_path.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as foreign:
        foreign.bind(str(sock_path))
        foreign.listen(1)
        with pytest.raises(PixcamError, match="already running"):
            ControlServer(FakeApp(), sock_path).start()
        assert sock_path.exists()
    # the lock was released again: once the socket is dead, the next start works
    with ControlServer(FakeApp(), sock_path):
        assert send_command("status", path=sock_path)["ok"] is True


def test_stale_socket_from_a_crash_is_taken_over(sock_path: Path) -> None:
    sock_path.parent.mkdir(parents=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock_path))  # bound, never listening, closed without unlink: a crash
    dead.close()
    (sock_path.parent / "control.sock.lock").touch()  # an unheld lock file is no obstacle
    with ControlServer(FakeApp(), sock_path):
        assert send_command("status", path=sock_path)["ok"] is True


def test_stale_socket_of_a_killed_process_is_taken_over(sock_path: Path) -> None:
    code = (
        "import sys, os, signal\nfrom pixcam.control import ControlServer\n"
        "ControlServer(object(), sys.argv[1]).start()\nos.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(sock_path)], timeout=120, env=_env())
    assert proc.returncode == -signal.SIGKILL
    assert sock_path.exists()  # left behind
    with ControlServer(FakeApp(), sock_path):
        assert send_command("status", path=sock_path)["ok"] is True


def test_close_removes_the_socket_and_a_restart_works(sock_path: Path) -> None:
    srv = ControlServer(FakeApp(), sock_path).start()
    srv.close()
    srv.close()  # idempotent
    assert not sock_path.exists()
    with ControlServer(FakeApp(), sock_path):
        assert send_command("toggle", path=sock_path) == {"ok": True, "enabled": False}


def test_not_running(sock_path: Path) -> None:
    with pytest.raises(PixcamError, match=r"^pixcam is not running \(nothing listens on "):
        send_command("status", path=sock_path)


def test_a_regular_file_at_the_socket_path_is_never_removed(sock_path: Path) -> None:
    sock_path.parent.mkdir(parents=True)
    sock_path.write_text("[effects]\nblur_strength = 77\n")  # e.g. --socket config.toml
    with pytest.raises(PixcamError, match=r"exists and is not a socket; pixcam won't replace"):
        ControlServer(FakeApp(), sock_path).start()
    assert sock_path.read_text() == "[effects]\nblur_strength = 77\n"
    with ControlServer(FakeApp(), sock_path.with_name("other.sock")):  # the lock was let go
        pass


def test_a_directory_at_the_socket_path_is_one_clear_line(sock_path: Path) -> None:
    sock_path.mkdir(parents=True)
    (sock_path / "keep").write_text("x")
    with pytest.raises(PixcamError, match=r"is a directory; give --socket a file path"):
        ControlServer(FakeApp(), sock_path).start()
    assert (sock_path / "keep").read_text() == "x"


def _connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(path))
    return sock


def test_idle_connections_do_not_lock_other_clients_out(sock_path: Path) -> None:
    with ControlServer(FakeApp(), sock_path, idle_timeout=600) as srv:
        idle = [_connect(srv.path) for _ in range(control.MAX_CONNECTIONS + 4)]
        try:
            for _ in range(3):
                assert send_command("status", path=srv.path, timeout=30)["ok"] is True
        finally:
            for sock in idle:
                sock.close()


def test_slow_drip_connections_do_not_lock_other_clients_out(sock_path: Path) -> None:
    with ControlServer(FakeApp(), sock_path, request_timeout=30) as srv:
        drips = [_connect(srv.path) for _ in range(control.MAX_CONNECTIONS)]
        try:
            for sock in drips:
                sock.sendall(b"{")  # a request begun, never finished
            assert send_command("status", path=srv.path, timeout=30)["ok"] is True
        finally:
            for sock in drips:
                sock.close()


def test_a_slow_drip_request_is_cut_off_at_its_deadline(sock_path: Path) -> None:
    with ControlServer(FakeApp(), sock_path, request_timeout=0.5) as srv, _connect(srv.path) as s:
        reply = b""
        for byte in b'{"cmd": "status"}':  # one byte every 0.1 s: each recv is quick
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            threading.Event().wait(0.1)
        reply = s.makefile("rb").readline()
    assert json.loads(reply) == {
        "ok": False,
        "error": "request not completed within 0.5 s (one JSON object and a newline)",
    }


@pytest.mark.parametrize(
    "payload",
    [b"[" * 5000, b"{" + b'"a":{' * 5000, b'{"cmd": "set", "key": "x", "value": ' + b"[" * 5000],
)
def test_deeply_nested_json_gets_an_error_reply(server: ControlServer, payload: bytes) -> None:
    (reply,) = _raw(server.path, payload + b"\n")
    assert reply == {
        "ok": False,
        "error": "malformed request: nested too deeply; send a flat JSON object",
    }
    assert send_command("status", path=server.path)["ok"] is True


# --------------------------------------------------------------------------------- cli
def test_cli_ctl(server: ControlServer, capsys: pytest.CaptureFixture[str]) -> None:
    app: FakeApp = server.app  # type: ignore[assignment]
    sock = ["--socket", str(server.path)]
    assert main(["ctl", "status", *sock]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "effects.enabled: true",
        "fps: 29.5",
        "model: bodypix",
        "p: /x",
    ]
    assert main(["ctl", "status", "--json", *sock]) == 0
    assert json.loads(capsys.readouterr().out)["status"]["fps"] == 29.5

    assert main(["ctl", "set", "parts.privacy_parts", '["face", "hands"]', *sock]) == 0
    assert main(["ctl", "set", "effects.color", "#1e88e5", *sock]) == 0
    assert main(["ctl", "set", "effects.blur_strength", "40", *sock]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        'parts.privacy_parts = ["face", "hands"]',
        'effects.color = "#1e88e5"',
        "effects.blur_strength = 40",
    ]
    assert app.calls[-3:] == [
        ("set", ("parts.privacy_parts", ["face", "hands"])),
        ("set", ("effects.color", "#1e88e5")),
        ("set", ("effects.blur_strength", 40)),
    ]

    assert main(["ctl", "set", "effects.background", "blurr", *sock]) == 1
    err = capsys.readouterr().err
    assert err == 'pixcam: effects.background: "blurr" is not one of the choices\n'

    assert main(["ctl", "toggle", *sock]) == 0
    assert main(["ctl", "reload", *sock]) == 0
    assert main(["ctl", "pause", *sock]) == 0
    assert main(["ctl", "resume", *sock]) == 0
    assert main(["ctl", "quit", *sock]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "effects off",
        "configuration reloaded",
        "camera paused",
        "camera no longer paused",
        "pixcam is shutting down",
    ]


def test_cli_ctl_when_nothing_runs(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ctl", "status", "--socket", str(sock_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"pixcam: pixcam is not running (nothing listens on {sock_path})\n"


# ----------------------------------------------------------------------------- signals
_SIGNAL_CHILD = """
import sys, threading
from pixcam.control import install_signal_handlers

class App:
    def __init__(self):
        self.done = threading.Event()
        self.enabled = True
    def say(self, text):
        print(text, flush=True)
    def status(self): return {}
    def set(self, key, value): self.say(f"set {key} {value}")
    def toggle(self):
        self.enabled = not self.enabled
        self.say(f"toggle {self.enabled}")
        return self.enabled
    def reload(self): self.say("reload")
    def quit(self):
        self.say("quit")
        if sys.argv[1] == "clean":
            self.done.set()

app = App()
install_signal_handlers(app)
app.say("ready")
# Timed, like the daemon's main loop: Python runs handlers only on the main thread, and a
# signal the kernel hands to another thread doesn't wake an untimed wait.
while not app.done.wait(0.1):
    pass
app.say("bye")
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "daemon"), env.get("PYTHONPATH", "")])
    return env


class _Child:
    def __init__(self, mode: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SIGNAL_CHILD, mode],
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("<eof>")

    def next_line(self) -> str:
        # The timeout only keeps a broken child from hanging the suite.
        return self.lines.get(timeout=60)

    def kill(self, signum: int) -> None:
        self.proc.send_signal(signum)


def test_signals_call_the_app() -> None:
    child = _Child("clean")
    try:
        assert child.next_line() == "ready"
        child.kill(signal.SIGHUP)
        assert child.next_line() == "reload"
        child.kill(signal.SIGUSR2)
        assert child.next_line() == "set effects.enabled False"
        child.kill(signal.SIGUSR1)
        assert child.next_line() == "set effects.enabled True"
        child.kill(signal.SIGTERM)
        assert child.next_line() == "quit"
        assert child.next_line() == "bye"
        assert child.proc.wait(timeout=60) == 0
    finally:
        child.proc.kill()


def test_sigint_quits_and_a_second_one_forces_the_exit() -> None:
    child = _Child("hang")  # quit() never finishes the shutdown
    try:
        assert child.next_line() == "ready"
        child.kill(signal.SIGINT)
        assert child.next_line() == "quit"
        child.kill(signal.SIGINT)
        assert child.proc.wait(timeout=60) == -signal.SIGINT
    finally:
        child.proc.kill()


def test_a_refused_socket_path_leaves_nothing_beside_it(tmp_path: Path) -> None:
    """Issue 23 fault 15: a refused `--socket PATH` left an empty `PATH.lock` beside the
    user's file. Each refusal is one line and the folder is as it was."""
    user_file = tmp_path / "config.toml"
    user_file.write_text("[effects]\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    cases = [user_file, folder, fifo, deep / "control.sock", user_file / "c.sock"]
    for path in cases:
        before = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
        with pytest.raises(PixcamError) as caught:
            ControlServer(FakeApp(), path).start()
        assert "\n" not in str(caught.value)
        after = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
        assert after == before, f"{path.name}: {caught.value}"
    assert user_file.read_text() == "[effects]\n"


def test_a_storm_of_on_or_off_signals_ends_where_it_says(tmp_path: Path) -> None:
    """Issue 23 fault 14: 1000 SIGUSR1 (then a toggle) gave 11 toggles and an arbitrary
    end state: the kernel merges signals that arrive while one is pending. Now SIGUSR1 means
    "effects on" and SIGUSR2 "effects off": merged or not, the end state is the last kind
    sent. The real `pixcam daemon` (no model needed: background none), its saved file."""
    import cv2
    import numpy as np

    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 15, (160, 96))
    for i in range(6):
        writer.write(np.full((96, 160, 3), 20 * i, np.uint8))
    writer.release()
    cfg = tmp_path / "config.toml"
    cfg.write_text('[effects]\nbackground = "none"\n')
    sock = tmp_path / "ctl.sock"
    argv = ["daemon", "--no-tray", "--config", str(cfg), "--socket", str(sock)]
    argv += ["--input", str(clip), "--output", str(tmp_path / "out.mp4")]
    proc = subprocess.Popen([sys.executable, "-m", "pixcam", *argv], env=_env())
    try:
        from conftest import wait_until

        wait_until(lambda: sock.exists() and _settings(sock), what="ctl answers", timeout=60)
        for signum, enabled in [(signal.SIGUSR2, False), (signal.SIGUSR1, True)] * 2:
            for _ in range(1000):
                proc.send_signal(signum)
            # Handled in turn on the daemon's signal thread: the end state is the last kind.
            wait_until(
                lambda e=enabled: _settings(sock).get("effects.enabled") is e, "end state", 60
            )
            # The kernel delivers a pending SIGUSR1 before a pending SIGUSR2 whatever the
            # order sent, so the next kind goes only after this batch has all arrived: the
            # state then holds for a second, and the saved file says the same.
            held_until = time.monotonic() + 1.0
            while time.monotonic() < held_until:
                assert _settings(sock).get("effects.enabled") is enabled
                time.sleep(0.05)
            assert load_config(cfg).effects.enabled is enabled
        send_command("quit", path=sock, timeout=5)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()


def _settings(sock: Path) -> dict[str, Any]:
    try:
        reply = send_command("status", path=sock, timeout=5)
    except PixcamError:
        return {}
    return dict(reply["status"]["settings"]) if reply.get("ok") else {}


def test_a_client_that_pipelines_then_reads_gets_every_reply(server: ControlServer) -> None:
    """Replies wait for a client that sends many requests before reading (up to
    MAX_UNREAD_BYTES beyond the kernel's buffer), in order; then it half-closes and still
    gets the rest."""
    n = 3000
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(server.path))
        lines = b"".join(
            json.dumps({"cmd": "set", "key": "k", "value": i}).encode() + b"\n" for i in range(n)
        )
        sock.sendall(lines)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(1 << 16):
            data += chunk
    replies = [json.loads(line) for line in data.splitlines()]
    assert len(replies) == n and all(r["ok"] for r in replies)
    assert server.app.calls[-1] == ("set", ("k", n - 1))


def test_a_request_turned_away_unhandled_is_sent_again(tmp_path: Path) -> None:
    """Under load a client can be evicted before its request is read (all slots taken, it
    waited longest): the server never handled it, so `send_command` sends it again instead
    of failing the `pixcam ctl` call. Other refusals are returned as they are."""
    path = tmp_path / "s.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)
    answers = [control.EVICTED, control.ALL_SLOTS_BUSY, None, "unknown command"]
    seen: list[bytes] = []

    def serve() -> None:
        for error in answers:
            conn, _ = listener.accept()
            with conn:
                seen.append(conn.recv(4096))
                body = {"ok": True} if error is None else {"ok": False, "error": error}
                conn.sendall(json.dumps(body).encode() + b"\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert send_command("status", path=path, timeout=10) == {"ok": True}
    assert len(seen) == 3 and all(b'"status"' in line for line in seen)
    assert send_command("status", path=path, timeout=10)["error"] == "unknown command"
    thread.join(10)
    listener.close()


def test_a_relative_file_path_in_ctl_set_is_the_callers(
    server: ControlServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ctl set effects.image ./bg.png` was looked up in the daemon's working folder (its
    home, or / under systemd), not where the user typed it."""
    monkeypatch.chdir(tmp_path)
    for key, given, sent in [
        ("effects.image", "./bg.png", str(tmp_path / "bg.png")),
        ("people.away_image", "pics/away.png", str(tmp_path / "pics" / "away.png")),
        ("effects.video", "../v.mp4", str(tmp_path.parent / "v.mp4")),
        ("effects.image", "studio-grey.png", "studio-grey.png"),  # a name to look up
        ("effects.image", "~/bg.png", "~/bg.png"),
        ("effects.color", "#1e88e5", "#1e88e5"),
    ]:
        assert run_ctl("set", key, given, path=server.path, out=lambda _: None) == 0
        assert server.app.calls[-1] == ("set", (key, sent))
