"""Turn a float BodyPix .tflite into a full-integer int8 model (weights and activations).

Recipe (reproducible, seconds on two cores):

1. Model surgery on the flatbuffer (LiteRT's own schema, no TensorFlow): keep only the ops that
   feed ``float_segments`` and ``float_part_heatmaps`` (the pose heads cost compute and are never
   used), drop the unused tensors and buffers, and add a ``serving_default`` SignatureDef, which
   ``ai-edge-quantizer`` needs and the converted files lack.
2. Activation ranges (min/max of every activation, ``ai-edge-quantizer``'s calibration), measured
   once by a developer (``pixcam models calibrate``) on licensed images, the
   Pixabay photos and video frames of ``../shared/data``, preprocessed like the pipeline does:
   RGB, x/127.5-1, aspect kept, padded bottom/right with 0.0 (the segmenter's pad value). The
   input's range is set to exactly [-1, 1] and the others rounded to 1/1024
   (``settle_ranges``), and the numbers ship in the package (``calibration/*.json``): users
   quantize from them at install time without any photos, and get the same bytes (the sha256
   in models.toml) on every machine.
3. Quantize with the a8w8 recipe: int8 per-channel symmetric weights, int8 per-tensor asymmetric
   activations, int32 biases.

The model keeps **float32 input and outputs** (one QUANTIZE after the input, one DEQUANTIZE per
output): the BodyPix segmenter then feeds the int8 model exactly like the float one (same
x/127.5-1 input, same logit outputs, same manifest fields). Measured against the same model with
int8 I/O, the three extra ops cost ~0.1 ms at 353×481 and the IoU is the same (docs/quantize.md).

Only making the model needs ``ai-edge-quantizer`` (pinned: the bytes depend on its version); the
result runs on plain LiteRT and still accepts any input size through ``resize_tensor_input``.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pixcam.errors import PixcamError
from pixcam.native import native_stderr_to_log

INPUT_NAME = "sub_2"
KEEP_OUTPUTS = ("float_segments", "float_part_heatmaps")
SIGNATURE_KEY = "serving_default"
# Network input (height, width) used for calibration: a webcam-like 3:4 size of stride*k+1.
CALIBRATION_SIZE = (353, 481)
# Frames taken from each calibration video (see calibration_frames).
FRAMES_PER_VIDEO = 8
# Calibrated ranges are rounded to multiples of 1/RANGE_GRID (see settle_ranges).
RANGE_GRID = 1024.0


# ------------------------------------------------------------------------- model surgery
def _schema() -> ModuleType:
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _live_ops(subgraph: Any, keep_tensors: set[int]) -> list[int]:
    """Indices of the operators needed to compute ``keep_tensors`` (walks the graph backwards)."""
    producer = {t: i for i, op in enumerate(subgraph.operators) for t in op.outputs}
    needed, stack = set(), list(keep_tensors)
    while stack:
        t = stack.pop()
        i = producer.get(t)
        if i is None or i in needed:
            continue
        needed.add(i)
        stack.extend(x for x in subgraph.operators[i].inputs if x >= 0)
    return sorted(needed)  # keeps the original (topological) execution order


def prepare_float_model(model_bytes: bytes, keep_outputs: Sequence[str] = KEEP_OUTPUTS) -> bytes:
    """Prune a float BodyPix model to ``keep_outputs`` and give it a SignatureDef.

    Deterministic: the same input bytes give the same output bytes.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    s = _schema()
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    if len(model.subgraphs) != 1:
        raise PixcamError(f"expected a single-subgraph BodyPix model, got {len(model.subgraphs)}")
    sg = model.subgraphs[0]
    by_name = {t.name.decode(): i for i, t in enumerate(sg.tensors)}
    missing = [n for n in (INPUT_NAME, *keep_outputs) if n not in by_name]
    if missing:
        raise PixcamError(f"not a BodyPix model with part heads: no tensor {missing[0]!r}")
    if [sg.tensors[i].name.decode() for i in sg.inputs] != [INPUT_NAME]:
        raise PixcamError(f"expected the single input {INPUT_NAME!r}")

    outputs = [by_name[n] for n in keep_outputs]
    ops = [sg.operators[i] for i in _live_ops(sg, set(outputs))]

    tmap = _keep_ops(model, ops, outputs)

    def tensor_map(name: str) -> object:
        tm = s.TensorMapT()
        tm.name, tm.tensorIndex = name, tmap[by_name[name]]
        return tm

    sig = s.SignatureDefT()
    sig.signatureKey = SIGNATURE_KEY
    sig.subgraphIndex = 0
    sig.inputs = [tensor_map(INPUT_NAME)]
    sig.outputs = [tensor_map(n) for n in keep_outputs]
    model.signatureDefs = [sig]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _keep_ops(model: Any, ops: list[Any], outputs: list[int]) -> dict[int, int]:
    """Make `ops` the subgraph's operators and `outputs` its outputs, keeping only the tensors
    and buffers they use, renumbered in their original order (stable, so deterministic);
    returns old tensor index → new."""
    sg = model.subgraphs[0]
    used = sorted({t for op in ops for t in (*op.inputs, *op.outputs) if t >= 0} | set(sg.inputs))
    tmap = {old: new for new, old in enumerate(used)}
    for op in ops:
        op.inputs = [tmap[t] if t >= 0 else t for t in op.inputs]
        op.outputs = [tmap[t] for t in op.outputs]
    sg.tensors = [sg.tensors[t] for t in used]
    sg.operators = ops
    sg.inputs = [tmap[t] for t in sg.inputs]
    sg.outputs = [tmap[t] for t in outputs]
    _compact_buffers(model)
    return tmap


