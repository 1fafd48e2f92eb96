"""`pixcam segment`: BodyPix on images, folders or a video file, writing masks and overlays.

`--alpha` writes the alpha the live pipeline would composite with: the probability at the
pipeline's working size, refined in single-image mode (no temporal smoothing) with the
configured `[refine]` settings. Several images or folders go through one model load; their
outputs land in `--out-dir` as NAME.mask.png, NAME.alpha.png, NAME.overlay.png, NAME.prob.png.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from pixcam import images, models
from pixcam import paths as paths_mod
from pixcam.chain import overlay
from pixcam.chain.refine import Refiner, RefineSettings, probability_size
from pixcam.chain.segment import SegmentationOutput, Segmenter, load_segmenter
from pixcam.config import MAX_THREADS, Config, check_internal_resolution, load_config
from pixcam.errors import PixcamError
from pixcam.modes import STILL_SUFFIXES
from pixcam.paths import check_file
from pixcam.video.sources import MIN_FRAME_SIDE

log = logging.getLogger(__name__)

# A GIF may move: `pixcam segment` takes it as a video.
PICTURE_SUFFIXES = frozenset(STILL_SUFFIXES) - {".gif"}
MAX_PIXELS = images.MAX_PIXELS
# Output option → file name suffix in --out-dir.
OUTPUTS = {"out": "mask", "alpha": "alpha", "overlay": "overlay", "probabilities": "prob"}


def to_bgr8(image: np.ndarray, path: Path) -> np.ndarray:
    """Any image OpenCV reads (gray, RGBA, 16-bit, float) as 8-bit BGR."""
    if image.size == 0:
        raise PixcamError(f"{path} is an empty image")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise PixcamError(f"{path} has an unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if channels == 3:
        return image
    raise PixcamError(f"{path} has {channels} channels; expected gray, colour or colour+alpha")


def read_image(path: Path) -> np.ndarray:
    # The header's size is checked before decoding: a small file can declare gigapixels.
    return to_bgr8(images.read_image(path, "input", max_pixels=MAX_PIXELS), path)


def live_alpha(
    segmenter: Segmenter,
    frame: np.ndarray,
    settings: RefineSettings,
    out: SegmentationOutput | None = None,
) -> np.ndarray:
    """The alpha the live pipeline composites `frame` with (first frame: no smoothing)."""
    h, w = frame.shape[:2]
    if out is None:
        out = segmenter.run(frame, parts=False)
    prob = out.person_probability(size=probability_size(w, h, out.cell))
    return Refiner(settings).refine(frame, prob)


def render(
    segmenter: Segmenter,
    frame: np.ndarray,
    args: argparse.Namespace,
    refine: RefineSettings,
) -> dict[str, np.ndarray]:
    """Everything asked for, for one frame: mask, alpha, overlay, probabilities."""
    out = segmenter.run(frame, parts=args.parts)
    prob = out.person_probability()
    person = (prob >= args.threshold).astype(np.uint8)
    images = {}
    if args.out is not None:
        images["out"] = person * np.uint8(255)
    if args.alpha is not None:
        images["alpha"] = live_alpha(segmenter, frame, refine, out)
    if args.overlay is not None:
        if args.parts:
            mask_rgba = overlay.to_colored_part_mask(out.part_ids(args.threshold))
        else:
            mask_rgba = overlay.to_mask(person, mask_background=args.mask_background)
        images["overlay"] = overlay.draw_mask(frame, mask_rgba, args.opacity)
    if args.probabilities is not None:
        images["probabilities"] = np.clip(prob * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return images


def _check_model_options(args: argparse.Namespace) -> None:
    """--threads and --internal-resolution held to the config's ranges before the model
    loads (LiteRT's own errors blamed the model file, or traced back)."""
    if not 1 <= args.threads <= MAX_THREADS:
        raise PixcamError(f"--threads must be an integer 1..{MAX_THREADS}, got {args.threads}")
    check_internal_resolution(args.internal_resolution)


def _check_args(args: argparse.Namespace, segmenter: Segmenter) -> None:
    if not 0.0 <= args.threshold <= 1.0:
        raise PixcamError(f"--threshold must be between 0 and 1, got {args.threshold}")
    if not 0.0 <= args.opacity <= 1.0:
        raise PixcamError(f"--opacity must be between 0 and 1, got {args.opacity}")
    if args.parts and not segmenter.has_parts:
        raise PixcamError(
            f"model {segmenter.spec.name} has no body-part outputs; choose a model whose "
            "`pixcam models list` entry says person+parts"
        )


def _check_outputs(args: argparse.Namespace, batch: bool) -> None:
    """Single image: every output is a file name. --out-dir: outputs are bare flags."""
    given = {k: getattr(args, k) for k in OUTPUTS if getattr(args, k) is not None}
    for name in (*given.values(), args.out_dir):
        if name and paths_mod.too_long(name):
            raise paths_mod.name_error(name, "cannot write")
    if batch or args.out_dir:
        named = [f"--{k}" for k, v in given.items() if v]
        if not args.out_dir:
            raise PixcamError("several inputs or a folder need --out-dir DIR for the results")
        if named:
            raise PixcamError(
                f"with --out-dir give {', '.join(named)} without a file name "
                "(files are named after each input)"
            )
        if not given:
            args.out = ""  # nothing chosen: the mask
        return
    bare = [f"--{k}" for k, v in given.items() if v == ""]
    if bare:
        raise PixcamError(f"{', '.join(bare)} needs a file name (or use --out-dir DIR)")
    if not given:
        raise PixcamError("nothing to write: give --out FILE, --alpha FILE or --out-dir DIR")


def _check_overwrites(path: Path, args: argparse.Namespace) -> None:
    """No output may be the input (`--out photo.jpg` wrote the mask over the photo), nor
    two outputs one file (the second would replace the first)."""
    given = [(f"--{k}", str(getattr(args, k))) for k in OUTPUTS if getattr(args, k)]
    for i, (option, name) in enumerate(given):
        paths_mod.check_not_overwriting(name, option, {"the input": str(path)})
        for other, earlier in given[:i]:
            if paths_mod.same_file(name, earlier):
                raise PixcamError(f"{other} and {option} both name {name}: give each its own file")


def _expand_inputs(inputs: list[str], out_dir: str | None) -> list[Path]:
    """The files to segment: files as given, folders as their images (sorted, not nested),
    less the results an earlier run wrote there when the folder is `out_dir`."""
    paths: list[Path] = []
    for text in inputs:
        path = Path(text)
        if paths_mod.too_long(path):
            raise paths_mod.name_error(path, "input")
        if path.is_dir():
            images = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES
            )
            if out_dir and paths_mod.same_file(path, out_dir):
                images = [p for p in images if not _is_own_output(p)]
            if not images:
                kinds = ", ".join(sorted(PICTURE_SUFFIXES))
                raise PixcamError(f"folder {path} holds no images ({kinds})")
            paths += images
        else:
            paths.append(path)
    return paths


