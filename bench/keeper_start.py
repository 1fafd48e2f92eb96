"""How soon a starting daemon can write to its virtual camera: with the keeper (keeper.py,
before the heavy imports) and without it (the real sink, after them).

Launches `pixcam daemon` (what systemd starts, on demand, no tray) `--runs` times as a fresh
process, and takes the time from the launch to (a) the keeper's decision, where it has read
its cache and asked the device (with a watched v4l2loopback its first card is out there),
and (b) the real sink opening the device (`keeper.release()`, the sink's first call), where
the process then ends. No v4l2loopback device is needed: the cache and the config name a
plain file, which the keeper's ioctls refuse and which is never written. A warm page cache;
after a crash on a laptop the imports cost more (cold cache), under TCG emulation 12-22x more.

    .venv/bin/python bench/keeper_start.py --runs 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))

from pixcam.video import keeper_cache  # noqa: E402
from pixcam.video.keeper_cache import LastOutput  # noqa: E402

# Runs inside the daemon's process: both moments printed on the shared monotonic clock.
PROBE = """
import os, sys, time
sys.argv[0] = "pixcam"  # as the `pixcam` command: importing pixcam starts the keeper
import pixcam
print("keeper", time.monotonic(), flush=True)
from pixcam.video import keeper
assert keeper._current is not None and "ioctl" in keeper._current.stood_down
def release():
    print("sink", time.monotonic(), flush=True)
    os._exit(0)
keeper.release = release
from pixcam.cli import main
main(sys.argv[1:])
"""


def one_start(config: Path, socket: Path) -> dict[str, float]:
    argv = [sys.executable, "-c", PROBE, "daemon", "--no-tray", "--config", str(config),
            "--socket", str(socket)]  # fmt: skip
    t0 = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    times = {k: float(v) - t0 for k, v in (ln.split() for ln in out.stdout.splitlines())}
    if set(times) != {"keeper", "sink"}:
        raise SystemExit(f"the daemon did not reach its sink: {out.stdout}{out.stderr}")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keeper-start-") as tmp:
        work = Path(tmp)
        device = work / "video-file"
        device.write_bytes(b"")
        config = work / "config.toml"
        config.write_text(f'[output]\ndevice = "{device}"\n[daemon]\ntray = false\n')
        env_home = {k: str(work / k.lower()) for k in ("XDG_CACHE_HOME", "XDG_RUNTIME_DIR")}
        os.environ.update(env_home)
        card = bytes(640 * 360 * 3 // 2)
        keeper_cache.save(LastOutput(str(device), "pixcam", 640, 360, card))
        runs = [one_start(config, work / "control.sock") for _ in range(args.runs)]
    keeper = statistics.median(r["keeper"] for r in runs)
    sink = statistics.median(r["sink"] for r in runs)
    print(f"launch -> keeper decided:  median {keeper * 1e3:.0f} ms over {len(runs)} launches")
    print(f"launch -> real sink opens: median {sink * 1e3:.0f} ms")
    print(f"the keeper is there {sink / keeper:.1f}x sooner ({(sink - keeper) * 1e3:.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
