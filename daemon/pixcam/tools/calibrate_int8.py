"""Make the calibration ranges the int8 BodyPix models are quantized from at install time.

    pixcam models calibrate --data ../shared/data [--no-iou] [--model NAME]
        [--frames-per-video 8] [--limit N] [--out DIR]

For every derived model in models.toml (or `--model`): run its installed float model over the
licensed calibration set (`--data`: the Pixabay photos in images/ and evenly spaced frames of
the Pixabay videos in video/, see `quantize.calibration_frames`), write the per-tensor
activation ranges to the package file named by the recipe (`daemon/pixcam/models/calibration/
*.json`, numbers only, no images; `--out DIR` writes them into DIR instead, e.g. for a trial),
quantize from that file as `pixcam models install` does, and print the result's sha256 and size
(to pin in models.toml) and the mean person-mask IoU of float and int8 on the dev photos
(`$PIXCAM_DEV_DATA`; internal resolution 481, 1 thread; `--limit N`: the first N), which must
stay within 0.5 point.

A build tool for developers: users never need the photos; they get the ranges file with pixcam.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pixcam import models
from pixcam.chain.segment.bodypix import BodyPixSegmenter
from pixcam.chain.segment.engine import Engine
from pixcam.errors import PixcamError
from pixcam.models import quantize
from pixcam.tools import evaluate

PACKAGE = Path(quantize.__file__).resolve().parent  # the recipe's ranges path is under it


def mean_iou(spec: models.ModelSpec, model_bytes: bytes, samples: list[evaluate.Sample]) -> float:
    tmp = models.models_dir() / f".iou-{spec.file}"
    tmp.write_bytes(model_bytes)
    try:
        seg = BodyPixSegmenter(spec, Engine(tmp, threads=1), internal_resolution=481)
        return float(np.mean([s for _, s in evaluate.sample_ious(seg, samples)]))
    finally:
        tmp.unlink()


def calibrate(
    data: Path,
    *,
    model: str | None = None,
    frames_per_video: int | None = None,
    limit: int | None = None,
    out_dir: Path | None = None,
    iou: bool = True,
) -> Iterator[str]:
    """Make each derived model's ranges file (into the package unless `out_dir`); one line
    per model (see the module's doc)."""
    derived = [s for s in models.list_models() if s.derived_from is not None]
    if model is not None:
        derived = [models.get_spec(model)]
        if derived[0].derived_from is None:
            raise PixcamError(f"{model} is not derived from a float model: nothing to make")
    if not data.is_dir():
        raise PixcamError(f"the calibration set not found at {data}")
    for option, value in (("--frames-per-video", frames_per_video), ("--limit", limit)):
        if value is not None and value < 1:  # -3 made ranges of the photos alone
            raise PixcamError(f"{option} {value}: give a whole number of 1 or more")
    if out_dir is not None and (out_dir.exists() or out_dir.is_symlink()) and not out_dir.is_dir():
        raise PixcamError(f"--out {out_dir} is not a folder: give a folder for the ranges files")
    frames = quantize.calibration_frames(data, frames_per_video or quantize.FRAMES_PER_VIDEO)
    dev = evaluate.default_data_dir() if iou else None
    samples = evaluate.load_samples(dev, limit) if dev else []
    for spec in derived:
        base = models.resolve(spec.derived_from)
        float_bytes = base.path.read_bytes()
        size = tuple(spec.recipe["calibration_size"])
        ranges = quantize.calibrate(float_bytes, frames, size=size)  # type: ignore[arg-type]
        about = {
            "model": spec.name,
            "float_model": base.name,
            "float_sha256": base.sha256,
            "images": f"{len(frames)}: {spec.recipe['calibration']}",
            "size": list(size),
            "made_by": "pixcam models calibrate",
        }
        out = (out_dir or PACKAGE) / spec.recipe["ranges"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(quantize.ranges_to_json(ranges, about), encoding="utf-8")
        # From the file just written, as `pixcam models install` quantizes from the shipped one.
        made = quantize.quantize_bytes(float_bytes, quantize.parse_ranges(out.read_text()))
        line = (
            f"{spec.name}: {len(ranges)} ranges -> {out}; "
            f"sha256 {hashlib.sha256(made).hexdigest()} ({len(made)} bytes)"
        )
        if samples:
            f_iou = mean_iou(base, float_bytes, samples)
            q_iou = mean_iou(spec, made, samples)
            line += f"; dev IoU float {f_iou:.4f} int8 {q_iou:.4f} ({len(samples)} photos)"
        yield line
