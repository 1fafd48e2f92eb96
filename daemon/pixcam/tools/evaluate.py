"""Person-mask accuracy against photos with ground-truth masks (images/, masks/, manifest.csv)."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pixcam.chain.segment import Segmenter


@dataclass(frozen=True)
class Sample:
    name: str
    image: Path
    mask: Path
    upper_body: bool  # webcam-like framing, per the data set's manifest


def default_data_dir() -> Path | None:
    """`$PIXCAM_DEV_DATA`: a folder of photos with ground-truth masks and their manifest.csv."""
    folder = os.environ.get("PIXCAM_DEV_DATA")
    return Path(folder) if folder and (Path(folder) / "manifest.csv").is_file() else None


def load_samples(data_dir: Path, limit: int | None = None) -> list[Sample]:
    with (data_dir / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    samples = [
        Sample(
            r["name"],
            data_dir / "images" / f"{r['name']}.jpg",
            data_dir / "masks" / f"{r['name']}.png",
            r["upper_body_framing"] == "1",
        )
        for r in rows
    ]
    return samples[:limit] if limit else samples


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(pred, truth).sum()
    return float(np.logical_and(pred, truth).sum() / union) if union else 1.0


def read_pair(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    image = cv2.imread(str(sample.image), cv2.IMREAD_COLOR)
    truth = cv2.imread(str(sample.mask), cv2.IMREAD_GRAYSCALE)
    if image is None or truth is None:
        raise FileNotFoundError(f"cannot read {sample.image} or {sample.mask}")
    return image, truth > 127


def sample_ious(
    segmenter: Segmenter, samples: list[Sample], threshold: float = 0.5
) -> Iterator[tuple[Sample, float]]:
    for sample in samples:
        image, truth = read_pair(sample)
        prob = segmenter.run(image, parts=False).person_probability()
        yield sample, iou(prob >= threshold, truth)


@dataclass(frozen=True)
class Accuracy:
    mean_iou: float
    mean_iou_upper_body: float
    count: int


def accuracy(segmenter: Segmenter, samples: list[Sample], threshold: float = 0.5) -> Accuracy:
    scores = list(sample_ious(segmenter, samples, threshold))
    upper = [s for sample, s in scores if sample.upper_body]
    return Accuracy(
        float(np.mean([s for _, s in scores])),
        float(np.mean(upper)) if upper else float("nan"),
        len(scores),
    )
