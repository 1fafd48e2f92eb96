"""The outlet's one send loop (runner/outlet.py): the newest frame as it arrives, the last one
again after a gap, cards at their own rate, and every write to the sink from the loop alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from conftest import wait_until
from fakes import H, W
from pixcam.i420 import Frame
from pixcam.runner import outlet as outlet_mod
from pixcam.runner.outlet import Outlet, repeat_after
from pixcam.runner.timings import RateLimitedLog, Timings
from pixcam.video.sinks import Sink, SinkError, SinkSpec


class LogSink(Sink):
    """Records each frame's value, arrival time and the thread that wrote it."""

    def __init__(self, width: int, height: int, fps: float, reopenable: bool = True) -> None:
        self.name, self.width, self.height, self.fps = "log", width, height, fps
        self.reopenable = reopenable
        self.sent: list[tuple[int, float, str]] = []
        self.fail_next = False
        self.closes = 0

    def send(self, frame: Frame) -> None:
        self.check_shape(frame)
        if self.fail_next:
            self.fail_next = False
            raise SinkError(f"{self.name} failed")
        self.sent.append((int(np.asarray(frame)[0, 0, 0]), time.monotonic(), _thread()))

    def close(self) -> None:
        self.closes += 1

    def values(self) -> list[int]:
        return [v for v, _t, _th in self.sent]

    def times(self, value: int) -> list[float]:
        return [t for v, t, _th in self.sent if v == value]


def _thread() -> str:
    return threading.current_thread().name


def frame(value: int) -> np.ndarray:
    return np.full((H, W, 3), value, np.uint8)


class Opened:
    def __init__(self, reopenable: bool = True) -> None:
        self.sinks: list[LogSink] = []
        self.reopenable = reopenable

    def __call__(self, spec: SinkSpec, width: int, height: int, fps: float) -> Sink:
        self.sinks.append(LogSink(width, height, fps, self.reopenable))
        return self.sinks[-1]


@pytest.fixture
def opened() -> Opened:
    return Opened()


@pytest.fixture
def outlet(opened: Opened) -> Iterator[Outlet]:
    out = Outlet(SinkSpec(device="log"), opened, Timings(), RateLimitedLog(), lambda m: None)
    out.open(W, H, 30.0)
    yield out
    out.close()


def test_every_frame_goes_out_from_the_send_loop_alone(outlet: Outlet, opened: Opened) -> None:
    outlet.keepalive = True
    outlet.show(frame(1), 50.0)
    wait_until(lambda: len(opened.sinks[0].sent) >= 3, "cards")
    for i in range(5):
        assert outlet.send(frame(10 + i))
    outlet.hold()
    wait_until(lambda: outlet.repeats >= 2, "repeats")
    sink = opened.sinks[0]
    assert {th for _v, _t, th in sink.sent} == {"pixcam send"}
    values = sink.values()
    assert values[: values.index(10)] == [1] * values.index(10)
    assert values[values.index(10) : values.index(14) + 1] == [10, 11, 12, 13, 14]
    assert set(values[values.index(14) :]) == {14}  # the last one again, the card is gone
    assert outlet.frames == values.index(14) + 1  # cards count, repeats do not


def test_a_new_frame_ends_the_card(outlet: Outlet, opened: Opened) -> None:
    outlet.show(frame(1), 100.0)
    wait_until(lambda: len(opened.sinks[0].sent) >= 2, "cards")
    outlet.send(frame(2))
    n = len(opened.sinks[0].sent)
    time.sleep(0.2)  # twenty card times: none comes, and no repeat either (not asked)
    assert opened.sinks[0].values()[n - 1 :] == [2]
    assert outlet.repeats == 0


def test_cards_keep_their_own_pace(outlet: Outlet, opened: Opened) -> None:
    outlet.show(frame(1), 20.0)
    wait_until(lambda: len(opened.sinks[0].sent) >= 6, "cards")
    outlet.show(frame(1), 20.0)  # asked again with the same card: the pace goes on
    times = opened.sinks[0].times(1)
    # Never sooner than one card time apart (later is the machine's business).
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.9 / 20.0


def test_the_last_frame_is_repeated_only_after_the_gap(outlet: Outlet, opened: Opened) -> None:
    outlet.send(frame(5))
    sent_t = opened.sinks[0].times(5)[0]
    outlet.hold()
    wait_until(lambda: outlet.repeats >= 1, "a repeat")
    assert opened.sinks[0].times(5)[1] - sent_t >= 0.9 / 30.0  # a frame time after it
    before = outlet.repeats
    time.sleep(3 * repeat_after(30.0))  # asked once: repeated once, unless keep-alive is on
    assert outlet.repeats == before
    outlet.keepalive = True
    wait_until(lambda: outlet.repeats >= before + 3, "keep-alive repeats")
    times = opened.sinks[0].times(5)[-4:]
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.9 * repeat_after(30.0)


