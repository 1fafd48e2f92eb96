"""The int8 BodyPix models: surgery, shipped ranges, int8 inside, reproducible bytes, any input
size, accuracy."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import IMAGES, SHARED_DATA, need
from pixcam import models
from pixcam.chain.segment.bodypix import BodyPixSegmenter
from pixcam.chain.segment.engine import Engine, interpreter_class
from pixcam.cli import main
from pixcam.errors import PixcamError
from pixcam.models import quantize
from pixcam.tools import evaluate

INT8_S16 = "bodypix-050-s16-int8"

# int8 may lose at most half a point of mean person-mask IoU against its float original
# (photo by photo the two differ a few points either way; figures in docs/quantize.md).
IOU_TOLERANCE = 0.005


@pytest.fixture(scope="module")
def float_s16(models_installed: Path) -> Path:
    return models.verify(models.get_spec("bodypix-050-s16-float"))


@pytest.fixture(scope="module")
def int8_s16(float_s16: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The stride-16 model quantized once from the shipped ranges (a few seconds)."""
    out = tmp_path_factory.mktemp("int8") / "s16_int8.tflite"
    data = quantize.derive(models.get_spec(INT8_S16), float_s16)
    out.write_bytes(data)
    return out, hashlib.sha256(data).hexdigest()


def _interpreter(path: Path, hw: tuple[int, int]) -> Any:
    interp = interpreter_class()(model_path=str(path), num_threads=1)
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], [1, *hw, 3])
    interp.allocate_tensors()
    return interp


def _run(interp: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}


@pytest.fixture(scope="module")
def photo_input() -> np.ndarray:
    image = cv2.imread(str(need(IMAGES / "doctor-5871743_640.jpg", "test photo")))
    assert image is not None
    return quantize.letterbox_input(image, (353, 481))


# ------------------------------------------------------------------------------- no models
def test_settle_ranges_fixes_input_and_rounds_the_rest() -> None:
    qsvs = {
        "sub_2": {"min": np.float32([[-0.93]]), "max": np.float32([[0.97]])},
        "act": {"min": np.float32([[-12.8334]]), "max": np.float32([[8.66367]])},
    }
    settled = quantize.settle_ranges(qsvs)
    assert settled["sub_2"]["min"].item() == -1.0 and settled["sub_2"]["max"].item() == 1.0
    assert settled["act"]["min"].item() == pytest.approx(-12.8334, abs=1 / 2048)
    # On the grid: tiny float noise in the measured range can't change the model's bytes.
    assert settled["act"]["max"].item() * quantize.RANGE_GRID == round(
        settled["act"]["max"].item() * quantize.RANGE_GRID
    )
    noisy = {"act": {"min": qsvs["act"]["min"] + 1e-6, "max": qsvs["act"]["max"] - 1e-6}}
    assert quantize.settle_ranges(noisy)["act"]["max"] == settled["act"]["max"]


def test_letterbox_keeps_aspect_and_pads_grey() -> None:
    portrait = np.full((200, 100, 3), 255, np.uint8)
    x = quantize.letterbox_input(portrait, (353, 481))
    assert x.shape == (1, 481, 353, 3) and x.dtype == np.float32  # portrait input
    assert x[0, 0, 0].tolist() == [1.0, 1.0, 1.0]  # white pixel -> +1
    assert x[0, 0, -1].tolist() == [0.0, 0.0, 0.0]  # padding on the right is mid grey


def test_shipped_ranges_are_numbers_for_every_activation() -> None:
    for spec in models.list_models():
        if not spec.derived_from:
            continue
        ranges = quantize.load_ranges(spec.recipe["ranges"])
        assert len(ranges) == 30  # input, 27 conv activations, the two kept heads
        assert ranges[quantize.INPUT_NAME]["min"].item() == -1.0
        for name, r in ranges.items():
            lo, hi = r["min"].item(), r["max"].item()
            assert lo <= 0.0 <= hi and lo < hi, name
            assert hi * quantize.RANGE_GRID == round(hi * quantize.RANGE_GRID)


def test_missing_ranges_file_is_one_clear_error() -> None:
    with pytest.raises(PixcamError, match="calibration ranges calibration/nope.json missing"):
        quantize.load_ranges("calibration/nope.json")


def test_calibration_set_is_the_licensed_photos_and_frames() -> None:
    need(SHARED_DATA / "video", "Pixabay videos")
    frames = quantize.calibration_frames(SHARED_DATA)
    photos = len(list((SHARED_DATA / "images").glob("*.jpg")))
    videos = len(list((SHARED_DATA / "video").glob("*.mp4")))
    assert len(frames) == photos + videos * quantize.FRAMES_PER_VIDEO == 35
    assert all(f.ndim == 3 and f.shape[2] == 3 for f in frames)


# ------------------------------------------------------------------------------ real model
@pytest.mark.slow
def test_pruned_float_model_keeps_the_two_heads_exactly(float_s16: Path, photo_input) -> None:
    pruned = quantize.prepare_float_model(float_s16.read_bytes())
    assert quantize.prepare_float_model(float_s16.read_bytes()) == pruned  # deterministic
    cls = interpreter_class()
    full_i, small_i = cls(model_path=str(float_s16)), cls(model_content=pruned)
    assert small_i.get_signature_list() == {
        "serving_default": {"inputs": ["sub_2"], "outputs": sorted(quantize.KEEP_OUTPUTS)}
    }
    assert len(full_i.get_output_details()) == 8
    for interp in (full_i, small_i):
        interp.resize_tensor_input(interp.get_input_details()[0]["index"], [1, 353, 481, 3])
        interp.allocate_tensors()
    full, small = _run(full_i, photo_input), _run(small_i, photo_input)
    assert set(small) == set(quantize.KEEP_OUTPUTS)
    for name in quantize.KEEP_OUTPUTS:  # the same computation, minus the pose heads
        np.testing.assert_array_equal(small[name], full[name])


