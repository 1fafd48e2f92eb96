"""What a bench needs that a machine may lack, and how a bench ends without it.

A bench that cannot run here (a model not installed, the ../shared photos or videos absent,
libturbojpeg or ai-edge-quantizer missing) prints one line saying what is missing and exits
with `LACKING`, which tests/test_benches.py reports as a skip with that line; any other
`PixcamError` is one line and exit status 1. Importing it puts the checkout's daemon/ first
on `sys.path`. Not a bench itself (the leading underscore).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

# The checkout's package first, not an installed one: a bench measures the code beside it.
# Every bench imports this module before pixcam, so this is the one place that says so.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from pixcam.errors import PixcamError  # noqa: E402
from pixcam.models import ModelNotInstalled  # noqa: E402
from pixcam.models.quantize import QuantizerMissing  # noqa: E402

# The developers' data beside the checkout, or where $PIXCAM_DEV_VIDEOS / $PIXCAM_DEV_DATA say.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VIDEOS = Path(os.environ.get("PIXCAM_DEV_VIDEOS", SHARED_DATA / "video"))
DEV_PHOTOS = Path(os.environ.get("PIXCAM_DEV_DATA", SHARED_DATA / "segmentation" / "dev"))
PRESENTER = VIDEOS / "presenter-1280x720.mp4"  # the benches' default webcam-like video

LACKING = 77  # the exit status that means "skipped", as in automake's test harness


def lacking(what: str) -> NoReturn:
    """End the bench: this machine lacks `what` (one line on stderr)."""
    print(f"{Path(sys.argv[0]).name}: {what}", file=sys.stderr)
    raise SystemExit(LACKING)


def need(path: Path | str, what: str) -> Path:
    """`path`, or the bench ends saying that `what` is not there."""
    path = Path(path)
    if not path.exists():
        lacking(f"{what} not found at {path}")
    return path


def run(main: Callable[[], int | None]) -> NoReturn:
    """Run a bench's `main` and exit with its status: what this machine lacks as `lacking`
    does, any other user-facing error as one line and status 1, not a traceback."""
    try:
        status = main()
    except (ModelNotInstalled, QuantizerMissing) as exc:
        lacking(str(exc))
    except PixcamError as exc:
        print(f"{Path(sys.argv[0]).name}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    raise SystemExit(status or 0)
