"""A bounded reliability suite: the control socket, the command line, the config file (random
edits while the daemon runs) and signals abused the way a careless user or a buggy script
would (issue 15). Every loop has a fixed count or deadline;
the file runs in a minute or two and stops by itself.

Each case is tallied per category (tried, failed); the table is printed at the end and, with
`PIXCAM_RELIABILITY_REPORT=FILE`, written there as Markdown (docs/reliability.md quotes a run).
A failure is anything but the promised answer: for the socket, a legitimate client not
answered within 2 s, or a reply that is not one JSON object with a boolean "ok"; for the
command line, an exit status of 0, an uncaught exception, or stderr other than one line
"pixcam: ..." saying what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from test_images import png_bomb

from conftest import SHARED_MODELS, VIDEOS, need
from fakes import FlakySegmenter
from pixcam import control
from pixcam import daemon as daemon_mod
from pixcam.cli import main
from pixcam.config import Config, ConfigWatcher, load_config
from pixcam.control import ControlServer, send_command
from pixcam.daemon import Daemon
from pixcam.errors import PixcamError
from pixcam.runner.pipeline import Pipeline
from pixcam.video.sinks import Sink, SinkSpec
from pixcam.video.sources import SourceSpec

EDITS = int(os.environ.get("PIXCAM_RELIABILITY_EDITS", "100"))  # random config edits
LIVE_S = 2.0  # a legitimate request must be answered within this, whatever else goes on
TALLY: dict[str, list[int]] = {}
FAILURES: dict[str, list[str]] = {}


def record(category: str, ok: bool, detail: str = "") -> None:
    tried_failed = TALLY.setdefault(category, [0, 0])
    tried_failed[0] += 1
    if not ok:
        tried_failed[1] += 1
        FAILURES.setdefault(category, []).append(detail)


def failures(category: str) -> list[str]:
    return FAILURES.get(category, [])[:5]


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    rows = ["| category | cases tried | failures |", "|---|---:|---:|"]
    rows += [f"| {cat} | {tried} | {failed} |" for cat, (tried, failed) in TALLY.items()]
    total = [sum(v[0] for v in TALLY.values()), sum(v[1] for v in TALLY.values())]
    rows.append(f"| **all** | {total[0]} | {total[1]} |")
    print("\n" + "\n".join(rows))
    out = os.environ.get("PIXCAM_RELIABILITY_REPORT")
    if out:
        Path(out).write_text("\n".join(rows) + "\n")


# ------------------------------------------------------------------------------ socket
class ConfigApp:
    """Validates `set` with the real config schema, like the daemon, without a pipeline."""

    def __init__(self) -> None:
        self.config = Config()
        self.enabled = True
        self.paused = False

    def status(self) -> dict[str, Any]:
        return {"effects": {"enabled": self.enabled}, "settings": self.config.flat()}

    def set(self, key: str, value: Any) -> None:
        self.config = self.config.with_values({key: value})

    def toggle(self) -> bool:
        self.enabled = not self.enabled
        return self.enabled

    def reload(self) -> None:
        pass

    def quit(self) -> None:
        pass  # the abuse must not stop the server

    def pause(self) -> bool:
        self.paused = True
        return True

    def resume(self) -> bool:
        self.paused = False
        return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlServer]:
    srv = ControlServer(ConfigApp(), tmp_path / "ctl.sock", idle_timeout=30)
    srv.request_timeout = 1.0  # a slow drip is cut off after a second
    srv.start()
    yield srv
    srv.close()


def live(path: Path, category: str) -> None:
    """One legitimate `status`, answered in time."""
    t0 = time.monotonic()
    try:
        reply = send_command("status", path=path, timeout=LIVE_S * 2)
        took = time.monotonic() - t0
        ok = reply["ok"] is True
        record(category, ok and took < LIVE_S, f"status took {took:.2f} s: {reply.get('error')}")
    except PixcamError as exc:
        record(category, False, f"status: {exc}")


def connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    for _ in range(50):  # the backlog may be momentarily full under a flood
        try:
            sock.connect(str(path))
            return sock
        except BlockingIOError:
            time.sleep(0.05)
    sock.connect(str(path))
    return sock


def one_reply(sock: socket.socket) -> dict[str, Any] | None:
    """The next reply line as an object, None if the server hung up without one."""
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    reply = json.loads(data.split(b"\n", 1)[0])
    assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
    return reply


def test_idle_and_slow_drip_clients_lock_nobody_out(server: ControlServer) -> None:
    cat = "socket: idle and slow-drip clients"
    idle = [connect(server.path) for _ in range(3 * control.MAX_CONNECTIONS)]
    drips = [connect(server.path) for _ in range(control.MAX_CONNECTIONS)]
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            for sock in drips:
                with contextlib.suppress(OSError):  # cut off (deadline, eviction): fine
                    sock.send(b" ")  # one byte at a time, never a whole request
            live(server.path, cat)
            time.sleep(0.2)
    finally:
        for sock in idle + drips:
            sock.close()
    live(server.path, cat)
    assert not failures(cat), failures(cat)


@pytest.mark.parametrize("size", [control.MAX_REQUEST_BYTES + 1, 1 << 20, 8 << 20])
def test_huge_requests_get_an_answer_and_nothing_else_suffers(
    server: ControlServer, size: int
) -> None:
    cat = "socket: huge requests"
    for newline in (b"", b"\n"):
        with connect(server.path) as sock:
            with contextlib.suppress(OSError):  # it hung up after answering: read that
                sock.sendall(b'{"cmd": "status", "x": "' + b"y" * size + b'"}' + newline)
            try:
                reply = one_reply(sock)
                good = reply is None or (not reply["ok"] and "too large" in reply["error"])
                record(cat, good, f"{size}: {reply}")
            except (OSError, AssertionError, ValueError) as exc:
                record(cat, False, f"{size}: {exc!r}")
        live(server.path, cat)
    assert not failures(cat), failures(cat)


NESTINGS: list[Callable[[int], bytes]] = [
    lambda n: b"[" * n,
    lambda n: b"[" * n + b"]" * n,
    lambda n: b'{"a":' * n + b"1" + b"}" * n,
    lambda n: b'{"cmd": "set", "key": "effects.blur_strength", "value": ' + b"[" * n,
    lambda n: b'{"cmd": "set", "key": "effects.color", "value": ' + b"[" * n + b"]" * n + b"}",
]


@pytest.mark.parametrize("depth", [10, 900, 5000, 60000])
def test_deeply_nested_json_is_answered(server: ControlServer, depth: int) -> None:
    cat = "socket: nested JSON"
    for make in NESTINGS:
        with connect(server.path) as sock:
            try:
                with contextlib.suppress(OSError):  # too large: answered, then hung up
                    sock.sendall(make(depth) + b"\n")
                reply = one_reply(sock)
                record(cat, reply is not None and reply["ok"] is False, f"{depth}: {reply}")
            except (OSError, AssertionError, ValueError) as exc:
                record(cat, False, f"{depth}: {exc!r}")
    live(server.path, cat)
    assert not failures(cat), failures(cat)


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 40, 101, 2**63, -(2**70), 0.5, 1e308, -0.0])
    if kind == 3:
        return "".join(rng.choice("ab#0é\u202e\x00 \\\"'") for _ in range(rng.randrange(12)))
    if kind == 4:
        return rng.choice(["blur", "image", "none", "#2e7d32", "studio-grey.png", "", "~"])
    if kind == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {str(_random_value(rng, 3)): _random_value(rng, depth + 1) for _ in range(3)}


KEYS = [
    "effects.background",
    "effects.blur_strength",
    "effects.image",
    "effects.color",
    "effects.mirror",
    "effects.enabled",
    "model.name",
    "model.internal_resolution",
    "parts.privacy",
    "parts.privacy_parts",
    "camera.device",
    "camera.fps",
    "nosuch.key",
    "effects",
    "",
]


def _garbage(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:  # binary noise
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2048))).replace(b"\n", b"")
    if kind == 1:  # a JSON value of any type
        return json.dumps(_random_value(rng)).encode()
    cmd = rng.choice([*control.COMMANDS, "", "STATUS", None, 7, ["status"]])
    request: dict[str, Any] = {"cmd": cmd}
    if kind == 2:  # a set with a random key and value
        request |= {"cmd": "set", "key": rng.choice(KEYS), "value": _random_value(rng)}
    text = json.dumps(request).encode()
    if rng.random() < 0.3:  # damaged on the way
        i = rng.randrange(len(text))
        text = text[:i] + bytes([rng.randrange(256)]) + text[i + 1 :]
    return text.replace(b"\n", b"")


def test_garbage_and_random_requests_always_get_a_reply(server: ControlServer) -> None:
    cat = "socket: binary garbage and random requests"
    rng = random.Random(15)
    for round_ in range(60):
        with connect(server.path) as sock:
            for _ in range(10):
                payload = _garbage(rng)
                if quit_request(payload) or not payload.strip():
                    continue
                try:
                    sock.sendall(payload + b"\n")
                    reply = one_reply(sock)
                    good = reply is not None and "internal error" not in str(reply.get("error"))
                    record(cat, good, f"{payload[:80]!r}: {reply}")
                except (OSError, AssertionError, ValueError) as exc:
                    record(cat, False, f"{payload[:80]!r}: {exc!r}")
                    break
        if round_ % 10 == 0:
            live(server.path, cat)
    live(server.path, cat)
    assert not failures(cat), failures(cat)


def quit_request(payload: bytes) -> bool:
    try:
        return json.loads(payload).get("cmd") == "quit"
    except (ValueError, AttributeError, RecursionError, UnicodeDecodeError):
        return False


def test_many_clients_at_once_are_all_answered(server: ControlServer) -> None:
    cat = "socket: many clients at once"
    results: list[tuple[bool, str]] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(20):
            cmd, fields = [
                ("status", {}),
                ("toggle", {}),
                ("set", {"key": "effects.blur_strength", "value": 1 + (n * 20 + i) % 100}),
                ("pause", {}),
                ("resume", {}),
            ][(n + i) % 5]
            try:
                reply = send_command(cmd, path=server.path, timeout=10, **fields)
                outcome = (reply["ok"] is True, f"{cmd}: {reply}")
            except PixcamError as exc:
                outcome = (False, f"{cmd}: {exc}")
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3 * 16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for ok, detail in results:
        record(cat, ok, detail)
    assert len(results) == 3 * 16 * 20
    assert not failures(cat), failures(cat)


def test_server_threads_settle_after_the_abuse(tmp_path: Path) -> None:
    cat = "socket: threads settle afterwards"
    before = set(threading.enumerate())
    srv = ControlServer(ConfigApp(), tmp_path / "t.sock", idle_timeout=0.5)
    srv.request_timeout = 0.5
    srv.start()
    socks = [connect(srv.path) for _ in range(40)]
    for sock in socks[::2]:
        # Past the 16-client limit the longest-waiting ones are already evicted (closed).
        with contextlib.suppress(OSError):
            sock.send(b"{")
    time.sleep(1.5)  # past both deadlines: every connection thread has ended
    live(srv.path, cat)
    for sock in socks:
        sock.close()
    srv.close()

    def started_here() -> list[threading.Thread]:
        return [t for t in set(threading.enumerate()) - before if t.is_alive()]

    # A connection thread may still be on its way out when close() returns: give it a moment.
    deadline = time.monotonic() + 5
    while started_here() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = started_here()
    record(cat, not left, f"threads left: {[t.name for t in left]}")
    assert not failures(cat), failures(cat)


# -------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, video_file: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    files = {
        "empty.png": b"",
        "text.png": b"not a picture\n",
        "damaged.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
        "zero.mp4": b"",
        "noise.mp4": bytes(random.Random(1).randrange(256) for _ in range(50_000)),
        "cut.mp4": video_file.read_bytes()[: video_file.stat().st_size // 2],
        "notes.txt": b"hello\n",
    }
    out = {name: d / name for name in files}
    for name, data in files.items():
        out[name].write_bytes(data)
    out["bomb.png"] = png_bomb(d / "bomb.png", 9000, 9000)
    out["giga.png"] = png_bomb(d / "giga.png", 40000, 30000, whole=False)
    for name, shape in [
        ("tiny.png", (3, 2, 3)),
        ("dot.png", (1, 1, 3)),
        ("strip.png", (4, 640, 3)),
    ]:
        out[name] = d / name
        cv2.imwrite(str(out[name]), np.full(shape, 100, np.uint8))
    out["folder.png"] = d / "folder.png"
    out["folder.png"].mkdir()
    out["fifo.png"] = d / "fifo.png"
    os.mkfifo(out["fifo.png"])
    out["config.toml"] = d / "config.toml"
    out["config.toml"].write_text("[effects]\nblur_strength = 77\n")
    out["dir"] = d
    return out


@pytest.fixture(scope="module")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, (160, 96))
    for i in range(6):
        writer.write(np.full((96, 160, 3), 20 * i, np.uint8))
    writer.release()
    return path


def cli_cases(f: dict[str, Path], clip: Path) -> list[tuple[list[str], str]]:
    o = str(f["dir"] / "out.png")
    ov = str(f["dir"] / "out.mp4")
    seg = [
        (["segment", str(f["dir"] / "missing.png"), "--out", o], "does not exist"),
        (["segment", str(f["empty.png"]), "--out", o], "is empty"),
        (["segment", str(f["text.png"]), "--out", o], "not an image"),
        (["segment", str(f["damaged.png"]), "--out", o], "not an image"),
        (["segment", str(f["folder.png"]), "--out", o], "holds no images"),
        (["segment", str(f["fifo.png"]), "--out", o], "not a file"),
        (["segment", str(f["bomb.png"]), "--out", o], "64 megapixel limit"),
        (["segment", str(f["giga.png"]), "--out", o], "64 megapixel limit"),
        (["segment", str(f["zero.mp4"]), "--out", ov], "neither an image nor a video"),
        (["segment", str(f["noise.mp4"]), "--out", ov], "neither an image nor a video"),
        (["segment", str(f["cut.mp4"]), "--out", ov], "neither an image nor a video"),
        (["segment", str(f["notes.txt"]), "--out", ov], "neither an image nor a video"),
        (["segment", str(clip), "--out", o], "is a video, so --out needs a video path"),
        (["segment", str(clip), "--out", ov, "--overlay", o], "--overlay needs a video path"),
        (["segment", str(f["tiny.png"]), "--out", o, "--threshold", "2"], "--threshold"),
        (["segment", str(f["tiny.png"]), "--out", o, "--opacity", "-1"], "--opacity"),
        (["segment", str(f["tiny.png"]), "--out", o, "--model", "nosuch"], "unknown model"),
        (["segment", str(f["tiny.png"]), "--out", str(f["dir"] / "no" / "m.png")], "cannot write"),
    ]
    run = ["run", "--frames", "2", "--output", ov]
    runs = [
        ([*run, "--input", str(f["dir"] / "missing.mp4")], "does not exist"),
        ([*run, "--input", str(f["tiny.png"])], "at least 32×32"),
        ([*run, "--input", str(f["dot.png"])], "at least 32×32"),
        ([*run, "--input", str(f["strip.png"])], "at least 32×32"),
        ([*run, "--input", str(f["bomb.png"])], "64 megapixel limit"),
        ([*run, "--input", str(f["noise.mp4"])], "not a video OpenCV can decode"),
        ([*run, "--input", str(f["cut.mp4"])], "not a video OpenCV can decode"),
        ([*run, "--input", str(clip), "--image", str(f["bomb.png"])], "64 megapixel limit"),
        ([*run, "--input", str(clip), "--image", str(f["giga.png"])], "64 megapixel limit"),
        ([*run, "--input", str(clip), "--image", str(f["text.png"])], "not an image"),
        ([*run, "--input", str(clip), "--image", str(f["dir"] / "x.png")], "not found"),
        ([*run, "--input", str(clip), "--color", "red"], "effects.color"),
        ([*run, "--input", str(clip), "--blur", "500"], "blur"),
        ([*run, "--input", str(clip), "--model", "nosuch"], "unknown model"),
    ]
    daemon = ["daemon", "--no-tray", "--input", str(clip), "--output", ov, "--socket"]
    daemons = [
        ([*daemon, str(f["config.toml"])], "is not a socket"),
        ([*daemon, str(f["dir"])], "is a directory"),
    ]
    return seg + runs + daemons


def _quit_daemon(argv: list[str]) -> None:
    if argv[0] == "daemon":
        with contextlib.suppress(PixcamError):
            send_command("quit", path=argv[argv.index("--socket") + 1], timeout=5)


def test_bad_command_lines_get_one_clear_line(
    models_installed: Path,
    bad_files: dict[str, Path],
    video_file: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    cat = "command line: bad inputs"
    for argv, expected in cli_cases(bad_files, video_file):
        # A daemon that wrongly starts would run on: stop it through the socket it took.
        stopper = threading.Timer(20.0, _quit_daemon, args=(argv,))
        stopper.start()
        try:
            code = main(argv)
        except BaseException as exc:  # noqa: BLE001 - an escaped exception is the failure
            capfd.readouterr()
            record(cat, False, f"{argv}: {type(exc).__name__}: {exc}")
            continue
        finally:
            stopper.cancel()
        err = capfd.readouterr().err  # file-descriptor level: FFmpeg's own lines too
        lines = err.strip().splitlines()
        good = code != 0 and len(lines) == 1 and lines[0].startswith("pixcam: ")
        record(cat, good and expected in err, f"{argv[:2]}… -> {code}: {err.strip()[:300]}")
    assert bad_files["config.toml"].read_text() == "[effects]\nblur_strength = 77\n"
    assert not failures(cat), failures(cat)


# --------------------------------------------------------------- random config edits
class TimedNodeSink(Sink):
    """The virtual camera stood in for by a list of arrival times."""

    def __init__(self, width: int, height: int, fps: float) -> None:
        self.name, self.width, self.height, self.fps = "timed", width, height, fps
        self.times: list[float] = []

    def send(self, frame: np.ndarray) -> None:
        self.check_shape(frame)
        self.times.append(time.monotonic())


class SlowTray:
    """A tray whose every refresh takes 0.1 s (a busy panel): the stream must not notice."""

    def __init__(self) -> None:
        self.refreshes = 0

    def refresh(self, menu: bool = True) -> None:
        self.refreshes += 1
        time.sleep(0.1)

    def stop(self) -> None:
        pass


class QuickWatcher(ConfigWatcher):
    """The real watcher, polling every 0.1 s and settling for 1 s (the edits below pause at
    most 150 ms mid-save) so a few hundred edits fit in the suite."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs, interval=0.1, settle=1.0)


