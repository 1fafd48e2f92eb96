"""The keeper (keeper.py): its cache of the last output, the reasons it stands down, its
hand-over to the real sink, and that the way to it imports nothing heavy. The takeover of a
real v4l2loopback device with a browser watching is tests/v4l2/test_browser_vm.py's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, wait_until
from fakes import CameraFactory, SinkFactory, cfg_with
from pixcam import keeper, keeper_cache, pipeline, v4l2caps
from pixcam.cards import Cards
from pixcam.keeper_cache import LastOutput
from pixcam.pipeline import Pipeline
from pixcam.sinks import SinkSpec
from pixcam.sources import SourceSpec

W, H = 64, 48
CARD = bytes(range(256)) * (W * H * 3 // 2 // 256)
LOOPBACK = v4l2caps.DeviceInfo(
    path="", driver=v4l2caps.LOOPBACK_DRIVER, card="pixcam", bus_info="platform:v4l2loopback-001",
    caps=v4l2caps.CAP_VIDEO_CAPTURE | v4l2caps.CAP_VIDEO_OUTPUT,
    capture_formats=("YU12",), output_formats=("YU12",),
)  # fmt: skip
YU12 = v4l2caps.PixFormat(W, H, "YU12", len(CARD))


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
    path = tmp_path / "cache" / "last-output.json"
    keeper_cache.save(LastOutput(str(device), "pixcam", W, H, CARD), path)
    return path


@pytest.fixture
def watched_loopback(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ioctls of a loopback a reader holds at W×H I420 with no writer; returns the calls
    the keeper made."""
    calls: list[str] = []
    monkeypatch.setattr(v4l2caps, "query", lambda path: replace(LOOPBACK, path=path))

    def get_format(fd: int, buf_type: int) -> v4l2caps.PixFormat:
        calls.append("G_FMT")
        return YU12

    monkeypatch.setattr(v4l2caps, "get_format", get_format)
    monkeypatch.setattr(v4l2caps, "stream_on", lambda fd, buf_type: calls.append("STREAMON"))
    return calls


def run_keeper(cache: Path, exclusive: Path, wanted: str | None = None) -> keeper.Keeper:
    """A keeper that has finished its checks and either stood down or written 2 cards."""
    k = keeper.Keeper(wanted, cache, exclusive).start()
    wait_until(lambda: not k._thread.is_alive() or k.frames >= 2, "the keeper to decide")
    return k


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


