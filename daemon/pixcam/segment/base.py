"""What every model family shares: fitting the frame into the input tensor and running it."""

from __future__ import annotations

from abc import ABC, abstractmethod

import cv2
import numpy as np

from pixcam.i420 import Frame
from pixcam.models import ModelSpec
from pixcam.pyramid import Pyramid
from pixcam.segment.engine import Engine
from pixcam.segment.output import GridMapping, SegmentationOutput

# How each input convention turns uint8 RGB into the tensor: (dtype, scale, offset, pad value).
_NORMALISE = {
    "minus_one_one": (np.float32, 1 / 127.5, -1.0, 0.0),
    "zero_one": (np.float32, 1 / 255.0, 0.0, 0.5),
    "uint8": (np.uint8, 1.0, 0.0, 128),
}


class Segmenter(ABC):
    """Runs one model on BGR frames of any size, keeping the aspect ratio (pad, don't stretch)."""

    def __init__(self, spec: ModelSpec, engine: Engine, internal_resolution: int = 0) -> None:
        if spec.input not in _NORMALISE:
            raise ValueError(f"{spec.name}: unknown input convention {spec.input!r}")
        self.spec = spec
        self.engine = engine
        self.internal_resolution = internal_resolution or spec.default_resolution
        self._dtype, self._scale, self._offset, self._pad = _NORMALISE[spec.input]
        self._batch: np.ndarray | None = None

    @property
    def has_parts(self) -> bool:
        return "part_heatmaps" in self.spec.outputs

    @abstractmethod
    def input_size(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(input width, input height, content width, content height) for a frame size."""

    @abstractmethod
    def decode(self, outputs: dict[str, np.ndarray], mapping: GridMapping) -> SegmentationOutput:
        """Turn the raw (dequantized) outputs into probabilities and part logits."""

    def output_names(self, parts: bool) -> list[str]:
        names = [self.spec.outputs["segments"]]
        if parts and self.has_parts:
            names.append(self.spec.outputs["part_heatmaps"])
        return names

    def run(
        self, frame: Frame, parts: bool = True, pyramid: Pyramid | None = None
    ) -> SegmentationOutput:
        """Segment one frame (BGR or I420); `parts=False` skips reading the 24 part channels.

        `pyramid` (of this frame) lends its halvings, shared with the later stages: the input
        is area-averaged without aliasing, and the full-resolution pass is paid once."""
        height, width = frame.shape[:2]
        in_w, in_h, cw, ch = self.input_size(width, height)
        batch = self._prepare(in_w, in_h)
        small = (pyramid or Pyramid(frame)).down_to((cw, ch))
        content = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)  # a new array: `small` may be shared
        if self._dtype == np.uint8:
            batch[0, :ch, :cw] = content
        else:
            np.multiply(content, self._scale, out=batch[0, :ch, :cw], casting="unsafe")
            batch[0, :ch, :cw] += self._offset
        names = self.output_names(parts)
        outputs = dict(zip(names, self.engine.run(batch, names), strict=True))
        mapping = GridMapping((width, height), (cw, ch), self.spec.output_stride)
        return self.decode(outputs, mapping)

    def _prepare(self, in_w: int, in_h: int) -> np.ndarray:
        """The input batch for this size, padded once; only the content area is rewritten."""
        if self._batch is None or self._batch.shape[1:3] != (in_h, in_w):
            self.engine.resize_input(in_h, in_w)
            self._batch = np.full((1, in_h, in_w, 3), self._pad, dtype=self._dtype)
        return self._batch
