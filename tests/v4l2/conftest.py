"""End-to-end tests on real v4l2loopback devices (run inside the VM by tests/v4l2/run-in-vm.sh).

They expect two loopback devices: one labelled "Camera" that an ffmpeg feed turns into the
"physical camera", and one labelled "pixcam" that pixcam writes to. Every test here is marked
`v4l2` and skipped, with the reason, where those devices do not exist (e.g. on the host).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from v4l2_helpers import MEASURED

from pixcam.video.devices import list_video_nodes

HERE = Path(__file__).resolve().parent
VM_OPTS = "devices=2 video_nr=10,11 card_label=Camera,pixcam exclusive_caps=1,1"


def _loopbacks() -> dict[str, str]:
    return {n.label: n.path for n in list_video_nodes() if n.loopback}


def _skip_reason() -> str | None:
    if not Path("/sys/module/v4l2loopback").is_dir():
        return (
            "v4l2loopback is not loaded on this machine; these tests run in the VM: "
            "tests/v4l2/run-in-vm.sh"
        )
    found = _loopbacks()
    missing = [label for label in ("Camera", "pixcam") if label not in found]
    if missing:
        return (
            f"no v4l2loopback device labelled {', '.join(missing)} (found {found or 'none'}); "
            f"load it with: modprobe v4l2loopback {VM_OPTS}"
        )
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The consumer tests last: they take longest, and the others then run as they always did.
    last = ("test_browser_vm.py", "test_firefox_obs_vm.py")

    def rank(item: pytest.Item) -> int:
        name = Path(str(item.fspath)).name
        return last.index(name) + 1 if name in last else 0

    items.sort(key=rank)
    reason = _skip_reason()
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.v4l2)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def camera_dev() -> str:
    """The loopback that plays the physical camera (fed by ffmpeg)."""
    return _loopbacks()["Camera"]


@pytest.fixture(scope="session")
def pixcam_dev() -> str:
    """The loopback pixcam writes to, read back by the consumers."""
    return _loopbacks()["pixcam"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures the tests measured (times under emulation: 12-22x a real machine)."""
    if MEASURED:
        terminalreporter.section("measured in the VM")
        for line in MEASURED:
            terminalreporter.write_line(line)