def _is_own_output(path: Path) -> bool:
    """NAME.mask.png and the like: segmented again, a second run on the same folder made
    masks of masks (1, 3, 7… files per photo)."""
    return path.name.endswith(tuple(f".{kind}.png" for kind in OUTPUTS.values()))


def _written(args: argparse.Namespace) -> str:
    return ", ".join(str(getattr(args, k)) for k in OUTPUTS if getattr(args, k))


def _write_image(path: Path, image: np.ndarray) -> None:
    try:
        ok = cv2.imwrite(str(path), image)
    except cv2.error:
        ok = False
    if not ok:
        raise PixcamError(f"cannot write {path}; use a writable path ending in .png or .jpg")


def _video_frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield frame


def _check_video_outputs(path: Path, args: argparse.Namespace) -> None:
    """A video's masks go into videos: an image path would silently hold one frame."""
    for key in ("out", "alpha", "overlay", "probabilities"):
        target = getattr(args, key, None)
        if target and Path(target).suffix.lower() in STILL_SUFFIXES:
            raise PixcamError(
                f"{path} is a video, so --{key} needs a video path such as "
                f"{Path(target).with_suffix('.mp4').name} (not {target})"
            )


def _segment_video(
    path: Path, segmenter: Segmenter, args: argparse.Namespace, refine: RefineSettings
) -> int:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise PixcamError(f"{path} is neither an image nor a video OpenCV can read")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    writers: dict[str, cv2.VideoWriter] = {}
    count = 0
    try:
        for frame in _video_frames(capture):
            h, w = frame.shape[:2]
            if count == 0 and min(w, h) < MIN_FRAME_SIDE:  # the writer fails on it, unsaid
                raise PixcamError(
                    f"input {path} is {w}×{h} pixels; pixcam needs frames of at least "
                    f"{MIN_FRAME_SIDE}×{MIN_FRAME_SIDE}"
                )
            # Each frame on its own, like the images (the live pipeline smooths over time).
            for key, image in render(segmenter, frame, args, refine).items():
                image = _even_sides(image)
                if key not in writers:
                    writers[key] = _video_writer(str(getattr(args, key)), fps, image)
                writers[key].write(image)
            count += 1
    finally:
        capture.release()
        for writer in writers.values():
            writer.release()
    if count == 0:
        raise PixcamError(f"{path} has no readable video frames")
    print(f"{count} frames segmented with {segmenter.spec.name} -> {_written(args)}")
    if w % 2 or h % 2:
        print(
            f"the {w}×{h} frames are written as {w + w % 2}×{h + h % 2}: a video needs even "
            "sides, so the last column or row is repeated"
        )
    return 0


