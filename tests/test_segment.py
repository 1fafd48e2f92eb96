"""The segmentation engine: geometry, decoding, the seed's API, and accuracy on real photos."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from conftest import IMAGES, need
from pixcam import models
from pixcam.chain import segment
from pixcam.chain.effects import Effects, EffectsSettings
from pixcam.chain.pyramid import Pyramid
from pixcam.chain.segment import (
    PRESETS,
    FusedSegmenter,
    GridMapping,
    SegmentationOutput,
    load_segmenter,
    segment_parts,
    segment_person,
)
from pixcam.chain.segment.base import region_input
from pixcam.chain.segment.bodypix import sigmoid
from pixcam.chain.segment.fused import FusedOutput, ShiftedMapping, person_square
from pixcam.config import Config
from pixcam.errors import PixcamError
from pixcam.i420 import I420
from pixcam.tools import evaluate

# Each model's floor sits one point under its mean person-mask IoU on the dev photos at its
# default internal resolution, so a real regression (wrong normalisation, misaligned grid,
# stretched input) fails while rounding does not.
IOU_FLOORS = {
    "bodypix-050-s16-float": 0.848,
    "bodypix-050-s8-float": 0.856,
    "bodypix-050-s8-segments-float": 0.856,
    "bodypix-075-s16-uint8": 0.820,
    "bodypix-075-s16-uint8-pc": 0.853,
    "selfie-general": 0.862,
    "selfie-landscape": 0.658,
    "bodypix-050-s16-int8": 0.848,
}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    image = cv2.imread(str(need(IMAGES / "girl-919048_1280.jpg", "test photo")))
    assert image is not None
    return image


def test_sigmoid_matches_definition() -> None:
    x = np.array([-20.0, -1.0, 0.0, 1.0, 20.0], dtype=np.float32)
    np.testing.assert_allclose(sigmoid(x), 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6)
    assert sigmoid(np.float32(0.0)) == pytest.approx(0.5)


@pytest.mark.parametrize("stride", [8, 16])
def test_grid_mapping_lands_cells_on_their_input_pixels(stride: int) -> None:
    # A grid whose value is the input-pixel x of each cell, warped to the frame, must give
    # back the input-pixel position of each frame pixel: the padding is cropped away and
    # pixel centres stay aligned.
    frame_w, frame_h, content_w, content_h = 1280, 720, 481, 271
    gw, gh = (content_w - 1) // stride + 1, (content_h - 1) // stride + 2
    grid_x = np.tile(np.arange(gw, dtype=np.float32) * stride, (gh, 1))
    mapping = GridMapping((frame_w, frame_h), (content_w, content_h), stride)
    warped = mapping.warp(grid_x)
    assert warped.shape == (frame_h, frame_w)
    x = np.arange(frame_w)
    expected = (x + 0.5) * content_w / frame_w - 0.5
    inner = slice(stride, frame_w - stride)
    np.testing.assert_allclose(warped[frame_h // 2, inner], expected[inner], atol=1e-2)


def test_bodypix_input_keeps_aspect_and_stride_alignment(models_installed) -> None:
    seg = load_segmenter("bodypix-050-s16-float", internal_resolution=481)
    for width, height in [(1280, 720), (720, 1280), (640, 480), (1000, 1000), (183, 162)]:
        in_w, in_h, cw, ch = seg.input_size(width, height)
        assert (in_w - 1) % 16 == 0 and (in_h - 1) % 16 == 0
        assert cw <= in_w and ch <= in_h
        assert max(in_w, in_h) == 481
        assert in_w - cw < 16 and in_h - ch < 16  # padding only to the next stride
        assert cw / ch == pytest.approx(width / height, rel=0.01)  # not stretched


def test_selfie_input_is_letterboxed(models_installed) -> None:
    seg = load_segmenter("selfie-general")
    in_w, in_h, cw, ch = seg.input_size(1280, 720)
    assert (in_w, in_h) == (256, 256)
    assert (cw, ch) == (256, 144)


def test_person_segmentation_api(models_installed, photo) -> None:
    seg = load_segmenter("bodypix-050-s16-float", threads=1)
    result = segment_person(seg, photo, threshold=0.5)
    assert (result.width, result.height) == (photo.shape[1], photo.shape[0])
    assert result.data.dtype == np.uint8 and set(np.unique(result.data)) == {0, 1}
    assert result.probabilities.dtype == np.float32
    assert result.probabilities.min() >= 0.0 and result.probabilities.max() <= 1.0
    np.testing.assert_array_equal(result.data, result.probabilities >= 0.5)
    # The head-and-shoulders portrait: the centre is person, the top corners are not.
    h, w = result.data.shape
    assert result.data[h // 2, w // 2] == 1
    assert result.data[5, 5] == 0 and result.data[5, w - 5] == 0


def test_threshold_moves_the_mask(models_installed, photo) -> None:
    seg = load_segmenter("bodypix-050-s16-float")
    low = segment_person(seg, photo, threshold=0.2).data.sum()
    high = segment_person(seg, photo, threshold=0.8).data.sum()
    assert low > high > 0


@pytest.mark.parametrize("name", ["bodypix-050-s16-float", "bodypix-075-s16-uint8-pc"])
def test_part_segmentation_api(models_installed, photo, name: str) -> None:
    seg = load_segmenter(name)
    parts = segment_parts(seg, photo, threshold=0.5)
    person = segment_person(seg, photo, threshold=0.5).data
    assert parts.data.dtype == np.int32
    assert parts.data.shape == person.shape
    assert parts.data.min() == -1 and parts.data.max() <= 23
    np.testing.assert_array_equal(parts.data >= 0, person == 1)
    # A face-and-torso portrait: the face halves (0, 1) and the torso front (12) are there.
    present = set(np.unique(parts.data).tolist())
    assert {0, 1, 12} <= present


def test_model_without_parts_says_so(models_installed, photo) -> None:
    seg = load_segmenter("bodypix-050-s8-segments-float")
    with pytest.raises(PixcamError, match="no body-part outputs"):
        segment_parts(seg, photo)


def test_uint8_outputs_are_dequantized(models_installed, photo) -> None:
    seg = load_segmenter("bodypix-075-s16-uint8")
    out = seg.run(photo)
    assert out.segments.dtype == np.float32 and out.part_heatmaps is not None
    # Dequantized logits are signed; raw uint8 values would all be >= 0.
    assert out.part_heatmaps.min() < 0 < out.part_heatmaps.max()


def _network_input(seg) -> np.ndarray:
    got: list[np.ndarray] = []
    seg.engine.fill_input(lambda tensor: got.append(tensor.copy()))
    return got[0]


@pytest.mark.parametrize(
    ("name", "scale", "offset", "pad"),
    [
        ("bodypix-050-s16-float", 1 / 127.5, -1.0, 0.0),
        ("selfie-general", 1 / 255, 0.0, 0.5),
        ("bodypix-075-s16-uint8", 1.0, 0.0, 128),
    ],
)
def test_network_input_is_the_normalised_picture_padded(
    models_installed, photo, name, scale, offset, pad
) -> None:
    """Written straight into the interpreter's input tensor: the picture normalised as the
    model wants it at the top left, padding elsewhere, also after the content shrinks (the
    selfie model's fixed input letterboxes a portrait picture where a landscape one was)."""
    seg = load_segmenter(name)
    portrait = np.ascontiguousarray(photo[:, 200:760])
    for picture in (photo, portrait):
        seg.run(picture, parts=False)
        got = _network_input(seg)
        in_w, in_h, cw, ch = seg.input_size(picture.shape[1], picture.shape[0])
        rgb = cv2.cvtColor(Pyramid(picture).down_to((cw, ch)), cv2.COLOR_BGR2RGB)
        want = np.full((in_h, in_w, 3), pad, got.dtype)
        want[:ch, :cw] = rgb * scale + offset
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_odd_frames_are_refused_clearly(models_installed) -> None:
    seg = load_segmenter()
    with pytest.raises(PixcamError, match="8-bit colour frame"):
        segment_person(seg, np.zeros((10, 10), np.uint8))


def test_every_manifest_model_reaches_its_iou_floor(models_installed, dev_data) -> None:
    samples = evaluate.load_samples(dev_data)
    assert len(samples) == 72  # three photos with wrong truth were removed from the set
    results = {}
    for spec in models.list_models():
        if spec.name not in IOU_FLOORS:
            continue
        results[spec.name] = evaluate.accuracy(load_segmenter(spec.name, threads=2), samples)
    low = {n: round(a.mean_iou, 4) for n, a in results.items() if a.mean_iou < IOU_FLOORS[n]}
    assert not low, f"mean IoU under the floor: {low}"
    assert set(results) == set(IOU_FLOORS)


def test_iou_definition() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True
    b[1:3] = True
    assert evaluate.iou(a, b) == pytest.approx(4 / 12)
    assert evaluate.iou(a, a) == 1.0
    assert evaluate.iou(np.zeros_like(a), np.zeros_like(a)) == 1.0


def test_quality_presets(models_installed, dev_data) -> None:
    """fast = smaller input; balanced = BodyPix at a smaller input fused with the selfie model;
    best = the same at BodyPix's own input; parts from BodyPix. On the dev photos the presets
    rank best > balanced > the model alone > fast (docs/cut.md)."""
    samples = evaluate.load_samples(dev_data)
    alone = load_segmenter(None, 1)
    fast = load_segmenter(None, 1, quality="fast")
    assert not isinstance(alone, FusedSegmenter) and not isinstance(fast, FusedSegmenter)
    assert fast.internal_resolution < alone.internal_resolution
    assert (
        load_segmenter(None, 1, internal_resolution=481, quality="fast").internal_resolution == 481
    )
    balanced = load_segmenter(None, 1, quality="balanced")
    best = load_segmenter(None, 1, quality="best")
    assert isinstance(balanced, FusedSegmenter) and isinstance(best, FusedSegmenter)
    assert balanced.internal_resolution == PRESETS["balanced"][0] < alone.internal_resolution
    assert best.internal_resolution == alone.internal_resolution
    given = load_segmenter(None, 1, internal_resolution=353, quality="balanced")
    assert given.internal_resolution == 353
    selfie = load_segmenter("selfie-general", 1)
    image, _ = evaluate.read_pair(samples[0])
    out = best.run(image, parts=True)
    assert best.has_parts and out.part_heatmaps is not None
    w = best.weight  # BodyPix's share
    assert 0 < w < 1
    # Without the crop: the weighted mean of both models on the whole frame.
    whole = FusedSegmenter(alone, selfie, w, crop=False).run(image).person_probability()
    mean = (
        w * alone.run(image).person_probability() + (1 - w) * selfie.run(image).person_probability()
    )
    np.testing.assert_allclose(whole, mean, atol=1e-4)
    # With it: the selfie model looked at the square around the person, BodyPix alone outside.
    assert out.second_rect is not None
    x0, y0, x1, y1 = out.second_rect
    h, w_px = image.shape[:2]
    # The square, or a side of it 7/8 as long (`fused.SHORT_SIDE`); it may leave the frame.
    side, short = max(x1 - x0, y1 - y0), min(x1 - x0, y1 - y0)
    assert short == side or abs(short - side * 7 / 8) <= 2
    assert (x1 - x0, y1 - y0) != (w_px, h)
    x0, y0 = max(0, x0), max(0, y0)
    fused = out.person_probability()
    own = alone.run(image).person_probability()
    outside = np.ones((h, w_px), bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_allclose(fused[outside], own[outside], atol=1e-4)
    assert np.abs(fused[y0:y1, x0:x1] - own[y0:y1, x0:x1]).max() > 0.1
    assert load_segmenter("selfie-general", 1, quality="best").spec.name == "selfie-general"
    with pytest.raises(PixcamError, match="unknown quality"):
        load_segmenter(None, 1, quality="ultra")
    iou = {
        name: evaluate.accuracy(seg, samples).mean_iou
        for name, seg in [("fast", fast), ("alone", alone), ("balanced", balanced), ("best", best)]
    }
    assert iou["best"] > iou["balanced"] > iou["alone"] > iou["fast"], iou


def test_presets_without_the_selfie_model_run_bodypix_alone(
    models_installed, monkeypatch, caplog
) -> None:
    """A fusing preset whose partner is missing warns and runs BodyPix at its own input."""
    monkeypatch.setattr(segment, "PARTNERS", ("no-such-f32", "no-such-model"))
    alone = load_segmenter(None, 1)
    for quality in ("balanced", "best"):
        seg = load_segmenter(None, 1, quality=quality)
        assert not isinstance(seg, FusedSegmenter)
        assert seg.internal_resolution == alone.internal_resolution
    assert "needs no-such-model" in caplog.text


def test_person_square_is_grown_centred_and_may_leave_the_frame() -> None:
    prob = np.zeros((90, 160), np.float32)  # a 1280×720 frame at 1/8
    prob[20:80, 70:90] = 0.9  # a standing person: x 560..720, y 160..640 in frame pixels
    assert person_square(prob, (1280, 720), margin=0.1) == (376, 136, 904, 664)  # 480 × 1.1
    prob[:] = 0
    prob[30:90, 10:30] = 0.9  # at the left edge, to the bottom: square past both, not clipped
    x0, y0, x1, y1 = person_square(prob, (1280, 720), margin=0.1)
    assert (x0, y0, x1 - x0, y1 - y0) == (-104, 216, 528, 528)
    assert all(c % 2 == 0 for c in (x0, y0, x1, y1))  # whole I420 chroma samples
    prob[:] = 0
    prob[31:40, 11:14] = 0.9  # odd frame pixels (88, 248) .. (112, 320): corners made even
    assert all(c % 2 == 0 for c in person_square(prob, (1280, 720), margin=0.1))
    assert person_square(np.full((90, 160), 0.4, np.float32), (1280, 720)) is None


def test_person_square_is_a_side_shorter_where_the_person_fits() -> None:
    """With `short`, a person narrower (or lower) than that share of the square gets a
    rectangle at the square's scale, centred the same; one that does not fit, the square."""
    prob = np.zeros((90, 160), np.float32)
    prob[20:80, 70:90] = 0.9  # standing: 160 × 480 frame pixels, 176 × 528 with the margin
    assert person_square(prob, (1280, 720), margin=0.1, short=7 / 8) == (408, 136, 870, 664)
    prob[:] = 0
    prob[30:90, 40:100] = 0.9  # 480 × 480: no narrower way
    square = person_square(prob, (1280, 720), margin=0.1)
    assert person_square(prob, (1280, 720), margin=0.1, short=7 / 8) == square
    prob[:] = 0
    prob[40:90, 40:100] = 0.9  # 480 wide, 400 high: 440 ≤ 7/8 of 528
    x0, y0, x1, y1 = person_square(prob, (1280, 720), margin=0.1, short=7 / 8)
    assert (x1 - x0, y1 - y0) == (528, 462) and all(c % 2 == 0 for c in (x0, y0, x1, y1))
    assert (x0 + x1) / 2 == 560 and abs((y0 + y1) / 2 - 520) <= 1


def test_a_rectangle_runs_on_the_selfie_input_of_its_aspect(models_installed, photo) -> None:
    balanced = load_segmenter(None, 1, quality="balanced")
    assert isinstance(balanced, FusedSegmenter)
    selfie = balanced.second
    h, w = photo.shape[:2]
    for region, shape in (
        ((0, 0, 256, 224), (224, 256)),
        ((0, 0, 224, 256), (256, 224)),
        ((0, 0, 256, 256), (256, 256)),
    ):
        out = selfie.run(photo, parts=False, region=region)
        assert selfie.engine.input_shape == shape and out.segments.shape == shape
    selfie.run(photo, parts=False)  # the whole frame: the square, letterboxed
    assert selfie.engine.input_shape == (256, 256)


def test_a_region_leaving_the_frame_is_the_frame_mirrored_at_its_edge() -> None:
    """The selfie model's square past the frame's left and bottom edges: the frame's part at
    the square's scale, then mirrored (edge pixel not repeated) to fill the square."""
    rng = np.random.default_rng(3)
    frame = cv2.resize(rng.integers(0, 256, (36, 64, 3), np.uint8), (640, 360))
    region = (-40, 200, 200, 440)  # 240 px square: 40 px left of the frame, 80 px below it
    got = region_input(Pyramid(frame), region, (120, 120))  # 2:1
    inside = Pyramid(frame).region((0, 200, 200, 360), (100, 80))
    assert got.shape == (120, 120, 3)
    assert np.array_equal(got[:80, 20:], inside)
    assert np.array_equal(got[:80, :20], inside[:, 20:0:-1])  # mirrored left of the frame
    assert np.array_equal(got[80:, 20:], inside[78:38:-1])  # and below it
    # An I420 frame the same way, from its planes (its colour at half resolution).
    yuv = region_input(Pyramid(I420.from_bgr(frame)), region, (120, 120))
    assert np.array_equal(yuv[:80, :20], yuv[:80, 40:20:-1])
    assert np.abs(yuv.astype(int) - got).mean() < 5
    # Inside the frame it is the pyramid's own region.
    assert np.array_equal(
        region_input(Pyramid(frame), (0, 0, 240, 240), (120, 120)),
        Pyramid(frame).region((0, 0, 240, 240), (120, 120)),
    )
    with pytest.raises(ValueError, match="outside"):
        region_input(Pyramid(frame), (700, 0, 800, 100), (50, 50))


def test_on_a_stream_the_square_stays_while_the_person_stays_in_it() -> None:
    """A fused segmenter fed a stream (as `Effects` marks it) keeps the selfie model's square
    while the new one is near (centre within 5 % of the side, side within 10 %); photos each
    get their own."""
    stand_in = SimpleNamespace(spec=None)
    fused = FusedSegmenter(stand_in, stand_in)  # type: ignore[arg-type]
    size = (1280, 720)
    first, near, far = (400, 100, 800, 500), (410, 90, 812, 492), (440, 100, 840, 500)
    assert fused._steady(first, size) == first and fused._steady(near, size) == near
    fused = FusedSegmenter(stand_in, stand_in)  # type: ignore[arg-type]
    fused.steady = True
    assert fused._steady(first, size) == first
    assert fused._steady(near, size) == first  # 10 px off a 400 px square: kept
    assert fused._steady(far, size) == far  # 40 px: followed
    assert fused._steady((446, 100, 846, 500), (1920, 1080)) == (446, 100, 846, 500)
    assert fused._steady((400, 100, 860, 560), (1920, 1080)) == (400, 100, 860, 560)  # grown
    wide = (400, 100, 860, 502)  # a rectangle: each side against its own
    assert fused._steady(wide, (1920, 1080)) == wide
    assert fused._steady((410, 110, 870, 508), (1920, 1080)) == wide  # 10 px, a side 4 px
    assert fused._steady((400, 100, 860, 560), (1920, 1080)) == (400, 100, 860, 560)  # 58 px higher
    fx = Effects(EffectsSettings.from_config(Config()), FusedSegmenter(stand_in, stand_in))
    assert fx.segmenter.steady  # type: ignore[union-attr]


def test_on_a_stream_bodypix_sits_out_frames_while_the_square_holds(
    models_installed, photo, monkeypatch
) -> None:
    """On a stream, once the square holds, BodyPix runs on one frame in MAIN_EVERY and the
    frames between reuse its output and square (the selfie model runs on every frame). Photos,
    part effects and a hold older than HOLD_S run it on every frame."""
    from pixcam.chain.segment import fused as fused_module

    def bodypix_runs(seg: FusedSegmenter, frames: int, parts: bool = False) -> list[int]:
        calls: list[int] = []
        real = seg.main.run

        def counted(*args: object, **kwargs: object) -> object:
            calls.append(len(outs))
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(seg.main, "run", counted)
        outs: list[np.ndarray] = []
        for _ in range(frames):
            outs.append(seg.run(photo, parts=parts).person_probability((160, 90)))
        # The same picture each time; the selfie model's input is cut from a level BodyPix's
        # input made or from the frame's own pixels, a level of 255 apart here (`Pyramid.region`).
        for out in outs[1:]:
            np.testing.assert_allclose(out, outs[0], atol=0.02)
        return calls

    def balanced() -> FusedSegmenter:
        seg = load_segmenter(None, 1, quality="balanced")
        assert isinstance(seg, FusedSegmenter)
        return seg

    monkeypatch.setattr(fused_module, "HOLD_S", 3600.0)  # however slow this machine is today
    stream = balanced()
    stream.steady = True
    assert fused_module.MAIN_EVERY == 4
    assert bodypix_runs(stream, 7) == [0, 1, 5]  # the first two choose and confirm the square
    photos = balanced()
    assert bodypix_runs(photos, 4) == [0, 1, 2, 3]
    parts = balanced()
    parts.steady = True
    assert bodypix_runs(parts, 4, parts=True) == [0, 1, 2, 3]
    monkeypatch.setattr(fused_module, "HOLD_S", -1.0)
    stale = balanced()
    stale.steady = True
    assert bodypix_runs(stale, 4) == [0, 1, 2, 3]


class _MaskReader:
    """A stand-in network whose "frame" is a float32 mask it reads back: the main one on a
    stride-8 grid of the whole frame, the second one at 64×64 over the region it is given."""

    def __init__(self, second: bool) -> None:
        self.second, self.spec, self.has_parts, self.calls = second, None, False, 0
        self.engine = object()

    def run(self, frame, parts=False, pyramid=None, region=None) -> SegmentationOutput:  # noqa: ANN001
        self.calls += 1
        h, w = frame.shape[:2]
        if not self.second:
            grid = cv2.resize(frame, (w // 8, h // 8), interpolation=cv2.INTER_AREA)
            return SegmentationOutput(grid, None, GridMapping((w, h), (w, h), 8))
        x0, y0, x1, y1 = region if region is not None else (0, 0, w, h)
        k = 64 / (x1 - x0)
        m = np.array([[k, 0.0, -x0 * k], [0.0, k, -y0 * k]])
        crop = cv2.warpAffine(frame, m, (64, 64), borderMode=cv2.BORDER_REPLICATE)
        return SegmentationOutput(crop, None, GridMapping((x1 - x0, y1 - y0), (64, 64), 1))


def _centre_x(prob: np.ndarray) -> float:
    m = cv2.moments(prob)
    return m["m10"] / m["m00"]


@pytest.mark.parametrize("every", [2, 3, 4])
def test_bodypix_runs_on_one_frame_in_n_and_its_held_output_follows_the_person(every) -> None:
    """On a stream whose person's square holds, BodyPix runs on one frame in `main_every`; with
    `carry` its held output moves with the selfie model's mask (a person 4 px further on each
    frame), without it stays where BodyPix saw it."""

    def frame(dx: int) -> np.ndarray:
        f = np.zeros((360, 640), np.float32)
        f[100:300, 260 + dx : 380 + dx] = 1.0
        return f

    shifts = [0, 0] + [4 * i for i in range(1, every)]  # two to settle the square, then held
    for carry in (False, True):
        main, second = _MaskReader(False), _MaskReader(True)
        fused = FusedSegmenter(main, second)  # type: ignore[arg-type]
        fused.steady, fused.main_every, fused.carry = True, every, carry
        outs = [fused.run(frame(dx), parts=False) for dx in shifts]  # type: ignore[arg-type]
        assert main.calls == 2 and second.calls == len(shifts)  # BodyPix sat out the rest
        assert fused.engines == (second.engine,)  # what ran on the last frame
        fused.run(frame(shifts[-1]), parts=False)  # type: ignore[arg-type]
        assert main.calls == 3  # and runs again after N - 1 frames off
        assert fused.engines == (main.engine, second.engine)
        seen = [_centre_x(SegmentationOutput.person_probability(o)) for o in outs]
        moved = [x - seen[0] for x in seen[2:]]
        want = shifts[2:] if carry else [0] * (every - 1)
        np.testing.assert_allclose(moved, want, atol=1.0)  # the stand-in samples coarsely


def test_bodypix_holds_by_the_streams_clock_and_not_when_told() -> None:
    """A held BodyPix output serves by the stream's clock, not the wall's (a clip run slowly
    holds as it would live), and not at all while `hold` is off (only me splitting two people
    needs each frame's own outline)."""
    f = np.zeros((360, 640), np.float32)
    f[100:300, 260:380] = 1.0

    def bodypix_calls(step: float, hold: bool = True) -> int:
        main, second = _MaskReader(False), _MaskReader(True)
        fused = FusedSegmenter(main, second)  # type: ignore[arg-type]
        now = [0.0]
        fused.steady, fused.hold, fused.clock = True, hold, lambda: now[0]
        for _ in range(6):
            fused.run(f, parts=False)  # type: ignore[arg-type]
            now[0] += step
        return main.calls

    assert bodypix_calls(1 / 30) == 3  # two settle the square, three held, then again
    assert bodypix_calls(1.0) == 6  # a second a frame: every hold is stale
    assert bodypix_calls(1 / 30, hold=False) == 6


def test_a_shifted_mapping_moves_the_probability_by_its_shift_at_any_size() -> None:
    grid = np.zeros((45, 80), np.float32)
    grid[10:30, 30:45] = 1.0
    base = GridMapping((640, 360), (640, 360), 8)
    moved = ShiftedMapping((640, 360), (640, 360), 8, (24.0, -16.0))
    for size, k in (((640, 360), 1.0), ((320, 180), 0.5)):
        a, b = base.warp(grid, size), moved.warp(grid, size)
        ma, mb = cv2.moments(a), cv2.moments(b)
        assert mb["m10"] / mb["m00"] - ma["m10"] / ma["m00"] == pytest.approx(24 * k, abs=0.05)
        assert mb["m01"] / mb["m00"] - ma["m01"] / ma["m00"] == pytest.approx(-16 * k, abs=0.05)


def test_second_model_output_lands_on_its_rectangle() -> None:
    """A second output that saw only the rectangle x 200..600, y 100..400 of an 800×500 frame
    (its probability a ramp over its own input) is placed there, at any target size."""
    main = SegmentationOutput(
        np.zeros((32, 51), np.float32), None, GridMapping((800, 500), (801, 501), 16)
    )
    cw, ch = 400, 300
    ramp = np.tile(np.arange(cw, dtype=np.float32) / (cw - 1), (ch, 1))
    second = SegmentationOutput(ramp, None, GridMapping((cw, ch), (cw, ch), 1))
    out = FusedOutput(
        main.segments, None, main.mapping, second, weight=0.5, second_rect=(200, 100, 600, 400)
    )
    for size in [(800, 500), (200, 125)]:
        prob = out.person_probability(size)
        k = size[0] / 800
        row = prob[round(250 * k)]
        u = np.arange(size[0])
        x = (u + 0.5) / k - 0.5  # each target pixel's centre in frame pixels
        inside = (u >= np.ceil(200 * k)) & (u < np.floor(600 * k))
        expect = np.where(inside, 0.5 * np.clip((x - 200) / (cw - 1), 0, 1), 0.0)
        np.testing.assert_allclose(row, expect, atol=2e-3)
        assert prob[: int(100 * k) - 1].max() == 0 and prob[int(400 * k) + 1 :].max() == 0


def test_outputs_tell_how_fine_their_cells_are() -> None:
    """BodyPix's stride-16 cells on a frame scaled to 289 px: ~71 frame pixels at 1280 wide;
    a fused output's cells are the second model's where it looked, in frame pixels."""
    main = SegmentationOutput(
        np.zeros((10, 19), np.float32), None, GridMapping((1280, 720), (289, 163), 16)
    )
    assert main.cell == pytest.approx(1280 * 16 / 289)
    # The selfie model (stride 1) saw a 720 px square as 256 px: 2.8 frame pixels per cell.
    second = SegmentationOutput(
        np.zeros((256, 256), np.float32), None, GridMapping((360, 360), (256, 256), 1)
    )
    fused = FusedOutput(
        main.segments, None, main.mapping, second, weight=0.5, second_rect=(280, 0, 1000, 720)
    )
    assert fused.cell == pytest.approx(720 / 256)
    whole = FusedOutput(main.segments, None, main.mapping, None)
    assert whole.cell == main.cell