def _compact_buffers(model: Any) -> None:
    """Drop buffers no tensor (or metadata entry) refers to; buffer 0 stays the empty sentinel."""
    sg = model.subgraphs[0]
    refs = {0} | {t.buffer for t in sg.tensors} | {m.buffer for m in model.metadata or []}
    keep = sorted(refs)
    bmap = {old: new for new, old in enumerate(keep)}
    model.buffers = [model.buffers[b] for b in keep]
    for t in sg.tensors:
        t.buffer = bmap[t.buffer]
    for m in model.metadata or []:
        m.buffer = bmap[m.buffer]
    used_codes = sorted({op.opcodeIndex for op in sg.operators})
    cmap = {old: new for new, old in enumerate(used_codes)}
    model.operatorCodes = [model.operatorCodes[c] for c in used_codes]
    for op in sg.operators:
        op.opcodeIndex = cmap[op.opcodeIndex]


def _opcode_index(model: Any, builtin: int) -> int:
    """Index of ``builtin`` in the model's operator codes, added if absent."""
    s = _schema()
    for i, code in enumerate(model.operatorCodes):
        if code.builtinCode == builtin:
            return i
    code = s.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)  # the old int8 field, as the converter sets
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _float_twin(model: Any, tensor: Any) -> int:
    """Append a float32 tensor like ``tensor`` (same name and shape); return its index.

    The quantized tensor is renamed ``<name>_int8`` so the float one keeps the public name.
    """
    s = _schema()
    sg = model.subgraphs[0]
    twin = s.TensorT()
    twin.name = tensor.name
    twin.shape = list(tensor.shape)
    twin.shapeSignature = list(tensor.shapeSignature) if tensor.shapeSignature is not None else None
    twin.type = s.TensorType.FLOAT32
    twin.buffer = 0  # the empty buffer: activations hold no data
    tensor.name = tensor.name + b"_int8"
    sg.tensors.append(twin)
    return len(sg.tensors) - 1


