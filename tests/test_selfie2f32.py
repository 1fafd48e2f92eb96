"""The selfie model rewritten into builtin float32 ops: pinned bytes, builtin ops, same output."""

from __future__ import annotations

import hashlib
from collections import Counter

import cv2
import numpy as np
import pytest

from conftest import IMAGES, SHARED_MODELS, need
from pixcam import models
from pixcam.chain import segment
from pixcam.chain.segment import FusedSegmenter, load_segmenter
from pixcam.chain.segment.engine import interpreter_class
from pixcam.errors import PixcamError
from pixcam.models import selfie2f32

SOURCE = "selfie/selfiesegmentation_mlkit-256x256-2021_01_19-v1215.f16.tflite"


@pytest.fixture(scope="module")
def original() -> bytes:
    return need(SHARED_MODELS / SOURCE, "the selfie model").read_bytes()


@pytest.fixture(scope="module")
def rewritten(original: bytes) -> bytes:
    return selfie2f32.rewrite_selfie(original)


def _ops(model_bytes: bytes) -> tuple[Counter[str], set[int]]:
    """Op names (CUSTOM:name for custom ops) and the tensor types of the model."""
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    counts: Counter[str] = Counter()
    for op in model.subgraphs[0].operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = names[code.builtinCode]
        counts[name if name != "CUSTOM" else f"CUSTOM:{code.customCode.decode()}"] += 1
    return counts, {t.type for t in model.subgraphs[0].tensors}


def _run(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    interp = interpreter_class()(model_content=model_bytes, num_threads=1)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def test_rewrite_is_pinned_and_reproducible(original: bytes, rewritten: bytes) -> None:
    spec = models.get_spec("selfie-general-f32")
    assert hashlib.sha256(original).hexdigest() == spec.source_sha256
    assert hashlib.sha256(rewritten).hexdigest() == spec.sha256
    assert len(rewritten) == spec.size
    assert selfie2f32.rewrite_selfie(original) == rewritten


def test_rewrite_has_builtin_float32_ops_only(original: bytes, rewritten: bytes) -> None:
    from ai_edge_litert import schema_py_generated as s

    before, before_types = _ops(original)
    after, types = _ops(rewritten)
    assert before["CUSTOM:Convolution2DTransposeBias"] == 1 and before["DEQUANTIZE"] > 0
    assert s.TensorType.FLOAT16 in before_types
    assert not any(name.startswith("CUSTOM") for name in after), after
    assert "DEQUANTIZE" not in after
    assert after["DEPTH_TO_SPACE"] == 1 and after["CONV_2D"] == before["CONV_2D"] + 1
    assert types == {s.TensorType.FLOAT32, s.TensorType.INT32}


def test_rewrite_gives_the_same_mask(original: bytes, rewritten: bytes) -> None:
    image = cv2.imread(str(need(IMAGES / "girl-919048_1280.jpg", "test photo")))
    x = (cv2.resize(image, (256, 256))[None, ..., ::-1] / 255.0).astype(np.float32)
    a, b = _run(original, x), _run(rewritten, x)
    assert 0.05 < a.mean() < 0.95  # a person was found, not an empty mask
    np.testing.assert_allclose(b, a, atol=1e-5)


@pytest.mark.parametrize("published", [False, True])
def test_selfie_for_input_fits_other_inputs_with_the_same_mask(
    original: bytes, rewritten: bytes, published: bool
) -> None:
    """The model for another input size: the same mask on the square (its convolutions now
    before the upsamplings), and a mask of each rectangle's size that agrees with the square's
    over the part they share."""
    source = original if published else rewritten
    image = cv2.imread(str(need(IMAGES / "girl-919048_1280.jpg", "test photo")))
    x = (cv2.resize(image, (256, 256))[None, ..., ::-1] / 255.0).astype(np.float32)
    square = _run(source, x)
    np.testing.assert_allclose(
        _run(selfie2f32.selfie_for_input(source, 256, 256), x), square, atol=1e-5
    )
    for h, w in ((224, 256), (256, 224), (192, 160)):
        part = np.ascontiguousarray(
            x[:, (256 - h) // 2 : (256 + h) // 2, (256 - w) // 2 : (256 + w) // 2]
        )
        got = _run(selfie2f32.selfie_for_input(source, h, w), part)
        assert got.shape == (1, h, w, 1)
        share = square[:, (256 - h) // 2 : (256 + h) // 2, (256 - w) // 2 : (256 + w) // 2]
        assert np.mean((got >= 0.5) == (share >= 0.5)) > 0.97
    after, _ = _ops(selfie2f32.selfie_for_input(rewritten, 224, 256))
    assert after == _ops(rewritten)[0]  # the same ops, reordered
    with pytest.raises(PixcamError, match="multiple of 32"):
        selfie2f32.selfie_for_input(rewritten, 250, 256)


def test_rewrite_refuses_other_models() -> None:
    bodypix = need(
        SHARED_MODELS / "bodypix/tflite/body-pix-float-050-8.tflite", "a BodyPix model"
    ).read_bytes()
    with pytest.raises(PixcamError, match="Convolution2DTransposeBias"):
        selfie2f32.rewrite_selfie(bodypix)
    with pytest.raises(PixcamError, match="not a"):
        selfie2f32.rewrite_selfie(b"not a model at all")


def test_fused_presets_take_the_rewritten_model_when_installed(models_installed) -> None:
    assert models.get_spec("selfie-general-f32").installed
    balanced = load_segmenter(None, 1, quality="balanced")
    assert isinstance(balanced, FusedSegmenter)
    assert balanced.second.spec.name == "selfie-general-f32"
    # The square and both rectangles a side shorter (`fused.SHORT_SIDE`).
    assert balanced.second.input_shapes == {(256, 256), (224, 256), (256, 224)}  # type: ignore[attr-defined]
    assert balanced.short == 7 / 8


def test_fused_presets_fall_back_to_the_published_file(models_installed, monkeypatch) -> None:
    monkeypatch.setattr(segment, "PARTNERS", ("no-such-f32", "selfie-general"))
    balanced = load_segmenter(None, 1, quality="balanced")
    assert isinstance(balanced, FusedSegmenter)
    assert balanced.second.spec.name == "selfie-general"
