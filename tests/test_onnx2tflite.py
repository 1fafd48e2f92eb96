"""The ONNX -> TFLite converter: same model as TensorFlow made, same outputs, same bytes twice."""

from __future__ import annotations

import hashlib
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import IMAGES, SHARED_MODELS, need
from pixcam import models
from pixcam.chain.segment.engine import interpreter_class
from pixcam.errors import PixcamError
from pixcam.models import onnx2tflite, quantize

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed")

ONNX = "bodypix/mobilenet/float/050/MobileNetV1-x050-stride{}.onnx"
STAGED = "bodypix/tflite/converted/bodypix_mobilenet_v1_050_stride{}_float.tflite"
# The converter's output for keijiro's two files (sha256 of the ONNX in ../shared's SOURCES.md);
# models.toml pins the same values.
CONVERTED_SHA256 = {
    16: "fac4a0a97bb336029540741e4d025002e1630bb25eb3bdd12b601fdb765babb2",
    8: "70bb5fe2baf43b0276be13c938bc9ca9fe1ba582ed5ad17cd900438b5fda2cda",
}
HEADS = [  # the staged files' output order (TensorFlow sorted them by name)
    "displacement_bwd",
    "displacement_fwd",
    "float_heatmaps",
    "float_long_offsets",
    "float_part_heatmaps",
    "float_part_offsets",
    "float_segments",
    "float_short_offsets",
]
SIZES = [(257, 257), (241, 417), (353, 481), (480, 640)]
TOLERANCE = 1e-4


@pytest.fixture(scope="module", params=[16, 8], ids=["stride16", "stride8"])
def stride(request: pytest.FixtureRequest) -> int:
    return request.param


@pytest.fixture(scope="module")
def converted(stride: int) -> bytes:
    onnx_bytes = need(SHARED_MODELS / ONNX.format(stride), "keijiro's ONNX").read_bytes()
    return onnx2tflite.convert_onnx(onnx_bytes)


@pytest.fixture(scope="module")
def staged(stride: int) -> bytes:
    return need(SHARED_MODELS / STAGED.format(stride), "TensorFlow-converted model").read_bytes()


def _run(model: bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    interp = interpreter_class()(model_content=model, num_threads=1)
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}


def _photo(hw: tuple[int, int]) -> np.ndarray:
    image = cv2.imread(str(need(IMAGES / "girl-919048_1280.jpg", "test photo")))
    assert image is not None
    x = quantize.letterbox_input(image, hw)
    assert x.shape[1:3] == hw  # all SIZES are landscape, like the photo
    return x


def _read(model: bytes) -> Any:
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(model))


def _pack(model: Any) -> bytes:
    from ai_edge_litert.tools import flatbuffer_utils

    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _without_tensorflow_metadata(model: Any) -> Any:
    """Drop what only TensorFlow's converter writes: its CONVERSION_METADATA entry (the TF
    environment and a hash of the TF graph) and that entry's buffer, the last one."""
    kept = [m for m in model.metadata if m.name != b"CONVERSION_METADATA"]
    dropped = {m.buffer for m in model.metadata} - {m.buffer for m in kept}
    assert dropped == {len(model.buffers) - 1}
    model.metadata, model.buffers = kept, model.buffers[:-1]
    return model


