"""The int8 BodyPix network against its float original: interpreter alone, one thread.

Per input size, both models (and, at the default size, both without XNNPACK: the builtin
kernels) run on the same input in a rotating order; medians of process CPU ms per invoke.
What it showed (see the issue 16 note): the ratio grows with the input size, the QUANTIZE /
DEQUANTIZE wrapping is a negligible part, and on a CPU without VNNI (AVX2 only) XNNPACK's int8
GEMMs multiply-add at about the float rate, so int8 wins by memory traffic, not arithmetic.

    taskset -c 1 .venv/bin/python bench/studies/int8_vs_float.py [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "bench"))  # _needs and the benches a study builds on

from _needs import run  # noqa: E402

from pixcam import models  # noqa: E402

SIZES = ((289, 161), (417, 241), (625, 353))  # network input (w, h) for 16:9 frames


def interpreter(path: Path, w: int, h: int, xnnpack: bool = True) -> object:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kw = (
        {}
        if xnnpack
        else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    )
    it = Interpreter(model_path=str(path), num_threads=1, **kw)
    it.resize_tensor_input(it.get_input_details()[0]["index"], [1, h, w, 3])
    it.allocate_tensors()
    return it


def cpu_ms(it: object, x: np.ndarray) -> float:
    it.set_tensor(it.get_input_details()[0]["index"], x)  # type: ignore[attr-defined]
    c = time.process_time()
    it.invoke()  # type: ignore[attr-defined]
    return (time.process_time() - c) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    paths = {k: models.resolve(f"bodypix-050-s16-{k}").path for k in ("float", "int8")}
    for w, h in SIZES:
        its = {k: interpreter(p, w, h) for k, p in paths.items()}
        if (w, h) == (417, 241):
            its.update({f"{k} builtin": interpreter(p, w, h, False) for k, p in paths.items()})
        x = np.random.default_rng(0).uniform(-1, 1, (1, h, w, 3)).astype(np.float32)
        names = list(its)
        t: dict[str, list[float]] = {k: [] for k in names}
        for r in range(args.runs):
            k0 = r % len(names)
            for k in names[k0:] + names[:k0]:
                t[k].append(cpu_ms(its[k], x))
        m = {k: statistics.median(v[3:]) for k, v in t.items()}
        cells = "  ".join(f"{k} {v:.2f}" for k, v in m.items())
        print(f"{w}x{h}: {cells} ms; float/int8 {m['float'] / m['int8']:.2f}×")
    return 0


if __name__ == "__main__":
    run(main)
