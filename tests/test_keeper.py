"""The keeper (keeper.py): its cache of the last output, the reasons it stands down, its
hand-over to the real sink, and that the way to it imports nothing heavy. The takeover of a
real v4l2loopback device with a browser watching is tests/v4l2/test_browser_vm.py's."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, wait_until
from fakes import CameraFactory, SinkFactory, cfg_with
from pixcam import paths
from pixcam.runner import pipeline
from pixcam.runner.cards import Cards
from pixcam.runner.pipeline import Pipeline
from pixcam.video import keeper, keeper_cache, v4l2caps
from pixcam.video.keeper_cache import LastOutput
from pixcam.video.sinks import SinkSpec
from pixcam.video.sources import SourceSpec

W, H = 64, 48
CARD = bytes(range(256)) * (W * H * 3 // 2 // 256)
YU12 = (W, H, "YU12", len(CARD))


def loopback(path: str = "", **changes: object) -> v4l2caps.DeviceInfo:
    """Device 1 of v4l2loopback, labelled pixcam, a reader on it and no writer; or changed."""
    fields: dict[str, object] = dict(
        path=path, driver=v4l2caps.LOOPBACK_DRIVER, card="pixcam",
        bus_info="platform:v4l2loopback-001",
        caps=v4l2caps.CAP_VIDEO_CAPTURE | v4l2caps.CAP_VIDEO_OUTPUT,
        capture_formats=("YU12",), output_formats=("YU12",),
    )  # fmt: skip
    return v4l2caps.DeviceInfo(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.fixture
def device(tmp_path: Path) -> Path:
    """A stand-in for /dev/video11: a plain file the keeper's cards land in."""
    path = tmp_path / "video11"
    path.write_bytes(b"")
    return path


@pytest.fixture
def exclusive(tmp_path: Path) -> Path:
    """v4l2loopback's exclusive_caps parameter: on for device 1 (the one LOOPBACK is)."""
    path = tmp_path / "exclusive_caps"
    path.write_text("N,Y,N,N,N,N,N,N\n")
    return path


@pytest.fixture
def cache(tmp_path: Path, device: Path) -> Path:
    path = tmp_path / "cache" / "last-output"
    keeper_cache.save(LastOutput(str(device), "pixcam", W, H, CARD), path)
    return path