def float_interface(model_bytes: bytes) -> bytes:
    """Give a full-integer model float32 input and outputs (QUANTIZE in, DEQUANTIZE out).

    ai-edge-quantizer quantizes the graph's own input and output tensors; this puts a float
    tensor with the original name in front of / behind each of them, so callers see the float
    model's interface (and signature) unchanged.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    s = _schema()
    # This reader resolves buffers stored after the flatbuffer (offset/size), as the quantizer
    # writes them; the plain object API would keep stale offsets.
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    sg = model.subgraphs[0]
    new_index: dict[int, int] = {}
    head, tail = [], []
    for t in sg.inputs:
        f = _float_twin(model, sg.tensors[t])
        head.append(_simple_op(_opcode_index(model, s.BuiltinOperator.QUANTIZE), f, t))
        new_index[t] = f
    for t in sg.outputs:
        f = _float_twin(model, sg.tensors[t])
        tail.append(_simple_op(_opcode_index(model, s.BuiltinOperator.DEQUANTIZE), t, f))
        new_index[t] = f
    sg.operators = head + sg.operators + tail
    sg.inputs = [new_index[t] for t in sg.inputs]
    sg.outputs = [new_index[t] for t in sg.outputs]
    for sig in model.signatureDefs or []:
        for tm in (*sig.inputs, *sig.outputs):
            tm.tensorIndex = new_index.get(tm.tensorIndex, tm.tensorIndex)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _simple_op(opcode_index: int, src: int, dst: int) -> Any:
    s = _schema()
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode_index, [src], [dst]
    return op


# --------------------------------------------------------------------------- calibration
def letterbox_input(image_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Network input [1,H,W,3] float32 like the pipeline builds it: RGB, x/127.5-1, resized
    keeping the aspect ratio into ``size`` (height, width, swapped for portrait photos) and
    padded bottom/right with 0.0 (mid grey), the segmenter's pad value.
    """
    import cv2

    h, w = size
    ih, iw = image_bgr.shape[:2]
    if ih > iw:  # portrait photo: portrait input, as the segmenter does for portrait frames
        h, w = w, h
    scale = min(h / ih, w / iw)
    nh, nw = max(1, round(ih * scale)), max(1, round(iw * scale))
    resized = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_AREA)
    batch = np.zeros((1, h, w, 3), np.float32)
    batch[0, :nh, :nw] = resized[:, :, ::-1].astype(np.float32) / 127.5 - 1.0  # BGR -> RGB
    return batch


