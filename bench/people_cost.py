"""What "only me" and the away watch cost per 720p frame when nobody else is in the picture.

Every frame of the presenter video (1280×720, one person) goes through three `Effects` chains,
each with its own segmenter and all on one frame clock (as live at 30 fps), in rotating
order: `people.keep = "all"` with the away card off (the chain
as it was), `keep = "me"`, and `keep = "me"` with `away = "card"`. Reported: each chain's
median and mean process CPU per frame (segment, people, refine, compose; most frames of a
still presenter keep the last mask, so the median is such a frame and the mean carries the
inferred ones) and the differences to the first; and the people stage alone
(`PeopleFilter.apply` on that frame's probability), median microseconds: the cost itself
without the network's noise.

    taskset -c 1 .venv/bin/python bench/people_cost.py [--frames 240]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))

from _needs import PRESENTER, need, run  # noqa: E402

from pixcam.chain.effects import Effects, EffectsSettings  # noqa: E402
from pixcam.chain.people import PeopleFilter, PeopleSettings  # noqa: E402
from pixcam.chain.refine import probability_size  # noqa: E402
from pixcam.config import Config  # noqa: E402

CHAINS = {
    "keep all": {},
    "keep me": {"people.keep": "me"},
    "keep me + away": {"people.keep": "me", "people.away": "card"},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=240)
    args = ap.parse_args()
    from pixcam.chain.segment import load_segmenter

    video = need(PRESENTER, "the presenter video")
    base = Config().with_values({"model.threads": 1})
    m = EffectsSettings.from_config(base).model
    now = [0.0]  # the stream's clock: one frame's time a frame, however long frames take

    def chain(values: dict[str, object]) -> Effects:
        # A segmenter each: the fused one's held output is per stream.
        own = load_segmenter(m.name, 1, m.internal_resolution, m.quality)
        settings = EffectsSettings.from_config(base.with_values(values))
        return Effects(settings, own, clock=lambda: now[0])

    seg = load_segmenter(m.name, 1, m.internal_resolution, m.quality)
    chains = {name: chain(values) for name, values in CHAINS.items()}
    cpu: dict[str, list[float]] = {name: [] for name in chains}
    alone = PeopleFilter(PeopleSettings(keep="me"))
    stage_us: list[float] = []
    cap = cv2.VideoCapture(str(video))
    n = 0
    while n < args.frames:
        ok, frame = cap.read()
        if not ok:
            break
        names = list(chains)
        k = n % len(names)
        for name in names[k:] + names[:k]:  # rotate who goes first
            t0 = time.process_time()
            chains[name].process(frame)
            cpu[name].append((time.process_time() - t0) * 1e3)
        out = seg.run(frame, parts=False)
        h, w = frame.shape[:2]
        prob = out.person_probability(size=probability_size(w, h, out.cell))
        t0 = time.perf_counter()
        alone.apply(prob, n / 30)
        stage_us.append((time.perf_counter() - t0) * 1e6)
        n += 1
        now[0] = n / 30
    cap.release()
    first = float(np.median(cpu["keep all"]))
    first_mean = float(np.mean(cpu["keep all"]))
    print(f"{video.name}: {n} frames at {w}x{h}, probability {prob.shape[1]}x{prob.shape[0]}")
    for name, values in cpu.items():
        med, mean = float(np.median(values)), float(np.mean(values))
        print(
            f"  {name:15s} median CPU {med:6.2f} ms/frame  ({med - first:+.2f} ms), "
            f"mean {mean:6.2f} ms ({mean - first_mean:+.2f} ms)"
        )
    print(
        f"  people stage alone: median {np.median(stage_us):.0f} us, "
        f"p95 {np.percentile(stage_us, 95):.0f} us; hidden {alone.state.hidden}"
    )
    return 0


if __name__ == "__main__":
    run(main)
