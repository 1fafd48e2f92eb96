"""BodyPix 2.0 (MobileNetV1): person segments and 24 body-part heatmaps at stride 8 or 16."""

from __future__ import annotations

import math

import numpy as np

from pixcam.chain.segment.base import Segmenter
from pixcam.chain.segment.output import GridMapping, SegmentationOutput


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class BodyPixSegmenter(Segmenter):
    """The input is resized at run time to the frame's aspect ratio, `stride*k + 1` pixels a
    side, so output cell i lands exactly on input pixel i*stride and hardly any padding is
    needed. `internal_resolution` is the long side of that input."""

    def input_size(self, width: int, height: int) -> tuple[int, int, int, int]:
        s = self.spec.output_stride
        long_in = s * max(1, round((self.internal_resolution - 1) / s)) + 1
        scale = long_in / max(width, height)
        cw = min(long_in, max(1, round(width * scale)))
        ch = min(long_in, max(1, round(height * scale)))
        in_w = s * math.ceil((cw - 1) / s) + 1
        in_h = s * math.ceil((ch - 1) / s) + 1
        return in_w, in_h, cw, ch

    def decode(self, outputs: dict[str, np.ndarray], mapping: GridMapping) -> SegmentationOutput:
        segments = sigmoid(outputs[self.spec.outputs["segments"]][..., 0])
        parts = outputs.get(self.spec.outputs.get("part_heatmaps", ""))
        return SegmentationOutput(segments.astype(np.float32), parts, mapping)
