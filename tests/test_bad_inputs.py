"""Bad inputs to `pixcam segment` and `pixcam run`, in a real subprocess (so FFmpeg's native
stderr is seen too): one line from pixcam, a non-zero exit, nothing else (issue 15, faults 2,
10, 11 and 12)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from test_images import png_bomb

from conftest import IMAGES, need

REPO = Path(__file__).resolve().parents[1]


def pixcam(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pixcam", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )


def one_line(proc: subprocess.CompletedProcess[str], expected: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0, proc.stdout
    assert len(lines) == 1 and lines[0].startswith("pixcam: "), proc.stderr
    assert expected in lines[0], lines[0]


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return png_bomb(tmp_path_factory.mktemp("bombs") / "bomb.png", 9000, 9000)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short, sound video: 12 frames of a moving gradient."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15, (320, 192))
    ramp = np.tile(np.arange(320, dtype=np.uint8), (192, 1))
    for i in range(12):
        writer.write(cv2.merge([ramp + 8 * i, ramp.T[:192, :192].repeat(2, 1)[:, :320], ramp]))
    writer.release()
    return path


def test_segment_refuses_a_bomb_from_its_header(bomb: Path, tmp_path: Path) -> None:
    proc = pixcam("segment", str(bomb), "--out", str(tmp_path / "m.png"))
    one_line(proc, "is 9000×9000 pixels, over the 64 megapixel limit")


def test_segment_over_two_to_the_30_pixels_is_one_line(tmp_path: Path) -> None:
    giga = png_bomb(tmp_path / "giga.png", 40000, 30000, whole=False)
    proc = pixcam("segment", str(giga), "--out", str(tmp_path / "m.png"))
    one_line(proc, "over the 64 megapixel limit")


def test_run_refuses_a_bomb_background(
    models_installed: Path, bomb: Path, clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "o.mp4"
    proc = pixcam("run", "--input", str(clip), "--output", str(out), "--image", str(bomb))
    one_line(proc, "over the 64 megapixel limit")


MIN_SIZE = "pixels; pixcam needs frames of at least 32×32"
# 3000×48 went through the source and failed in the refiner on every frame (a traceback each,
# exit 0): the network's few output rows do not match so thin a frame.
THIN = "pixels; pixcam needs frames at most 16 times as wide"


@pytest.mark.parametrize(
    ("height", "width", "says"),
    [(3, 2, MIN_SIZE), (1, 1, MIN_SIZE), (31, 640, MIN_SIZE), (48, 3000, THIN), (3000, 48, THIN)],
)
def test_run_on_a_tiny_or_thin_image_names_the_limit(
    tmp_path: Path, height: int, width: int, says: str
) -> None:
    picture = tmp_path / "picture.png"
    assert cv2.imwrite(str(picture), np.full((height, width, 3), 128, np.uint8))
    # Background "none" loads no model: the source's own check is what is tested.
    out = str(tmp_path / "o.mp4")
    proc = pixcam(
        "run", "--input", str(picture), "--output", out, "--frames", "3", "--background", "none"
    )
    one_line(proc, f"is {width}×{height} {says}")


@pytest.mark.parametrize("side", [1, 8])
def test_segment_of_a_tiny_video_names_the_minimum_size(
    models_installed: Path, tmp_path: Path, side: int
) -> None:
    # `segment` loads its model before it reads the video. A 1×1 video was "cannot write video
    # m.mp4; use a path ending in .mp4" (it did end so).
    tiny = tmp_path / "tiny.avi"
    writer = cv2.VideoWriter(str(tiny), cv2.VideoWriter_fourcc(*"MJPG"), 15, (side, side))
    for _ in range(3):
        writer.write(np.full((side, side, 3), 128, np.uint8))
    writer.release()
    proc = pixcam("segment", str(tiny), "--out", str(tmp_path / "m.mp4"))
    one_line(proc, f"is {side}×{side} pixels; pixcam needs frames of at least 32×32")


@pytest.mark.parametrize("option", ["--out", "--overlay", "--probabilities"])
def test_segment_of_a_video_into_an_image_is_refused(
    clip: Path, tmp_path: Path, option: str
) -> None:
    image = tmp_path / "mask.png"
    args = ["--out", str(tmp_path / "m.mp4")] if option != "--out" else []
    proc = pixcam("segment", str(clip), *args, option, str(image))
    one_line(proc, f"is a video, so {option} needs a video path such as mask.mp4")
    assert not image.exists()


def _damaged(clip: Path, out: Path, keep: float = 1.0) -> Path:
    data = bytearray(clip.read_bytes())
    rng = random.Random(7)
    index = data.rfind(b"moov")  # OpenCV writes the container's index last
    for _ in range(60):  # scribble over the frames, keep the header and the index
        i = rng.randrange(len(data) // 5, index - 32)
        data[i : i + 16] = bytes(rng.randrange(256) for _ in range(16))
    out.write_bytes(data[: int(len(data) * keep)])
    return out


def test_ffmpeg_messages_stay_off_stderr(
    models_installed: Path, clip: Path, tmp_path: Path
) -> None:
    bad = _damaged(clip, tmp_path / "bad.mp4")
    # Proof that FFmpeg has plenty to say about this file when asked to speak...
    loud = pixcam(
        "segment", str(bad), "--out", str(tmp_path / "m1.mp4"),
        env={**os.environ, "OPENCV_FFMPEG_LOGLEVEL": "16"},
    )  # fmt: skip
    assert "FFMPEG" in loud.stdout + loud.stderr
    # ...and by default none of it reaches the user.
    quiet = pixcam("segment", str(bad), "--out", str(tmp_path / "m2.mp4"))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    # A file FFmpeg can't open at all: pixcam's line only.
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:400])
    proc = pixcam("segment", str(cut), "--out", str(tmp_path / "m3.mp4"))
    one_line(proc, "is neither an image nor a video")


# --------------------------------------------------------- libpng's and libjpeg's own lines
def _damaged_images(folder: Path) -> dict[str, Path]:
    """A PNG with a broken CRC (libpng prints "libpng error: IDAT: CRC error"), a JPEG cut
    half-way (libjpeg: "Premature end of JPEG file") and one with zeroed scan data."""
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    png = cv2.imencode(".png", picture)[1].tobytes()
    jpeg = cv2.imencode(".jpg", picture)[1].tobytes()
    crc = bytearray(png)
    crc[100:140] = b"\xff" * 40
    zeroed = bytearray(jpeg)
    zeroed[400:420] = b"\0" * 20
    files = {"crc.png": bytes(crc), "cut.jpg": jpeg[: len(jpeg) // 2], "zeroed.jpg": bytes(zeroed)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


@pytest.mark.parametrize("name", ["crc.png", "cut.jpg", "zeroed.jpg"])
@pytest.mark.parametrize("use", ["segment", "background"])
def test_damaged_images_give_pixcams_line_only(
    models_installed: Path, clip: Path, tmp_path: Path, name: str, use: str
) -> None:
    """Whatever the decoder says goes to the log; stderr holds one line of pixcam's: the error,
    or for a JPEG decoded despite the damage, a warning saying so."""
    image = _damaged_images(tmp_path)[name]
    if use == "segment":
        proc = pixcam("segment", str(image), "--out", str(tmp_path / "m.png"))
    else:
        out = str(tmp_path / "o.mp4")
        proc = pixcam("run", "--input", str(clip), "--output", out, "--frames", "2", "--image",
                      str(image))  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pixcam: "), proc.stderr
    if proc.returncode == 0:
        assert lines[0].startswith("pixcam: WARNING: ") and "is damaged" in lines[0]
    else:
        assert "is not an image pixcam can read" in lines[0]


def test_segment_turns_a_phone_photo_upright_as_viewers_show_it(
    models_installed: Path, tmp_path: Path
) -> None:
    """A phone stores a portrait photo sideways with EXIF orientation 6: the mask must be of
    the upright picture (what a viewer shows, what the person stands in), not of the pixels."""
    photo = Image.open(need(IMAGES / "doctor-5871743_640.jpg", "photos"))
    sideways = photo.transpose(Image.Transpose.ROTATE_90)  # stored turned a quarter left
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn a quarter right to show"
    sideways.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    photo.save(tmp_path / "upright.jpg", quality=95)
    for name in ("phone", "upright"):
        out = tmp_path / f"{name}.png"
        proc = pixcam("segment", str(tmp_path / f"{name}.jpg"), "--out", str(out))
        assert proc.returncode == 0, proc.stderr
    phone = cv2.imread(str(tmp_path / "phone.png"), cv2.IMREAD_GRAYSCALE)
    upright = cv2.imread(str(tmp_path / "upright.png"), cv2.IMREAD_GRAYSCALE)
    assert phone.shape == upright.shape == (photo.height, photo.width)
    assert np.mean(phone == upright) > 0.98


@pytest.mark.parametrize("args", [("models", "list"), ("--version",), ("--help",)])
def test_output_onto_a_full_device_is_one_line(args: tuple[str, ...]) -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "pixcam", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=REPO,
        )
    one_line(proc, "cannot write the output: No space left on device")


def test_a_reader_that_left_gets_no_traceback() -> None:
    """`pixcam models list | head -1`: the reader gone, pixcam ends quietly as `ls` would."""
    reader, writer = os.pipe()
    os.close(reader)  # gone before pixcam writes: every write is EPIPE
    proc = subprocess.run(
        [sys.executable, "-m", "pixcam", "models", "list"],
        stdout=writer,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    os.close(writer)
    assert (proc.returncode, proc.stderr) == (141, "")


def test_segment_with_its_standard_streams_closed_still_works(
    models_installed: Path, tmp_path: Path
) -> None:
    """`pixcam segment … <&- >&- 2>&-` (a script, cron): it exited 1, nothing written, as the
    redirect of libjpeg's fd 2 met sys.stderr = None."""
    photo = need(IMAGES / "doctor-5871743_640.jpg", "photos")
    mask = tmp_path / "m.png"
    command = f'"{sys.executable}" -m pixcam segment "{photo}" --out "{mask}" <&- >&- 2>&-'
    proc = subprocess.run(["bash", "-c", command], timeout=300, cwd=REPO)
    assert proc.returncode == 0
    assert cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE).shape == (427, 640)