def test_the_repeat_gap_stays_under_five_frame_times() -> None:
    """Consumers that trust the advertised rate give up after five frame times (OBS)."""
    for fps in (5.0, 15.0, 24.0, 30.0, 60.0):
        assert repeat_after(fps) < 5.0 / fps
        assert repeat_after(fps) <= outlet_mod.REPEAT_AFTER_S


def test_a_lost_device_is_reopened_by_the_loop(
    outlet: Outlet, opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outlet_mod, "SINK_RETRY_S", 0.05)
    outlet.send(frame(1))
    opened.sinks[0].fail_next = True
    assert not outlet.send(frame(2))
    assert outlet.lost and opened.sinks[0].closes == 1
    outlet.keepalive = True  # the loop's own repeat brings the device back
    wait_until(lambda: len(opened.sinks) == 2 and opened.sinks[1].sent, "the device back")
    assert {th for _v, _t, th in opened.sinks[1].sent} == {"pixcam send"}
    assert outlet.send(frame(3))


def test_a_failed_file_sink_is_raised_to_the_worker() -> None:
    opened = Opened(reopenable=False)
    out = Outlet(SinkSpec(path="x.mp4"), opened, Timings(), RateLimitedLog(), lambda m: None)
    out.open(W, H, 30.0)
    try:
        out.send(frame(1))
        opened.sinks[0].fail_next = True
        with pytest.raises(SinkError, match="log failed"):
            out.send(frame(2))
        with pytest.raises(SinkError):
            out.show(frame(3))  # the loop has ended: every later call says why
        with pytest.raises(SinkError):
            out.hold()
    finally:
        out.close()
    assert opened.sinks[0].closes == 1


def test_a_card_that_fails_on_a_file_ends_the_run_at_the_next_call() -> None:
    opened = Opened(reopenable=False)
    out = Outlet(SinkSpec(path="x.mp4"), opened, Timings(), RateLimitedLog(), lambda m: None)
    out.open(W, H, 30.0)
    try:
        opened.sinks[0].fail_next = True
        out.show(frame(1), 50.0)
        with pytest.raises(SinkError):
            wait_until(lambda: out.send(frame(2)) and False, "the failure to come back")
    finally:
        out.close()


def test_close_ends_the_loop_and_a_late_send_does_not_hang(outlet: Outlet) -> None:
    outlet.show(frame(1), 100.0)
    outlet.close()
    assert not any(t.name == "pixcam send" and t.is_alive() for t in threading.enumerate())
    assert outlet.send(frame(2)) is False
    outlet.close()  # twice: nothing more to do


# ------------------------------------------------------------- the advertised rate
def test_cards_follow_the_output_rate_and_the_sink_advertises_it(
    outlet: Outlet, opened: Opened
) -> None:
    """A card shown at no rate of its own goes at the output's, the rate the sink advertises;
    after `retime` the sink advertises the new rate before its next frame, and cards follow."""
    sink = opened.sinks[0]
    outlet.show(frame(1))
    wait_until(lambda: len(sink.times(1)) >= 4, "cards at 30 fps")
    outlet.retime(10.0)
    wait_until(lambda: sink.fps == 10.0, "the sink retimed")
    n = len(sink.sent)
    wait_until(lambda: len(sink.sent) >= n + 4, "cards at 10 fps")
    at_30, at_10 = sink.times(1)[:4], sink.times(1)[n + 1 :]
    assert min(b - a for a, b in zip(at_30, at_30[1:], strict=False)) >= 0.9 / 30.0
    assert min(b - a for a, b in zip(at_10, at_10[1:], strict=False)) >= 0.9 / 10.0
    assert {th for _v, _t, th in sink.sent} == {"pixcam send"}


def test_no_rate_of_zero_or_unknown_is_taken(outlet: Outlet, opened: Opened) -> None:
    outlet.retime(0.0)
    outlet.send(frame(1))
    assert outlet.fps == 30.0 and opened.sinks[0].fps == 30.0


def test_a_file_gets_each_frame_once() -> None:
    """No repeat into a file, even when the worker asks (a late source): every frame of the
    file is one the worker made."""
    opened = Opened(reopenable=False)
    out = Outlet(SinkSpec(path="x.mp4"), opened, Timings(), RateLimitedLog(), lambda m: None)
    out.open(W, H, 30.0)
    try:
        out.send(frame(1))
        for _ in range(5):
            out.hold()
            time.sleep(2 / 30.0)
        out.send(frame(2))
    finally:
        out.close()
    assert opened.sinks[0].values() == [1, 2] and out.repeats == 0
