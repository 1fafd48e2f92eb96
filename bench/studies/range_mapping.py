"""Where a camera frame's full → limited range mapping pays least, and the 4:2:2 chroma halving.

Two ways through the same chain, on the same MJPG frames, the order alternating frame by
frame (a shared machine's load hits both alike):
- at the decode: every plane mapped right after TurboJPEG, 4:2:2 chroma halved with
  `INTER_AREA` (how the decode worked before);
- deferred (the product): the frame stays full range, the blend maps the person's box, the
  small pictures fold the mapping into their matrix; 4:2:2 chroma rows averaged in pairs.
Reported per subsampling and size: median CPU ms of the decode, the compose, everything
outside the network, the ratio outside/network, and the median per-frame saving.

    taskset -c 1 .venv/bin/python bench/studies/range_mapping.py [--frames 80] [--sizes 720,1080]
        [--subsampling 420,422] [--video FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "bench"))  # _needs and the benches a study builds on

from _needs import PRESENTER, lacking, need, run  # noqa: E402

from pixcam.chain.effects import Effects, EffectsSettings  # noqa: E402
from pixcam.config import load_config  # noqa: E402
from pixcam.i420 import I420, Frame, to_limited  # noqa: E402
from pixcam.tools.bench_pipeline import (  # noqa: E402
    WARMUP,
    StageCpuTimes,
    decode_frames,
    encode_mjpg,
    load_model,
    network_ms,
)
from pixcam.video import mjpg, yuvjpeg  # noqa: E402
from pixcam.video.sinks import to_device  # noqa: E402

DEFERRED_ROWS = yuvjpeg.rows_halved


def area_rows_halved(plane: np.ndarray, dst: np.ndarray) -> np.ndarray:
    size = (dst.shape[1], dst.shape[0])
    return cv2.resize(plane, size, dst=dst, interpolation=cv2.INTER_AREA)


def decode_mapped(jpeg: np.ndarray) -> Frame | None:
    """The decode as it was: planes mapped to limited range at once, 4:2:2 by INTER_AREA."""
    yuvjpeg.rows_halved = area_rows_halved
    try:
        frame = yuvjpeg.decode(jpeg)
    finally:
        yuvjpeg.rows_halved = DEFERRED_ROWS
    if frame is None:
        return None
    for plane, chroma in zip(frame.planes, (False, True, True), strict=True):
        to_limited(plane, plane, chroma)
    return I420(frame.data)


WAYS = {"at decode": decode_mapped, "deferred": mjpg.decode_frame}


def one_frame(decode, effects: Effects, jpeg: np.ndarray, clock: StageCpuTimes) -> dict:
    c0 = time.process_time()
    frame = decode(jpeg)
    dec = (time.process_time() - c0) * 1e3
    clock.start()
    out = effects.process(frame, on_stage=clock)
    c1 = time.process_time()
    to_device(out)
    sink = (time.process_time() - c1) * 1e3
    net = network_ms(effects)[1]
    cpu = {k: v[1] for k, v in clock.stages.items()}
    chain = cpu["segment"] + cpu["refine"] + cpu["compose"]
    return {
        "decode": dec,
        "compose": cpu["compose"],
        "outside": dec + chain + sink - net,
        "net": net,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=80)
    p.add_argument("--sizes", default="720,1080")
    p.add_argument("--subsampling", default="420,422")
    p.add_argument("--video", default=str(PRESENTER))
    args = p.parse_args()
    if not yuvjpeg.available():
        lacking("libturbojpeg is not installed (Debian/Ubuntu: libturbojpeg0): nothing to compare")
    cfg = load_config(None).with_values({"model.skip_still": False})
    frames = decode_frames(need(args.video, "the video"), args.frames + WARMUP)
    segmenter = load_model(cfg, 1)
    clock = StageCpuTimes()
    for sub in args.subsampling.split(","):
        for height in (int(h) for h in args.sizes.split(",")):
            jpegs = encode_mjpg(frames, height, sub)
            chains = {w: Effects(EffectsSettings.from_config(cfg), segmenter) for w in WAYS}
            rows: dict[str, list[dict]] = {w: [] for w in WAYS}
            for i, jpeg in enumerate(jpegs):
                order = list(WAYS) if i % 2 else list(WAYS)[::-1]
                got = {w: one_frame(WAYS[w], chains[w], jpeg, clock) for w in order}
                if i >= WARMUP:
                    for w in WAYS:
                        rows[w].append(got[w])
            print(f"4:{sub[1]}:{sub[2]} {height}p, {len(rows['deferred'])} frames, CPU ms medians")
            for w, r in rows.items():
                med = {k: statistics.median(x[k] for x in r) for k in r[0]}
                print(
                    f"  {w:<10} decode {med['decode']:6.2f}  compose {med['compose']:6.2f}  "
                    f"outside network {med['outside']:6.2f}  "
                    f"ratio {med['outside'] / med['net']:.3f}"
                )
            saved = [a["outside"] - b["outside"] for a, b in zip(*rows.values(), strict=True)]
            print(f"  deferred saves {statistics.median(saved):.2f} ms a frame (median, paired)")
    return 0


if __name__ == "__main__":
    run(main)
