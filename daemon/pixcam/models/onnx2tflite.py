"""Build the float BodyPix TFLite model from keijiro's ONNX export, without TensorFlow.

keijiro's BodyPix MobileNetV1 files (tf2onnx, opset 8) are a chain of convolutions in NCHW
behind a Transpose of the NHWC input, with Clip(0, 6) after each backbone conv and a Transpose
(or a Reshape that acts as one) back to NHWC on every head. This module reads that graph with
the ``onnx`` package and writes the TFLite flatbuffer directly with LiteRT's own schema (the
object API ``quantize.py`` also uses), the way TensorFlow's converter wrote the staged files:

- the layout Transposes disappear: TFLite works in NHWC, so each conv's weights are transposed
  instead, (O, I, kh, kw) -> (O, kh, kw, I) for CONV_2D and (1, kh, kw, O) for DEPTHWISE_CONV_2D;
- Conv + Clip(0, 6) becomes one op with a fused RELU6; Min(x, c) becomes MINIMUM and Max(x, 0)
  RELU (the part-offsets head);
- SAME padding (ONNX SAME_UPPER pads the extra pixel at the end, as TFLite SAME does), strides
  and dilations (the stride-8 graph) carry over, so the input stays resizable at run time;
- tensor names, tensor order, buffers and the ``min_runtime_version`` metadata are those of the
  staged TensorFlow-converted files; the outputs get the TF.js names (``float_segments`` ...)
  and a ``serving_default`` SignatureDef lists them.

Anything else in the graph (another op, a grouped conv that is not depthwise, other padding)
is refused with a one-line PixcamError naming it: this is a converter for these files, not a
general ONNX importer. The result is deterministic: the same ONNX bytes give the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixcam.errors import PixcamError

INPUT_NAME = "sub_2"
# Fixed input shape written into the model; BodyPix resizes it at run time (stride*k+1 sizes).
DEFAULT_INPUT_SHAPE = (1, 480, 640, 3)
SIGNATURE_KEY = "serving_default"
# ONNX output name -> TF.js tensor name, the names pixcam's manifest and segmenter use.
OUTPUT_NAMES = {
    "segments": "float_segments",
    "part_heatmaps": "float_part_heatmaps",
    "heatmaps": "float_heatmaps",
    "short_offsets": "float_short_offsets",
    "long_offsets": "float_long_offsets",
    "part_offsets": "float_part_offsets",
    "displacement_fwd": "displacement_fwd",
    "displacement_bwd": "displacement_bwd",
}
# Oldest TFLite runtime that runs these ops (what TensorFlow's converter recorded).
MIN_RUNTIME_VERSION = b"1.14.0"
NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]


# ------------------------------------------------------------------ the graph, in NHWC
@dataclass
class Value:
    """An activation: the id of its TFLite tensor, and how the ONNX graph sees its memory."""

    tensor: int
    nchw: bool  # ONNX treats it as NCHW (behind a layout Transpose); TFLite holds it as NHWC
    channels: int


@dataclass
class Conv:
    src: int
    dst: int
    weights: np.ndarray  # TFLite layout
    bias: np.ndarray
    depthwise: bool
    stride: tuple[int, int]
    dilation: tuple[int, int]
    relu6: bool = False


@dataclass
class Minimum:
    src: int
    dst: int
    bound: np.ndarray  # float32 scalar


@dataclass
class Relu:
    src: int
    dst: int


@dataclass
class Graph:
    ops: list[Conv | Minimum | Relu] = field(default_factory=list)
    n_tensors: int = 1  # tensor 0 is the input
    outputs: dict[int, str] = field(default_factory=dict)  # tensor -> TF.js name, ONNX order

    def new_tensor(self) -> int:
        self.n_tensors += 1
        return self.n_tensors - 1


def _read_onnx(onnx_bytes: bytes) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(onnx_bytes)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise PixcamError(f"not an ONNX model ({type(exc).__name__}): {exc}".strip()) from exc
    if not model.graph.node:
        raise PixcamError("not an ONNX model: the file holds no graph nodes")
    return model


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _fail(node: Any, why: str) -> PixcamError:
    return PixcamError(
        f"cannot convert ONNX node {node.name or '?'!r} ({node.op_type}): {why}; "
        "only keijiro's BodyPix MobileNetV1 export is supported"
    )


def lower(model: Any) -> Graph:
    """The ONNX graph as TFLite-ready ops on NHWC tensors."""
    from onnx import numpy_helper

    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    lowering = _Lowering(consts, _input_name(g, consts), _use_counts(g))
    for node in g.node:
        lowering.add(node)
    lowering.name_outputs(g.output)
    return lowering.graph


def _input_name(g: Any, consts: dict[str, np.ndarray]) -> str:
    """The graph's one input, checked to be an NHWC image."""
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise PixcamError(f"expected one ONNX graph input, found {len(inputs)}")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or dims[3].dim_value != 3:
        raise PixcamError("expected the ONNX input to be an NHWC image [1, H, W, 3]")
    return str(inputs[0].name)


