"""MediaPipe selfie segmentation: a fixed-size input and a full-size probability output."""

from __future__ import annotations

import math

import numpy as np

from pixcam.chain.pyramid import Box
from pixcam.chain.segment.base import Segmenter
from pixcam.chain.segment.engine import Engine
from pixcam.chain.segment.output import GridMapping, SegmentationOutput
from pixcam.models import ModelSpec


class SelfieSegmenter(Segmenter):
    """The input size is fixed by the model, so the frame is letterboxed into it (scaled to
    fit, padded right and below); `internal_resolution` does not apply. A region may run on
    an engine made for an input of its own aspect (`add_input`)."""

    def __init__(self, spec: ModelSpec, engine: Engine, internal_resolution: int = 0) -> None:
        super().__init__(spec, engine, internal_resolution)
        self._own = engine  # for whole frames
        self._engines = [engine]  # every input shape there is an engine for

    @property
    def input_shapes(self) -> set[tuple[int, int]]:
        """(height, width) of the inputs there are engines for."""
        return {e.input_shape for e in self._engines}

    def add_input(self, engine: Engine) -> None:
        """Run regions of `engine`'s input aspect on it (the same network for another input
        size: `models.selfie2f32.selfie_for_input`)."""
        self._engines.append(engine)

    def engine_for(self, region: Box | None) -> Engine:
        """The whole frame's engine; for a region, the one whose input's aspect is nearest."""
        if region is None:
            return self._own
        aspect = (region[2] - region[0]) / (region[3] - region[1])

        def off(engine: Engine) -> float:
            h, w = engine.input_shape
            return abs(math.log(aspect * h / w))

        return min(self._engines, key=off)

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
