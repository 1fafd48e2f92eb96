"""Float vs int8 BodyPix: speed per inference, person-mask IoU, file size.

    .venv/bin/python bench/quantize_bench.py [--rounds 15] [--per 10] [--no-iou] [--limit N]

Needs the float models installed and the int8 ones made (`pixcam models install --from DIR`,
which also makes the int8 ones).

Speed: `invoke()` only (the network, not pre/post-processing), at webcam-like network inputs of
stride·k+1 pixels. The machine is shared, so every (model, threads, size) interpreter runs in
interleaved rounds and each float/int8 pair is also timed back to back, alternating which goes
first: the speed-up is the median of those paired ratios, which drift in machine load cancels.

IoU: mean person-mask IoU on the dev photos (threshold 0.5, probability warped back to the
photo) through the project's own segmenter, 1 thread (`--limit N`: the first N photos).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from _needs import run

from pixcam import models
from pixcam.chain.segment.bodypix import BodyPixSegmenter
from pixcam.chain.segment.engine import Engine, interpreter_class
from pixcam.tools import evaluate

PAIRS = [
    ("bodypix-050-s16-float", "bodypix-050-s16-int8"),
    ("bodypix-050-s8-float", "bodypix-050-s8-int8"),
]
SIZES = [(353, 481), (481, 641)]  # (height, width): 4:3 webcam frames at two resolutions
THREADS = [1, 2]


@dataclass
class Case:
    float_interp: Any
    int8_interp: Any
    float_ms: list[float] = field(default_factory=list)
    int8_ms: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)


def _interpreter(path: str, threads: int, hw: tuple[int, int]) -> Any:
    interp = interpreter_class()(model_path=path, num_threads=threads)
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], [1, *hw, 3])
    interp.allocate_tensors()
    # A real-looking input range; the content does not change the work an int8 net does.
    x = np.random.default_rng(0).uniform(-1, 1, (1, *hw, 3)).astype(np.float32)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()  # warm-up: the first run packs the weights
    return interp


def _time(interp: Any) -> float:
    start = time.perf_counter()
    interp.invoke()
    return (time.perf_counter() - start) * 1000.0


def measure_speed(rounds: int, per: int) -> dict[tuple[str, int, tuple[int, int]], Case]:
    cases = {
        (f, n, hw): Case(
            _interpreter(str(models.resolve(f).path), n, hw),
            _interpreter(str(models.resolve(q).path), n, hw),
        )
        for f, q in PAIRS
        for n in THREADS
        for hw in SIZES
    }
    for r in range(rounds):
        for case in cases.values():
            for i in range(per):
                if (r + i) % 2:  # alternate who goes first
                    ti, tf = _time(case.int8_interp), _time(case.float_interp)
                else:
                    tf, ti = _time(case.float_interp), _time(case.int8_interp)
                case.float_ms.append(tf)
                case.int8_ms.append(ti)
                case.ratios.append(tf / ti)
    return cases


def measure_iou(resolutions: list[int], limit: int | None) -> dict[tuple[str, int], float]:
    data = evaluate.default_data_dir()
    if data is None:
        return {}
    samples = evaluate.load_samples(data, limit)
    out = {}
    for f, q in PAIRS:
        spec = models.get_spec(f)
        for name in (f, q):
            for res in resolutions:
                seg = BodyPixSegmenter(spec, Engine(models.resolve(name).path, 1), res)
                ious = [s for _, s in evaluate.sample_ious(seg, samples)]
                out[(name, res)] = float(np.mean(ious))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per", type=int, default=10, help="paired runs per case per round")
    parser.add_argument("--no-iou", action="store_true")
    parser.add_argument("--limit", type=int, default=None, help="only the first N dev photos")
    args = parser.parse_args()

    cases = measure_speed(args.rounds, args.per)
    print(f"invoke() ms, median of {args.rounds}×{args.per} paired runs; speed-up = median ratio")
    print(f"{'model':24} {'thr':>3} {'input':>8} {'float':>7} {'int8':>7} {'speed-up':>8}")
    for (name, n, (h, w)), c in cases.items():
        print(
            f"{name.replace('-float', ''):24} {n:>3} {f'{h}x{w}':>8} "
            f"{statistics.median(c.float_ms):7.2f} {statistics.median(c.int8_ms):7.2f} "
            f"{statistics.median(c.ratios):7.2f}x"
        )
    print("\nfile sizes (bytes):")
    for f, q in PAIRS:
        fs, qs = models.resolve(f).path.stat().st_size, models.resolve(q).path.stat().st_size
        print(f"  {f}: {fs}  {q}: {qs}  ratio {fs / qs:.2f}x")
    if not args.no_iou:
        ious = measure_iou([w for _, w in SIZES], args.limit)
        print("\nmean person-mask IoU on the dev photos (1 thread):")
        for (name, res), v in ious.items():
            print(f"  {name:24} res {res}: {v:.4f}")
    return 0


if __name__ == "__main__":
    run(main)