def _use_counts(g: Any) -> dict[str, int]:
    """How many nodes read each tensor."""
    uses: dict[str, int] = {}
    for node in g.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    return uses


class _Lowering:
    """The ops made so far, and what each ONNX tensor name stands for."""

    def __init__(
        self, consts: dict[str, np.ndarray], input_name: str, uses: dict[str, int]
    ) -> None:
        self.consts = consts
        self.uses = uses
        self.graph = Graph()
        self.env: dict[str, Value] = {input_name: Value(0, nchw=False, channels=3)}
        self.shapes: dict[str, tuple[Value, list[int] | None]] = {}  # Shape / Gather results
        self.made_by: dict[int, Conv] = {}

    def add(self, node: Any) -> None:
        lower_op = _LOWER_OPS.get(node.op_type)
        if lower_op is None:
            raise _fail(node, "unsupported op")
        lower_op(self, node, _attrs(node))

    def name_outputs(self, outputs: Any) -> None:
        """Give each BodyPix head its TF.js name; anything else is refused."""
        for out in outputs:
            head = self.env.get(out.name)
            tflite_name = OUTPUT_NAMES.get(out.name)
            if head is None or tflite_name is None:
                raise PixcamError(f"unexpected ONNX output {out.name!r}: not a BodyPix head")
            if head.nchw:
                raise PixcamError(f"ONNX output {out.name!r} is not in NHWC layout")
            self.graph.outputs[head.tensor] = tflite_name

    def value(self, node: Any, i: int) -> Value:
        name = node.input[i]
        if name not in self.env:
            raise _fail(node, f"input {name!r} is not an activation this converter tracks")
        return self.env[name]

    def scalar(self, node: Any, i: int) -> np.ndarray:
        c = self.consts.get(node.input[i])
        if c is None or c.size != 1:
            raise _fail(node, "the second operand must be a constant scalar")
        return c.astype(np.float32).reshape(())

    def transpose(self, node: Any, a: dict[str, Any]) -> None:
        """A layout transpose: no op, the same tensor seen the other way."""
        x = self.value(node, 0)
        perm = list(a.get("perm", []))
        want = NCHW_TO_NHWC if x.nchw else NHWC_TO_NCHW
        if perm != want:
            raise _fail(node, f"only NHWC<->NCHW layout transposes are supported, not {perm}")
        self.env[node.output[0]] = Value(x.tensor, not x.nchw, x.channels)

    def conv(self, node: Any, a: dict[str, Any]) -> None:
        x = self.value(node, 0)
        conv = _conv(node, a, x, self.consts, self.graph.new_tensor())
        self.graph.ops.append(conv)
        self.made_by[conv.dst] = conv
        self.env[node.output[0]] = Value(conv.dst, nchw=True, channels=len(conv.bias))

    def clip(self, node: Any, a: dict[str, Any]) -> None:
        """Clip(0, 6): fused as RELU6 into the conv it alone follows."""
        x = self.value(node, 0)
        producer = self.made_by.get(x.tensor)
        lo, hi = a.get("min"), a.get("max")
        if len(node.input) > 1 or (lo, hi) != (0.0, 6.0):
            raise _fail(node, "only Clip(0, 6) (ReLU6) is supported")
        if producer is None or producer.relu6 or self.uses[node.input[0]] != 1:
            raise _fail(node, "ReLU6 is supported only right after a conv it can fuse into")
        producer.relu6 = True
        self.env[node.output[0]] = x

    def minimum(self, node: Any, a: dict[str, Any]) -> None:
        x = self.value(node, 0)
        m = Minimum(x.tensor, self.graph.new_tensor(), self.scalar(node, 1))
        self.graph.ops.append(m)
        self.env[node.output[0]] = Value(m.dst, x.nchw, x.channels)

    def maximum(self, node: Any, a: dict[str, Any]) -> None:
        """Max(x, 0): RELU."""
        x, bound = self.value(node, 0), self.scalar(node, 1)
        if bound != 0.0:
            raise _fail(node, "only Max(x, 0) (ReLU) is supported")
        r = Relu(x.tensor, self.graph.new_tensor())
        self.graph.ops.append(r)
        self.env[node.output[0]] = Value(r.dst, x.nchw, x.channels)

    def shape(self, node: Any, a: dict[str, Any]) -> None:
        self.shapes[node.output[0]] = (self.value(node, 0), None)

    def gather(self, node: Any, a: dict[str, Any]) -> None:
        """Gather on a Shape: the permuted shape a Reshape below may move to."""
        src = self.shapes.get(node.input[0])
        idx = self.consts.get(node.input[1])
        if src is None or src[1] is not None or idx is None:
            raise _fail(node, "Gather is supported only on a tensor's Shape")
        self.shapes[node.output[0]] = (src[0], idx.astype(int).tolist())

    def reshape(self, node: Any, a: dict[str, Any]) -> None:
        """tf2onnx writes a transpose that moves a size-1 axis as a Reshape to the permuted
        shape: the same memory, so, like a Transpose, it only changes the layout view."""
        x = self.value(node, 0)
        target = self.shapes.get(node.input[1])
        if target is None or target[0] is not x or not (x.nchw and x.channels == 1):
            raise _fail(node, "Reshape is supported only as a 1-channel NCHW->NHWC transpose")
        if target[1] != NCHW_TO_NHWC:
            raise _fail(node, f"Reshape to the permuted shape {target[1]} is not a layout move")
        self.env[node.output[0]] = Value(x.tensor, nchw=False, channels=1)