def _even_sides(image: np.ndarray) -> np.ndarray:
    """`image` with its last row or column repeated where that side is odd: OpenCV's video
    writer would crop the side to even without a word."""
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return cv2.copyMakeBorder(image, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)


def _video_writer(target: str, fps: float, first: np.ndarray) -> cv2.VideoWriter:
    """An mp4 writer at the size and colour of the `first` image it will write."""
    h, w = first.shape[:2]
    writer = cv2.VideoWriter(target, cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h), first.ndim == 3)
    if not writer.isOpened():
        raise PixcamError(f"cannot write video {target}; use a path ending in .mp4")
    return writer


def _settings(args: argparse.Namespace) -> tuple[Config, RefineSettings]:
    """The configuration (--config or the user's) and the refine settings it gives."""
    from pixcam.chain.effects import EffectsSettings

    cfg = load_config(args.config)
    if args.threshold is None:
        args.threshold = float(cfg.model.threshold)
    return cfg, EffectsSettings.from_config(cfg).refine


def _load(args: argparse.Namespace, cfg: Config) -> Segmenter:
    name = args.model or (None if models.is_default(cfg.model.name) else cfg.model.name)
    resolution = args.internal_resolution or int(cfg.model.internal_resolution)
    return load_segmenter(name, args.threads, resolution, args.quality or cfg.model.quality)


def _segment_batch(
    paths: list[Path], segmenter: Segmenter, args: argparse.Namespace, refine: RefineSettings
) -> int:
    """Every image into --out-dir; a bad file is reported in one line and skipped."""
    out_dir = Path(args.out_dir)
    if not paths_mod.is_dir(out_dir):
        raise PixcamError(f"--out-dir {out_dir} is not a folder; create it first")
    failed = 0
    for path in paths:
        try:
            if path.suffix.lower() not in PICTURE_SUFFIXES and path.is_file():
                raise PixcamError(f"{path} is not an image; segment a video on its own with --out")
            frame = read_image(path)
            for key, image in render(segmenter, frame, args, refine).items():
                _write_image(out_dir / f"{path.stem}.{OUTPUTS[key]}.png", image)
        except PixcamError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            failed += 1
    done = len(paths) - failed
    print(f"{done} of {len(paths)} images segmented with {segmenter.spec.name} -> {out_dir}")
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    paths = _expand_inputs(args.input, args.out_dir)
    batch = len(paths) > 1 or any(paths_mod.is_dir(p) for p in args.input)
    _check_outputs(args, batch)
    _check_model_options(args)
    cfg, refine = _settings(args)
    if args.out_dir:
        segmenter = _load(args, cfg)
        _check_args(args, segmenter)
        return _segment_batch(paths, segmenter, args, refine)
    path = paths[0]
    _check_overwrites(path, args)
    check_file(path, "input")  # missing, a folder, a FIFO, a device, a symlink loop: said so
    is_video = path.suffix.lower() not in PICTURE_SUFFIXES
    if is_video:
        _check_video_outputs(path, args)
    frame = None if is_video else read_image(path)
    segmenter = _load(args, cfg)
    _check_args(args, segmenter)
    if frame is None:
        return _segment_video(path, segmenter, args, refine)
    for key, image in render(segmenter, frame, args, refine).items():
        _write_image(Path(getattr(args, key)), image)
    h, w = frame.shape[:2]
    print(f"{w}×{h} segmented with {segmenter.spec.name} -> {_written(args)}")
    return 0