# ------------------------------------------------------------------------------ cache
def test_the_cache_gives_back_what_was_saved(tmp_path: Path) -> None:
    path = tmp_path / "last-output.json"
    last = LastOutput("/dev/video11", "pixcam", W, H, CARD)
    keeper_cache.save(last, path)
    assert keeper_cache.load(path) == last
    # Flat cards compress to little: the file stays small even for 1080p.
    big = LastOutput("/dev/video11", "pixcam", 1920, 1080, bytes(1920 * 1080 * 3 // 2))
    keeper_cache.save(big, path)
    assert keeper_cache.load(path) == big and path.stat().st_size < 20_000


def test_the_default_cache_is_in_the_xdg_cache_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere")
    assert keeper_cache.cache_file() == Path("/somewhere/pixcam/last-output.json")


@pytest.mark.parametrize(
    "damage",
    ["missing", "not json", "other format", "card too short", "card not base64", "no label"],
)
def test_an_unusable_cache_is_no_cache(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "last-output.json"
    keeper_cache.save(LastOutput("/dev/video11", "pixcam", W, H, CARD), path)
    data = json.loads(path.read_text())
    if damage == "missing":
        path.unlink()
    elif damage == "not json":
        path.write_text("{")
    else:
        if damage == "other format":
            data["format"] = keeper_cache.FORMAT + 1
        elif damage == "card too short":
            data["width"] = W + 2
        elif damage == "card not base64":
            data["card"] = "!!"
        else:
            del data["label"]
        path.write_text(json.dumps(data))
    assert keeper_cache.load(path) is None


def test_a_cache_that_cannot_be_written_is_only_logged(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    keeper_cache.save(LastOutput("/dev/video11", "pixcam", W, H, CARD), blocked / "x.json")


# ------------------------------------------------------------------------ the takeover
def test_it_writes_the_cached_card_until_released(
    cache: Path, exclusive: Path, device: Path, watched_loopback: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    before = open_fds()
    k = run_keeper(cache, exclusive, str(device))
    assert k.device == str(device) and watched_loopback == ["G_FMT", "STREAMON"]
    monkeypatch.setattr(keeper, "_current", k)  # as keeper.start() leaves it
    keeper.release()
    assert keeper._current is None and not k._thread.is_alive()
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
        info = {"not a loopback": replace(LOOPBACK, driver="uvcvideo"),
                "other label": replace(LOOPBACK, card="OBS Virtual Camera")}.get(
            why, replace(LOOPBACK, caps=caps.get(why, 0)))  # fmt: skip
        monkeypatch.setattr(v4l2caps, "query", lambda path: info)
    elif why == "exclusive_caps off":
        exclusive.write_text("Y,N,Y,Y,Y,Y,Y,Y\n")
    elif why == "exclusive_caps unknown":
        exclusive.unlink()
    elif why == "other size":
        other = replace(YU12, width=W * 2, sizeimage=len(CARD) * 2)
        monkeypatch.setattr(v4l2caps, "get_format", lambda fd, t: other)
    else:  # the real ioctls on a plain file: ENOTTY
        monkeypatch.undo()
    before = open_fds()
    k = run_keeper(cache, exclusive, wanted)
    k._thread.join(5)
    assert not k._thread.is_alive() and k.device is None and k.frames == 0
    assert "STREAMON" not in watched_loopback
    assert device.read_bytes() == b"" and open_fds() == before


def test_a_failing_write_stands_down(
    tmp_path: Path, exclusive: Path, watched_loopback: list[str]
) -> None:
    cache = tmp_path / "last-output.json"
    keeper_cache.save(LastOutput("/dev/full", "pixcam", W, H, CARD), cache)  # ENOSPC
    before = open_fds()
    k = run_keeper(cache, exclusive)
    k._thread.join(5)
    assert watched_loopback == ["G_FMT", "STREAMON"] and k.frames == 0
    assert not k._thread.is_alive() and open_fds() == before


# ---------------------------------------------------------------------- the real sink
def test_the_virtual_camera_remembers_its_first_card_for_the_next_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setattr(pipeline.v4l2caps, "query", lambda path: replace(LOOPBACK, path=path))
    sinks = SinkFactory()
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
        idle = Cards().idle(W, H)
        assert last.card == idle.data.tobytes()
        wait_until(lambda: len(sinks.sinks[0].frames) >= 1, "the idle card")
        assert np.array_equal(sinks.sinks[0].frames[0], idle.to_bgr())  # what it shows first
    finally:
        p.stop()


def test_the_sink_releases_the_keeper_before_it_opens(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pixcam import sinks

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
@pytest.mark.parametrize("command", [["daemon", "--no-tray"], ["run"]])
def test_the_keeper_starts_before_anything_heavy_is_imported(command: list[str]) -> None:
    """`pixcam daemon`/`pixcam run` start the keeper before numpy, OpenCV, pyvirtualcam or
    LiteRT are imported (what takes seconds on a cold start), and import nothing heavy for it."""
    script = (
        "import sys\n"
        "from pixcam import cli, keeper\n"
        "heavy = ('numpy', 'cv2', 'pyvirtualcam', 'ai_edge_litert', 'tflite_runtime')\n"
        "def start(wanted=None):\n"
        "    print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
        "    raise SystemExit(0)\n"
        "keeper.start = start\n"
        f"cli.main({command!r})\n"
        "print('never started')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "daemon")},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