# ONNX op -> how it is lowered; any other op is refused.
_LOWER_OPS: dict[str, Callable[[_Lowering, Any, dict[str, Any]], None]] = {
    "Transpose": _Lowering.transpose,
    "Conv": _Lowering.conv,
    "Clip": _Lowering.clip,
    "Min": _Lowering.minimum,
    "Max": _Lowering.maximum,
    "Shape": _Lowering.shape,
    "Gather": _Lowering.gather,
    "Reshape": _Lowering.reshape,
}


def _conv(node: Any, a: dict[str, Any], x: Value, consts: dict[str, np.ndarray], dst: int) -> Conv:
    if not x.nchw:
        raise _fail(node, "conv input is not in the NCHW layout ONNX convs use")
    if a.get("auto_pad") != "SAME_UPPER":
        raise _fail(node, f"only auto_pad SAME_UPPER is supported, not {a.get('auto_pad')!r}")
    if len(node.input) != 3 or node.input[1] not in consts or node.input[2] not in consts:
        raise _fail(node, "weights and bias must be constants")
    w = consts[node.input[1]].astype(np.float32)
    bias = consts[node.input[2]].astype(np.float32)
    group = int(a.get("group", 1))
    out_ch, in_per_group = w.shape[0], w.shape[1]
    if w.ndim != 4 or in_per_group * group != x.channels or bias.shape != (out_ch,):
        raise _fail(node, f"weights {w.shape} do not fit a {x.channels}-channel input")
    if group == 1:
        weights, depthwise = w.transpose(0, 2, 3, 1), False
    elif group == x.channels == out_ch:
        weights, depthwise = w.transpose(1, 2, 3, 0), True
    else:
        raise _fail(node, f"grouped conv with group={group} is neither plain nor depthwise")
    stride = tuple(a.get("strides", [1, 1]))
    dilation = tuple(a.get("dilations", [1, 1]))
    if len(stride) != 2 or len(dilation) != 2:
        raise _fail(node, "only 2-D convs are supported")
    return Conv(
        x.tensor,
        dst,
        np.ascontiguousarray(weights),
        bias,
        depthwise,
        (int(stride[0]), int(stride[1])),
        (int(dilation[0]), int(dilation[1])),
    )


# ------------------------------------------------------------------- TFLite flatbuffer
def _suffix(n: int) -> str:
    return "" if n == 0 else f"_{n}"