def as_a_user(*args: str) -> list[str]:
    """`args` run so that file permissions bind: as root, without the capabilities that
    override them (setpriv); skips when that cannot be done."""
    if os.geteuid() != 0:
        return list(args)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    drop = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}", *args]


@pytest.mark.parametrize("args", [("segment", "{photo}", "--out", "{mask}"), ("models", "verify")])
def test_a_model_folder_pixcam_may_not_read_is_one_line(
    models_installed: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """The folder's mode 000: `segment` traced back (PermissionError from Path.is_file),
    `models verify` said "no models installed"."""
    folder = tmp_path / "models"
    shutil.copytree(models_installed, folder)
    folder.chmod(0)
    photo = need(IMAGES / "doctor-5871743_640.jpg", "photos")
    filled = [a.format(photo=photo, mask=tmp_path / "m.png") for a in args]
    try:
        proc = subprocess.run(
            as_a_user(sys.executable, "-m", "pixcam", *filled),
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PIXCAM_MODELS_DIR": str(folder)},
            cwd=REPO,
        )
    finally:
        folder.chmod(0o755)
    one_line(proc, f"model folder {folder} is not readable: check its permissions")


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--threads", "0", "--threads must be an integer 1..64, got 0"),
        ("--threads", "-1", "--threads must be an integer 1..64, got -1"),
        ("--threads", "99999999999", "--threads must be an integer 1..64"),
        ("--internal-resolution", "-5", "must be 0 (the model's default) or 64..4096, got -5"),
        ("--internal-resolution", "99999", "must be 0 (the model's default) or 64..4096"),
    ],
)
def test_segment_model_options_out_of_range_are_one_line(
    models_installed: Path, tmp_path: Path, option: str, value: str, expected: str
) -> None:
    """Before: "model file … could not be loaded; reinstall it" (threads 0, -1), a pybind
    TypeError or XNNPack RuntimeError traceback (huge values), -5 taken as a size."""
    photo = need(IMAGES / "doctor-5871743_640.jpg", "photos")
    proc = pixcam("segment", str(photo), "--out", str(tmp_path / "m.png"), option, value)
    one_line(proc, expected)


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["segment", "IMG", "--out", "IMG"], "--out IMG is the input"),
        (["segment", "IMG", "--alpha", "LINK"], "--alpha LINK is the input"),
        (["segment", "IMG", "--out", "m.png", "--overlay", "./m.png"], "both name ./m.png"),
        (["segment", "VIDEO", "--out", "VIDEO"], "--out VIDEO is the input"),
        (["run", "--input", "VIDEO", "--output", "VIDEO"], "--output VIDEO is the input"),
        (["run", "--input", "VIDEO", "--output", "IMG", "--image", "IMG"], "background image"),
    ],
)
def test_an_output_never_writes_over_a_file_pixcam_reads(
    models_installed: Path, clip: Path, tmp_path: Path, command: list[str], said: str
) -> None:
    """`segment photo.jpg --out photo.jpg` wrote the mask over the photo, `run --input
    talk.mp4 --output talk.mp4` left 3 frames of the talk."""
    photo = need(IMAGES / "doctor-5871743_640.jpg", "photos")
    shutil.copy(photo, tmp_path / "p.jpg")
    shutil.copy(clip, tmp_path / "v.mp4")
    (tmp_path / "link.jpg").symlink_to("p.jpg")
    names = {"IMG": str(tmp_path / "p.jpg"), "VIDEO": str(tmp_path / "v.mp4")}
    names["LINK"] = str(tmp_path / "link.jpg")
    before = {p.name: p.read_bytes() for p in (tmp_path / "p.jpg", tmp_path / "v.mp4")}
    argv = [names.get(a, a) for a in command] + (["--frames", "3"] if command[0] == "run" else [])
    for placeholder, name in names.items():
        said = said.replace(placeholder, name)
    proc = subprocess.run(
        [sys.executable, "-m", "pixcam", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    one_line(proc, said)
    assert {n: (tmp_path / n).read_bytes() for n in before} == before


def test_segment_again_into_the_same_folder_leaves_its_results_alone(
    models_installed: Path, tmp_path: Path
) -> None:
    """`segment photos --out-dir photos` run twice segmented its own masks and overlays:
    1, 3, 7 results per photo, masks of masks."""
    shutil.copy(need(IMAGES / "doctor-5871743_640.jpg", "photos"), tmp_path / "p.jpg")
    for _ in range(2):
        proc = pixcam("segment", str(tmp_path), "--out-dir", str(tmp_path), "--out", "--overlay")
        assert proc.returncode == 0, proc.stderr
        assert "1 of 1 images segmented" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jpg", "p.mask.png", "p.overlay.png"]


@pytest.mark.parametrize("frames", ["0", "-1"])
def test_run_of_no_frames_is_refused(
    models_installed: Path, clip: Path, tmp_path: Path, frames: str
) -> None:
    """`run --frames 0` (or -1) wrote one frame and exited 0."""
    out = tmp_path / "o.mp4"
    proc = pixcam("run", "--input", str(clip), "--output", str(out), "--frames", frames)
    one_line(proc, f"--frames {frames}: give a whole number of 1 or more")
    assert not out.exists()
