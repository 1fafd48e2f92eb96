"""A thin wrapper around the LiteRT interpreter: load, resize the input, run, dequantize."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pixcam.errors import PixcamError
from pixcam.native import native_stderr_to_log

log = logging.getLogger(__name__)


def interpreter_class() -> type:
    """LiteRT's Interpreter, or tflite_runtime's where only the older package is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise PixcamError(
                "no TFLite runtime found; install it with `pip install ai-edge-litert`"
            ) from None
    return Interpreter


def runtime_name() -> str:
    cls = interpreter_class()
    return cls.__module__.split(".")[0]


class Engine:
    """One model file on one interpreter; XNNPACK (LiteRT's default CPU delegate) does the work."""

    def __init__(self, path: Path, threads: int = 1, content: bytes | None = None) -> None:
        """`content`: the model's verified bytes (`models.read_verified`), run from memory and
        kept alive here; without it the interpreter maps `path`, which must then never change
        while it runs (a file shortened in place kills the process with SIGBUS)."""
        cls = interpreter_class()
        self._content = content
        source = {"model_path": str(path)} if content is None else {"model_content": content}
        try:
            with native_stderr_to_log():
                self._interp: Any = cls(**source, num_threads=threads)
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PixcamError(
                f"model file {path} could not be loaded ({first}); reinstall it with "
                "`pixcam models install --from DIR_OR_URL --force`"
            ) from None
        (self._input,) = self._interp.get_input_details()
        self._outputs = {d["name"]: d for d in self._interp.get_output_details()}
        self.threads = threads
        self.last_invoke_ms = 0.0  # the network alone (wall), for the benches
        self.last_invoke_cpu_ms = 0.0  # the same in process CPU time (all threads)

    @property
    def input_shape(self) -> tuple[int, int]:
        """(height, width) of the current input tensor."""
        _, h, w, _ = self._interp.get_input_details()[0]["shape"]
        return int(h), int(w)

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    @property
    def output_names(self) -> set[str]:
        return set(self._outputs)

    def resize_input(self, height: int, width: int) -> None:
        if (height, width) == self.input_shape:
            return
        self._interp.resize_tensor_input(self._input["index"], [1, height, width, 3], strict=False)
        self._interp.allocate_tensors()
        self._outputs = {d["name"]: d for d in self._interp.get_output_details()}

    def fill_input(self, fill: Callable[[np.ndarray], None]) -> None:
        """Call `fill` with the input tensor's own buffer (H×W×3, a view) to write the next
        input in place: no batch array of our own and no copy into the tensor. The view must
        not outlive the call (the interpreter refuses to run while one is held)."""
        fill(self._interp.tensor(self._input["index"])()[0])

    def invoke(self, names: list[str]) -> list[np.ndarray]:
        """Run on the input as filled; return the named outputs as float32 (dequantized)."""
        start, cpu = time.perf_counter(), time.process_time()
        self._interp.invoke()
        self.last_invoke_ms = (time.perf_counter() - start) * 1000.0
        self.last_invoke_cpu_ms = (time.process_time() - cpu) * 1000.0
        results = []
        for name in names:
            detail = self._outputs[name]
            raw = self._interp.get_tensor(detail["index"])[0]
            scale, zero = detail["quantization"]
            if raw.dtype != np.float32:
                if scale == 0:
                    raw = raw.astype(np.float32)
                else:
                    raw = (raw.astype(np.float32) - zero) * np.float32(scale)
            results.append(raw)
        return results