def _activation_names(graph: Graph) -> dict[int, str]:
    """Names of the op outputs as TensorFlow's converter wrote them (fused op locations)."""
    names, counts = {}, {"BiasAdd": 0, "Conv2D": 0, "depthwise": 0, "Relu6": 0, "Minimum": 0}
    for op in graph.ops:
        if isinstance(op, Conv):
            kind = "depthwise" if op.depthwise else "Conv2D"
            k, j = _suffix(counts["BiasAdd"]), _suffix(counts[kind])
            name = f"BiasAdd{k};{kind}{j};BiasAdd{k}/bias"
            if op.relu6:
                name = f"Relu6{_suffix(counts['Relu6'])};{name}"
                counts["Relu6"] += 1
            counts["BiasAdd"] += 1
            counts[kind] += 1
        elif isinstance(op, Minimum):
            name = f"Minimum{_suffix(counts['Minimum'])}"
            counts["Minimum"] += 1
        else:
            name = "Relu"
        names[op.dst] = graph.outputs.get(op.dst, name)
    return names


def _constants(graph: Graph) -> list[tuple[str, np.ndarray]]:
    """The constant tensors, named and ordered as in the TensorFlow-converted files.

    That order is the converter's (MLIR's constant hoisting), kept so tensor indices and names
    match the staged files: the biases of the backbone convs after the first one, last to first,
    then those of the heads, last to first; the heads' weights, last to first, then the
    backbone's; the Minimum bounds; then the first conv's weights and bias.
    """
    convs = [op for op in graph.ops if isinstance(op, Conv)]
    first, rest = convs[0], convs[1:]
    heads = [c for c in rest if c.dst in graph.outputs or not c.relu6]
    backbone = [c for c in rest if c not in heads]
    ordered = [c.bias for c in backbone[::-1]] + [c.bias for c in heads[::-1]]
    ordered += [c.weights for c in heads[::-1]] + [c.weights for c in backbone[::-1]]
    consts = [(f"arith.constant{n if n else ''}", arr) for n, arr in enumerate(ordered)]
    consts += [
        (f"Minimum{_suffix(i)}/y", op.bound)
        for i, op in enumerate(o for o in graph.ops if isinstance(o, Minimum))
    ]
    first_name = _activation_names(graph)[first.dst]
    consts += [("Conv2D", first.weights), (first_name, first.bias)]
    return consts


def build_model(graph: Graph) -> Any:
    """The TFLite ModelT (LiteRT's object API) for ``graph``."""
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT()
    model.version = 3
    model.description = "MLIR Converted."
    model.buffers = [s.BufferT()]  # buffer 0: the empty sentinel all activations point to
    # Tensors: the input, the constants, then every op's output in execution order.
    tensors = [_tensor(INPUT_NAME, DEFAULT_INPUT_SHAPE)]
    const_index = _add_constants(graph, model, tensors)
    act_index = _add_activations(graph, tensors)
    operators = [_operator(op, act_index, const_index) for op in graph.ops]
    model.operatorCodes = _number_operator_codes(operators)

    sg = s.SubGraphT()
    sg.name = "main"
    sg.tensors = tensors
    sg.operators = [o for o, _ in operators]
    sg.inputs = [0]
    sg.outputs = [act_index[t] for t in graph.outputs]
    model.subgraphs = [sg]

    meta = s.MetadataT()
    meta.name = "min_runtime_version"
    meta.buffer = _add_buffer(model, MIN_RUNTIME_VERSION.ljust(16, b"\0"))
    model.metadata = [meta]

    sig = s.SignatureDefT()
    sig.signatureKey = SIGNATURE_KEY
    sig.subgraphIndex = 0
    sig.inputs = [_tensor_map(INPUT_NAME, 0)]
    sig.outputs = [_tensor_map(graph.outputs[t], act_index[t]) for t in graph.outputs]
    model.signatureDefs = [sig]
    return model


def _add_buffer(model: Any, data: bytes) -> int:
    """Append a buffer holding `data` to `model`; its index."""
    from ai_edge_litert import schema_py_generated as s

    b = s.BufferT()
    b.data = np.frombuffer(data, np.uint8)
    model.buffers.append(b)
    return len(model.buffers) - 1


def _tensor(name: str, shape: tuple[int, ...], buf: int = 0) -> Any:
    """A float32 tensor (buffer 0: an activation, filled at run time)."""
    from ai_edge_litert import schema_py_generated as s

    t = s.TensorT()
    t.name, t.shape, t.type, t.buffer = name, list(shape), s.TensorType.FLOAT32, buf
    t.hasRank = True
    t.quantization = s.QuantizationParametersT()  # empty, as TensorFlow writes it
    return t


