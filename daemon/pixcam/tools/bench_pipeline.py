"""`pixcam bench pipeline`: where the time of one whole frame goes, stage by stage.

A frame is counted as a real camera costs it: the video's frames are encoded to JPEG once (a
webcam's MJPG), and the timed loop decodes them the way the camera source does (to I420), runs
the chain and does what the virtual camera sink does to the result (converts it to I420 if it is
not I420 already). The network's own time (`Engine.last_invoke_*`) is
shown beside the rest, and "outside network" is everything else, decode and sink included.
Larger sizes are the same video upscaled before encoding (1080p, and 4K as big webcams offer).
Each stage is timed in wall milliseconds and in process CPU milliseconds (`time.process_time`,
which includes XNNPACK's worker threads, so with 2 threads CPU can exceed wall). Medians over the
timed frames; the same process runs every setting, so the ratios between columns are
meaningful even on a busy machine.

`--parts view,blur-face,...` adds what a body-part effect costs on top of the plain pipeline at
the video's own size: for every frame the plain chain and each effect's chain (reading the part
heads, refine, compose, `PartEffects.apply`) run one after the other, in a rotating order, and
the added cost is the median of the per-frame differences, so load changes on a shared machine
hit both sides alike.

Every chain here is `effects.Effects`, the object the pipeline runs, with its own stage timings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pixcam import models, paths
from pixcam.chain.effects import Effects, EffectsSettings, Segmenter
from pixcam.config import Config, load_config
from pixcam.errors import PixcamError
from pixcam.i420 import Frame
from pixcam.tools.bench import at_least_one, thread_counts
from pixcam.video import mjpg
from pixcam.video.sinks import Sink, to_device
from pixcam.video.sources import Source

DEFAULT_VIDEO = "presenter-1280x720.mp4"  # in $PIXCAM_DEV_VIDEOS, when no --video is given
WARMUP = 5
JPEG_QUALITY = 90  # about what webcams send in MJPG
# `--subsampling`: webcams send 4:2:2 MJPG as often as 4:2:0, and it decodes differently.
SUBSAMPLING = {
    "420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
    "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
}
CHAIN = ("segment", "refine", "compose")
STAGES = (
    "decode (MJPG)",
    "segment",
    "  network",
    "refine",
    "compose",
    "sink (→I420)",
    "frame",
    "outside network",
)
# What the issue asks for (CPU, one thread): everything but the network ≤ this × the network.
TARGET_RATIO = {720: 1.0, 1080: 1.5}
# `--parts` names → [parts] settings.
PART_EFFECTS: dict[str, dict[str, Any]] = {
    "view": {"parts.view": True},
    "blur-face": {"parts.privacy": "blur", "parts.privacy_parts": ["face"]},
    "pixelate-face": {"parts.privacy": "pixelate", "parts.privacy_parts": ["face"]},
    "blur-face-hands": {"parts.privacy": "blur", "parts.privacy_parts": ["face", "hands"]},
}
NAN = (float("nan"), float("nan"))


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - w) * 1e3, (time.process_time() - c) * 1e3


def decode_frames(path: Path, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise PixcamError(f"cannot open video {path}")
    frames: list[np.ndarray] = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise PixcamError(f"no frames decoded from {path}")
    return frames


def encode_mjpg(
    frames: list[np.ndarray], height: int, subsampling: str = "420"
) -> list[np.ndarray]:
    """The frames as a webcam sends them in MJPG at `height` lines (upscaled if need be),
    chroma subsampled 4:2:0 or 4:2:2."""
    params = [
        cv2.IMWRITE_JPEG_QUALITY,
        JPEG_QUALITY,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
        SUBSAMPLING[subsampling],
    ]
    out = []
    for f in frames:
        h, w = f.shape[:2]
        if h != height:
            size = (round(w * height / h), height)
            f = cv2.resize(f, size, interpolation=cv2.INTER_LINEAR)
        ok, jpeg = cv2.imencode(".jpg", f, params)
        if not ok:
            raise PixcamError("JPEG encoding failed")
        out.append(jpeg)
    return out


def load_model(cfg: Config, threads: int) -> Segmenter:
    from pixcam.chain.segment import load_segmenter

    choice = EffectsSettings.from_config(cfg).model._replace(threads=threads)
    return load_segmenter(*choice)


class StageCpuTimes:
    """An `on_stage` hook for `Effects.process` that also takes each stage's process CPU time
    (the CPU since the previous stage ended, or since `start()`)."""

    def __init__(self) -> None:
        self.stages: dict[str, tuple[float, float]] = {}
        self._cpu = 0.0

    def start(self) -> None:
        self.stages = {}
        self._cpu = time.process_time()

    def __call__(self, stage: str, wall_ms: float) -> None:
        cpu = time.process_time()
        self.stages[stage] = (wall_ms, (cpu - self._cpu) * 1e3)
        self._cpu = cpu


def network_ms(effects: Effects) -> tuple[float, float]:
    """(wall, CPU) ms of the last network run(s), (0, 0) when the segmenter has no engine."""
    seg = effects.segmenter
    engines = getattr(seg, "engines", None) or [getattr(seg, "engine", None)]
    engines = [e for e in engines if e is not None]
    return (
        sum(e.last_invoke_ms for e in engines),
        sum(e.last_invoke_cpu_ms for e in engines),
    )


def time_frame(effects: Effects, jpeg: np.ndarray, clock: StageCpuTimes) -> dict[str, tuple]:
    """One whole frame: MJPG decode as the camera source does it, the chain, and what the
    virtual camera sink does to the result (a conversion, when it is not I420 yet)."""
    frame, dw, dc = _timed(lambda: mjpg.decode_frame(jpeg))
    clock.start()
    out = effects.process(frame, on_stage=clock)
    _, sw, sc = _timed(lambda: to_device(out))
    row = {s: clock.stages.get(s, NAN) for s in CHAIN}
    row["decode (MJPG)"] = (dw, dc)
    row["  network"] = network_ms(effects) if "segment" in clock.stages else (0.0, 0.0)
    row["sink (→I420)"] = (sw, sc)
    parts = [row["decode (MJPG)"], *(row[s] for s in CHAIN), row["sink (→I420)"]]
    frame_ms = (sum(w for w, _ in parts), sum(c for _, c in parts))
    row["frame"] = frame_ms
    net = row["  network"]
    row["outside network"] = (frame_ms[0] - net[0], frame_ms[1] - net[1])
    return row


def bench_setting(cfg: Config, jpegs: list[np.ndarray], threads: int) -> dict[str, tuple]:
    """Median (wall ms, cpu ms) per stage for one resolution and thread count."""
    effects = Effects(EffectsSettings.from_config(cfg), load_model(cfg, threads))
    clock = StageCpuTimes()
    samples: dict[str, list[tuple[float, float]]] = {s: [] for s in STAGES}
    for i, jpeg in enumerate(jpegs):
        row = time_frame(effects, jpeg, clock)
        if i < WARMUP:
            continue
        for stage in STAGES:
            samples[stage].append(row[stage])
    effects.close()
    return {
        k: (statistics.median(x for x, _ in v), statistics.median(y for _, y in v))
        for k, v in samples.items()
    }


def parse_parts(text: str | None) -> list[str]:
    """`--parts` value → effect names ("all" = every one), checked."""
    if not text:
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(PART_EFFECTS)
    unknown = [n for n in names if n not in PART_EFFECTS]
    if unknown:
        raise PixcamError(
            f"unknown part effect {', '.join(unknown)}: use {', '.join(PART_EFFECTS)} or all"
        )
    return names


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def bench_parts(
    cfg: Config, frames: list[np.ndarray], threads: int, names: list[str]
) -> dict[str, dict[str, tuple[float, float]]]:
    """Per variant ("plain" and each part effect): median (wall, cpu) ms of the whole chain
    ("total"), of the part stage ("parts"), and the median per-frame difference to the plain
    chain on the same frame ("added")."""
    seg = load_model(cfg, threads)
    if not seg.has_parts:
        name = getattr(getattr(seg, "spec", None), "name", cfg.model.name)
        raise PixcamError(f"model {name} has no body parts; pick one with --model")
    # Each variant keeps its own temporal state, as a stream would.
    variants: dict[str, Effects] = {"plain": Effects(EffectsSettings.from_config(cfg), seg)}
    for n in names:
        settings = EffectsSettings.from_config(cfg.with_values(PART_EFFECTS[n]))
        variants[n] = Effects(settings, seg)
    clock = StageCpuTimes()

    def chain(effects: Effects, frame: np.ndarray) -> tuple[float, float, float, float]:
        w0, c0 = time.perf_counter(), time.process_time()
        clock.start()
        effects.process(frame, on_stage=clock)
        w1, c1 = time.perf_counter(), time.process_time()
        pw, pc = clock.stages.get("parts", (0.0, 0.0))
        return (w1 - w0) * 1e3, (c1 - c0) * 1e3, pw, pc

    order = list(variants)
    total: dict[str, list[tuple[float, float]]] = {n: [] for n in order}
    stage: dict[str, list[tuple[float, float]]] = {n: [] for n in order}
    added: dict[str, list[tuple[float, float]]] = {n: [] for n in order}
    for i, frame in enumerate(frames):
        k = i % len(order)  # rotate who goes first: no variant always gets a warm cache
        got = {label: chain(variants[label], frame) for label in order[k:] + order[:k]}
        if i < WARMUP:
            continue
        pw, pc = got["plain"][:2]
        for label, (tw, tc, sw, sc) in got.items():
            total[label].append((tw, tc))
            stage[label].append((sw, sc))
            added[label].append((tw - pw, tc - pc))

    def med(v: list[tuple[float, float]]) -> tuple[float, float]:
        return _median([x for x, _ in v]), _median([y for _, y in v])

    return {
        n: {"total": med(total[n]), "parts": med(stage[n]), "added": med(added[n])} for n in order
    }


def print_parts(label: str, result: dict[str, dict[str, tuple[float, float]]]) -> None:
    print()
    print(
        f"part effects, {label}, interleaved with the plain pipeline on the same frames; "
        "median ms, wall / CPU"
    )
    head = f"{'effect':<18}{'chain':>18}{'added vs plain':>18}{'parts stage':>18}"
    print(head)
    print("-" * len(head))
    for name, r in result.items():
        cells = [f"{r['total'][0]:>8.1f} / {r['total'][1]:<7.1f}"]
        if name == "plain":
            cells += [f"{'-':>18}", f"{'-':>18}"]
        else:
            cells.append(f"{r['added'][0]:>+8.1f} / {r['added'][1]:<+7.1f}")
            cells.append(f"{r['parts'][0]:>8.1f} / {r['parts'][1]:<7.1f}")
        print(f"{name:<18}" + "".join(f"{c:>18}" for c in cells))
    print(
        "added = median over frames of (effect chain - plain chain): reading the part heads, "
        "and the part stage (smoothing, masks, blur/pixelate/colours)."
    )


class MjpgReplay(Source):
    """A camera stand-in: the encoded frames handed out undecoded (as the camera source does
    with MJPG) at `fps`, looping, with capture timestamps."""

    name = "MJPG replay"

    def __init__(self, jpegs: list[np.ndarray], fps: float) -> None:
        super().__init__()
        self._jpegs = jpegs
        first = mjpg.decode(jpegs[0])
        if first is None:
            raise PixcamError("the replayed MJPG frames cannot be decoded")
        self.height, self.width = first.shape[:2]
        self.fps = fps

    def capture(self) -> None:
        period = 1.0 / self.fps
        due = time.monotonic()
        i = 0
        while not self.stopping.wait(max(0.0, due - time.monotonic())):
            self.publish(self._jpegs[i % len(self._jpegs)].reshape(1, -1), raw=True)
            i += 1
            due += period


class I420Sink(Sink):
    """Does what the virtual camera sink does to each frame, then drops it."""

    name = "I420 discard"

    def __init__(self, width: int, height: int, fps: float) -> None:
        self.width, self.height, self.fps = width, height, fps

    def send(self, frame: Frame) -> None:
        to_device(frame)


def bench_live(cfg: Config, jpegs: list[np.ndarray], seconds: float) -> dict[str, Any]:
    """The live runner on a replayed 30 fps MJPG camera: output fps and capture-to-sink
    latency (the pipeline's own status)."""
    from pixcam.runner.pipeline import Pipeline

    def open_replay(_spec: object) -> Source:
        source = MjpgReplay(jpegs, 30.0)
        source.start()
        return source

    pipe = Pipeline(
        cfg,
        source_opener=open_replay,
        sink_opener=lambda _spec, w, h, fps: I420Sink(w, h, fps),
        keepalive=False,
    )
    pipe.start()
    try:
        time.sleep(seconds)
        return pipe.status()
    finally:
        pipe.stop()


def parse_sizes(text: str) -> list[int]:
    """`--sizes 720,1080,2160` → frame heights, checked."""
    try:
        sizes = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(not 90 <= h <= 4320 for h in sizes):
        raise PixcamError(f"--sizes {text!r}: give frame heights such as 720,1080,2160")
    return sizes


def print_table(title: str, columns: list[tuple[str, dict[str, tuple]]]) -> None:
    print(title)
    head = f"{'stage':<18}" + "".join(f"{name:>18}" for name, _ in columns)
    print(head)
    print("-" * len(head))
    for stage in STAGES:
        cells = []
        for _, res in columns:
            wall, cpu = res[stage]
            cells.append(f"{'-':>18}" if np.isnan(wall) else f"{wall:>8.1f} / {cpu:<7.1f}")
        print(f"{stage:<18}" + "".join(f"{c:>18}" for c in cells))
    print("frame = decode + segment + refine + compose + sink; outside network = frame - network.")
    for name, res in columns:
        net, rest = res["  network"][1], res["outside network"][1]
        if np.isnan(res["segment"][1]):
            print(f"  {name}: no effect to run (background none): frames pass through")
            continue
        ratio = rest / net if net > 0 else float("inf")
        height = int(name.split("p")[0])
        target = TARGET_RATIO.get(height)
        verdict = ""
        if target is not None and name.endswith(" 1t"):
            verdict = f", {'meets' if ratio <= target else 'misses'} the ≤ {target:g}× target"
        print(
            f"  {name}: outside the network {rest:.1f} CPU ms = {ratio:.2f}× the network's "
            f"{net:.1f}{verdict}"
        )


def run(args: argparse.Namespace) -> int:
    video = _bench_video(args)
    cfg = _bench_config(args)
    threads = thread_counts(args.threads)
    at_least_one("--frames", args.frames)
    sizes = parse_sizes(getattr(args, "sizes", None) or "720,1080,2160")
    parts = parse_parts(getattr(args, "parts", None))
    frames = decode_frames(video, args.frames + WARMUP)
    h = frames[0].shape[0]
    subsampling = getattr(args, "subsampling", None) or "420"

    columns: list[tuple[str, dict[str, tuple]]] = []
    for height in sizes:
        jpegs = encode_mjpg(frames, height, subsampling)
        for t in threads:
            columns.append((f"{height}p {t}t", bench_setting(cfg, jpegs, t)))

    from pixcam.chain.segment import network_resolution

    spec = models.resolve(cfg.model.name)
    m = cfg.model
    res = network_resolution(spec, m.quality, m.internal_resolution) or spec.default_resolution
    print_table(
        f"pixcam bench pipeline: {video.name} as MJPG (quality {JPEG_QUALITY}, "
        f"{subsampling[0]}:{subsampling[1]}:{subsampling[2]}), model "
        f"{spec.name} (internal resolution {res}, [model] quality {m.quality}), "
        f"background {args.background}, "
        f"{args.frames} timed frames after {WARMUP} warm-up; median ms, wall / CPU",
        columns,
    )
    live = float(getattr(args, "live", 0) or 0)
    if live > 0:
        _print_live(cfg, frames, sizes, subsampling, live)
    for t in threads if parts else ():
        print_parts(f"{h}p {t}t", bench_parts(cfg, frames, t, parts))
    return 0


def _bench_video(args: argparse.Namespace) -> Path:
    """--video, or the default one among the dev videos."""
    folder = paths.dev_videos()
    if args.video:
        video = Path(args.video)
    elif folder is not None:
        video = folder / DEFAULT_VIDEO
    else:
        raise PixcamError("no benchmark video: pass --video FILE (or set PIXCAM_DEV_VIDEOS)")
    if not video.is_file():
        raise PixcamError(f"benchmark video {video} not found; pass --video FILE")
    return video


def _bench_config(args: argparse.Namespace) -> Config:
    """The user's configuration with the options given (model, background, resolution)."""
    overrides: dict[str, Any] = {
        "effects.background": args.background,
        "model.internal_resolution": args.internal_resolution,
        # Every frame inferred: this is the cost of a moving picture (bench/still_skip.py
        # measures what a still one saves).
        "model.skip_still": False,
    }
    if args.model:
        overrides["model.name"] = args.model
    if getattr(args, "quality", None):
        overrides["model.quality"] = args.quality
    return load_config(None).with_values(overrides)


def _print_live(
    cfg: Config, frames: list[np.ndarray], sizes: list[int], subsampling: str, live: float
) -> None:
    """The live runner, `live` s at each size: frame rate, latency, load."""
    print()
    print(
        f"live, {live:g} s: a 30 fps MJPG camera replayed through the runner "
        f"({cfg.model.threads} inference threads, every core the process may use)"
    )
    for height in sizes:
        status = bench_live(cfg, encode_mjpg(frames, height, subsampling), live)
        lat = status.get("latency_ms") or {}
        # What the worker spends per frame (decode excluded): latency minus this is the
        # wait for the worker plus the decode, which a newest-frame slot keeps under an
        # interval plus the decode.
        stages = status.get("stages_ms") or {}
        work = stages.get("total", float("nan")) + stages.get("sink", 0.0)
        median, p95 = lat.get("median", float("nan")), lat.get("p95", float("nan"))
        print(
            f"  {height}p: {status['fps']:.1f} fps out, capture-to-sink latency median "
            f"{median:.1f} ms (chain and sink {work:.1f} ms), p95 {p95:.1f} ms "
            f"({p95 / (1000 / 30):.2f} frame intervals), "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