@pytest.mark.slow
def test_quantized_model_is_int8_inside_with_float_io(int8_s16, float_s16) -> None:
    path, _ = int8_s16
    details = _interpreter(path, (353, 481)).get_tensor_details()
    dtypes = {d["name"]: np.dtype(d["dtype"]) for d in details}
    floats = sorted(n for n, t in dtypes.items() if t == np.float32)
    # Only the interface is float: the input and the two dequantized outputs.
    assert floats == sorted(["sub_2", *quantize.KEEP_OUTPUTS])
    assert set(dtypes.values()) == {np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.int32)}
    int8 = [d for d in details if np.dtype(d["dtype"]) == np.int8]
    assert len(int8) >= 50  # 29 conv weights plus their int8 activations
    weights = [d for d in int8 if len(d["shape"]) == 4 and d["shape"][0] > 1]
    assert weights and all(len(d["quantization_parameters"]["scales"]) > 1 for d in weights)
    # Biases are int32: the int8 kernels accumulate in int32.
    assert sum(t == np.int32 for t in dtypes.values()) == 29
    assert path.stat().st_size < float_s16.stat().st_size / 3


@pytest.mark.slow
@pytest.mark.parametrize("hw", [(257, 257), (353, 481), (481, 353), (481, 641), (720, 1280)])
def test_quantized_model_resizes_and_agrees_with_float(int8_s16, float_s16, hw) -> None:
    path, _ = int8_s16
    image = cv2.imread(str(need(IMAGES / "girl-919048_1280.jpg", "test photo")))
    if hw[0] > hw[1]:  # a portrait input: turn the (landscape) photo upright
        image = cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    x = quantize.letterbox_input(image, (min(hw), max(hw)))
    assert x.shape[1:3] == hw
    q = _run(_interpreter(path, hw), x)
    f = _run(_interpreter(float_s16, hw), x)
    grid = (-(-hw[0] // 16), -(-hw[1] // 16))
    assert q["float_segments"].shape == (1, *grid, 1)
    assert q["float_part_heatmaps"].shape == (1, *grid, 24)
    prob_q = 1 / (1 + np.exp(-q["float_segments"]))
    prob_f = 1 / (1 + np.exp(-f["float_segments"]))
    # Same mask almost everywhere (cells near 0.5 may flip).
    assert np.mean((prob_q > 0.5) == (prob_f > 0.5)) > 0.97
    assert np.mean(np.abs(prob_q - prob_f)) < 0.03


@pytest.mark.slow
def test_iou_on_dev_photos_within_tolerance_of_float(int8_s16, models_installed, dev_data) -> None:
    path, _ = int8_s16
    spec = models.get_spec("bodypix-050-s16-float")
    samples = evaluate.load_samples(dev_data)
    assert len(samples) == 72  # three photos with wrong truth were removed from the set
    ious = {}
    for label, file in (("float", spec.path), ("int8", path)):
        seg = BodyPixSegmenter(spec, Engine(file, threads=1), internal_resolution=481)
        ious[label] = np.mean([s for _, s in evaluate.sample_ious(seg, samples)])
    assert ious["float"] > 0.84  # the float baseline itself is sane
    assert ious["int8"] >= ious["float"] - IOU_TOLERANCE, ious


@pytest.mark.slow
def test_install_reproduces_the_manifest_models(int8_s16, models_installed, capsys) -> None:
    # Independent runs (the fixture's, the CLI's, and the one that recorded the manifest's
    # sha256) give the same bytes, for both strides.
    _, sha = int8_s16
    assert sha == models.get_spec(INT8_S16).sha256
    derived = [s for s in models.list_models() if s.derived_from is not None]
    assert {s.name for s in derived} >= {INT8_S16, "bodypix-050-s8-int8"}
    names = [arg for s in derived for arg in ("--name", s.name)]
    assert main(["models", "install", "--force", *names]) == 0
    out = capsys.readouterr().out
    for spec in derived:
        assert f"installed {spec.name}" in out and f"quantized from {spec.derived_from}" in out
        assert models.verify(spec) == spec.path  # installed where the loader looks
        assert hashlib.sha256(spec.path.read_bytes()).hexdigest() == spec.sha256


@pytest.mark.slow
def test_install_refuses_a_model_from_other_ranges(models_installed, monkeypatch, capsys) -> None:
    spec = models.get_spec(INT8_S16)
    before = spec.path.read_bytes()
    shipped = quantize.load_ranges

    def nudged(resource: str) -> dict:
        ranges = shipped(resource)
        first = next(n for n in ranges if n != quantize.INPUT_NAME)
        ranges[first]["max"] = ranges[first]["max"] + 1.0
        return ranges

    monkeypatch.setattr(quantize, "load_ranges", nudged)
    assert main(["models", "install", "--name", INT8_S16, "--force"]) == 1
    captured = capsys.readouterr()
    assert f"FAILED   {INT8_S16}: quantizing" in captured.out and "not installed" in captured.out
    assert spec.path.read_bytes() == before
