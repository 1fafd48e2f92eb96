"""Tests for the I420 frame path: the frame type, the MJPG decode to it, and that compositing
in I420 gives the picture the BGR path gives (as the virtual camera receives it)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import VIDEOS, need, read_video
from pixcam.chain.compose import ComposeSettings, Compositor
from pixcam.chain.effects import Effects, EffectsSettings
from pixcam.chain.pyramid import Pyramid
from pixcam.config import load_config
from pixcam.i420 import I420, as_bgr, as_i420
from pixcam.video import mjpg
from pixcam.video.sinks import to_device


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return read_video(need(VIDEOS / "presenter-1280x720.mp4", "presenter video"), 8)


def soft_person(w: int, h: int) -> np.ndarray:
    """A head-and-shoulders alpha with a soft edge, as the refiner makes them."""
    hard = np.zeros((h, w), np.uint8)
    cv2.ellipse(hard, (w // 2, h), (w // 4, h * 3 // 4), 0, 0, 360, 255, -1)
    cv2.circle(hard, (w // 2, h // 3), h // 6, 255, -1)
    return cv2.GaussianBlur(hard, (0, 0), 2.0)


def test_planes_are_views_in_the_layout_opencv_and_pyvirtualcam_use(frames) -> None:
    f = frames[0]
    i = I420.from_bgr(f)
    h, w = f.shape[:2]
    assert i.shape == (h, w, 3) and i.data.shape == (h * 3 // 2, w)
    assert i.u.shape == i.v.shape == (h // 2, w // 2)
    i.v[:] = 0  # a view: the buffer changes
    assert not i.data[h + h // 4 :].any()
    with pytest.raises(ValueError, match="even sides"):
        I420(np.zeros((9, 5), np.uint8))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_levels_from_the_planes_are_the_halved_picture(k: int, frames) -> None:
    f = frames[1]
    got = Pyramid(I420.from_bgr(f)).level(k)
    want = Pyramid(f).level(k)
    assert got.shape == want.shape
    assert np.abs(got.astype(np.int16) - want).mean() < 1.5


def test_flipped_mirrors_every_plane(frames) -> None:
    got = I420.from_bgr(frames[2]).flipped()
    want = I420.from_bgr(cv2.flip(frames[2], 1))
    assert np.array_equal(got.y, want.y)
    # OpenCV's chroma subsampling is not mirror-symmetric: a level here and there differs.
    for g, w in ((got.u, want.u), (got.v, want.v)):
        assert np.abs(g.astype(np.int16) - w).mean() < 0.1


def test_pyramid_of_i420_makes_its_levels_without_the_full_bgr(frames) -> None:
    f = frames[3]
    p = Pyramid(I420.from_bgr(f))
    assert p.size == (f.shape[1], f.shape[0])
    small = p.down_to((160, 90))
    ref = Pyramid(f).down_to((160, 90))
    assert small.shape == ref.shape and np.abs(small.astype(np.int16) - ref).mean() < 1.5


def test_mjpg_decodes_to_i420_and_odd_sizes_to_bgr(frames) -> None:
    f = frames[4]
    ok, jpeg = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    got = mjpg.decode_frame(jpeg)
    assert isinstance(got, I420)
    assert np.abs(got.to_bgr().astype(np.int16) - f).mean() < 3  # JPEG + chroma subsampling
    ok, odd = cv2.imencode(".jpg", f[:101, :75])
    got = mjpg.decode_frame(odd)
    assert isinstance(got, np.ndarray) and got.shape == (101, 75, 3)
    assert mjpg.decode_frame(b"not a jpeg") is None


@pytest.mark.parametrize("mode", ["blur", "image", "color", "video"])
def test_i420_composite_is_the_bgr_composite_as_the_camera_gets_it(
    mode: str, frames, tmp_path: Path
) -> None:
    video = need(VIDEOS / "walking-640x360.mp4", "walking video")
    settings = ComposeSettings(background=mode, image="studio-grey.png", video=str(video))
    on_bgr, on_i420 = (
        Compositor(settings, clock=lambda: 0.0),
        Compositor(settings, clock=lambda: 0.0),
    )
    h, w = frames[0].shape[:2]
    alpha = soft_person(w, h)
    for f in frames:
        want = to_device(on_bgr.compose(f, alpha, Pyramid(f)))
        i = I420.from_bgr(f)
        got = on_i420.compose(i, alpha, Pyramid(i))
        assert isinstance(got, I420)
        assert np.abs(got.data.astype(np.int16) - want).mean() < 0.5


def test_the_chain_keeps_i420_and_matches_the_bgr_chain(models_installed, frames) -> None:
    """Real model, real frames: the whole chain in I420 gives the picture of the BGR chain."""
    from pixcam.chain.segment import load_segmenter

    cfg = load_config(None).with_values({"model.skip_still": False})
    settings = EffectsSettings.from_config(cfg)
    seg = load_segmenter(*settings.model)
    on_bgr, on_i420 = Effects(settings, seg), Effects(settings, seg)
    diffs = []
    for f in frames:
        want = to_device(on_bgr.process(f))
        got = on_i420.process(I420.from_bgr(f))
        assert isinstance(got, I420)
        diffs.append(np.abs(got.data.astype(np.int16) - want).mean())
    assert max(diffs) < 1.0, diffs  # measured: about 0.2 grey levels


def test_framing_turns_an_i420_frame_into_bgr_once(frames) -> None:
    """What works in BGR only gets one conversion at the boundary; without a model the
    chain passes the frame through in its own format."""
    fx = Effects(EffectsSettings.from_config(load_config(None)))
    i = I420.from_bgr(frames[0])
    assert fx.process(i) is i
    assert as_i420(i) is i and np.array_equal(as_bgr(frames[0]), frames[0])


def test_part_effects_get_the_i420_frame_in_bgr_once(models_installed, frames) -> None:
    """A part effect works in BGR: the I420 chain converts its composite once and hands out
    BGR, the picture of the BGR chain."""
    from pixcam.chain.segment import load_segmenter

    cfg = load_config(None).with_values({"model.skip_still": False, "parts.view": True})
    settings = EffectsSettings.from_config(cfg)
    seg = load_segmenter(*settings.model)
    on_bgr, on_i420 = Effects(settings, seg), Effects(settings, seg)
    for f in frames[:3]:
        want = on_bgr.process(f)
        got = on_i420.process(I420.from_bgr(f))
        assert isinstance(got, np.ndarray) and got.shape == f.shape
        assert np.abs(got.astype(np.int16) - want).mean() < 3.0  # chroma subsampling


@pytest.mark.parametrize("subsampling", ["420", "422"])
def test_planar_decode_gives_the_picture_of_the_bgr_decode(subsampling: str, frames) -> None:
    """TurboJPEG's planes (range-mapped) against simplejpeg's BGR converted to I420."""
    import simplejpeg

    from pixcam.video import yuvjpeg

    if not yuvjpeg.available():
        pytest.skip("libturbojpeg is not installed (Debian/Ubuntu: libturbojpeg0)")
    rgb = cv2.cvtColor(frames[5], cv2.COLOR_BGR2RGB)
    jpeg = np.frombuffer(
        simplejpeg.encode_jpeg(rgb, quality=90, colorsubsampling=subsampling), np.uint8
    )
    got = yuvjpeg.decode(jpeg)
    assert isinstance(got, I420) and got.full_range  # mapped where it reaches the output
    bgr = mjpg.decode(jpeg)
    assert bgr is not None
    want = I420.from_bgr(bgr)
    for g, w in zip(got.limited().planes, want.planes, strict=True):
        assert np.abs(g.astype(np.int16) - w).mean() < 0.5
    # What it does not take goes the BGR way.
    j444 = simplejpeg.encode_jpeg(rgb, quality=90, colorsubsampling="444")
    assert yuvjpeg.decode(np.frombuffer(j444, np.uint8)) is None
    assert isinstance(mjpg.decode_frame(j444), I420)
    assert yuvjpeg.decode(np.frombuffer(b"not a jpeg", np.uint8)) is None


def test_quality_best_runs_in_the_chain_on_i420(models_installed, frames) -> None:
    """The fused models take the chain's pyramid like any segmenter (they once refused it)."""
    from pixcam.chain.segment import load_segmenter

    cfg = load_config(None).with_values({"model.skip_still": False, "model.quality": "best"})
    settings = EffectsSettings.from_config(cfg)
    fx = Effects(settings, load_segmenter(*settings.model))
    got = fx.process(I420.from_bgr(frames[0]))
    assert isinstance(got, I420) and got.shape == frames[0].shape


