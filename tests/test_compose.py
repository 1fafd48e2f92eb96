"""Tests for pixcam.chain.compose: every background mode, blending, halo, files and errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pixcam.chain.compose import (
    BlurBackground,
    ComposeSettings,
    Compositor,
    VideoBackground,
    blend,
    blend_dense,
    cover_fit,
    parse_color,
)
from pixcam.errors import PixcamError
from pixcam.paths import find_background

W, H = 640, 360
RED, GREEN = (0, 0, 255), (0, 255, 0)  # BGR


@pytest.fixture
def bg_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user backgrounds folder (XDG_DATA_HOME points into tmp_path)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    folder = tmp_path / "data" / "pixcam" / "backgrounds"
    folder.mkdir(parents=True)
    return folder


def person_scene() -> tuple[np.ndarray, np.ndarray]:
    """A red disc "person" on a green background, with a soft 4 px alpha edge."""
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:] = GREEN
    hard = np.zeros((H, W), np.uint8)
    cv2.circle(hard, (W // 2, H // 2), 100, 255, -1)
    frame[hard > 0] = RED
    alpha = cv2.GaussianBlur(hard, (0, 0), 1.5)
    return frame, alpha


def textured_frame() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)


def write_image(path: Path, size: tuple[int, int] = (300, 200)) -> Path:
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (200, 100, 50)
    cv2.circle(img, (w // 2, h // 2), min(w, h) // 4, (255, 255, 255), -1)
    assert cv2.imwrite(str(path), img)
    return path


def write_video(path: Path, colours: list[tuple[int, int, int]], fps: float = 10) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 90))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG/AVI")
    for c in colours:
        writer.write(np.full((90, 160, 3), c, np.uint8))
    writer.release()
    return path


# ----------------------------------------------------------------------------- blend
def test_blend_is_within_one_level_of_exact_and_exact_at_the_ends() -> None:
    rng = np.random.default_rng(0)
    fg = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (50, 60), dtype=np.uint8)
    alpha[:5], alpha[-5:] = 255, 0
    a = alpha[..., None].astype(np.float64) / 255
    exact = fg * a + bg * (1 - a)
    out = blend(fg, bg, alpha)
    assert np.abs(out - exact).max() <= 1.0
    assert np.array_equal(out[:5], fg[:5]) and np.array_equal(out[-5:], bg[-5:])


def test_blend_outside_the_alpha_box_is_the_background_and_bg_is_kept() -> None:
    rng = np.random.default_rng(1)
    fg = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    alpha = np.zeros((60, 80), np.uint8)
    alpha[10:30, 20:50] = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    bg_before = bg.copy()
    out = blend(fg, bg, alpha)
    assert np.array_equal(out, blend_dense(fg, bg, alpha))
    assert np.array_equal(bg, bg_before)  # not written into unless reuse_bg
    assert np.array_equal(blend(fg, bg, np.zeros_like(alpha)), bg)
    assert blend(fg, bg, alpha, reuse_bg=True) is bg


def test_image_mode_does_not_alter_its_cached_background(bg_dir: Path) -> None:
    write_image(bg_dir / "cached.png", (300, 200))
    comp = Compositor(ComposeSettings(background="image", image="cached.png"))
    expected = cover_fit(cv2.imread(str(bg_dir / "cached.png")), (W, H))
    frame, alpha = person_scene()
    for _ in range(2):
        out = comp.compose(frame, alpha)
        assert np.array_equal(out[alpha == 0], expected[alpha == 0])


# ----------------------------------------------------------------------------- modes
def test_none_returns_the_frame_itself() -> None:
    frame, alpha = person_scene()
    assert Compositor(ComposeSettings(background="none")).compose(frame, alpha) is frame


def test_none_with_mirror_flips() -> None:
    frame = textured_frame()
    out = Compositor(ComposeSettings(background="none", mirror=True)).compose(
        frame, np.zeros((H, W), np.uint8)
    )
    assert np.array_equal(out, frame[:, ::-1])


@pytest.mark.parametrize("mode", ["blur", "image", "video", "color"])
def test_alpha_255_keeps_the_person_pixel_exact(mode: str, bg_dir: Path) -> None:
    write_image(bg_dir / "test-bg.png")
    write_video(bg_dir / "test-bg.avi", [(10, 20, 30), (40, 50, 60)])
    settings = ComposeSettings(background=mode, image="test-bg.png", video="test-bg.avi")
    frame = textured_frame()
    alpha = np.zeros((H, W), np.uint8)
    alpha[50:300, 200:450] = 255
    out = Compositor(settings).compose(frame, alpha)
    assert out.shape == frame.shape and out.dtype == np.uint8
    person = alpha == 255
    assert np.array_equal(out[person], frame[person])
    assert not np.array_equal(out[~person], frame[~person])  # the background did change


def test_mirror_flips_the_person_but_not_the_background_image(bg_dir: Path) -> None:
    write_image(bg_dir / "asym.png", (320, 180))
    img = cv2.imread(str(bg_dir / "asym.png"))
    img[:, :40] = (0, 0, 0)  # mark the left edge
    cv2.imwrite(str(bg_dir / "asym.png"), img)
    frame = textured_frame()
    alpha = np.zeros((H, W), np.uint8)
    alpha[:, :100] = 255  # person on the left of the camera picture
    out = Compositor(ComposeSettings(background="image", image="asym.png", mirror=True)).compose(
        frame, alpha
    )
    assert np.array_equal(out[:, -100:], frame[:, :100][:, ::-1])  # person now on the right
    assert out[:, :60].max() < 30  # background's dark left edge stays on the left


def test_color_mode_fills_the_background_with_the_colour() -> None:
    frame, alpha = person_scene()
    out = Compositor(ComposeSettings(background="color", color="#336699")).compose(frame, alpha)
    assert tuple(out[0, 0]) == (0x99, 0x66, 0x33)
    assert np.array_equal(out[H // 2, W // 2], frame[H // 2, W // 2])


def test_image_mode_uses_the_cover_fitted_image(bg_dir: Path) -> None:
    write_image(bg_dir / "studio.png", (300, 200))
    frame = textured_frame()
    out = Compositor(ComposeSettings(background="image", image="studio.png")).compose(
        frame, np.zeros((H, W), np.uint8)
    )
    expected = cover_fit(cv2.imread(str(bg_dir / "studio.png")), (W, H))
    assert np.array_equal(out, expected)


def test_blur_mode_blurs_the_background() -> None:
    frame = textured_frame()
    out = Compositor(ComposeSettings(background="blur", blur_strength=40)).compose(
        frame, np.zeros((H, W), np.uint8)
    )
    # Random noise blurred: the local variation collapses, the mean stays.
    assert out.std() < 0.2 * frame.std()
    assert abs(float(out.mean()) - float(frame.mean())) < 3


def test_blur_strength_is_monotonic() -> None:
    frame = textured_frame()
    stds = [
        BlurBackground(s).get(frame, np.zeros((H, W), np.uint8)).astype(np.float32).std()
        for s in (1, 10, 40, 100)
    ]
    assert stds == sorted(stds, reverse=True)


@pytest.mark.parametrize("strength", [10, 40, 100])
def test_blurred_background_has_no_halo_of_person_colour(strength: int) -> None:
    frame, alpha = person_scene()
    out = Compositor(ComposeSettings(background="blur", blur_strength=strength)).compose(
        frame, alpha
    )
    # A ring of pure background just outside the person's soft edge, two blur widths wide.
    sigma = BlurBackground(strength).sigma(H)
    ring = np.zeros((H, W), np.uint8)
    cv2.circle(ring, (W // 2, H // 2), round(106 + 2 * sigma), 255, -1)
    ring[alpha > 0] = 0
    near = out[ring > 0].astype(np.int16)
    assert near[:, 2].max() <= 3  # no red at all
    assert near[:, 1].min() >= 250  # still the green background
    # The naive blur (person included) would have smeared red there: the test can fail.
    naive = cv2.GaussianBlur(frame, (0, 0), sigma)
    assert naive[ring > 0][:, 2].max() > 3  # fails the bound above


# ---------------------------------------------------------------------- files, errors
def test_cover_fit_keeps_aspect_and_fills() -> None:
    img = np.zeros((200, 300, 3), np.uint8)
    cv2.circle(img, (150, 100), 50, (255, 255, 255), -1)
    for size in [(640, 360), (360, 640), (640, 480)]:
        out = cover_fit(img, size)
        assert out.shape == (size[1], size[0], 3)
        ys, xs = np.nonzero(out[..., 0] > 127)
        width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        assert abs(width - height) <= 2  # the circle is still round
        assert abs(xs.mean() - size[0] / 2) < 2 and abs(ys.mean() - size[1] / 2) < 2


def test_find_background_looks_in_the_user_folder(bg_dir: Path, tmp_path: Path) -> None:
    p = write_image(bg_dir / "office.jpg")
    assert find_background("office.jpg") == p
    assert find_background("office") == p  # suffix optional
    assert find_background(str(p)) == p  # a path is used as is
    with pytest.raises(PixcamError, match="not found"):
        find_background("no-such-background.png")
    with pytest.raises(PixcamError, match="not found"):
        find_background(str(tmp_path / "missing" / "x.png"))


def test_bundled_backgrounds_folder_is_searched(bg_dir: Path) -> None:
    repo_bg = Path(__file__).resolve().parents[1] / "backgrounds"  # links into the package
    images = sorted(p for p in repo_bg.glob("*") if p.suffix.lower() in (".png", ".jpg"))
    assert images, f"no bundled images in {repo_bg}"
    assert find_background(images[0].name).resolve() == images[0].resolve()


def test_unreadable_image_raises_and_keeps_the_previous_background(bg_dir: Path) -> None:
    (bg_dir / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(PixcamError, match="broken.png") as err:
        Compositor(ComposeSettings(background="image", image="broken.png"))
    assert "\n" not in str(err.value)
    comp = Compositor(ComposeSettings(background="color", color="#000000"))
    frame, alpha = person_scene()
    with pytest.raises(PixcamError):
        comp.update(background="image", image="broken.png")
    with pytest.raises(PixcamError):
        comp.update(background="video", video="missing.mp4")
    assert comp.settings.background == "color"
    assert tuple(comp.compose(frame, alpha)[0, 0]) == (0, 0, 0)


def test_bad_video_raises(bg_dir: Path) -> None:
    (bg_dir / "broken.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(PixcamError, match="broken.mp4"):
        Compositor(ComposeSettings(background="video", video="broken.mp4"))


def test_a_bad_colour_is_a_user_error() -> None:
    # Settings are checked by the config schema only (test_config); parse_color stays strict.
    with pytest.raises(PixcamError):
        parse_color("green")
    assert parse_color("#ff8000") == (0, 0x80, 0xFF)


def test_live_update_switches_modes() -> None:
    frame, alpha = person_scene()
    comp = Compositor(ComposeSettings(background="color", color="#0000ff"))
    assert tuple(comp.compose(frame, alpha)[0, 0]) == (255, 0, 0)
    comp.update(color="#ff0000")
    assert tuple(comp.compose(frame, alpha)[0, 0]) == (0, 0, 255)
    comp.update(background="none")
    assert comp.compose(frame, alpha) is frame


# ------------------------------------------------------------------------------ video
def test_video_loops_at_its_own_frame_rate(bg_dir: Path) -> None:
    colours = [(0, 0, 200), (0, 200, 0), (200, 0, 0)]
    write_video(bg_dir / "loop.avi", colours, fps=10)
    now = [0.0]
    video = VideoBackground("loop.avi", clock=lambda: now[0])
    frame = np.zeros((H, W, 3), np.uint8)
    alpha = np.zeros((H, W), np.uint8)

    def dominant(t: float) -> int:
        now[0] = t
        return int(np.argmax(video.get(frame, alpha)[H // 2, W // 2]))

    # Channel order of the colours: red(2), green(1), blue(0); MJPG is lossy, hence argmax.
    assert dominant(0.0) == 2
    assert dominant(0.05) == 2  # camera faster than the video: same frame again
    assert dominant(0.1) == 1
    assert dominant(0.2) == 0
    assert dominant(0.3) == 2  # looped
    assert video.get(frame, alpha).shape == (H, W, 3)
    video.close()
