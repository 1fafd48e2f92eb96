"""MediaPipe selfie segmentation: a fixed-size input and a full-size probability output."""

from __future__ import annotations

import numpy as np

from pixcam.chain.segment.base import Segmenter
from pixcam.chain.segment.output import GridMapping, SegmentationOutput


class SelfieSegmenter(Segmenter):
    """The input size is fixed by the model, so the frame is letterboxed into it (scaled to
    fit, padded right and below); `internal_resolution` does not apply."""

    def input_size(self, width: int, height: int) -> tuple[int, int, int, int]:
        in_h, in_w = self.engine.input_shape
        scale = min(in_w / width, in_h / height)
        cw = min(in_w, max(1, round(width * scale)))
        ch = min(in_h, max(1, round(height * scale)))
        return in_w, in_h, cw, ch

    def decode(self, outputs: dict[str, np.ndarray], mapping: GridMapping) -> SegmentationOutput:
        prob = outputs[self.spec.outputs["segments"]][..., 0]
        if not self.spec.segments_are_probabilities:
            prob = 1.0 / (1.0 + np.exp(-prob))
        return SegmentationOutput(np.ascontiguousarray(prob, dtype=np.float32), None, mapping)
