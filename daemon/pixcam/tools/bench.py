"""`pixcam bench`: speed and accuracy on this machine, printed as tables.

Timings are medians of interleaved runs (every setting is timed once per round), so a burst of
load from elsewhere on a shared machine hits all settings alike instead of skewing one.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pixcam import models, paths
from pixcam.chain.segment import Segmenter, load_segmenter
from pixcam.config import MAX_THREADS, check_internal_resolution
from pixcam.errors import PixcamError
from pixcam.tools import evaluate

WEBCAM_VIDEO = "presenter-1280x720.mp4"


def shared_video(name: str) -> Path | None:
    folder = paths.dev_videos()
    path = folder / name if folder else None
    return path if path is not None and path.is_file() else None


def webcam_frame() -> np.ndarray:
    """A real 1280×720 frame of a person, or a dev photo scaled to 720p when no video is here."""
    video = shared_video(WEBCAM_VIDEO)
    if video is not None:
        capture = cv2.VideoCapture(str(video))
        capture.set(cv2.CAP_PROP_POS_FRAMES, 60)
        ok, frame = capture.read()
        capture.release()
        if ok:
            return frame
    data = evaluate.default_data_dir()
    if data is None:
        raise PixcamError("no benchmark input: ../shared/data is missing")
    image, _ = evaluate.read_pair(evaluate.load_samples(data, 1)[0])
    return cv2.resize(image, (1280, 720))


@dataclass
class SegmentCase:
    model: str
    threads: int
    resolution: int
    segmenter: Segmenter
    times_ms: list[float]
    invoke_ms: list[float]


def _time_once(segmenter: Segmenter, frame: np.ndarray) -> float:
    start = time.perf_counter()
    segmenter.run(frame, parts=False)
    return (time.perf_counter() - start) * 1000.0


def thread_counts(text: str) -> list[int]:
    """--threads "1,2": whole numbers 1..MAX_THREADS (model.threads' range), else one line."""
    counts = [part.strip() for part in str(text).split(",") if part.strip()]
    if not counts or not all(_is_thread_count(c) for c in counts):
        raise PixcamError(
            f"--threads {text}: give whole numbers 1..{MAX_THREADS} separated by commas"
        )
    return [int(c) for c in counts]


def _is_thread_count(text: str) -> bool:
    return text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_THREADS


def at_least_one(option: str, value: int | None) -> None:
    """A count option (--repeat, --frames, --limit): none timed is no measurement."""
    if value is not None and value < 1:
        raise PixcamError(f"{option} {value}: give a whole number of 1 or more")


def bench_segment(args: argparse.Namespace) -> int:
    names = args.model or [s.name for s in models.list_models() if s.installed]
    threads = thread_counts(args.threads)
    at_least_one("--repeat", args.repeat)
    at_least_one("--limit", args.limit)
    for size in args.internal_resolution or []:
        check_internal_resolution(size)
    frame = webcam_frame()
    cases: list[SegmentCase] = []
    for name in names:
        spec = models.get_spec(name)
        resolutions = (args.internal_resolution or [0]) if spec.resizable else [0]
        for res in resolutions:
            for n in threads:
                seg = load_segmenter(name, n, res)
                _time_once(seg, frame)  # warm-up: first run allocates and packs weights
                cases.append(SegmentCase(name, n, seg.internal_resolution, seg, [], []))
    for _ in range(args.repeat):
        for case in cases:
            case.times_ms.append(_time_once(case.segmenter, frame))
            case.invoke_ms.append(case.segmenter.engine.last_invoke_ms)

    samples: list[evaluate.Sample] = []
    data = Path(args.data) if args.data else evaluate.default_data_dir()
    if data is not None:
        samples = evaluate.load_samples(data, args.limit)
    accuracy: dict[tuple[str, int], evaluate.Accuracy] = {}
    for case in cases:
        key = (case.model, case.resolution)
        if samples and key not in accuracy:
            accuracy[key] = evaluate.accuracy(case.segmenter, samples)

    h, w = frame.shape[:2]
    print(f"segment: {w}×{h} frame, median of {args.repeat} interleaved runs, ms per frame")
    print("  (frame = resize + colour + network + decode; network = the interpreter alone)")
    print(f"IoU: mean person-mask IoU on {len(samples)} dev photos (all / upper-body framing)")
    header = (
        f"{'model':32} {'weights':20} {'res':>5} {'thr':>3} {'frame ms':>8} {'network':>7} "
        f"{'IoU':>6} {'IoU ub':>6}"
    )
    print(header)
    print("-" * len(header))
    for case in cases:
        spec = models.get_spec(case.model)
        acc = accuracy.get((case.model, case.resolution))
        iou_all = f"{acc.mean_iou:.4f}" if acc else "-"
        iou_ub = f"{acc.mean_iou_upper_body:.4f}" if acc else "-"
        print(
            f"{case.model:32} {spec.weights:20} {case.resolution:>5} {case.threads:>3} "
            f"{statistics.median(case.times_ms):>8.2f} {statistics.median(case.invoke_ms):>7.2f} "
            f"{iou_all:>6} {iou_ub:>6}"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    return bench_segment(args)
