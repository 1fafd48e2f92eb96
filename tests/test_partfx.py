"""Body-part effects: privacy stays on the chosen parts, the view colours only the person with
the seed's colouring, part names are checked, and smoothing calms part-label flicker."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
import pytest

from conftest import VIDEOS, need
from pixcam.chain import overlay
from pixcam.chain.partfx import PartEffects, PartSettings, work_size
from pixcam.chain.refine import Refiner, RefineSettings
from pixcam.chain.segment import GridMapping, SegmentationOutput, load_segmenter
from pixcam.errors import PixcamError
from pixcam.parts import PART_NAMES, RAINBOW, part_ids
from pixcam.tools import evaluate

FACE = part_ids(["face"])
BAND_CELLS = 3.5  # privacy reaches at most this many network cells (+ feather) past the face


@dataclass(eq=False)
class Shot:
    """One dev photo with its real segmentation; the ground truth the tests compare against
    (full-size part ids, the face region) is computed once per session, on first use."""

    name: str
    frame: np.ndarray
    out: SegmentationOutput
    alpha: np.ndarray  # the refined person alpha the pipeline would pass

    @property
    def cell(self) -> float:
        """Frame pixels per network output cell."""
        m = self.out.mapping
        return m.stride * m.frame_size[0] / m.content[0]

    @cached_property
    def ids(self) -> np.ndarray:
        """Full-size part ids (-1 outside the person)."""
        return self.out.part_ids(0.5)

    @cached_property
    def face_region(self) -> np.ndarray:
        """Where the model says face: full-size part ids, plus its own grid's face cells."""
        h, w = self.frame.shape[:2]
        ids = self.ids
        grid = np.argmax(self.out.part_heatmaps, axis=2)
        wins = (np.isin(grid, FACE) & (self.out.segments >= 0.5)).astype(np.uint8)
        cells = cv2.warpAffine(
            wins,
            self.out.mapping.matrix((w, h)),
            (w, h),
            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        return np.isin(ids, FACE) | (cells > 0)


@pytest.fixture(scope="session")
def seg(models_installed):
    return load_segmenter(None, threads=2)


@pytest.fixture(scope="session")
def shots(seg, dev_data) -> list[Shot]:
    """Every dev photo in which the model finds a face, with its real segmentation."""
    result = []
    for sample in evaluate.load_samples(dev_data):
        frame, _ = evaluate.read_pair(sample)
        h, w = frame.shape[:2]
        out = seg.run(frame, parts=True)
        prob = out.person_probability((max(1, w // 4), max(1, h // 4)))
        alpha = Refiner(RefineSettings(smoothing=0)).refine(frame, prob)
        shot = Shot(sample.name, frame, out, alpha)
        if np.isin(shot.ids, FACE).any():
            result.append(shot)
    assert len(result) >= 20
    return result


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.any(a != b, axis=2)


# ----------------------------------------------------------------------------- privacy
@pytest.mark.parametrize("mode", ["blur", "pixelate"])
def test_privacy_changes_only_the_face_and_hides_it(shots: list[Shot], mode: str) -> None:
    settings = PartSettings(privacy=mode, privacy_parts=("face",))
    for shot in shots:
        before = shot.frame.copy()
        result = PartEffects(settings).apply(shot.frame, shot.out, shot.alpha)
        assert np.array_equal(shot.frame, before), "the input frame must not be written"
        diff = changed(result, shot.frame)
        face = shot.face_region
        band = BAND_CELLS * shot.cell + 2 * settings.feather
        far = cv2.distanceTransform((~face).astype(np.uint8), cv2.DIST_L2, 5) > band
        assert not diff[far].any(), f"{shot.name}: {mode} changed pixels away from the face"
        assert not diff[shot.alpha == 0].any(), f"{shot.name}: {mode} changed the background"
        core = np.isin(shot.ids, FACE) & (shot.alpha >= 250)
        if core.sum() >= 200:  # the face really is anonymised, not just touched
            mad = np.abs(result.astype(np.int16) - shot.frame).sum(axis=2)[core].mean()
            assert mad > 10, f"{shot.name}: face barely changed ({mad:.1f})"
            assert diff[core].mean() > 0.85, shot.name


def test_privacy_mask_covers_the_face(shots: list[Shot]) -> None:
    fx = PartEffects(PartSettings(privacy="blur"))
    covered, total = 0, 0
    for shot in shots:
        h, w = shot.frame.shape[:2]
        mask = fx.privacy_mask(shot.out, shot.out.part_heatmaps, (w, h))
        face = np.isin(shot.ids, FACE) & (shot.alpha >= 128)
        if face.sum() < 20:
            continue  # a face too small to survive refinement: nothing to measure
        full = mask[face] >= 250
        assert full.mean() > 0.85, f"{shot.name}: only {full.mean():.0%} of the face covered"
        covered, total = covered + full.sum(), total + full.size
    assert covered / total > 0.97


def test_hands_and_part_lists_select_other_parts(shots: list[Shot]) -> None:
    shot = max(shots, key=lambda s: np.isin(s.ids, part_ids(["hands"])).sum())
    hands = np.isin(shot.ids, part_ids(["hands"])) & (shot.alpha >= 250)
    assert hands.sum() > 50, "no dev photo with visible hands"
    face_only = PartEffects(PartSettings(privacy="pixelate", privacy_parts=("face",)))
    by_name = PartEffects(
        PartSettings(privacy="pixelate", privacy_parts=("left_hand", "right_hand"))
    )
    d_face = changed(face_only.apply(shot.frame, shot.out, shot.alpha), shot.frame)
    d_hands = changed(by_name.apply(shot.frame, shot.out, shot.alpha), shot.frame)
    assert d_hands[hands].mean() > 0.8
    assert d_hands[hands].mean() > d_face[hands].mean() + 0.5


# ------------------------------------------------------------------------------- names
def test_unknown_part_name_lists_the_valid_ones() -> None:
    # The config schema refuses it before it is saved (test_config); part_ids says it too.
    with pytest.raises(PixcamError) as err:
        part_ids(("face", "nose"))
    message = str(err.value)
    assert "'nose'" in message and "\n" not in message
    for name in ("face", "hands", *PART_NAMES):
        assert name in message
    with pytest.raises(PixcamError, match="24 colours"):
        PartSettings(view=True, palette=RAINBOW[:3])


def test_needs_parts_only_when_an_effect_is_on() -> None:
    assert not PartEffects().needs_parts
    assert PartEffects(PartSettings(view=True)).needs_parts
    assert PartEffects(PartSettings(privacy="blur")).needs_parts
    assert PartSettings(privacy_parts="hands").privacy_parts == ("hands",)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------- view
def test_view_colours_only_the_person_with_the_seeds_colouring(shots: list[Shot]) -> None:
    fx = PartEffects(PartSettings(view=True, opacity=1.0))
    agree, total = 0, 0
    for shot in shots[:12]:
        fx.reset()
        result = fx.apply(shot.frame, shot.out, shot.alpha)
        diff = changed(result, shot.frame)
        assert not diff[shot.alpha == 0].any(), f"{shot.name}: colour outside the person"
        inside = shot.alpha >= 250
        assert diff[inside].mean() > 0.9
        # The colour at each inside pixel is `pixcam segment --parts --overlay`'s colour.
        seed = overlay.to_colored_part_mask(shot.ids)
        seed_bgr = cv2.cvtColor(seed, cv2.COLOR_RGBA2BGR).astype(np.int16)
        close = np.abs(result.astype(np.int16) - seed_bgr).max(axis=2) <= 8
        agree, total = agree + close[inside].sum(), total + inside.sum()
    assert agree / total > 0.85


def test_view_opacity_and_other_palette(shots: list[Shot]) -> None:
    shot = shots[0]
    grey = ((128, 128, 128),) * len(PART_NAMES)
    fx = PartEffects(PartSettings(view=True, opacity=0.5, palette=grey))
    result = fx.apply(shot.frame, shot.out, shot.alpha).astype(np.int16)
    inside = shot.alpha == 255
    expected = (shot.frame.astype(np.int16) + 128) / 2
    assert np.abs(result - expected)[inside].max() <= 1.5


def test_model_without_parts_is_a_clear_error(models_installed) -> None:
    seg = load_segmenter("selfie-general")
    frame = np.full((120, 160, 3), 90, np.uint8)
    out = seg.run(frame, parts=True)
    with pytest.raises(PixcamError, match="person\\+parts"):
        PartEffects(PartSettings(view=True)).apply(frame, out, np.full((120, 160), 255, np.uint8))


# --------------------------------------------------------------------------- smoothing
def label_changes(seg, frames: list[np.ndarray], smoothing: float) -> float:
    """Mean number of part-label changes per pixel inside the person over the clip."""
    h, w = frames[0].shape[:2]
    size = work_size(w, h)
    fx = PartEffects(PartSettings(view=True, smoothing=smoothing))
    labels, person = [], np.ones((size[1], size[0]), bool)
    for frame in frames:
        out = seg.run(frame, parts=True)
        labels.append(fx.part_labels(fx.smoothed_logits(frame, out), out, size))
        person &= out.person_probability(size) >= 0.5
    stack = np.array(labels)
    return float((stack[1:] != stack[:-1]).sum(axis=0)[person].mean())


def test_smoothing_reduces_part_label_flicker_on_video(seg) -> None:
    capture = cv2.VideoCapture(str(need(VIDEOS / "doctor-desk-960x540.mp4", "test video")))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 360)  # frames 360-400: the doctor sits still
    frames = [capture.read()[1] for _ in range(40)]
    capture.release()
    raw = label_changes(seg, frames, 0.0)
    smooth = label_changes(seg, frames, 0.5)
    assert raw > 0.1, "no flicker to reduce: wrong clip?"
    assert smooth < 0.75 * raw, (raw, smooth)  # measured: 0.52 -> 0.31


def fake_output(label: int, strength: float, frame_size=(320, 176)) -> SegmentationOutput:
    """A 21×12 grid, all person, with `label` ahead of the other parts by `strength` logits."""
    mapping = GridMapping(frame_size, frame_size, 16)
    logits = np.zeros((12, 21, 24), np.float32)
    logits[..., label] = strength
    return SegmentationOutput(np.ones((12, 21), np.float32), logits, mapping)


def test_smoothing_lags_on_a_still_picture_but_follows_motion() -> None:
    still = np.full((176, 320, 3), 100, np.uint8)
    fx = PartEffects(PartSettings(view=True, smoothing=0.5))
    for _ in range(5):
        fx.smoothed_logits(still, fake_output(13, 2.0))
    # The network changes its mind on a still picture: the label holds for a frame.
    lag = fx.smoothed_logits(still, fake_output(0, 1.5))
    assert int(np.argmax(lag[5, 10])) == 13
    # The same change with the picture moving: followed at once.
    for _ in range(5):
        fx.smoothed_logits(still, fake_output(13, 2.0))
    moved = np.full((176, 320, 3), 180, np.uint8)
    follow = fx.smoothed_logits(moved, fake_output(0, 1.5))
    assert int(np.argmax(follow[5, 10])) == 0
    fx.reset()
    fresh = fx.smoothed_logits(still, fake_output(0, 1.5))
    assert int(np.argmax(fresh[5, 10])) == 0


def test_inplace_and_no_effect_paths() -> None:
    frame = np.full((176, 320, 3), 100, np.uint8)
    alpha = np.full((176, 320), 255, np.uint8)
    out = fake_output(0, 3.0)
    assert PartEffects().apply(frame, out, alpha) is frame  # nothing on: untouched, no copy
    target = frame.copy()
    result = PartEffects(PartSettings(view=True)).apply(target, out, alpha, inplace=True)
    assert result is target and changed(target, frame).all()
    with pytest.raises(ValueError):
        PartEffects(PartSettings(view=True)).apply(frame, out, alpha[:10])


def test_settings_from_the_config_file() -> None:
    from pixcam.chain.effects import EffectsSettings
    from pixcam.config import parse_config

    cfg = parse_config(
        '[refine]\nsmoothing = 0.3\n[parts]\nview = true\nopacity = 0.4\nprivacy = "pixelate"\n'
        'privacy_parts = ["hands", "left_face"]\n'
    )
    s = EffectsSettings.from_config(cfg).parts
    assert (s.view, s.opacity, s.privacy, s.smoothing) == (True, 0.4, "pixelate", 0.3)
    assert s.privacy_ids == sorted([*part_ids(["hands"]), PART_NAMES.index("left_face")])
    assert not PartEffects(EffectsSettings.from_config(parse_config("")).parts).needs_parts
