"""BodyPix and the MediaPipe selfie model run on the same frame, their probabilities averaged.

The two networks fail differently: BodyPix (stride 16) is blocky and claims bright background
structures beside the body, the selfie model (full-resolution output, trained on
webcam framing) follows the outline more closely but drops parts of a body further from the
camera. On the dev photos a weighted mean of both beats either one alone (docs/cut.md). Body
parts come from BodyPix only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pixcam.i420 import Frame
from pixcam.pyramid import Pyramid
from pixcam.segment.base import Segmenter
from pixcam.segment.output import SegmentationOutput


@dataclass
class FusedOutput(SegmentationOutput):
    """BodyPix's output whose person probability is blended with a second model's."""

    second: SegmentationOutput | None = None
    weight: float = 0.6  # of BodyPix's probability; the second model gets the rest

    def person_probability(self, size: tuple[int, int] | None = None) -> np.ndarray:
        own = super().person_probability(size)
        if self.second is None:
            return own
        other = self.second.person_probability(size or self.frame_size)
        return cv2.addWeighted(own, self.weight, other, 1.0 - self.weight, 0.0)


class FusedSegmenter:
    """Looks like the main `Segmenter` (spec, parts, run) but runs both models."""

    # 0.6 rather than an even mean: where the two disagree outright (1 vs 0) the pixel
    # then follows BodyPix instead of sitting exactly on the 0.5 threshold; on the dev photos
    # mean IoU 0.893 (0.5) → 0.900 (0.6), 0.900 (0.7) (docs/cut.md).
    def __init__(self, main: Segmenter, second: Segmenter, weight: float = 0.6) -> None:
        self.main = main
        self.second = second
        self.weight = weight
        self.spec = main.spec

    @property
    def has_parts(self) -> bool:
        return self.main.has_parts

    @property
    def internal_resolution(self) -> int:
        return self.main.internal_resolution

    def run(self, frame: Frame, parts: bool = True, pyramid: Pyramid | None = None) -> FusedOutput:
        # Both models' inputs from the one pyramid (the chain passes the frame's).
        pyramid = pyramid or Pyramid(frame)
        a = self.main.run(frame, parts=parts, pyramid=pyramid)
        b = self.second.run(frame, parts=False, pyramid=pyramid)
        return FusedOutput(a.segments, a.part_heatmaps, a.mapping, b, self.weight)
