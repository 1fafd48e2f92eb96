"""Rewrite MediaPipe's selfie model (float16 weights, one custom op) into builtin float32 ops.

The published file stores its weights as float16 behind 110 DEQUANTIZE ops and ends in
MediaPipe's custom op ``Convolution2DTransposeBias``, which LiteRT runs only because XNNPACK
happens to implement it. This builder, run by `pixcam models install` on the fetched file:

- folds every DEQUANTIZE of a constant float16 tensor into a float32 constant (the same values:
  float16 → float32 is exact);
- replaces the custom op (a 2×2 transposed convolution with stride 2) by the builtin ops that
  compute it exactly: a 1×1 ``CONV_2D`` to 2·2 channels and a ``DEPTH_TO_SPACE`` by 2 (the
  builtin ``TRANSPOSE_CONV`` with a bias input also runs it, but no faster than the custom op);
- drops the tensors, buffers and operator codes nothing uses any more.

The network computes the same function with the same float32 arithmetic, runs on any LiteRT
build, and one thread spends about a quarter less time on it (docs/performance.md). Anything
other than this file's shape of graph is refused with a one-line PixcamError. Deterministic:
the same input bytes give the same output bytes (the sha256 in models.toml).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from pixcam.errors import PixcamError
from pixcam.models.quantize import _keep_ops

CUSTOM_OP = b"Convolution2DTransposeBias"


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _read(model_bytes: bytes) -> Any:
    from ai_edge_litert.tools import flatbuffer_utils

    try:
        model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    except Exception as exc:  # the flatbuffer reader raises anything on garbage
        raise PixcamError(f"not a TFLite model ({type(exc).__name__})") from None
    if model is None or not model.subgraphs or len(model.subgraphs) != 1:
        raise PixcamError("not a single-subgraph TFLite model")
    return model


def _fold_dequantize(model: Any) -> set[int]:
    """Make each DEQUANTIZE of a float16 constant a float32 constant; returns those ops."""
    s = _schema()
    sg = model.subgraphs[0]
    folded = set()
    for i, op in enumerate(sg.operators):
        if model.operatorCodes[op.opcodeIndex].builtinCode != s.BuiltinOperator.DEQUANTIZE:
            continue
        src, dst = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
        data = model.buffers[src.buffer].data
        if src.type != s.TensorType.FLOAT16 or data is None or len(data) == 0:
            raise PixcamError(f"op {i}: DEQUANTIZE of a tensor that is not a float16 constant")
        values = np.frombuffer(bytes(data), "<f2").astype("<f4")
        buf = s.BufferT()
        buf.data = np.frombuffer(values.tobytes(), np.uint8)
        model.buffers.append(buf)
        dst.buffer = len(model.buffers) - 1
        folded.add(i)
    return folded


def _opcode(model: Any, builtin: int, version: int) -> int:
    s = _schema()
    code = s.OperatorCodeT()
    code.builtinCode, code.version = builtin, version
    code.deprecatedBuiltinCode = min(builtin, 127)  # the old int8 field; 127 = "see builtinCode"
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _constant(model: Any, name: bytes, values: np.ndarray, dtype: int) -> int:
    """Append a constant tensor holding `values` (little-endian); returns its index."""
    s = _schema()
    sg = model.subgraphs[0]
    buf = s.BufferT()
    buf.data = np.frombuffer(values.tobytes(), np.uint8)
    model.buffers.append(buf)
    t = s.TensorT()
    t.name, t.shape, t.type, t.hasRank = name, list(values.shape), dtype, True
    t.buffer = len(model.buffers) - 1
    sg.tensors.append(t)
    return len(sg.tensors) - 1


def _upsampling_ops(model: Any, op: Any) -> list[Any]:
    """The custom op (input, weights (O, k, k, I), bias; options padding, stride w, stride h as
    three int32) as a 1×1 CONV_2D to k·k·O channels and a DEPTH_TO_SPACE by k: with stride
    equal to the kernel, each input pixel writes its own k×k block, which is what a 1×1
    convolution followed by the block rearrangement computes (XNNPACK runs the two ~1 ms
    faster than either transposed convolution at 128→256 px)."""
    s = _schema()
    sg = model.subgraphs[0]
    options = bytes(op.customOptions) if op.customOptions is not None else b""
    if len(op.inputs) != 3 or len(options) != 12:
        raise PixcamError(f"{CUSTOM_OP.decode()}: expected 3 inputs and 12 bytes of options")
    _padding, stride_w, stride_h = struct.unpack("<3i", options)
    x, w_index, b_index = op.inputs
    w_tensor, b_tensor = sg.tensors[w_index], sg.tensors[b_index]
    out_ch, kh, kw, in_ch = w_tensor.shape
    src, out = sg.tensors[x], sg.tensors[op.outputs[0]]
    n, h, w, _ = src.shape
    # Kernel = stride and output = input × stride: no padding, so SAME and VALID agree.
    if not kh == kw == stride_w == stride_h or list(out.shape) != [n, h * kh, w * kw, out_ch]:
        raise PixcamError(f"{CUSTOM_OP.decode()}: kernel {kh}×{kw} is not its stride")
    weights = np.frombuffer(bytes(model.buffers[w_tensor.buffer].data), "<f4")
    bias = np.frombuffer(bytes(model.buffers[b_tensor.buffer].data), "<f4")
    # Conv output channel (dy·k + dx)·O + o is output pixel (dy, dx) of the block, channel o.
    w4 = weights.reshape(out_ch, kh, kw, in_ch).transpose(1, 2, 0, 3).reshape(-1, 1, 1, in_ch)
    name = out.name
    w_new = _constant(
        model, name + b"/block_weights", np.ascontiguousarray(w4), s.TensorType.FLOAT32
    )
    b_new = _constant(model, name + b"/block_bias", np.tile(bias, kh * kw), s.TensorType.FLOAT32)
    mid = s.TensorT()
    mid.name, mid.type, mid.hasRank, mid.buffer = name + b"/blocks", s.TensorType.FLOAT32, True, 0
    mid.shape = [*src.shape[:3], kh * kw * out_ch]
    sg.tensors.append(mid)
    conv = s.OperatorT()
    conv.opcodeIndex = _opcode(model, s.BuiltinOperator.CONV_2D, 1)
    conv.inputs, conv.outputs = [x, w_new, b_new], [len(sg.tensors) - 1]
    conv.builtinOptionsType = s.BuiltinOptions.Conv2DOptions
    conv.builtinOptions = s.Conv2DOptionsT()
    conv.builtinOptions.padding = s.Padding.VALID
    conv.builtinOptions.strideW = conv.builtinOptions.strideH = 1
    conv.builtinOptions.dilationWFactor = conv.builtinOptions.dilationHFactor = 1
    d2s = s.OperatorT()
    d2s.opcodeIndex = _opcode(model, s.BuiltinOperator.DEPTH_TO_SPACE, 1)
    d2s.inputs, d2s.outputs = [len(sg.tensors) - 1], list(op.outputs)
    d2s.builtinOptionsType = s.BuiltinOptions.DepthToSpaceOptions
    d2s.builtinOptions = s.DepthToSpaceOptionsT()
    d2s.builtinOptions.blockSize = kh
    return [conv, d2s]


def rewrite_selfie(model_bytes: bytes) -> bytes:
    """The selfie model's bytes with float32 weights and builtin ops only (see module doc)."""
    from ai_edge_litert.tools import flatbuffer_utils

    s = _schema()
    model = _read(model_bytes)
    sg = model.subgraphs[0]
    folded = _fold_dequantize(model)
    # A folded op's output is now a constant: its readers keep the tensor index.
    ops, custom = [], 0
    for i, op in enumerate(sg.operators):
        code = model.operatorCodes[op.opcodeIndex]
        if i in folded:
            continue
        if code.builtinCode != s.BuiltinOperator.CUSTOM:
            ops.append(op)
            continue
        if code.customCode != CUSTOM_OP:
            raise PixcamError(f"unsupported custom op {code.customCode!r}")
        ops += _upsampling_ops(model, op)
        custom += 1
    if custom != 1:
        raise PixcamError(f"expected one {CUSTOM_OP.decode()} op, found {custom}")
    _keep_ops(model, ops, list(sg.outputs))
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def selfie_for_input(model_bytes: bytes, height: int, width: int) -> bytes:
    """The selfie model (either file) for an input of `height`×`width` (multiples of 32), with
    each 1×1 convolution after an upsampling of its decoder run before it instead.

    The graph pins its input's size in two kinds of op: the global average pools of its
    squeeze-and-excitation blocks (a window the size of their input) and the decoder's
    RESIZE_BILINEAR (its output size a constant); both are set for the new size here. A 1×1
    convolution and a bilinear upsampling commute (both linear, the upsampling's weights sum
    to 1), so the convolution runs on a quarter of the pixels; the output changes by float
    rounding only (docs/performance.md, "The selfie model on the person's rectangle")."""
    from ai_edge_litert.tools import flatbuffer_utils

    if height % 32 or width % 32:
        raise PixcamError(f"the selfie model's input {width}×{height} is not a multiple of 32")
    model = _read(model_bytes)
    _fit_input(model, height, width)
    _convolve_before_upsampling(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _fit_input(model: Any, height: int, width: int) -> None:
    """Set the input's size and the pools' windows and upsamplings' sizes that depend on it."""
    s = _schema()
    sg = model.subgraphs[0]
    (first,) = sg.inputs
    base = sg.tensors[first].shape[1]  # the input's height the file was made for
    for op in sg.operators:
        code = model.operatorCodes[op.opcodeIndex].builtinCode
        if code == s.BuiltinOperator.AVERAGE_POOL_2D:
            src = sg.tensors[op.inputs[0]]
            stride = base // src.shape[1]
            window = op.builtinOptions
            window.filterHeight = window.strideH = height // stride
            window.filterWidth = window.strideW = width // stride
            src.shape = [src.shape[0], height // stride, width // stride, src.shape[3]]
        elif code == s.BuiltinOperator.RESIZE_BILINEAR:
            size = sg.tensors[op.inputs[1]]
            stride = base // int(np.frombuffer(bytes(model.buffers[size.buffer].data), "<i4")[0])
            values = np.array([height // stride, width // stride], "<i4")
            buf = s.BufferT()
            buf.data = np.frombuffer(values.tobytes(), np.uint8)
            model.buffers.append(buf)
            size.buffer = len(model.buffers) - 1
    sg.tensors[first].shape = [1, height, width, 3]


def _convolve_before_upsampling(model: Any) -> None:
    """Each RESIZE_BILINEAR read only by a 1×1 CONV_2D without activation: the convolution
    takes the resize's input and the resize its output (the same values, fewer pixels)."""
    s = _schema()
    sg = model.subgraphs[0]
    readers: dict[int, list[int]] = {}
    for i, op in enumerate(sg.operators):
        for t in op.inputs:
            readers.setdefault(int(t), []).append(i)
    ops = list(sg.operators)
    for resize in [op for op in sg.operators if _is(model, op, s.BuiltinOperator.RESIZE_BILINEAR)]:
        after = readers.get(int(resize.outputs[0]), [])
        conv = sg.operators[after[0]] if len(after) == 1 else None
        if conv is None or not _is(model, conv, s.BuiltinOperator.CONV_2D):
            continue
        weights = sg.tensors[conv.inputs[1]]
        if list(weights.shape[1:3]) != [1, 1] or conv.builtinOptions.fusedActivationFunction:
            continue
        src, out = sg.tensors[resize.inputs[0]], conv.outputs[0]
        low = s.TensorT()
        low.type, low.hasRank, low.buffer = s.TensorType.FLOAT32, True, 0
        low.name = sg.tensors[out].name + b"/before_upsampling"
        low.shape = [*src.shape[:3], weights.shape[0]]
        sg.tensors.append(low)
        conv.inputs[0], conv.outputs = resize.inputs[0], [len(sg.tensors) - 1]
        resize.inputs[0], resize.outputs = len(sg.tensors) - 1, [out]
        # The resize now reads the convolution: it moves to right after it (nothing between
        # read the resize's output, which only the convolution did).
        ops.remove(resize)
        ops.insert(ops.index(conv) + 1, resize)
    sg.operators = ops


def _is(model: Any, op: Any, builtin: int) -> bool:
    return bool(model.operatorCodes[op.opcodeIndex].builtinCode == builtin)