def _edits(
    rng: random.Random, good: str, image: Path
) -> Iterator[tuple[str, Callable[[Path], None]]]:
    """(kind, apply to the config path) forever: valid, invalid and odd saves."""

    def write(text: str, in_place: bool = False) -> Callable[[Path], None]:
        def apply(path: Path) -> None:
            if path.exists() and not path.is_file():
                path.unlink()
            if not in_place:
                tmp = path.with_name(".cfg.tmp")
                tmp.write_bytes(text.encode("utf-8"))
                os.replace(tmp, path)
                return
            data = text.encode("utf-8")
            cut = rng.randrange(len(data) + 1)
            with open(path, "wb") as f:  # truncate, write half, pause, write the rest
                f.write(data[:cut])
                f.flush()
                time.sleep(rng.choice([0.0, 0.05, 0.15]))
                f.write(data[cut:])

        return apply

    def fifo(path: Path) -> None:
        path.unlink(missing_ok=True)
        os.mkfifo(path)

    while True:
        blur, fps = rng.randint(1, 100), rng.choice([10, 15, 24, 30])
        bg = rng.choice(["blur", "color", "none", "image"])
        body = f'[effects]\nbackground = "{bg}"\nblur_strength = {blur}\nimage = "{image}"\n'
        body += f"mirror = {rng.choice(['true', 'false'])}\n[camera]\nfps = {fps}\n"
        kind = rng.choice(
            [
                "valid",
                "valid in place",
                "invalid value",
                "invalid TOML",
                "unknown key",
                "crlf",
                "bom",
                "comments only",
                "empty",
                "deleted",
                "fifo",
                "restore",
            ]
        )
        if kind == "valid":
            yield kind, write(body)
        elif kind == "valid in place":
            yield kind, write(body, in_place=True)
        elif kind == "invalid value":
            yield kind, write(body.replace(f"fps = {fps}", "fps = 0"), in_place=rng.random() < 0.5)
        elif kind == "invalid TOML":
            yield kind, write(body.replace("]\n", "\n", 1))
        elif kind == "unknown key":
            yield kind, write(body + "[effectz]\n")
        elif kind == "crlf":
            yield kind, write(good.replace("\n", "\r\n"))
        elif kind == "bom":
            yield kind, write("\ufeff" + good)
        elif kind == "comments only":
            yield kind, write("# nothing set here\n")
        elif kind == "empty":
            yield kind, write("")
        elif kind == "deleted":
            yield kind, lambda path: path.unlink(missing_ok=True)
        elif kind == "fifo":
            yield kind, fifo
        else:
            yield kind, write(good)


