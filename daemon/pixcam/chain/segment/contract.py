"""The `Segmenter` contract: what the chain needs of a model, whatever runs it.

`segment.base.Segmenter` (BodyPix, the selfie model), `segment.fused.FusedSegmenter` and the
tests' fakes keep it; `effects.Effects` and the runner rely on nothing else.
"""

from __future__ import annotations

from typing import Protocol

from pixcam.chain.pyramid import Pyramid
from pixcam.chain.segment.output import SegmentationOutput
from pixcam.i420 import Frame


class Segmenter(Protocol):
    """One model, ready to run (loaded, verified and run once by whoever made it).

    - `has_parts`: read-only; whether `run(..., parts=True)` fills the 24 part logits.
    - `run(frame, parts, pyramid)`: one frame in, BGR uint8 H×W×3 or `I420`, any size and
      aspect (padded, never stretched); the frame is only read. `pyramid`, when given, is
      of this very frame (its halvings are shared with the later stages). The output covers
      the whole frame: `person_probability(size)` is float32 0..1 at any size, `cell` says
      how fine its detail is, `part_heatmaps` is None when `parts` is False or the model
      has none. A segmenter may keep state between frames (the fused one follows the person
      on a stream), so one caller runs it at a time (the runner's worker).
    - Faults: whatever `run` raises fails that frame only; the runner logs it (rate-limited)
      and sends the frame unprocessed. A model that cannot be loaded is a `PixcamError` of
      the loader (`segment.load_segmenter`), never of `run`.
    """

    @property
    def has_parts(self) -> bool: ...

    def run(
        self, frame: Frame, parts: bool = True, pyramid: Pyramid | None = None
    ) -> SegmentationOutput: ...
