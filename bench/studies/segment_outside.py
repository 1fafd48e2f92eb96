"""What the segment stage costs besides its networks, per frame, as the chain runs it.

For every frame of the presenter video as a camera delivers it (MJPG decoded to I420, at each
`--sizes` height): a fresh pyramid, the configured segmenter (the fused "balanced" default)
and the probability at the refiner's work size, timed in process CPU; the networks' own CPU
(`Engine.last_invoke_cpu_ms`) is taken off. Medians over the frames after a warm-up, and the
ratio to the networks' time, which a busy machine disturbs less than the milliseconds
(`pixcam bench pipeline` shows the same stage within the whole frame, with fewer frames).

    taskset -c 1 .venv/bin/python bench/studies/segment_outside.py [--frames 60] [--sizes 720,1080]
        [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "bench"))  # _needs and the benches a study builds on

from _needs import PRESENTER, need, run  # noqa: E402

from pixcam.chain.pyramid import Pyramid  # noqa: E402
from pixcam.chain.refine import probability_size  # noqa: E402
from pixcam.config import load_config  # noqa: E402
from pixcam.tools.bench_pipeline import (  # noqa: E402
    WARMUP,
    decode_frames,
    encode_mjpg,
    load_model,
    parse_sizes,
)
from pixcam.video import mjpg  # noqa: E402


def networks_cpu_ms(seg: object) -> float:
    engines = getattr(seg, "engines", None) or [seg.engine]  # type: ignore[attr-defined]
    return sum(e.last_invoke_cpu_ms for e in engines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--sizes", default="720,1080")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    need(PRESENTER, "the benchmark video")
    seg = load_model(load_config(None), args.threads)
    source = decode_frames(PRESENTER, args.frames + WARMUP)
    for height in parse_sizes(args.sizes):
        outside, networks = [], []
        for i, jpeg in enumerate(encode_mjpg(source, height)):
            frame = mjpg.decode_frame(jpeg)
            assert frame is not None
            h, w = frame.shape[:2]
            start = time.process_time()
            out = seg.run(frame, parts=False, pyramid=Pyramid(frame))
            out.person_probability(probability_size(w, h, out.cell))
            total = (time.process_time() - start) * 1e3
            if i >= WARMUP:
                net = networks_cpu_ms(seg)
                outside.append(total - net)
                networks.append(net)
        out_ms, net_ms = statistics.median(outside), statistics.median(networks)
        print(
            f"{height}p: segment stage outside the networks {out_ms:.2f} CPU ms, networks "
            f"{net_ms:.2f} ms, ratio {out_ms / net_ms:.3f} ({len(outside)} frames, "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )
    return 0


if __name__ == "__main__":
    run(main)
