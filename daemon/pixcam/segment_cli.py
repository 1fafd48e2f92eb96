"""`pixcam segment`: BodyPix on an image or a video file, writing masks and overlays."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from pixcam import images, overlay
from pixcam.errors import PixcamError
from pixcam.segment import Segmenter, load_segmenter

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
MAX_PIXELS = images.MAX_PIXELS


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


def render(
    segmenter: Segmenter, frame: np.ndarray, args: argparse.Namespace
) -> dict[str, np.ndarray]:
    """Everything asked for, for one frame: mask, overlay, probabilities."""
    out = segmenter.run(frame, parts=args.parts)
    prob = out.person_probability()
    person = (prob >= args.threshold).astype(np.uint8)
    images = {"out": person * np.uint8(255)}
    if args.overlay:
        if args.parts:
            mask_rgba = overlay.to_colored_part_mask(out.part_ids(args.threshold))
        else:
            mask_rgba = overlay.to_mask(person, mask_background=args.mask_background)
        images["overlay"] = overlay.draw_mask(frame, mask_rgba, args.opacity)
    if args.probabilities:
        images["probabilities"] = np.clip(prob * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return images


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
    for key in ("out", "overlay", "probabilities"):
        target = getattr(args, key, None)
        if target and Path(target).suffix.lower() in IMAGE_SUFFIXES | {".gif"}:
            raise PixcamError(
                f"{path} is a video, so --{key} needs a video path such as "
                f"{Path(target).with_suffix('.mp4').name} (not {target})"
            )


def _segment_video(path: Path, segmenter: Segmenter, args: argparse.Namespace) -> int:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise PixcamError(f"{path} is neither an image nor a video OpenCV can read")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    writers: dict[str, cv2.VideoWriter] = {}
    count = 0
    try:
        for frame in _video_frames(capture):
            for key, image in render(segmenter, frame, args).items():
                if key not in writers:
                    h, w = image.shape[:2]
                    target = str(getattr(args, key))
                    writer = cv2.VideoWriter(
                        target, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h), image.ndim == 3
                    )
                    if not writer.isOpened():
                        raise PixcamError(f"cannot write video {target}; use a path ending in .mp4")
                    writers[key] = writer
                writers[key].write(image)
            count += 1
    finally:
        capture.release()
        for writer in writers.values():
            writer.release()
    if count == 0:
        raise PixcamError(f"{path} has no readable video frames")
    print(f"{count} frames segmented with {segmenter.spec.name} -> {args.out}")
    return 0


def run(args: argparse.Namespace) -> int:
    path = Path(args.input)
    if not path.exists():
        raise PixcamError(f"{path} does not exist")
    is_video = path.suffix.lower() not in IMAGE_SUFFIXES and path.is_file()
    if is_video:
        _check_video_outputs(path, args)
    frame = None if is_video else read_image(path)
    segmenter = load_segmenter(args.model, args.threads, args.internal_resolution or 0)
    _check_args(args, segmenter)
    if frame is None:
        return _segment_video(path, segmenter, args)
    for key, image in render(segmenter, frame, args).items():
        _write_image(Path(getattr(args, key)), image)
    h, w = frame.shape[:2]
    print(f"{w}×{h} segmented with {segmenter.spec.name} -> {args.out}")
    return 0