@pytest.fixture
def watched_loopback(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ioctls of a loopback a reader holds at W×H I420 with no writer; returns the calls
    the keeper made."""
    calls: list[str] = []
    monkeypatch.setattr(v4l2caps, "query", loopback)

    def get_format(fd: int, buf_type: int) -> tuple[int, int, str, int]:
        calls.append("G_FMT")
        return YU12

    monkeypatch.setattr(v4l2caps, "get_format", get_format)
    monkeypatch.setattr(v4l2caps, "stream_on", lambda fd, buf_type: calls.append("STREAMON"))
    return calls


def run_keeper(cache: Path, exclusive: Path, wanted: str | None = None) -> keeper.Keeper:
    """A keeper that has either stood down or written 2 cards (the first one in start())."""
    k = keeper.Keeper(wanted, cache, exclusive).start()
    wait_until(lambda: not k.running() or k.frames >= 2, "the keeper's second card")
    return k


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# ------------------------------------------------------------------------------ cache
def test_the_cache_gives_back_what_was_saved(tmp_path: Path) -> None:
    path = tmp_path / "last-output"
    last = LastOutput("/dev/video11", "pixcam", W, H, CARD)
    keeper_cache.save(last, path)
    assert keeper_cache.load(path) == last
    # Flat cards compress to little: the file stays small even for 1080p.
    big = LastOutput("/dev/video11", "My = Cam", 1920, 1080, bytes(1920 * 1080 * 3 // 2), 29.97)
    keeper_cache.save(big, path)
    assert keeper_cache.load(path) == big and path.stat().st_size < 20_000
    assert os.listdir(tmp_path) == ["last-output"]  # no temporary file left


@pytest.mark.parametrize("xdg", ["/somewhere", "", "relative/dir"])
def test_the_default_cache_is_in_the_xdg_cache_home(
    monkeypatch: pytest.MonkeyPatch, xdg: str
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert keeper_cache.cache_file() == str(paths.cache_home() / "pixcam" / "last-output")


@pytest.mark.parametrize(
    "damage",
    ["missing", "not a cache", "other version", "card too short", "card not zlib", "no label",
     "label with a line break"],
)  # fmt: skip
def test_an_unusable_cache_is_no_cache(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "last-output"
    keeper_cache.save(LastOutput("/dev/video11", "pixcam", W, H, CARD), path)
    head, _, card = path.read_bytes().partition(b"\n\n")
    if damage == "missing":
        path.unlink()
    elif damage == "not a cache":
        path.write_bytes(bytes(range(256)))
    elif damage == "other version":
        path.write_bytes(head.replace(b" 2\n", b" 1\n") + b"\n\n" + card)
    elif damage == "card too short":
        path.write_bytes(head + b"\n\n" + zlib.compress(CARD[:-1]))
    elif damage == "card not zlib":
        path.write_bytes(head + b"\n\n" + CARD)
    elif damage == "no label":
        path.write_bytes(head.replace(b"label=pixcam\n", b"") + b"\n\n" + card)
    else:  # not saved: it would break the header
        path.unlink()
        keeper_cache.save(LastOutput("/dev/video11", "pix\ncam", W, H, CARD), path)
    with pytest.raises(keeper_cache.NoCache):
        keeper_cache.load(path)


def test_a_cache_that_cannot_be_written_is_only_logged(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    keeper_cache.save(LastOutput("/dev/video11", "pixcam", W, H, CARD), blocked / "x")


# ------------------------------------------------------------------------ the takeover
def test_it_writes_the_cached_card_until_released(
    cache: Path, exclusive: Path, device: Path, watched_loopback: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    before = open_fds()
    k = keeper.Keeper(str(device), cache, exclusive).start()
    # The first card is out when start() returns: it runs before the heavy imports.
    assert k.device == str(device) and watched_loopback == ["G_FMT", "STREAMON"]
    assert k.frames >= 1 and device.read_bytes()[: len(CARD)] == CARD
    wait_until(lambda: k.frames >= 2, "the keeper's second card")
    monkeypatch.setattr(keeper, "_current", k)  # as keeper.start() leaves it
    keeper.release()
    assert keeper._current is None and not k.running()
    assert open_fds() == before  # its fd is closed
    assert device.read_bytes() == CARD * k.frames  # whole cards, the exact cached bytes
    keeper.release()  # twice: nothing left to do


@pytest.mark.parametrize(
    "why",
    ["no cache", "another device wanted", "not a loopback", "other label", "nobody watches",
     "another writer", "exclusive_caps off", "exclusive_caps unknown", "other size",
     "not a v4l2 device"],
)  # fmt: skip
def test_it_stands_down_and_leaves_the_device_alone(
    cache: Path, exclusive: Path, device: Path, watched_loopback: list[str],
    monkeypatch: pytest.MonkeyPatch, why: str,
) -> None:  # fmt: skip
    wanted = None
    caps = {"nobody watches": v4l2caps.CAP_VIDEO_OUTPUT,
            "another writer": v4l2caps.CAP_VIDEO_CAPTURE}  # fmt: skip
    if why == "no cache":
        cache.unlink()
    elif why == "another device wanted":
        wanted = "12"
    elif why in ("not a loopback", "other label") or why in caps:
        info = {"not a loopback": loopback(driver="uvcvideo"),
                "other label": loopback(card="OBS Virtual Camera")}.get(
            why, loopback(caps=caps.get(why, 0)))  # fmt: skip
        monkeypatch.setattr(v4l2caps, "query", lambda path: info)
    elif why == "exclusive_caps off":
        exclusive.write_text("Y,N,Y,Y,Y,Y,Y,Y\n")
    elif why == "exclusive_caps unknown":
        exclusive.unlink()
    elif why == "other size":
        monkeypatch.setattr(v4l2caps, "get_format", lambda fd, t: (W * 2, H, "YU12", len(CARD) * 2))
    else:  # the real ioctls on a plain file: ENOTTY
        monkeypatch.undo()
    before = open_fds()
    k = keeper.Keeper(wanted, cache, exclusive).start()
    assert not k.running() and k.device is None and k.frames == 0 and k.stood_down
    assert "STREAMON" not in watched_loopback
    assert device.read_bytes() == b"" and open_fds() == before


def test_a_failing_write_stands_down(
    tmp_path: Path, exclusive: Path, watched_loopback: list[str]
) -> None:
    cache = tmp_path / "last-output"
    keeper_cache.save(LastOutput("/dev/full", "pixcam", W, H, CARD), cache)  # ENOSPC
    before = open_fds()
    k = keeper.Keeper(None, cache, exclusive).start()
    assert watched_loopback == ["G_FMT", "STREAMON"] and k.frames == 0 and k.device is None
    assert not k.running() and open_fds() == before and "No space" in k.stood_down


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [([], None), (["-v"], None), (["daemon"], None), (["-vv", "daemon", "--no-tray"], None),
     (["--verbose", "daemon", "--config", "c.toml", "--socket", "s"], None),
     (["daemon", "--input", "clip.mp4"], None), (["run"], None),
     (["run", "--output-device", "12"], "12"),
     (["-v", "run", "--output-device=/dev/video5", "--frames", "9"], "/dev/video5"),
     # Left to cli.py: not a virtual camera, not a run, or not plain enough to be sure.
     (["daemon", "--output", "out.mp4"], "no"), (["run", "--out=x.mp4"], "no"),
     (["daemon", "--help"], "no"), (["-h"], "no"), (["--version"], "no"), (["ctl", "status"], "no"),
     (["models", "list"], "no"), (["-v", "-x", "daemon"], "no")],
)  # fmt: skip
def test_the_command_line_starts_it_for_a_run_into_the_virtual_camera(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], wanted: str | None
) -> None:
    started: list[str | None] = []
    monkeypatch.setattr(keeper, "_start", started.append)
    keeper.start_from_argv(argv)
    assert started == ([] if wanted == "no" else [wanted])


def test_cli_says_what_the_early_keeper_did_and_stops_one_for_another_device(
    cache: Path, exclusive: Path, device: Path, watched_loopback: list[str],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setattr(keeper, "_current", keeper.Keeper(None, cache, exclusive).start())
    caplog.set_level("INFO", "pixcam.video.keeper")
    keeper.start(None)
    assert f"keeper: holding {device}" in caplog.text
    k = keeper._current
    assert k is not None and k.running()
    keeper.start("12")  # cli.py parsed another device than the early look
    now = keeper._current
    assert not k.running() and now is not None and now.wanted == "/dev/video12"
    assert now.device is None  # the cache names another device: it stood down
    keeper.release()


# ---------------------------------------------------------------------- the real sink
def test_the_virtual_camera_remembers_the_starting_card_for_the_next_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setattr(pipeline.v4l2caps, "query", loopback)
    sinks = SinkFactory()
    # Saved once the stream runs, not before it: the save costs ~20 ms at 1080p.
    running_at_save: list[bool] = []
    save = keeper_cache.save

    def saving(last: LastOutput) -> None:
        running_at_save.append(p._thread is not None and p._thread.is_alive())
        save(last)

    monkeypatch.setattr(pipeline.keeper_cache, "save", saving)
    p = Pipeline(
        cfg_with(effects={"background": "none"}, camera={"width": W, "height": H}),
        SourceSpec(device="/dev/fake0"), SinkSpec(device="auto"), start_paused=True,
        source_opener=CameraFactory(good=10**9, down=0), sink_opener=sinks, keepalive=False,
    )  # fmt: skip
    p.start()
    try:
        last = keeper_cache.load()
        assert last is not None
        assert (last.device, last.label, last.width, last.height) == ("memory", "pixcam", W, H)
        # A restart while watched is "starting", even when this run began with "camera off".
        idle = Cards().idle(W, H)
        assert last.card == Cards().starting(W, H).data.tobytes() != idle.data.tobytes()
        assert last.fps == 30.0  # the rate it wrote, for the keeper to write at
        wait_until(lambda: len(sinks.sinks[0].frames) >= 1, "the idle card")
        assert np.array_equal(sinks.sinks[0].frames[0], idle.to_bgr())  # what it shows first
        assert running_at_save == [True]
    finally:
        p.stop()


def test_the_sink_releases_the_keeper_before_it_opens(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pixcam.video import sinks

    order: list[str] = []
    monkeypatch.setattr(sinks.keeper, "release", lambda: order.append("release"))

    def backend(*args: object) -> object:
        order.append("open")
        raise RuntimeError("Device /dev/x is not a video output device.")

    (tmp_path / "x").write_text("")
    with pytest.raises(sinks.SinkError):
        sinks.VirtualCameraSink(W, H, 30, str(tmp_path / "x"), backend=backend)
    assert order == ["release", "open"]


# ------------------------------------------------------------------------ import cost
@pytest.mark.parametrize(
    ("launch", "argv"),
    [("pixcam", ["daemon", "--no-tray"]), ("-m", ["-v", "run", "--output-device", "DEVICE"])],
)
def test_the_command_line_starts_it_before_anything_but_a_few_modules(
    tmp_path: Path, device: Path, launch: str, argv: list[str]
) -> None:
    """`pixcam daemon` (the `pixcam` command, as systemd runs it) and `python -m pixcam run`
    start the keeper as pixcam's package is imported: before cli.py, argparse, logging, numpy
    or OpenCV, and with only a few small modules on the way (each one costs a file lookup and
    a load: about 15 ms under emulation, more on a cold disk)."""
    argv = [str(device) if arg == "DEVICE" else arg for arg in argv]
    cache = tmp_path / "cache"
    last = LastOutput(str(device), "pixcam", W, H, CARD)
    keeper_cache.save(last, cache / "pixcam" / "last-output")
    script = (
        "import sys\n"
        f"sys.argv = {[launch, *argv]!r}\n"  # as Python sets them while it imports pixcam
        f"sys.orig_argv = {[sys.executable, '-m', 'pixcam', *argv]!r}\n"
        "before = set(sys.modules)\n"
        "import pixcam\n"
        "loaded = sorted(set(sys.modules) - before)\n"
        "from pixcam import keeper\n"
        "print(keeper._current.stood_down)\n"
        "print(' '.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO / "daemon"), "XDG_CACHE_HOME": str(cache)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    stood_down, loaded = out.stdout.splitlines()
    # It read the cache and asked the device (a plain file here: no V4L2 ioctls).
    assert "Inappropriate ioctl" in stood_down, stood_down
    assert set(loaded.split()) <= {
        "pixcam", "pixcam.interrupt", "pixcam.video", "pixcam.video.keeper",
        "pixcam.video.keeper_cache", "pixcam.video.v4l2caps",
        "__future__", "ctypes", "_ctypes", "ctypes._endian", "struct", "_struct", "types",
        "errno", "fcntl", "zlib",
    }, loaded  # fmt: skip