# ----------------------------------------------------------------------------- real files
@pytest.mark.slow
@pytest.mark.parametrize("hw", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_every_head_agrees_with_the_tensorflow_conversion(converted, staged, stride, hw) -> None:
    x = _photo(hw)
    mine, theirs = _run(converted, x), _run(staged, x)
    assert list(mine) == list(theirs) == HEADS  # same names, same order
    grid = (-(-hw[0] // stride), -(-hw[1] // stride))
    for name in HEADS:
        assert mine[name].shape == theirs[name].shape
        assert mine[name].shape[1:3] == grid
        delta = float(np.max(np.abs(mine[name] - theirs[name])))
        assert delta <= TOLERANCE, f"{name} at {hw}: max |delta| {delta}"


@pytest.mark.slow
def test_same_model_as_tensorflow_made(converted, staged) -> None:
    # Ops, options, tensor names, shapes, order and every weight byte are TensorFlow's; only
    # its conversion metadata is missing and the SignatureDef is added.
    mine, theirs = _read(converted), _without_tensorflow_metadata(_read(staged))
    assert theirs.signatureDefs in (None, [])
    (sig,) = mine.signatureDefs
    sg = mine.subgraphs[0]
    assert sig.signatureKey == b"serving_default"
    assert [(t.name.decode(), t.tensorIndex) for t in sig.inputs] == [("sub_2", 0)]
    assert [(t.name.decode(), t.tensorIndex) for t in sig.outputs] == [
        (sg.tensors[i].name.decode(), i) for i in sg.outputs
    ]
    mine.signatureDefs = theirs.signatureDefs
    assert _pack(mine) == _pack(theirs)


@pytest.mark.slow
def test_conversion_is_deterministic(converted, stride) -> None:
    again = onnx2tflite.convert_onnx((SHARED_MODELS / ONNX.format(stride)).read_bytes())
    assert again == converted
    assert hashlib.sha256(converted).hexdigest() == CONVERTED_SHA256[stride]


@pytest.mark.slow
def test_resizable_input_and_signature(converted) -> None:
    interp = interpreter_class()(model_content=converted)
    (inp,) = interp.get_input_details()
    assert inp["name"] == "sub_2" and inp["shape"].tolist() == [1, 480, 640, 3]
    assert interp.get_signature_list() == {
        "serving_default": {"inputs": ["sub_2"], "outputs": sorted(HEADS)}
    }


@pytest.mark.slow
def test_quantizes_like_the_tensorflow_conversion(converted, staged, stride) -> None:
    # prepare_float_model replaces the converter's SignatureDef with its own (two heads) ...
    pruned = quantize.prepare_float_model(converted)
    sigs = _read(pruned).signatureDefs
    assert [len(s.outputs) for s in sigs] == [len(quantize.KEEP_OUTPUTS)]
    # ... and the int8 model is the one the staged file gives, minus TensorFlow's metadata.
    ranges = quantize.load_ranges(models.get_spec(f"bodypix-050-s{stride}-int8").recipe["ranges"])
    mine = quantize.quantize_bytes(converted, ranges)
    theirs = quantize.quantize_bytes(staged, ranges)
    assert _pack(_read(mine)) == _pack(_without_tensorflow_metadata(_read(theirs)))


# ------------------------------------------------------------------------------ bad input
def test_not_onnx_is_one_clear_line() -> None:
    with pytest.raises(PixcamError, match="not an ONNX model") as err:
        onnx2tflite.convert_onnx(b"\x89PNG\r\n\x1a\n not a model at all")
    assert "\n" not in str(err.value)


def _tiny_onnx(op: str) -> bytes:
    """An NHWC-input graph: Transpose to NCHW, then one ``op``."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2], name="t"),
            helper.make_node(op, ["nchw"], ["segments"], name="odd_node"),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, "h", "w", 3])],
        [helper.make_tensor_value_info("segments", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph).SerializeToString()


def test_unsupported_op_is_named_in_one_line() -> None:
    with pytest.raises(PixcamError, match=r"'odd_node' \(Sigmoid\): unsupported op") as err:
        onnx2tflite.convert_onnx(_tiny_onnx("Sigmoid"))
    assert "\n" not in str(err.value)


def test_clip_without_a_conv_to_fuse_into_is_refused() -> None:
    with pytest.raises(PixcamError, match=r"\(Clip\).*only Clip\(0, 6\)"):
        onnx2tflite.convert_onnx(_tiny_onnx("Clip"))


def test_graph_without_the_bodypix_heads_is_refused() -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Transpose", ["input"], ["logits"], perm=[0, 3, 1, 2])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, "h", "w", 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
    )
    with pytest.raises(PixcamError, match="unexpected ONNX output 'logits'"):
        onnx2tflite.convert_onnx(helper.make_model(graph).SerializeToString())


def test_empty_file_is_refused() -> None:
    with pytest.raises(PixcamError, match="not an ONNX model"):
        onnx2tflite.convert_onnx(b"")
