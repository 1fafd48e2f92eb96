"""Person and body-part segmentation, with the seed's API.

seg = load_segmenter("bodypix-050-s16-float", threads=2, internal_resolution=481)
person = segment_person(seg, frame_bgr, threshold=0.5)   # .data uint8 0/1, .probabilities
parts = segment_parts(seg, frame_bgr)                     # .data int32, -1 or 0..23
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pixcam import models
from pixcam.chain.segment.base import Segmenter
from pixcam.chain.segment.bodypix import BodyPixSegmenter
from pixcam.chain.segment.engine import Engine
from pixcam.chain.segment.fused import SHORT_SIDE, FusedSegmenter
from pixcam.chain.segment.output import GridMapping, SegmentationOutput
from pixcam.chain.segment.selfie import SelfieSegmenter
from pixcam.errors import PixcamError
from pixcam.models.selfie2f32 import selfie_for_input
from pixcam.modes import QUALITIES

FAMILIES: dict[str, type[Segmenter]] = {"bodypix": BodyPixSegmenter, "selfie": SelfieSegmenter}

# `[model] quality` on a BodyPix model (measured in docs/cut.md): the network input's long side
# (0: the model's own) and whether the selfie model is fused in. "balanced" fuses a smaller
# BodyPix input with the selfie model: more accurate than BodyPix alone at 417 px for ~1.5 ms
# more per 720p frame; without the selfie model installed it is BodyPix alone at its own size.
PRESETS: dict[str, tuple[int, bool]] = {
    "fast": (321, False),
    "balanced": (289, True),
    "best": (0, True),
}
# The model fused with BodyPix: its builtin float32 form (faster, the same output) when
# installed, else the published file.
PARTNERS = ("selfie-general-f32", "selfie-general")

log = logging.getLogger(__name__)

__all__ = [
    "QUALITIES",
    "FusedSegmenter",
    "GridMapping",
    "PartSegmentation",
    "PersonSegmentation",
    "SegmentationOutput",
    "Segmenter",
    "load_segmenter",
    "network_resolution",
    "segment_parts",
    "segment_person",
]


@dataclass
class PersonSegmentation:
    width: int
    height: int
    data: np.ndarray  # uint8 H×W, 1 = person
    probabilities: np.ndarray  # float32 H×W, 0..1


@dataclass
class PartSegmentation:
    width: int
    height: int
    data: np.ndarray  # int32 H×W, -1 outside the person, 0..23 the part id


def load_segmenter(
    name: str | None = None,
    threads: int = 1,
    internal_resolution: int = 0,
    quality: str | None = None,
) -> Segmenter:
    """A segmenter for an installed model (None or "default" = the project's default).

    `quality` (a `[model] quality` preset, see PRESETS) applies to BodyPix models: it sets the
    network input unless `internal_resolution` is given, and may fuse the selfie model in
    (FusedSegmenter) when that is installed. None: the model alone, as it is.
    """
    if quality is not None and quality not in QUALITIES:
        raise PixcamError(f"unknown quality {quality!r}: use one of {', '.join(QUALITIES)}")
    spec = models.resolve(name)
    family = FAMILIES.get(spec.family)
    if family is None:
        raise PixcamError(f"model {spec.name} has unknown family {spec.family!r}")
    fuse = quality is not None and spec.family == "bodypix" and PRESETS[quality][1]
    partner = _partner(spec, threads, quality) if fuse else None
    resolution = network_resolution(spec, quality, internal_resolution, partner is not None)
    # The verified bytes, not the path: the stream must not depend on the file afterwards.
    engine = Engine(spec.path, threads, models.read_verified(spec))
    segmenter = family(spec, engine, resolution)
    if partner is None:
        return segmenter
    return FusedSegmenter(segmenter, partner)  # type: ignore[return-value]


def _partner(spec: models.ModelSpec, threads: int, quality: str | None) -> Segmenter | None:
    for name in PARTNERS[:-1]:
        try:
            return _selfie_partner(name, threads)
        except PixcamError:
            continue
    try:
        return _selfie_partner(PARTNERS[-1], threads)
    except PixcamError as exc:
        last = PARTNERS[-1]
        log.warning("quality %s needs %s (%s); running %s alone", quality, last, exc, spec.name)
        return None


def _selfie_partner(name: str, threads: int) -> Segmenter:
    """The selfie model as fused: on the square and on the rectangles a side shorter
    (`fused.SHORT_SIDE`), each graph with its convolutions before the upsamplings
    (`selfie2f32.selfie_for_input`); the file as it is if its graph cannot be rewritten."""
    segmenter = load_segmenter(name, threads)
    assert isinstance(segmenter, SelfieSegmenter)
    spec = segmenter.spec
    side, _ = segmenter.engine.input_shape
    short = round(side * SHORT_SIDE)
    content = models.read_verified(spec)
    try:
        engines = [
            Engine(spec.path, threads, selfie_for_input(content, h, w))
            for h, w in ((side, side), (short, side), (side, short))
        ]
    except PixcamError as exc:
        log.warning("%s runs on the square only (%s)", spec.name, exc)
        return segmenter
    fused = SelfieSegmenter(spec, engines[0])
    for engine in engines[1:]:
        fused.add_input(engine)
    return fused


def network_resolution(
    spec: models.ModelSpec, quality: str | None, internal_resolution: int, fused: bool = True
) -> int:
    """The network input's long side that `quality` gives (0: the model's own). A preset that
    fuses the selfie model but runs without it (`fused` False) keeps the model's own size."""
    if spec.family != "bodypix" or quality is None or internal_resolution:
        return internal_resolution
    resolution, fuses = PRESETS[quality]
    return resolution if fused or not fuses else 0


def _check_frame(frame: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise PixcamError(
            f"expected an 8-bit colour frame (H×W×3 uint8), got shape {frame.shape} {frame.dtype}"
        )


def segment_person(
    segmenter: Segmenter, frame_bgr: np.ndarray, threshold: float = 0.5
) -> PersonSegmentation:
    _check_frame(frame_bgr)
    prob = segmenter.run(frame_bgr, parts=False).person_probability()
    h, w = prob.shape
    return PersonSegmentation(w, h, (prob >= threshold).astype(np.uint8), prob)


def segment_parts(
    segmenter: Segmenter, frame_bgr: np.ndarray, threshold: float = 0.5
) -> PartSegmentation:
    _check_frame(frame_bgr)
    if not segmenter.has_parts:
        raise PixcamError(
            f"model {segmenter.spec.name} has no body-part outputs; pick one whose "
            "`pixcam models list` entry says person+parts"
        )
    ids = segmenter.run(frame_bgr, parts=True).part_ids(threshold)
    h, w = ids.shape
    return PartSegmentation(w, h, ids)
