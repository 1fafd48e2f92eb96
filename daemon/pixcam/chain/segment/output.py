"""The network's result on its output grid, and how that grid maps back onto the frame."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class GridMapping:
    """Where the frame sits on the output grid.

    The frame was scaled to `content` pixels (width, height) inside the network input (padding
    to the right and below), and output cell i sits on input pixel i*stride. With these two
    facts any target size covering the whole frame is one affine warp away.
    """

    frame_size: tuple[int, int]
    content: tuple[int, int]
    stride: int

    def matrix(self, size: tuple[int, int]) -> np.ndarray:
        """Affine map from target pixel (u, v) to grid coordinates (pixel centres aligned)."""
        (cw, ch), (ow, oh), s = self.content, size, self.stride
        ax, ay = cw / ow / s, ch / oh / s
        bx, by = (0.5 * cw / ow - 0.5) / s, (0.5 * ch / oh - 0.5) / s
        return np.array([[ax, 0.0, bx], [0.0, ay, by]], dtype=np.float64)

    def warp(self, grid: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        size = size or self.frame_size
        return cv2.warpAffine(
            grid,
            self.matrix(size),
            size,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )


@dataclass
class SegmentationOutput:
    """Person probability (and part logits) on the network's grid, plus the grid mapping."""

    segments: np.ndarray  # float32 gh×gw, person probability 0..1
    part_heatmaps: np.ndarray | None  # float32 gh×gw×24 part logits, or None
    mapping: GridMapping

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.mapping.frame_size

    @property
    def cell(self) -> float:
        """Frame pixels per output cell: how fine the probability's detail is."""
        return self.frame_size[0] * self.mapping.stride / self.mapping.content[0]

    def person_probability(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """float32 probability over the whole frame at `size` (width, height), default its own."""
        return self.mapping.warp(self.segments, size)

    def part_logits(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """float32 h×w×24 part logits over the whole frame at `size`."""
        if self.part_heatmaps is None:
            raise ValueError("this model has no body-part outputs")
        return self.mapping.warp(self.part_heatmaps, size)

    def part_ids(self, threshold: float = 0.5, size: tuple[int, int] | None = None) -> np.ndarray:
        """int32 part id per pixel: -1 outside the person, 0..23 inside (argmax of the parts)."""
        ids = np.argmax(self.part_logits(size), axis=2).astype(np.int32)
        ids[self.person_probability(size) < threshold] = -1
        return ids