def calibration_frames(
    data_dir: Path, frames_per_video: int = FRAMES_PER_VIDEO
) -> list[np.ndarray]:
    """The licensed calibration set: every Pixabay photo in ``images/`` and
    ``frames_per_video`` evenly spaced frames of every video in ``video/`` (BGR, sorted order).

    Pixabay content may be used freely, so the ranges made from it can ship with pixcam.
    """
    import cv2

    frames = []
    for path in sorted((data_dir / "images").glob("*.jpg")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise PixcamError(f"cannot read calibration image {path}")
        frames.append(image)
    for path in sorted((data_dir / "video").glob("*.mp4")):
        cap = cv2.VideoCapture(str(path))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        for i in range(frames_per_video):
            cap.set(cv2.CAP_PROP_POS_FRAMES, (2 * i + 1) * count // (2 * frames_per_video))
            ok, frame = cap.read()
            if not ok:
                raise PixcamError(f"cannot read frame {i} of calibration video {path}")
            frames.append(frame)
        cap.release()
    if not frames:
        raise PixcamError(f"no calibration photos or videos in {data_dir}/images, /video")
    return frames


# ------------------------------------------------------------------------------ quantize
class QuantizerMissing(PixcamError):
    """ai-edge-quantizer is not installed."""


def _quantizer_module() -> tuple[ModuleType, ModuleType]:
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError as exc:
        raise QuantizerMissing(
            "making the int8 models needs ai-edge-quantizer 0.10.0: "
            "pip install 'ai-edge-quantizer==0.10.0'"
        ) from exc
    return quantizer, recipe


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # The quantizer prints progress and a size summary to stdout (dropped) and progress bars,
    # warnings and LiteRT notes to stderr (kept in the debug log): the CLI's output stays ours.
    with (
        contextlib.redirect_stdout(io.StringIO()),
        warnings.catch_warnings(),
        native_stderr_to_log(),
    ):
        warnings.simplefilter("ignore")
        yield


def settle_ranges(qsvs: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """Make the calibrated activation ranges exact where known and robust elsewhere.

    - The input's range is known, not measured: x/127.5-1 of any uint8 pixel is in [-1, 1].
    - Every other min/max is rounded to 1/1024. That is ~30x finer than one int8 step of any
      tensor here, so accuracy is unchanged, and the numbers print exactly in the shipped
      ranges file.
    """
    settled = {}
    for name, qsv in qsvs.items():
        if name == INPUT_NAME:
            lo, hi = np.full_like(qsv["min"], -1.0), np.full_like(qsv["max"], 1.0)
        else:
            lo, hi = (np.round(qsv[k] * RANGE_GRID) / RANGE_GRID for k in ("min", "max"))
        settled[name] = {**qsv, "min": lo.astype(np.float32), "max": hi.astype(np.float32)}
    return settled


def calibrate(
    float_bytes: bytes,
    frames: Sequence[np.ndarray],
    size: tuple[int, int] = CALIBRATION_SIZE,
    threads: int = 2,
) -> dict[str, dict[str, np.ndarray]]:
    """Per-tensor activation ranges of the pruned float model over ``frames`` (settled)."""
    quantizer, recipe = _quantizer_module()
    if not frames:
        raise PixcamError("calibrating needs at least one image")
    samples = [{INPUT_NAME: letterbox_input(f, size)} for f in frames]
    qt = quantizer.Quantizer(bytearray(prepare_float_model(float_bytes)), recipe.static_wi8_ai8())
    with _quiet():
        qsvs = qt.calibrate({SIGNATURE_KEY: samples}, num_threads=threads)
    return settle_ranges(qsvs)


def ranges_to_json(ranges: dict[str, dict[str, np.ndarray]], about: dict[str, Any]) -> str:
    """The shipped ranges file: ``about`` (how it was made) and per tensor [min, max]."""
    rows = [
        f"  {json.dumps(name)}: [{float(r['min'].item())!r}, {float(r['max'].item())!r}]"
        for name, r in ranges.items()
    ]
    body = ",\n".join(rows)
    return f'{{\n "about": {json.dumps(about)},\n "tensors": {{\n{body}\n }}\n}}\n'


def load_ranges(resource: str) -> dict[str, dict[str, np.ndarray]]:
    """A ranges file shipped in the package (path relative to the ``pixcam`` package)."""
    try:
        return parse_ranges(resources.files("pixcam.models").joinpath(resource).read_text("utf-8"))
    except (OSError, ValueError, KeyError) as exc:
        raise PixcamError(f"calibration ranges {resource} missing or unreadable: {exc}") from None


def parse_ranges(text: str) -> dict[str, dict[str, np.ndarray]]:
    """The ranges of a ranges file's text (as ``ranges_to_json`` wrote it)."""
    tensors = json.loads(text)["tensors"]
    shape = (1, 1, 1, 1)  # per-tensor ranges, as the quantizer keeps them
    return {
        name: {"min": np.full(shape, lo, np.float32), "max": np.full(shape, hi, np.float32)}
        for name, (lo, hi) in tensors.items()
    }


def quantize_bytes(float_bytes: bytes, ranges: dict[str, dict[str, np.ndarray]]) -> bytes:
    """The int8 model as bytes, from the float model and its activation ranges (no images)."""
    quantizer, recipe = _quantizer_module()
    qt = quantizer.Quantizer(bytearray(prepare_float_model(float_bytes)), recipe.static_wi8_ai8())
    with _quiet():
        try:
            quantized = qt.quantize(ranges).quantized_model
        except (ValueError, KeyError, RuntimeError) as exc:  # ranges from another graph
            raise PixcamError(f"calibration ranges do not fit this float model: {exc}") from None
    return float_interface(bytes(quantized))


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary name and a rename, so a crash never leaves half a model behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)  # half a model left behind would keep a full disk full
        raise


def derive(spec: Any, base_path: Path) -> bytes:
    """The bytes of the derived model ``spec`` made from its installed float model."""
    ranges = load_ranges(str(spec.recipe["ranges"]))
    return quantize_bytes(base_path.read_bytes(), ranges)
