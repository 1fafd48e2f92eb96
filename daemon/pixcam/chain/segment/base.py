"""What every model family shares: fitting the frame into the input tensor and running it."""

from __future__ import annotations

from abc import ABC, abstractmethod

import cv2
import numpy as np

from pixcam.chain.pyramid import Box, Pyramid
from pixcam.chain.segment.engine import Engine
from pixcam.chain.segment.output import GridMapping, SegmentationOutput
from pixcam.i420 import Frame
from pixcam.models import ModelSpec

# How each input convention turns uint8 RGB into the tensor: (dtype, scale, offset, pad value).
# The offset's 2e-6 below -1 matters to the int8 BodyPix alone: its input steps of 2/255 from
# zero point -1 put every v/127.5 - 1 exactly on a rounding tie, which float noise decides;
# just below every tie matches the numpy normalisation it replaced
# (docs/cut.md#the-inputs-rounding).
_NORMALISE = {
    "minus_one_one": (np.float32, 1 / 127.5, -1.0 - 2e-6, 0.0),
    "zero_one": (np.float32, 1 / 255.0, 0.0, 0.5),
    "uint8": (np.uint8, 1.0, 0.0, 128),
}


class Segmenter(ABC):
    """Runs one model on frames of any size, keeping the aspect ratio (pad, don't stretch);
    keeps the `contract.Segmenter` contract."""

    def __init__(self, spec: ModelSpec, engine: Engine, internal_resolution: int = 0) -> None:
        if spec.input not in _NORMALISE:
            raise ValueError(f"{spec.name}: unknown input convention {spec.input!r}")
        self.spec = spec
        self.engine = engine
        self.internal_resolution = internal_resolution or spec.default_resolution
        self._dtype, self._scale, self._offset, self._pad = _NORMALISE[spec.input]
        self._input: tuple[int, int] | None = None  # (w, h) the input tensor was given
        self._content: tuple[int, int] | None = None  # (w, h) last written into it

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
        self,
        frame: Frame,
        parts: bool = True,
        pyramid: Pyramid | None = None,
        region: Box | None = None,
    ) -> SegmentationOutput:
        """Segment one frame (BGR or I420); `parts=False` skips reading the 24 part channels.

        `pyramid` (of this frame) lends its halvings, shared with the later stages: the input
        is area-averaged without aliasing, and the full-resolution pass is paid once.
        `region` (x0, y0, x1, y1 in frame pixels): segment only that part of the frame; the
        output then covers the region as if it were the frame. Where the region leaves the
        frame, the frame is mirrored at its edge (`region_input`)."""
        height, width = frame.shape[:2]
        if region is not None:
            width, height = region[2] - region[0], region[3] - region[1]
        engine = self.engine_for(region)
        if engine is not self.engine:  # another input's engine: its tensor is new to us
            self.engine, self._input, self._content = engine, None, None
        in_w, in_h, cw, ch = self.input_size(width, height)
        self._resize(in_w, in_h)
        pyramid = pyramid or Pyramid(frame)
        small = (
            pyramid.down_to((cw, ch)) if region is None else region_input(pyramid, region, (cw, ch))
        )
        content = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)  # a new array: `small` may be shared
        self.engine.fill_input(lambda tensor: self._fill(tensor, content))
        names = self.output_names(parts)
        outputs = dict(zip(names, self.engine.invoke(names), strict=True))
        mapping = GridMapping((width, height), (cw, ch), self.spec.output_stride)
        return self.decode(outputs, mapping)

    def engine_for(self, region: Box | None) -> Engine:
        """The engine to run `region` (None: the whole frame) on: the one engine here."""
        return self.engine

    def _resize(self, in_w: int, in_h: int) -> None:
        if self._input != (in_w, in_h):
            self.engine.resize_input(in_h, in_w)
            self._input, self._content = (in_w, in_h), None  # a new tensor: pad it all

    def _fill(self, tensor: np.ndarray, rgb: np.ndarray) -> None:
        """Write `rgb` normalised into the top left of the input tensor, in one pass; the rest
        is padding, written only when the content's size changes (the tensor keeps it)."""
        ch, cw = rgb.shape[:2]
        if self._content != (cw, ch):
            tensor[...] = self._pad
            self._content = (cw, ch)
        view = tensor[:ch, :cw]
        if self._dtype == np.uint8:
            view[...] = rgb
        else:
            cv2.addWeighted(rgb, self._scale, rgb, 0.0, self._offset, dst=view, dtype=cv2.CV_32F)


def region_input(pyramid: Pyramid, region: Box, size: tuple[int, int]) -> np.ndarray:
    """`region` of the pyramid's frame at `size` (w, h); where it leaves the frame, the frame
    mirrored at its edge (without repeating the edge pixel). On the dev photos mirroring beat
    repeating the edge pixel and a grey or black border
    (docs/cut.md#round-4-the-selfie-models-input): it continues
    the body and the background the way the network expects a picture to go on."""
    x0, y0, x1, y1 = region
    fw, fh = pyramid.size
    inside = max(0, x0), max(0, y0), min(fw, x1), min(fh, y1)
    if inside == region:
        return pyramid.region(region, size)
    if inside[0] >= inside[2] or inside[1] >= inside[3]:
        raise ValueError(f"region {region} lies outside the {fw}×{fh} frame")
    (w, h), (rw, rh) = size, (x1 - x0, y1 - y0)
    left, top = round((inside[0] - x0) * w / rw), round((inside[1] - y0) * h / rh)
    right, bottom = round((x1 - inside[2]) * w / rw), round((y1 - inside[3]) * h / rh)
    part = pyramid.region(inside, (max(1, w - left - right), max(1, h - top - bottom)))
    return cv2.copyMakeBorder(part, top, bottom, left, right, cv2.BORDER_REFLECT_101)