def full_range_of(frame: np.ndarray) -> I420:
    """The frame as a camera's MJPG decodes to planes: JPEG's full-range Y'CbCr."""
    ycrcb = cv2.cvtColor(frame, cv2.COLOR_BGR2YCrCb)  # full range, as JPEG
    h, w = frame.shape[:2]
    out = I420.empty(w, h, full_range=True)
    y, cr, cb = cv2.split(ycrcb)
    out.y[:] = y
    for plane, dst in ((cb, out.u), (cr, out.v)):
        cv2.resize(plane, (w // 2, h // 2), dst=dst, interpolation=cv2.INTER_AREA)
    return out


def test_a_full_range_frame_is_the_picture_of_its_limited_range_one(frames) -> None:
    """Every way out of a full-range frame maps it: the BGR conversions fold the mapping in or
    map first, the sink's buffer is limited range, a mirrored frame stays full range."""
    f = frames[6]
    full = full_range_of(f)
    lim = full.limited()
    assert not lim.full_range and lim.limited() is lim
    want = I420.from_bgr(f)
    for g, w in zip(lim.planes, want.planes, strict=True):
        assert np.abs(g.astype(np.int16) - w).mean() < 0.6
    assert np.abs(full.to_bgr().astype(np.int16) - f).mean() < 2.0  # chroma subsampling
    for k in (1, 2):
        diff = Pyramid(full).level(k).astype(np.int16) - Pyramid(lim).level(k)
        assert np.abs(diff).mean() < 0.6 and np.abs(diff).max() <= 3
    flipped = full.flipped()
    assert flipped.full_range and np.array_equal(flipped.y, cv2.flip(full.y, 1))
    assert not as_i420(full).full_range and np.array_equal(to_device(full), lim.data)


@pytest.mark.parametrize("mode", ["blur", "image", "none"])
def test_compositing_a_full_range_frame_maps_what_reaches_the_output(mode: str, frames) -> None:
    """The blend maps the person's pixels as it goes (the background's are replaced, never
    mapped): the camera gets the composite of the limited-range frame."""
    settings = ComposeSettings(background=mode, image="studio-grey.png")
    on_full, on_limited = Compositor(settings), Compositor(settings)
    h, w = frames[0].shape[:2]
    alpha = soft_person(w, h)
    for f in frames[:4]:
        full = full_range_of(f)
        want = to_device(on_limited.compose(full.limited(), alpha, Pyramid(full.limited())))
        got = to_device(on_full.compose(full, alpha, Pyramid(full)))
        diff = np.abs(got.astype(np.int16) - want)
        assert diff.mean() < 0.3 and diff.max() <= 3, (diff.mean(), diff.max())
        person = alpha == 255
        assert np.abs(got[:h][person].astype(np.int16) - want[:h][person]).max() <= 1


def test_422_chroma_is_halved_as_inter_area_halves_it() -> None:
    """A 4:2:2 camera's chroma rows are averaged in pairs: INTER_AREA's picture, at a
    twentieth of its (1, 2) general path's cost."""
    from pixcam.video import yuvjpeg

    plane = np.random.default_rng(3).integers(0, 256, (96, 64), np.uint8)
    got = yuvjpeg.rows_halved(plane, np.empty((48, 64), np.uint8))
    assert np.array_equal(got, cv2.resize(plane, (64, 48), interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize("subsampling", ["420", "422"])
def test_bench_mjpg_has_the_asked_subsampling_and_decodes_planar(subsampling: str, frames) -> None:
    import simplejpeg

    from pixcam.tools.bench_pipeline import encode_mjpg
    from pixcam.video import yuvjpeg

    (jpeg,) = encode_mjpg(frames[:1], 360, subsampling)
    assert simplejpeg.decode_jpeg_header(jpeg)[3] == subsampling
    if yuvjpeg.available():
        got = mjpg.decode_frame(jpeg)
        assert isinstance(got, I420) and got.full_range and got.shape == (360, 640, 3)