def _expected(path: Path) -> Config | str:
    """What the daemon should run after the file settles: a Config, or "error"."""
    if path.exists() and not path.is_file():
        return "error"
    try:
        return load_config(path)
    except PixcamError:
        return "error"


def test_random_config_edits_while_running(
    tmp_path: Path, video_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random saves of the config file (valid, invalid, in place and caught half-way, CRLF,
    BOM, comments only, empty, deleted, a FIFO) while the stream runs and a slow tray
    refreshes after each change: after each one settles
    the daemon runs exactly the file's settings with no error, or keeps the last good ones and
    reports the error; `status` answers within 2 s throughout; frames never stop."""
    cat = "config: random edits while running"
    monkeypatch.setattr(daemon_mod, "ConfigWatcher", QuickWatcher)
    image = tmp_path / "bg.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 90, np.uint8))
    cfg_path = tmp_path / "config.toml"
    good = '[effects]\nbackground = "color"\n'
    cfg_path.write_text(good)
    sinks: list[TimedNodeSink] = []

    def factory(*args: Any, **kwargs: Any) -> Pipeline:
        def open_sink(spec: SinkSpec, w: int, h: int, fps: float) -> Sink:
            sinks.append(TimedNodeSink(w, h, fps))
            return sinks[-1]

        loader = lambda *a: FlakySegmenter()  # noqa: E731 - the chain runs; no model needed
        return Pipeline(
            *args, **kwargs, sink_opener=open_sink, segmenter_loader=loader, keepalive=True
        )

    sock = tmp_path / "ctl.sock"
    daemon = Daemon(
        cfg_path,
        source=SourceSpec(path=str(video_file), loop=True, realtime=True),
        sink=SinkSpec(device="timed"),
        socket_path=sock,
        tray=False,
        pipeline_factory=factory,
    )
    monkeypatch.setattr(Daemon, "_camera_wanted_at_start", lambda self: True)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not (sock.exists() and sinks and daemon._watcher) and time.monotonic() < deadline:
        time.sleep(0.05)
    tray = SlowTray()
    daemon._tray = tray
    rng = random.Random(15)
    running = load_config(cfg_path)
    try:
        for n, (kind, apply) in enumerate(_edits(rng, good, image)):
            if n >= EDITS:
                break
            apply(cfg_path)
            want = _expected(cfg_path)
            if isinstance(want, Config):
                running = want
            # As the socket sends it (JSON: tuples become lists).
            expected = (json.loads(json.dumps(running.flat())), want == "error")
            t0 = time.monotonic()
            state: Any = None
            while time.monotonic() - t0 < 3:
                status = send_command("status", path=sock, timeout=LIVE_S)["status"]
                state = (status["settings"], bool(status["config_error"]))
                if state == expected:
                    break
                time.sleep(0.05)
            diff = {k: v for k, v in expected[0].items() if state and state[0].get(k) != v}
            record(cat, state == expected, f"#{n} {kind}: differs {diff}, error {state[1]}")
    finally:
        daemon.quit()
        thread.join(20)
    assert not thread.is_alive() and tray.refreshes > 0
    times = sinks[0].times
    gap = max(b - a for a, b in zip(times, times[1:], strict=False))
    record(cat, gap < 0.25, f"largest frame gap {gap * 1e3:.0f} ms")
    print(f"\nrandom edits: largest frame gap {gap * 1e3:.0f} ms over {len(times)} frames")
    assert not failures(cat), failures(cat)


# ---------------------------------------------------------------------- signal storms
def test_signal_storms_end_in_a_clean_exit(
    models_installed: Path, tmp_path: Path, video_file: Path
) -> None:
    """`pixcam daemon` (real model, blur) under bursts of SIGHUP, SIGUSR1/2, then SIGINT or
    SIGTERM at a random moment (during start-up too): it must exit 0, promptly, with no
    native abort ("terminate called…", SIGABRT) and no traceback."""
    cat = "signals: storms then exit"
    rng = random.Random(4)
    cfg = tmp_path / "config.toml"
    cfg.write_text('[effects]\nbackground = "blur"\n[daemon]\nalways_on = true\n')
    for n in range(10):
        sock = tmp_path / f"ctl{n}.sock"
        out = tmp_path / f"out{n}.mp4"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pixcam",
                "daemon",
                "--no-tray",
                "--config",
                str(cfg),
                "--input",
                str(video_file),
                "--output",
                str(out),
                "--socket",
                str(sock),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        early = n % 4 == 3  # a quarter of the runs are stopped while still starting up
        if early:
            time.sleep(rng.uniform(0.0, 1.5))
        else:
            deadline = time.monotonic() + 30
            while not sock.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 2.0))
            for _ in range(rng.randint(0, 30)):  # reload and toggle bursts
                proc.send_signal(rng.choice([signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2]))
                time.sleep(rng.uniform(0.0, 0.05))
        last = rng.choice([signal.SIGINT, signal.SIGTERM])
        if proc.poll() is None:
            proc.send_signal(last)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            record(cat, False, f"#{n} {last.name}: still running 30 s later")
            continue
        # Before its handlers exist a signal may end it the default way (Ctrl-C: 130, or
        # killed by SIGINT when it comes before pixcam's code runs; SIGTERM: killed). A Ctrl-C
        # Python swallows during the imports is sent again (pixcam.interrupt): never runs on.
        clean = {0} if not early else {0, 130, -signal.SIGINT, -signal.SIGTERM}
        aborted = "terminate called" in err or proc.returncode == -signal.SIGABRT
        # The only traceback allowed: a Ctrl-C in the interpreter's start, before pixcam's code.
        interrupted = early and err.rstrip().endswith("KeyboardInterrupt")
        bad = aborted or ("Traceback" in err and not interrupted)
        detail = f"#{n} {'early ' if early else ''}{last.name} -> {proc.returncode}: {err[-400:]}"
        record(cat, proc.returncode in clean and not bad, detail)
    assert not failures(cat), failures(cat)


# ------------------------------------------------------------- in-place model changes
def _private_models(installed: Path, dest: Path) -> Path:
    """A copy of the installed models the test may damage (the session's stay intact)."""
    dest.mkdir()
    for file in installed.iterdir():
        if file.is_file():
            shutil.copyfile(file, dest / file.name)
    return dest


def _frames(sock: Path) -> int | None:
    try:
        reply = send_command("status", path=sock, timeout=5)
    except PixcamError:
        return None
    pipeline = reply.get("status", {}).get("pipeline") or {}
    return int(pipeline.get("frames", 0))


def _in_place_changes(
    selfie: Path, bodypix: Path, other: Path
) -> list[tuple[str, Callable[[], None]]]:
    """What a clean-up tool, a copy over the file or a second install does to a model in use."""

    def overwrite(path: Path) -> None:
        size = path.stat().st_size
        with open(path, "r+b") as fh:  # same size, other bytes, same inode
            fh.write(random.Random(7).randbytes(size))

    return [
        ("truncate -s 0 the selfie model", lambda: os.truncate(selfie, 0)),
        ("selfie model overwritten in place", lambda: overwrite(selfie)),
        ("another model copied over the selfie model", lambda: shutil.copyfile(other, selfie)),
        (
            "truncate the BodyPix model to half",
            lambda: os.truncate(bodypix, bodypix.stat().st_size // 2),
        ),
        ("BodyPix model overwritten in place", lambda: overwrite(bodypix)),
    ]


def test_models_changed_in_place_leave_the_stream_running(
    models_installed: Path, tmp_path: Path, video_file: Path
) -> None:
    """`pixcam daemon` on the default "balanced" preset (BodyPix fused with the selfie model),
    its model files shortened, overwritten and copied over while frames flow: the stream must
    go on (LiteRT mapping the file died of SIGBUS within 0.2 s), and a reload asked for
    afterwards is refused in the log, not fatal."""
    from pixcam import models

    cat = "models: changed in place while streaming"
    folder = _private_models(models_installed, tmp_path / "models")
    selfie = folder / models.get_spec("selfie-general").file
    bodypix = folder / models.get_spec(models.default_model_name()).file
    other = folder / models.get_spec("selfie-landscape").file
    sock = tmp_path / "ctl.sock"
    cfg = tmp_path / "config.toml"
    cfg.write_text('[model]\nquality = "balanced"\n[daemon]\nalways_on = true\n')
    env = {**os.environ, "PIXCAM_MODELS_DIR": str(folder)}
    argv = ["daemon", "--no-tray", "--config", str(cfg), "--input", str(video_file)]
    argv += ["--output", str(tmp_path / "out.mp4"), "--socket", str(sock)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pixcam", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while (_frames(sock) or 0) < 10 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        for what, change in _in_place_changes(selfie, bodypix, other):
            before = _frames(sock)
            change()
            end = time.monotonic() + 15
            now = before
            while proc.poll() is None and time.monotonic() < end:
                now = _frames(sock)
                if before is not None and now is not None and now >= before + 15:
                    break
                time.sleep(0.1)
            alive = proc.poll() is None
            flowing = before is not None and now is not None and now >= before + 15
            record(cat, alive and flowing, f"{what}: rc {proc.poll()}, frames {before} -> {now}")
        # A reload now reads the damaged files: refused (logged), the running models go on.
        if proc.poll() is None:
            reply = send_command("set", path=sock, timeout=10, key="model.quality", value="fast")
            before = _frames(sock) or 0
            time.sleep(2)
            now = _frames(sock) or 0
            record(cat, now > before + 10, f"reload after the damage: {reply}, {before} -> {now}")
            send_command("quit", path=sock, timeout=10)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    record(
        cat,
        proc.returncode == 0 and "Traceback" not in err,
        f"exit {proc.returncode}: {err[-300:]}",
    )
    assert not failures(cat), failures(cat)


# ------------------------------------------------- special files everywhere a path is read
KIND_WORDS = {
    "folder": "is a folder",
    "fifo": "named pipe",
    "loop": "symlink loop",
    "dev-zero": "is a device",
    "file": "is a file",
}
WRONG_WORDS = ("does not exist", "not found", "not made yet", "not installed")


def _special(path: Path, kind: str) -> Path:
    """`kind` put at `path`: a folder, a FIFO, a symlink loop or a symlink to /dev/zero."""
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "loop":
        path.symlink_to(path.name)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.write_text("a file\n")
    return path


def _unblock(fifos: list[Path], hung: list[str]) -> None:
    """A reader stuck on a FIFO gets end-of-file (and the case is counted as a hang)."""
    for fifo in fifos:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # ENXIO: nobody waits
            hung.append(str(fifo))


def _special_cases(
    d: Path, clip: Path, installed: Path, image: Path
) -> list[tuple[str, str, list[str], dict[str, str]]]:
    """(reader, kind, argv, environment) for every reader of a user's path and every kind."""
    cases: list[tuple[str, str, list[str], dict[str, str]]] = []
    out = ["--output", str(d / "out.mp4"), "--frames", "2"]
    for kind in ("folder", "fifo", "loop", "dev-zero"):
        k = d / kind
        k.mkdir()
        if kind != "folder":  # a folder is a batch for `segment`
            x = _special(k / "in.png", kind)
            cases.append(
                ("segment input", kind, ["segment", str(x), "--out", str(d / "o.png")], {})
            )
        x = _special(k / "in.mp4", kind)
        cases.append(("run --input", kind, ["run", "--input", str(x), *out], {}))
        x = _special(k / "bg.png", kind)
        cases.append(
            ("background image", kind, ["run", "--input", str(clip), *out, "--image", str(x)], {})
        )  # noqa: E501
        x = _special(k / "bg.mp4", kind)
        cfg = k / "video.toml"
        cfg.write_text(f'[effects]\nbackground = "video"\nvideo = "{x}"\n')
        cases.append(
            (
                "background video",
                kind,
                ["run", "--config", str(cfg), "--input", str(clip), *out],
                {},
            )
        )  # noqa: E501
        x = _special(k / "config.toml", kind)
        cases.append(
            ("config file", kind, ["run", "--config", str(x), "--input", str(clip), *out], {})
        )
        model = _private_models(installed, k / "models")
        from pixcam import models as models_mod

        selfie = model / models_mod.get_spec("selfie-general").file
        selfie.unlink()
        _special(selfie, kind)
        argv = ["segment", str(image), "--out", str(d / "m.png"), "--model", "selfie-general"]
        cases.append(("model file", kind, argv, {"PIXCAM_MODELS_DIR": str(model)}))
    for kind in ("file", "fifo", "loop", "dev-zero"):
        x = _special(d / f"from-{kind}", kind)
        argv = ["models", "install", "--from", str(x), "--name", "selfie-general"]
        cases.append(("models install --from", kind, argv, {"PIXCAM_MODELS_DIR": str(d / "m")}))
    return cases


def test_special_files_everywhere_a_path_is_read(
    models_installed: Path,
    tmp_path: Path,
    video_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A folder, a FIFO, a symlink loop or /dev/zero given where pixcam reads a file: one line
    that says what is there, never "does not exist"/"not found"/"not made yet", a non-zero
    exit, and no hang on the FIFO."""
    cat = "paths: special files in place of a file"
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 90, np.uint8))
    cases = _special_cases(tmp_path, video_file, models_installed, image)
    for reader, kind, argv, env in cases:
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            fifos = [Path(a) for a in argv if kind == "fifo" and Path(a).is_fifo()]
            fifos += [p for p in tmp_path.glob("fifo/models/*") if p.is_fifo()]
            hung: list[str] = []
            watchdog = threading.Timer(10.0, _unblock, args=(fifos, hung))
            watchdog.start()
            try:
                code = main(argv)
            except BaseException as exc:  # noqa: BLE001 - an escaped exception is the failure
                capfd.readouterr()
                record(cat, False, f"{reader} / {kind}: {type(exc).__name__}: {exc}")
                continue
            finally:
                watchdog.cancel()
            captured = capfd.readouterr()
        lines = captured.err.strip().splitlines()
        if argv[:2] == ["models", "install"] and code != 0 and captured.out:
            lines = [line for line in captured.out.splitlines() if line.startswith("FAILED")]
            lines = lines or captured.err.strip().splitlines()
        said = lines[0] if len(lines) == 1 else captured.err + captured.out
        good = code != 0 and len(lines) == 1 and not hung
        good = good and KIND_WORDS[kind] in said and not any(w in said for w in WRONG_WORDS)
        record(cat, good, f"{reader} / {kind} -> {code}{' (hung)' if hung else ''}: {said[:240]}")
    assert not failures(cat), failures(cat)


# ------------------------------------------------------------- full and read-only disks
def _one_pixcam_line(code: int, err: str, expected: str) -> tuple[bool, str]:
    """A non-zero exit and one "pixcam: " line holding `expected` (progress lines aside)."""
    lines = [line for line in err.strip().splitlines() if not line.startswith("downloading ")]
    good = code != 0 and len(lines) == 1 and lines[0].startswith("pixcam: ")
    return good and expected in lines[0], f"-> {code}: {err.strip()[-600:]}"


def test_full_and_read_only_disks(
    models_installed: Path,
    tmpfs: Callable[[str], Path],
    video_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """`pixcam run --output` and `pixcam models install` onto a full tmpfs, a nearly full one
    (the file fills it half-way), a read-only one, and a model folder that is a file: one
    line, exit 1, and no partial file left to keep the disk full."""
    cat = "disks: full and read-only"
    clip = need(VIDEOS / "doctor-desk-960x540.mp4", "test video")  # issue 23's
    full, nearly, read_only, for_models = tmpfs("1m"), tmpfs("1m"), tmpfs("1m"), tmpfs("128k")
    (full / "filler").write_bytes(b"\0" * (1024 * 1024 - 16 * 1024))
    (nearly / "filler").write_bytes(b"\0" * (1024 * 1024 - 160 * 1024))
    subprocess.run(["mount", "-o", "remount,ro", str(read_only)], check=True)
    runs = [
        ("run: 150 frames onto 1 MiB", tmpfs("1m"), "150", "the disk is full"),
        ("run: onto a full disk", full, "20", "the disk is full"),
        ("run: a disk that fills half-way", nearly, "20", "the disk is full"),
        ("run: a read-only disk", read_only, "2", "read-only"),
    ]
    for what, disk, frames, expected in runs:
        out = disk / "run.mp4"
        argv = ["run", "--input", str(clip), "--output", str(out), "--frames", frames]
        # A process of its own, as a user runs it: this one imported OpenCV before pixcam
        # could quiet its log, which then prints FFmpeg's failed writes.
        done = subprocess.run(
            [sys.executable, "-m", "pixcam", *argv], capture_output=True, text=True, timeout=300
        )
        good, detail = _one_pixcam_line(done.returncode, done.stderr, expected)
        record(cat, good and not out.exists(), f"{what} {detail}")
    file_dir = for_models.parent / "models-file"
    file_dir.write_text("not a folder\n")
    installs = [
        ("install: models dir is a file", file_dir, "is a file, not a folder"),
        ("install: 128 KiB disk", for_models / "models", "No space left on device"),
        ("install: read-only disk", read_only / "models", "Read-only file system"),
    ]
    for what, folder, expected in installs:
        monkeypatch.setenv("PIXCAM_MODELS_DIR", str(folder))
        argv = ["models", "install", "--from", str(SHARED_MODELS), "--name", "selfie-general"]
        try:
            code = main(argv)
        except Exception as exc:  # an escaped exception is the failure
            capfd.readouterr()
            record(cat, False, f"{what}: {type(exc).__name__}: {exc}")
            continue
        good, detail = _one_pixcam_line(code, capfd.readouterr().err, expected)
        left = [p.name for p in for_models.rglob("*") if p.is_file()]
        record(cat, good and not left, f"{what} {detail}; left: {left}")
    assert not failures(cat), failures(cat)


# ------------------------------------------------------------------ slow and lying mirrors
def test_slow_and_lying_mirrors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """`pixcam models install` against a mirror on 127.0.0.1 that trickles, announces 10 GB,
    sends past the file's size, flips a byte, answers 404 or cuts the connection: one FAILED
    line each (or installed, for the cut it resumes), nothing left behind but a resumable
    partial of the right bytes, and never longer than the deadline."""
    from test_download import Mirror, build_mirror

    from pixcam import models
    from pixcam.models import download

    cat = "downloads: slow and lying mirrors"
    server = Mirror(build_mirror(tmp_path / "mirror"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    spec = models.get_spec("selfie-general")
    name = Path(spec.url).name
    policy = download.Policy(timeout=0.5, attempts=3, backoff=0.01, deadline=2.0)
    cases = [
        ("trickle", "too slowly"),
        ("huge", "announces 10737418240 bytes"),
        ("overflow", "sent over"),
        ("flip", "are wrong"),
        ("404", "HTTP 404"),
        ("cut", "installed"),
    ]
    try:
        monkeypatch.setenv(download.MIRROR_ENV, server.url)
        for n, (fault, expected) in enumerate(cases):
            monkeypatch.setenv("PIXCAM_MODELS_DIR", str(tmp_path / f"models{n}"))
            server.faults = {name: fault}
            lines: list[str] = []
            started = time.monotonic()
            with contextlib.suppress(PixcamError):
                lines.extend(models.install(names=[spec.name], policy=policy))
            took = time.monotonic() - started
            capfd.readouterr()
            left = [p.name for p in (tmp_path / f"models{n}").glob(".*part")]
            kept_ok = not left or fault == "trickle"  # the bytes so far are right: resumable
            said = " ".join(lines)
            good = expected in said and len(lines) == 1 and kept_ok and took < 2.0 + 1.5
            record(cat, good, f"{fault}: {took:.1f} s, {said[:200]}; left {left}")
    finally:
        server.shutdown()
    assert not failures(cat), failures(cat)


# ------------------------------------------------------------------------ long names
LONG = "n" * 300  # a file name component over the file systems' 255 bytes


def _long_name_cases(f: dict[str, Path], clip: Path) -> list[tuple[list[str], str]]:
    d = f["dir"]
    ov, o = str(d / "out.mp4"), str(d / "out.png")
    long_image = d / "long-image.toml"
    long_image.write_text(f'[effects]\nbackground = "image"\nimage = "{LONG}.png"\n')
    long_path = d / "long-path.toml"
    long_path.write_text(f'[effects]\nbackground = "video"\nvideo = "{d / LONG}.mp4"\n')
    run = ["run", "--frames", "2", "--input", str(clip)]
    daemon = ["daemon", "--no-tray", "--input", str(clip), "--output", ov]
    return [
        (["segment", str(d / f"{LONG}.png"), "--out", o], "too long"),
        (["segment", str(f["tiny.png"]), "--out", str(d / f"{LONG}.png")], "too long"),
        (["segment", str(f["tiny.png"]), "--out-dir", str(d / LONG)], "too long"),
        (["run", "--frames", "2", "--output", ov, "--input", str(d / f"{LONG}.mp4")], "too long"),
        ([*run, "--output", ov, "--image", str(d / f"{LONG}.png")], "too long"),
        ([*run, "--output", ov, "--image", f"{LONG}.png"], "too long"),
        ([*run, "--output", str(d / f"{LONG}.mp4")], "too long"),
        ([*run, "--output", ov, "--config", str(d / f"{LONG}.toml")], "too long"),
        ([*run, "--output", ov, "--config", str(long_image)], "too long"),
        ([*run, "--output", ov, "--config", str(long_path)], "too long"),
        ([*daemon, "--config", str(long_image), "--socket", str(d / "l1.sock")], "too long"),
        ([*daemon, "--socket", str(d / f"{LONG}.sock")], "too long"),
    ]


def test_long_names_get_one_clear_line(
    models_installed: Path,
    bad_files: dict[str, Path],
    video_file: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Issue 23 fault 9: a name component over 255 bytes traced back (`segment`, `run
    --image`, the daemon's start with it in the config). Also through `pixcam ctl set` on
    the real daemon (`test_daemon.py::test_long_names_through_ctl_are_one_line`)."""
    cat = "paths: names over 255 bytes"
    for argv, expected in _long_name_cases(bad_files, video_file):
        stopper = threading.Timer(20.0, _quit_daemon, args=(argv,))
        stopper.start()
        try:
            code = main(argv)
        except BaseException as exc:  # noqa: BLE001 - an escaped exception is the failure
            capfd.readouterr()
            record(cat, False, f"{argv[:2]}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        finally:
            stopper.cancel()
        err = capfd.readouterr().err
        # The daemon's own log of its start and stop ("INFO:") is no problem line.
        lines = [x for x in err.strip().splitlines() if not x.startswith("pixcam: INFO:")]
        good = code != 0 and len(lines) == 1 and lines[0].startswith("pixcam: ")
        record(cat, good and expected in err, f"{argv[:2]}… -> {code}: {err.strip()[:400]}")
    assert not failures(cat), "\n".join(failures(cat))


# ------------------------------------------------------------- pipelined, never read
PIPELINED = b'{"cmd":"status"}\n' * (64 * 1024 // 17)  # 64 KB of requests in one go


def _pipeline_and_never_read(path: Path, stop: threading.Event, dropped: list[int]) -> None:
    """Keep one connection pushing 64 KB of `status` requests and never reading a reply;
    connect again whenever the server drops it."""
    while not stop.is_set():
        try:
            sock = connect(path)
        except OSError:
            continue
        try:
            sock.settimeout(0.5)
            with contextlib.suppress(TimeoutError):
                sock.sendall(PIPELINED)
            while not stop.wait(0.05):
                sock.send(b"")  # still there? (a dropped connection raises)
                if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                    break
        except BlockingIOError:
            continue  # replies wait unread: as meant
        except OSError:
            dropped[0] += 1
        finally:
            sock.close()


def test_pipelined_clients_that_never_read_lock_nobody_out(tmp_path: Path) -> None:
    """Issue 23 fault 6: 16 connections that each send 64 KB of `status` lines and never read
    the replies refused every `pixcam ctl status` for as long as they went on. The server's
    own timeouts, as the daemon runs it."""
    cat = "socket: pipelined clients that never read"
    srv = ControlServer(ConfigApp(), tmp_path / "ctl.sock").start()
    stop = threading.Event()
    dropped = [0]
    abusers = [
        threading.Thread(target=_pipeline_and_never_read, args=(srv.path, stop, dropped))
        for _ in range(control.MAX_CONNECTIONS)
    ]
    try:
        for thread in abusers:
            thread.start()
        time.sleep(0.5)  # let them fill their send buffers
        for _ in range(30):
            live(srv.path, cat)
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in abusers:
            thread.join(10)
        srv.close()
    assert not failures(cat), failures(cat)
