"""The "balanced" frame against the "fast" one, interleaved frame by frame in one process.

For every frame of the presenter video as a camera delivers it (MJPG decoded to I420, at each
`--sizes` height), each chain below runs the same decoded frame through `effects.Effects`
(every frame inferred: `skip_still` off, one core's worth of threads), in a rotating order so
no chain always finds the caches warm, and the result is converted as the virtual camera sink
does. Chains:

- fast: BodyPix alone at the "fast" input (as before issue 28);
- balanced before: the fused preset with the published selfie file, BodyPix on every frame,
  as before;
- balanced square: the fused preset with the selfie model on the person's square only, its
  file's graph as it is (before "The selfie model on the person's rectangle");
- balanced: the fused preset as it loads now (the selfie model in builtin float32 ops when
  `selfie-general-f32` is installed, on the person's square or rectangle; BodyPix on one
  frame in four while the square holds).

Per chain and stage, the median process CPU ms; the frame is decode + chain + sink (the decode
is the same for all and counted once per frame), and "× fast" is the median over frames of the
frame's CPU against the fast chain's on that same frame, which a busy machine disturbs far less
than the milliseconds (`pixcam bench pipeline` runs one setting at a time); "mean × fast" the
ratio of the mean frames (where frames differ, as with BodyPix every other frame, the median
alone hides the dearer half).

    taskset -c 1 .venv/bin/python bench/network_bill.py [--frames 60] [--sizes 720,1080]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))

from _needs import need, run  # noqa: E402

from pixcam.chain.effects import Effects, EffectsSettings  # noqa: E402
from pixcam.chain.segment import PARTNERS, PRESETS, FusedSegmenter, load_segmenter  # noqa: E402
from pixcam.chain.segment import fused as fused_module  # noqa: E402
from pixcam.config import load_config  # noqa: E402
from pixcam.tools.bench_pipeline import (  # noqa: E402
    DEFAULT_VIDEO,
    WARMUP,
    StageCpuTimes,
    decode_frames,
    encode_mjpg,
    network_ms,
    parse_sizes,
)
from pixcam.video import mjpg  # noqa: E402
from pixcam.video.sinks import to_device  # noqa: E402

VIDEOS = Path(os.environ.get("PIXCAM_DEV_VIDEOS", REPO.parent / "shared" / "data" / "video"))
STAGES = ("segment", "  networks", "refine", "compose", "sink", "frame")


def chains(threads: int, variants: list[str]) -> dict[str, Effects]:
    """The chains, each with its own segmenter and temporal state; `variants` add balanced
    chains with BodyPix on one frame in N ("3"), its held output carried ("3c")."""
    # A chain's frames come here a whole round of chains apart, which on a loaded machine can
    # exceed the pause after which a held BodyPix output is dropped; live frames come 33 ms apart.
    fused_module.HOLD_S = float("inf")
    base = load_config(None).with_values({"model.skip_still": False})

    def effects(quality: str, segmenter: object) -> Effects:
        settings = EffectsSettings.from_config(base.with_values({"model.quality": quality}))
        return Effects(settings, segmenter)  # type: ignore[arg-type]

    before = FusedSegmenter(
        load_segmenter(None, threads, internal_resolution=PRESETS["balanced"][0]),
        load_segmenter("selfie-general", threads),
    )
    before.main_every = 1
    square = FusedSegmenter(
        load_segmenter(None, threads, internal_resolution=PRESETS["balanced"][0]),
        load_segmenter(PARTNERS[0], threads),
    )
    runs = {
        "fast": effects("fast", load_segmenter(None, threads, quality="fast")),
        "balanced before": effects("balanced", before),
        "balanced square": effects("balanced", square),
        "balanced": effects("balanced", load_segmenter(None, threads, quality="balanced")),
    }
    for v in variants:
        seg = load_segmenter(None, threads, quality="balanced")
        assert isinstance(seg, FusedSegmenter)
        seg.main_every, seg.carry = int(v.rstrip("c")), v.endswith("c")
        runs[f"balanced 1/{v}"] = effects("balanced", seg)
    return runs


def frame_row(effects: Effects, frame: object, decode_ms: float) -> dict[str, float]:
    clock = StageCpuTimes()
    clock.start()
    out = effects.process(frame, on_stage=clock)  # type: ignore[arg-type]
    start = time.process_time()
    to_device(out)
    row = {s: clock.stages.get(s, (0.0, 0.0))[1] for s in ("segment", "refine", "compose")}
    row["  networks"] = network_ms(effects)[1]
    row["sink"] = (time.process_time() - start) * 1e3
    row["frame"] = decode_ms + row["segment"] + row["refine"] + row["compose"] + row["sink"]
    return row


def bench_size(runs: dict[str, Effects], jpegs: list) -> tuple[dict, dict, dict, float]:
    rows: dict[str, list[dict[str, float]]] = {n: [] for n in runs}
    decodes: list[float] = []
    order = list(runs)
    for i, jpeg in enumerate(jpegs):
        start = time.process_time()
        frame = mjpg.decode_frame(jpeg)
        decode_ms = (time.process_time() - start) * 1e3
        k = i % len(order)
        got = {n: frame_row(runs[n], frame, decode_ms) for n in order[k:] + order[:k]}
        if i < WARMUP:
            continue
        decodes.append(decode_ms)
        for n, row in got.items():
            rows[n].append(row)
    medians = {
        n: {s: statistics.median(r[s] for r in rs) for s in STAGES} for n, rs in rows.items()
    }
    ratios = {
        n: statistics.median(r["frame"] / f["frame"] for r, f in zip(rs, rows["fast"], strict=True))
        for n, rs in rows.items()
    }
    means = {
        n: statistics.fmean(r["frame"] for r in rs)
        / statistics.fmean(f["frame"] for f in rows["fast"])
        for n, rs in rows.items()
    }
    return medians, ratios, means, statistics.median(decodes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--sizes", default="720,1080")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", default="", help="3,3c,4c: BodyPix on 1 frame in N, c: carried")
    args = ap.parse_args()
    video = need(VIDEOS / DEFAULT_VIDEO, "the benchmark video")
    runs = chains(args.threads, [v for v in args.variants.split(",") if v])
    source = decode_frames(video, args.frames + WARMUP)
    for height in parse_sizes(args.sizes):
        medians, ratios, means, decode = bench_size(runs, encode_mjpg(source, height))
        print(
            f"{height}p, {args.frames} frames, {args.threads} thread(s), median CPU ms "
            f"(decode {decode:.1f} counted in each frame), load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        print(f"{'stage':<14}" + "".join(f"{n:>18}" for n in runs))
        for stage in STAGES:
            print(f"{stage:<14}" + "".join(f"{medians[n][stage]:>18.2f}" for n in runs))
        print(f"{'× fast':<14}" + "".join(f"{ratios[n]:>18.3f}" for n in runs))
        print(f"{'mean × fast':<14}" + "".join(f"{means[n]:>18.3f}" for n in runs))
    return 0


if __name__ == "__main__":
    run(main)