def _add_constants(graph: Graph, model: Any, tensors: list[Any]) -> dict[int, int]:
    """Append the constants' tensors and buffers; id(array) -> tensor index."""
    const_index: dict[int, int] = {}
    for name, arr in _constants(graph):
        const_index[id(arr)] = len(tensors)
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        tensors.append(_tensor(name, arr.shape, _add_buffer(model, data)))
    return const_index


def _add_activations(graph: Graph, tensors: list[Any]) -> dict[int, int]:
    """Append every op's output tensor, in execution order; graph tensor id -> tensor index
    (the input, 0, included)."""
    act_index = {0: 0}
    shapes = {0: DEFAULT_INPUT_SHAPE}
    names = _activation_names(graph)
    taken = {t.name for t in tensors}
    for op in graph.ops:
        shape = shapes[op.src]
        if isinstance(op, Conv):
            n, h, w, _ = shape
            shape = (n, -(-h // op.stride[0]), -(-w // op.stride[1]), len(op.bias))
        name = names[op.dst]
        if name in taken:  # the first conv's output shares its bias's name, as in TFLite
            name += "1"
        taken.add(name)
        act_index[op.dst] = len(tensors)
        shapes[op.dst] = shape
        tensors.append(_tensor(name, shape))
    return act_index


def _operator(
    op: Conv | Minimum | Relu, act_index: dict[int, int], const_index: dict[int, int]
) -> tuple[Any, tuple[int, int]]:
    """The OperatorT for `op`, and the (builtin, version) its operator code needs."""
    from ai_edge_litert import schema_py_generated as s

    o = s.OperatorT()
    o.outputs = [act_index[op.dst]]
    if isinstance(op, Minimum):
        o.inputs = [act_index[op.src], const_index[id(op.bound)]]
        return o, (s.BuiltinOperator.MINIMUM, 1)
    if isinstance(op, Relu):
        o.inputs = [act_index[op.src]]
        return o, (s.BuiltinOperator.RELU, 1)
    o.inputs = [act_index[op.src], const_index[id(op.weights)], const_index[id(op.bias)]]
    opts = s.DepthwiseConv2DOptionsT() if op.depthwise else s.Conv2DOptionsT()
    opts.padding = s.Padding.SAME
    opts.strideH, opts.strideW = op.stride
    opts.dilationHFactor, opts.dilationWFactor = op.dilation
    opts.fusedActivationFunction = (
        s.ActivationFunctionType.RELU6 if op.relu6 else s.ActivationFunctionType.NONE
    )
    o.builtinOptions = opts
    if not op.depthwise:
        o.builtinOptionsType = s.BuiltinOptions.Conv2DOptions
        return o, (s.BuiltinOperator.CONV_2D, 1)
    opts.depthMultiplier = 1
    o.builtinOptionsType = s.BuiltinOptions.DepthwiseConv2DOptions
    return o, (s.BuiltinOperator.DEPTHWISE_CONV_2D, 2 if op.dilation != (1, 1) else 1)


def _number_operator_codes(operators: list[tuple[Any, tuple[int, int]]]) -> list[Any]:
    """The model's operator codes, each operator pointed at its own.

    One code per builtin, in order of first use, at the highest version any of its ops needs
    (a dilated depthwise conv needs version 2), as TensorFlow's converter lists them."""
    versions: dict[int, int] = {}
    for _, (builtin, version) in operators:
        versions[builtin] = max(version, versions.get(builtin, 0))
    code_index = {builtin: i for i, builtin in enumerate(versions)}
    for o, (builtin, _) in operators:
        o.opcodeIndex = code_index[builtin]
    return [_operator_code(b, v) for b, v in versions.items()]


def _operator_code(builtin: int, version: int) -> Any:
    from ai_edge_litert import schema_py_generated as s

    code = s.OperatorCodeT()
    code.builtinCode, code.version = builtin, version
    code.deprecatedBuiltinCode = min(builtin, 127)  # the old int8 field; 127 = "see builtinCode"
    return code


def _tensor_map(name: str, index: int) -> Any:
    from ai_edge_litert import schema_py_generated as s

    tm = s.TensorMapT()
    tm.name, tm.tensorIndex = name, index
    return tm


def convert_onnx(onnx_bytes: bytes) -> bytes:
    """keijiro's BodyPix MobileNetV1 ONNX (NHWC input, any size) -> float32 TFLite flatbuffer
    bytes.

    Raises PixcamError (one line, naming the node and op) for anything else.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = build_model(lower(_read_onnx(onnx_bytes)))
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
