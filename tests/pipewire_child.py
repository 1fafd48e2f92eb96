"""The PipeWire ends of tests/test_pipewire.py, each in a child process with a bounded life.

The pytest process never loads libpipewire: a C++ exception thrown later in a process where
PipeWire's GStreamer plugin ran aborts the interpreter (docs/pipewire.md). Two modes:

- `consumer NODE SECONDS`: `pipewiresrc target-object=NODE ! videoconvert ! BGR appsink`;
  each frame goes to stdout as a record (`RECORD` header, then height×width×3 bytes).
- `sink NODE WIDTH HEIGHT FPS SECONDS [FAIL_AFTER]`: a `PipeWireSink` fed numbered grey frames
  (luma 16 + 7 × frame number, mod 200); prints `ready PID` once published. With FAIL_AFTER it
  posts an error on the pipeline's bus after that many frames, as a failing consumer does on
  PipeWire 0.3.x, so the sink's rebuild runs. Stdin lines: `close` closes it (twice: the second
  is a no-op) and prints `closed`.

Both exit when stdin reaches its end (the test went away) or after SECONDS, whichever is first.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
import time
from typing import Any

RECORD = struct.Struct("<dII")  # CLOCK_MONOTONIC arrival time, width, height


def _gst() -> Any:
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    Gst.init(None)
    return Gst


def _watch_stdin(on_line: Any, done: threading.Event) -> None:
    for line in sys.stdin:
        on_line(line.strip())
    done.set()


def consumer(node: str, seconds: float) -> int:
    gst = _gst()
    out = sys.stdout.buffer
    lock = threading.Lock()
    # Caps after pipewiresrc: without them its negotiation stalls in PAUSED (PipeWire 0.3).
    pipeline = gst.parse_launch(
        f"pipewiresrc target-object={node} always-copy=true ! video/x-raw ! videoconvert "
        "! video/x-raw,format=BGR ! appsink name=out emit-signals=true sync=false "
        "max-buffers=4 drop=true"
    )

    def on_sample(sink: Any) -> Any:
        sample = sink.emit("pull-sample")
        caps = sample.get_caps().get_structure(0)
        w, h = caps.get_value("width"), caps.get_value("height")
        buf = sample.get_buffer()
        ok, info = buf.map(gst.MapFlags.READ)
        if ok:
            stride = len(info.data) // h
            rows = bytes(info.data)
            buf.unmap(info)
            packed = b"".join(rows[y * stride : y * stride + w * 3] for y in range(h))
            with lock:
                try:
                    out.write(RECORD.pack(time.monotonic(), w, h) + packed)
                    out.flush()
                except BrokenPipeError:
                    return gst.FlowReturn.EOS
        return gst.FlowReturn.OK

    pipeline.get_by_name("out").connect("new-sample", on_sample)
    done = threading.Event()
    threading.Thread(target=_watch_stdin, args=(lambda _l: None, done), daemon=True).start()
    pipeline.set_state(gst.State.PLAYING)
    done.wait(seconds)
    pipeline.set_state(gst.State.NULL)
    return 0


def sink(node: str, width: int, height: int, fps: float, seconds: float, fail_after: int) -> int:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "daemon"))
    import logging

    from pixcam.i420 import I420
    from pixcam.video.pipewire_sink import PipeWireSink

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    cam = PipeWireSink(width, height, fps, node=node)
    print(f"ready {os.getpid()}", flush=True)
    close_asked = threading.Event()

    def on_line(line: str) -> None:
        if line == "close":
            close_asked.set()  # closed by the loop below, between two sends

    done = threading.Event()
    threading.Thread(target=_watch_stdin, args=(on_line, done), daemon=True).start()
    end = time.monotonic() + seconds
    sent, closed = 0, False
    while not done.is_set() and time.monotonic() < end:
        if close_asked.is_set() and not closed:
            cam.close()
            cam.close()
            closed = True
            print("closed", flush=True)
        if not closed:
            frame = I420.empty(width, height)
            frame.data[height:] = 128  # no colour
            frame.data[:height] = 16 + (7 * sent) % 200
            if fail_after and sent == fail_after:
                from gi.repository import GLib, Gst

                pipeline = cam._pipeline  # the test reaches in: no consumer fails on demand
                why = GLib.Error.new_literal(Gst.stream_error_quark(), "test failure", 1)
                pipeline.get_bus().post(Gst.Message.new_error(pipeline, why, "consumer failed"))
            cam.send(frame)
            sent += 1
        done.wait(1.0 / fps)
    cam.close()
    return 0


def main(argv: list[str]) -> int:
    mode, node = argv[0], argv[1]
    if mode == "consumer":
        return consumer(node, float(argv[2]))
    w, h, fps, seconds = int(argv[2]), int(argv[3]), float(argv[4]), float(argv[5])
    return sink(node, w, h, fps, seconds, int(argv[6]) if len(argv) > 6 else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
