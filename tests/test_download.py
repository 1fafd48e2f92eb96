"""Model downloads from pinned upstream URLs, through a mirror served on 127.0.0.1 and broken
on purpose: 404, a connection cut half-way (resumed with Range), a wrong byte, a slow server,
no server at all. Never the internet."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import pytest

from conftest import SHARED_MODELS, VIDEOS, need
from pixcam import cli, models
from pixcam.errors import PixcamError
from pixcam.models import download

SELFIE = "selfie-general"
FAST = download.Policy(timeout=0.5, attempts=3, backoff=0.01)


def build_mirror(root: Path) -> Path:
    """A mirror tree with upstream's layout (HOST/PATH of every url), from ../shared/models."""
    need(SHARED_MODELS, "shared models")
    for spec in models.list_models():
        if spec.url:
            parts = urllib.parse.urlparse(spec.url)
            dest = root / parts.netloc / parts.path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.is_symlink():  # models built from the same file share its url
                dest.symlink_to(SHARED_MODELS / spec.source)
    return root


class Mirror(ThreadingHTTPServer):
    """Serves a folder with Range support; `faults` maps a file name to what goes wrong."""

    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), MirrorHandler)
        self.root = root
        self.faults: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class MirrorHandler(BaseHTTPRequestHandler):
    server: Mirror

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path).lstrip("/")
        self.server.requests.append((path, self.headers.get("Range")))
        file = self.server.root / path
        fault = self.server.faults.get(Path(path).name, "")
        if fault == "404" or not file.is_file():
            self.send_error(404, "Not Found")
            return
        if fault == "503":  # a passing server error: retried after a pause
            del self.server.faults[Path(path).name]
            self.send_error(503, "Service Unavailable")
            return
        data = file.read_bytes()
        if fault == "huge":  # announces 10 GB: must be refused before a byte is written
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 1024**3))
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(200):
                    self.wfile.write(b"\0" * 65536)
            return
        if fault == "overflow":  # no length said, and the file goes on past its size
            self.send_response(200)
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(data)
                for _ in range(200):
                    self.wfile.write(b"\0" * 65536)
            return
        if fault == "trickle":  # a byte every 0.2 s: no read ever times out
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(OSError):
                for byte in data[:100]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
            return
        if fault == "flip":
            data = data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]
        start = 0
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes="):
            start = int(ranged[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "cut":  # half the file, then the connection drops; next time it works
            del self.server.faults[Path(path).name]
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "slow":
            self.wfile.write(body[:100])
            self.wfile.flush()
            time.sleep(3)
            return
        self.wfile.write(body)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    server = Mirror(build_mirror(tmp_path_factory.mktemp("mirror")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture
def served(mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Mirror:
    """The mirror, set as PIXCAM_MODEL_MIRROR, with a fresh model folder and no faults."""
    monkeypatch.setenv("PIXCAM_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv(download.MIRROR_ENV, mirror.url)
    mirror.faults.clear()
    mirror.requests.clear()
    return mirror


def _selfie_url() -> str:
    return download.mirrored(models.get_spec(SELFIE).url)


# ------------------------------------------------------------------------------ no network
def test_mirror_maps_host_and_path(tmp_path: Path) -> None:
    url = "https://raw.githubusercontent.com/o/r/0123abc/dir/a%20b.onnx"
    assert download.mirrored(url, "http://m.example:8080/models/") == (
        "http://m.example:8080/models/raw.githubusercontent.com/o/r/0123abc/dir/a%20b.onnx"
    )
    assert download.mirrored(url, str(tmp_path)) == str(
        tmp_path / "raw.githubusercontent.com/o/r/0123abc/dir/a b.onnx"
    )
    assert download.mirrored(url, "") == url


def test_every_url_is_pinned_to_a_commit_of_a_source_repository() -> None:
    for spec in models.list_models():
        if spec.derived_from:
            continue
        if not spec.url:
            assert spec.found_in, f"{spec.name}: no url and no word on where it is found"
            continue
        parts = urllib.parse.urlparse(spec.url)
        assert parts.scheme == "https" and parts.netloc == "raw.githubusercontent.com"
        commit = parts.path.split("/")[3]
        assert len(commit) == 40 and int(commit, 16) >= 0, spec.url


def test_progress_bar_on_a_terminal_and_lines_otherwise() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, log = Tty(), io.StringIO()
    for stream in (tty, log):
        bar = download.Progress("selfie-general", stream)
        bar.start("http://x/y", 2_000_000, 0)
        bar._drawn = -1.0  # draw now, whatever the clock says
        bar.advance(1_000_000)
        bar.finish()
    assert "\r" in tty.getvalue() and "MB/s" in tty.getvalue() and "ETA" in tty.getvalue()
    assert "1.0 MB/2.0 MB" in tty.getvalue()
    lines = log.getvalue().splitlines()
    assert lines[0] == "downloading selfie-general from http://x/y (2.0 MB)"
    assert lines[1].startswith("downloaded selfie-general: 1.0 MB in ")


# ------------------------------------------------------------------------- mirror served here
def test_install_downloads_through_the_mirror(served: Mirror) -> None:
    spec = models.get_spec(SELFIE)
    lines = list(models.install(names=[SELFIE], policy=FAST))
    assert lines[0].startswith(f"installed {SELFIE}") and _selfie_url() in lines[0]
    assert models.verify(spec) == spec.path
    assert models.origins()[SELFIE]["origin"] == _selfie_url()
    assert served.requests == [(urllib.parse.urlparse(_selfie_url()).path.lstrip("/"), None)]
    assert not list(spec.path.parent.glob(".*part"))


def test_cut_connection_is_resumed_with_range(served: Mirror) -> None:
    spec = models.get_spec(SELFIE)
    served.faults[Path(spec.url).name] = "cut"
    lines = list(models.install(names=[SELFIE], policy=FAST))
    assert lines[0].startswith(f"installed {SELFIE}"), lines
    assert models.verify(spec) == spec.path
    (_, first), (_, second) = served.requests
    half = (spec.path.stat().st_size) // 2
    assert first is None and second == f"bytes={half}-"


def test_server_error_is_retried(served: Mirror) -> None:
    served.faults[Path(models.get_spec(SELFIE).url).name] = "503"
    lines = list(models.install(names=[SELFIE], policy=FAST))
    assert lines[0].startswith(f"installed {SELFIE}") and len(served.requests) == 2


def test_404_is_one_clear_line(served: Mirror, capsys: pytest.CaptureFixture[str]) -> None:
    served.faults[Path(models.get_spec(SELFIE).url).name] = "404"
    assert cli.main(["models", "install", "--name", SELFIE]) == 1
    captured = capsys.readouterr()
    failed = [line for line in captured.out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "HTTP 404" in failed[0] and _selfie_url() in failed[0]
    assert "--from DIR" in failed[0]
    assert "Traceback" not in captured.err and len(served.requests) == 1  # no retries
    assert not models.get_spec(SELFIE).installed


def test_wrong_byte_is_refused(served: Mirror) -> None:
    spec = models.get_spec(SELFIE)
    served.faults[Path(spec.url).name] = "flip"
    with pytest.raises(PixcamError, match="could not be installed"):
        for line in models.install(names=[SELFIE], policy=FAST):
            assert line.startswith("FAILED") and "wrong" in line and spec.sha256[:12] in line
    assert not spec.installed and not list(spec.path.parent.glob(".*part"))


def test_slow_server_times_out_and_keeps_the_part(served: Mirror) -> None:
    spec = models.get_spec(SELFIE)
    served.faults[Path(spec.url).name] = "slow"
    policy = download.Policy(timeout=0.3, attempts=2, backoff=0.01)
    lines: list[str] = []
    with pytest.raises(PixcamError):
        lines.extend(models.install(names=[SELFIE], policy=policy))
    assert "timed out" in lines[0] and "failed 2 times" in lines[0]
    # Each attempt kept the 100 bytes that came before the stall, and the retry resumed.
    assert [r for _, r in served.requests] == [None, "bytes=100-"]
    assert download.part_path(spec.path).stat().st_size == 200
    served.faults.clear()
    assert list(models.install(names=[SELFIE], policy=FAST))[0].startswith("installed")
    assert served.requests[-1][1] == "bytes=200-" and models.verify(spec)


def test_no_network_stops_at_once_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("PIXCAM_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv(download.MIRROR_ENV, f"http://127.0.0.1:{port}")
    assert cli.main(["models", "install"]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "cannot reach 127.0.0.1" in err[0] and "--from DIR" in err[0]
    assert not [line for line in captured.out.splitlines() if line.startswith("installed")]


def test_folder_mirror(mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXCAM_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv(download.MIRROR_ENV, str(mirror.root))
    lines = list(models.install(names=[SELFIE]))
    assert lines[0].startswith(f"installed {SELFIE}") and str(mirror.root) in lines[0]


def test_registry_only_model_says_how(served: Mirror) -> None:
    lines = list(models.install(names=["selfie-landscape"], policy=FAST))
    assert lines == [
        "skipped  selfie-landscape: no public download (npm package @mediapipe/"
        "selfie_segmentation 0.1.1675465747, file package/selfie_segmentation_landscape.tflite);"
        " install it with `pixcam models install --from DIR --name selfie-landscape`"
    ]


# ------------------------------------------------------------------------------- done when
@pytest.mark.slow
def test_fresh_home_installs_everything_from_the_mirror_then_runs(
    mirror: Mirror, tmp_path: Path
) -> None:
    """A new user's machine: fresh $HOME and XDG folders, only the mirror (no ../shared, no
    photos); every model with a URL is downloaded or built from a download, the int8 models
    are made from them, each with the manifest's sha256; then pixcam runs."""
    video = need(VIDEOS / "doctor-desk-960x540.mp4", "test video")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PIXCAM_"))}
    env |= {"HOME": str(home), download.MIRROR_ENV: mirror.url}
    pixcam = [sys.executable, "-m", "pixcam"]
    res = subprocess.run([*pixcam, "models", "install"], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    installed = {line.split()[1] for line in res.stdout.splitlines() if line.startswith("install")}
    expected = {s.name for s in models.list_models() if s.url or s.derived_from}
    assert expected <= installed, res.stdout
    folder = home / ".local/share/pixcam/models"
    for spec in models.list_models():
        if spec.name in expected:
            assert download.sha256_of(folder / spec.file) == spec.sha256, spec.name
    out = tmp_path / "out.mp4"
    res = subprocess.run(
        [*pixcam, "run", "--input", str(video), "--output", str(out), "--frames", "30"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    cap.release()


# ------------------------------------------------------------------ lying and slow mirrors
def test_a_trickling_mirror_is_given_up_at_the_deadline(served: Mirror) -> None:
    """A byte every 0.2 s never trips the 0.5 s read timeout; the file's deadline ends it."""
    served.faults[Path(models.get_spec(SELFIE).url).name] = "trickle"
    policy = download.Policy(timeout=0.5, attempts=3, backoff=0.01, deadline=2.0)
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(PixcamError, match="could not be installed"):
        lines.extend(models.install(names=[SELFIE], policy=policy))
    took = time.monotonic() - started
    assert took < 2.0 + 1.0, f"gave up after {took:.1f} s"
    assert len(lines) == 1 and "too slowly" in lines[0] and "given up" in lines[0], lines


@pytest.mark.parametrize("fault", ["huge", "overflow"])
def test_a_mirror_sending_more_than_the_file_is_cut_off(
    served: Mirror, fault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """One announcing 10 GB is refused before writing; one sending past the manifest's size
    is cut off there. Neither is retried, and no partial is kept."""
    spec = models.get_spec(SELFIE)
    served.faults[Path(spec.url).name] = fault
    assert cli.main(["models", "install", "--name", SELFIE]) == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    said = "announces 10737418240 bytes" if fault == "huge" else "sent over"
    assert len(failed) == 1 and said in failed[0] and str(spec.size) in failed[0], out
    assert "partial file was removed" in failed[0]
    assert len(served.requests) == 1
    assert not spec.path.parent.exists() or not list(spec.path.parent.glob(".*part"))


def test_the_manifest_sizes_are_the_files(tmp_path: Path) -> None:
    need(SHARED_MODELS, "shared models")
    for spec in models.list_models():
        if spec.build:
            assert spec.source_size == (SHARED_MODELS / spec.source).stat().st_size
        elif spec.source:
            assert spec.size == (SHARED_MODELS / spec.source).stat().st_size
        assert spec.size > 0


# ------------------------------------------------------------ the model folder's disk
def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line on stderr (beside the non-terminal progress lines)."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if not line.startswith("downloading ")]
    assert len(errors) == 1 and errors[0].startswith("pixcam: "), err
    return errors[0]


def test_a_models_dir_that_is_a_file_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    need(SHARED_MODELS, "shared models")
    folder = tmp_path / "models"
    folder.write_text("not a folder\n")
    monkeypatch.setenv("PIXCAM_MODELS_DIR", str(folder))
    assert cli.main(["models", "install", "--from", str(SHARED_MODELS)]) == 1
    line = _one_error_line(capsys)
    assert f"model folder {folder} is a file, not a folder" in line
    assert cli.main(["models", "verify"]) == 1


@pytest.mark.parametrize("how", ["mirror", "from"])
def test_a_full_disk_stops_the_install_and_leaves_no_partial(
    served: Mirror,
    tmpfs: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    """The selfie model (243 KiB) onto a 128 KiB disk, downloaded or copied with --from."""
    disk = tmpfs("128k")
    monkeypatch.setenv("PIXCAM_MODELS_DIR", str(disk / "models"))
    source = ["--from", str(SHARED_MODELS)] if how == "from" else []
    assert cli.main(["models", "install", "--name", SELFIE, *source]) == 1
    line = _one_error_line(capsys)
    assert "No space left on device" in line and "partial file was removed" in line, line
    assert [p.name for p in (disk / "models").iterdir()] == []


def test_a_read_only_models_dir_is_one_line(
    served: Mirror,
    tmpfs: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    disk = tmpfs("1m")
    (disk / "models").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    monkeypatch.setenv("PIXCAM_MODELS_DIR", str(disk / "models"))
    assert cli.main(["models", "install", "--name", SELFIE]) == 1
    assert "Read-only file system" in _one_error_line(capsys)


@pytest.mark.parametrize("kind", ["folder", "fifo", "loop", "dev-zero"])
def test_special_files_in_a_from_folder_are_named(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    """A folder, FIFO, symlink loop or /dev/zero where `--from DIR` should hold the file: said
    what it is (never "not found"), at once (a FIFO must not hang the install)."""
    spec = models.get_spec(SELFIE)
    source = tmp_path / "source"
    place = source / spec.source
    place.parent.mkdir(parents=True)
    if kind == "folder":
        place.mkdir()
    elif kind == "fifo":
        os.mkfifo(place)
    elif kind == "loop":
        place.symlink_to(place.name)
    else:
        place.symlink_to("/dev/zero")
    monkeypatch.setenv("PIXCAM_MODELS_DIR", str(tmp_path / "models"))
    assert cli.main(["models", "install", "--name", SELFIE, "--from", str(source)]) == 1
    out = capsys.readouterr().out
    said = {"folder": "is a folder", "fifo": "named pipe", "loop": "symlink loop"}
    assert f"FAILED   {SELFIE}: model file {place} " in out, out
    assert said.get(kind, "is a device") in out and "not found" not in out


def test_a_from_source_that_is_a_fifo_is_named(tmp_path: Path) -> None:
    fifo = tmp_path / "models"
    os.mkfifo(fifo)
    with pytest.raises(PixcamError, match="is a named pipe .*, not a folder"):
        list(models.install(str(fifo)))


@pytest.mark.parametrize("where", ["--from", "mirror"])
def test_an_unparsable_source_url_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """`--from "http://[::1"` (an IPv6 host not closed) was a ValueError traceback."""
    monkeypatch.setenv("PIXCAM_MODELS_DIR", str(tmp_path / "models"))
    argv = ["models", "install", "--name", "bodypix-050-s16-float"]
    if where == "--from":
        argv += ["--from", "http://[::1"]
    else:
        monkeypatch.setenv(download.MIRROR_ENV, "http://[::1")
    assert cli.main(argv) == 1
    said = capsys.readouterr()
    assert "model source http://[::1 is not a valid URL" in said.out + said.err
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
