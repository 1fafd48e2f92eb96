"""Video devices, said once: which /dev/videoN nodes there are and which are loopbacks (the
camera choice, the output choice and `pixcam doctor` share one scan of sysfs), who holds one
open, from /proc/PID/fd (the on-demand count, the "camera busy" hint and the sink's own-fd
cleanup share one scanner), and the v4l2loopback options that create pixcam's virtual camera."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PathLike = str | os.PathLike[str]
PROC = Path("/proc")
DEV = Path("/dev")
SYSFS_V4L = Path("/sys/class/video4linux")


def _modprobe_options() -> str:
    """The v4l2loopback options `pixcam setup` installs, read from the very file it installs."""
    conf = Path(__file__).resolve().parents[1] / "packaging" / "modprobe.pixcam.conf"
    prefix = "options v4l2loopback "
    return next(
        line.removeprefix(prefix).strip()
        for line in conf.read_text().splitlines()
        if line.startswith(prefix)
    )


MODPROBE_OPTS = _modprobe_options()  # "devices=1 video_nr=10 card_label=pixcam ..."


# ------------------------------------------------------------------------ the node scan
@dataclass(frozen=True)
class VideoNode:
    path: str  # /dev/videoN
    label: str  # card label from sysfs ("pixcam", "Dummy video device (0x0000)", ...)
    loopback: bool


def video_index(path: str) -> int | None:
    """N of a /dev/videoN path; None for any other spelling."""
    m = re.fullmatch(r"/dev/video(\d+)", path)
    return int(m.group(1)) if m else None


V4L_MAJOR = 81  # the kernel's device number for video4linux nodes (/dev/videoN)


def not_a_video_device(path: str) -> str | None:
    """What `path` is when it cannot be a camera or loopback at all ("a file", "a folder",
    "a device of another kind"); None for a video4linux node, or when it cannot be looked at."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if stat.S_ISCHR(st.st_mode):
        return None if os.major(st.st_rdev) == V4L_MAJOR else "a device of another kind"
    if stat.S_ISREG(st.st_mode):
        return "a file"
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    return "a named pipe or socket"


def _number(name: str) -> int:
    return int(re.sub(r"\D", "", name) or 0)


def is_loopback(node: str, sysfs: Path = SYSFS_V4L) -> bool:
    """True for a v4l2loopback node ("video10"): v4l2loopback registers its devices as virtual
    devices (under /sys/devices/virtual); real cameras hang off a bus."""
    try:
        return "/virtual/" in str((sysfs / node).resolve())
    except OSError:
        return False


def list_video_nodes(sysfs: Path = SYSFS_V4L, dev: Path = DEV) -> list[VideoNode]:
    """Every video node sysfs knows, with its label, in numeric order."""
    nodes: list[VideoNode] = []
    if not sysfs.is_dir():
        return nodes
    for entry in sysfs.iterdir():
        if not re.fullmatch(r"video\d+", entry.name):
            continue
        try:
            label = (entry / "name").read_text().strip()
        except OSError:
            label = ""
        nodes.append(VideoNode(str(dev / entry.name), label, is_loopback(entry.name, sysfs)))
    return sorted(nodes, key=lambda n: _number(n.path))


def list_cameras(dev: Path = DEV, sysfs: Path = SYSFS_V4L) -> list[str]:
    """`/dev/videoN` nodes that are not loopbacks (our own output must never be an input).

    Read from /dev, not sysfs: a node that opens is a candidate even where sysfs is missing."""
    names = (p.name for p in dev.glob("video*") if re.fullmatch(r"video\d+", p.name))
    return [str(dev / n) for n in sorted(names, key=_number) if not is_loopback(n, sysfs)]


def open_fds(
    path: PathLike, proc: Path = PROC, *, only: str | None = None
) -> Iterator[tuple[str, int]]:
    """(pid, fd) for every file descriptor on `path` in the processes we may inspect.

    `only` limits the scan to one process directory (e.g. "self"). Matches by inode, so a
    symlink to the device and the device itself are the same; processes and fds that vanish
    or belong to other users are skipped.
    """
    try:
        target = os.stat(path)
    except OSError:
        return
    entries = [proc / only] if only else (e for e in proc.iterdir() if e.name.isdigit())
    for entry in entries:
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:  # gone, or someone else's process
            continue
        for fd in fds:
            with contextlib.suppress(OSError, ValueError):
                st = fd.stat()
                if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                    yield entry.name, int(fd.name)


def count_openers(path: PathLike, proc: Path = PROC, exclude_pid: int | None = None) -> int:
    """File descriptors on `path` held by other processes.

    Counts fds, not file descriptions (a forked child sharing one counts twice), and only
    sees processes we may inspect: good enough to seed and repair the inotify count.
    """
    exclude = str(os.getpid() if exclude_pid is None else exclude_pid)
    return sum(1 for pid, _ in open_fds(path, proc) if pid != exclude)


def holders(path: PathLike, proc: Path = PROC) -> list[str]:
    """Other processes holding `path` open, as "name (pid)", for a "busy" hint (like fuser)."""
    me = str(os.getpid())
    pids = dict.fromkeys(pid for pid, _ in open_fds(path, proc) if pid != me)
    found = []
    for pid in pids:
        with contextlib.suppress(OSError):
            found.append(f"{(proc / pid / 'comm').read_text().strip()} ({pid})")
    return found


def own_fds(path: PathLike, proc: Path = PROC) -> set[int]:
    """Our own file descriptors open on `path` (pyvirtualcam keeps its fd private)."""
    return {fd for _, fd in open_fds(path, proc, only="self")}
