"""Where pixcam keeps things, said once (XDG base directories), and where a background is found.

A relative `$XDG_*_HOME` is invalid by the spec and ignored, like an unset one.
"""

from __future__ import annotations

import errno
import importlib.metadata
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from pixcam.errors import PixcamError
from pixcam.modes import IMAGE_SUFFIXES

# Shipped inside the package (the repo's backgrounds/ links here), so a wheel has them too.
BUNDLED_BACKGROUNDS = Path(__file__).resolve().parent / "backgrounds"


def installed_version() -> str:
    """The installed pixcam's version (its metadata takes it from `pixcam.__version__`)."""
    try:
        return importlib.metadata.version("pixcam")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _xdg(variable: str, default: Path) -> Path:
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else default


def home() -> str:
    """`$HOME` when it is an absolute path, else the account's home folder: Python takes an
    empty `HOME` as / and a relative one as below the current folder."""
    value = os.environ.get("HOME", "")
    if os.path.isabs(value):
        return value
    import pwd  # here: the keeper's start (keeper_cache.py) imports this rule's twin only

    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:  # no account entry (a bare container): Python's own rule
        return os.path.expanduser("~")


def config_home() -> Path:
    """`$XDG_CONFIG_HOME`, `~/.config` by default."""
    return _xdg("XDG_CONFIG_HOME", Path(home()) / ".config")


def data_home() -> Path:
    """`$XDG_DATA_HOME`, `~/.local/share` by default."""
    return _xdg("XDG_DATA_HOME", Path(home()) / ".local" / "share")


def cache_home() -> Path:
    """`$XDG_CACHE_HOME`, `~/.cache` by default."""
    return _xdg("XDG_CACHE_HOME", Path(home()) / ".cache")


def config_file() -> Path:
    """The user's settings: `$XDG_CONFIG_HOME/pixcam/config.toml`."""
    return config_home() / "pixcam" / "config.toml"


def models_dir() -> Path:
    """`$PIXCAM_MODELS_DIR`, else `$XDG_DATA_HOME/pixcam/models`."""
    override = os.environ.get("PIXCAM_MODELS_DIR")
    return Path(override) if override else data_home() / "pixcam" / "models"


def backgrounds_dir() -> Path:
    """The user's own background images: `$XDG_DATA_HOME/pixcam/backgrounds`."""
    return data_home() / "pixcam" / "backgrounds"


def background_dirs() -> list[Path]:
    """Where bare background names are looked up: the user's folder first, then the bundled."""
    return [backgrounds_dir(), BUNDLED_BACKGROUNDS]


def background_images(folder: Path) -> list[Path]:
    """The background images in `folder` (not nested), sorted; none where it cannot be read."""
    try:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError:
        return []


def runtime_dir() -> Path:
    """`$XDG_RUNTIME_DIR/pixcam`, or a private `pixcam-<uid>` in the temp dir without it."""
    base = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(base) and os.path.isdir(base):
        return Path(base) / "pixcam"
    return Path(tempfile.gettempdir()) / f"pixcam-{os.getuid()}"


def dev_videos() -> Path | None:
    """Where the benches find their default videos: `$PIXCAM_DEV_VIDEOS`, or None (then a
    bench needs `--video`). An installed pixcam knows no developer folder of its own."""
    folder = os.environ.get("PIXCAM_DEV_VIDEOS")
    return Path(folder) if folder else None


# ------------------------------------------------------------------- reading a user's file
def _kind(mode: int) -> str:
    """What a non-regular file is, in words a user knows, and why it cannot be read as one."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), which waits for a writer"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, whose data never ends"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


kind_of = _kind  # public: other readers of a user's file (the config) say it the same way


def what_is(path: os.PathLike[str] | str) -> str:
    """What is at `path`, in words: "missing", "a file", "a folder", "a symlink loop"..."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop"
        if os.path.islink(path):
            return "a symlink to something missing"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "missing"
        return f"unreadable ({exc.strerror or exc})"
    return "a file" if stat.S_ISREG(mode) else _kind(mode)


NAME_MAX = 255  # bytes in one file name component, on every Linux file system


def shown(path: os.PathLike[str] | str) -> str:
    """`path` for a one-line message: a component too long to read is cut in the middle."""
    parts = []
    for part in str(path).split("/"):
        size = len(os.fsencode(part))
        parts.append(part if size <= 80 else f"{part[:24]}…{part[-12:]} ({size} bytes)")
    return "/".join(parts)


def too_long(path: os.PathLike[str] | str) -> bool:
    """A component of `path` is over `NAME_MAX` bytes: no file system can hold it."""
    return any(len(os.fsencode(part)) > NAME_MAX for part in str(path).split("/"))


def name_error(path: os.PathLike[str] | str, what: str) -> PixcamError:
    return PixcamError(
        f"{what} {shown(path)}: a name in it is too long for the file system (over "
        f"{NAME_MAX} bytes): use a shorter name"
    )


def lexists(path: os.PathLike[str] | str, what: str) -> bool:
    """Whether anything is at `path` (a dangling symlink too); PixcamError, one line, when
    that cannot even be asked (a name over 255 bytes, a folder on the way not readable)."""
    try:
        os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise _open_error(Path(path), what, exc) from None
    return True


def is_dir(path: os.PathLike[str] | str) -> bool:
    """`Path.is_dir()` that is False, not an exception, for a name no file system holds."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def _open_error(path: Path, what: str, exc: OSError) -> PixcamError:
    if exc.errno == errno.ENOENT:
        if os.path.islink(path):
            return PixcamError(
                f"{what} {path} is a symlink to {os.readlink(path)}, which does not exist"
            )
        return PixcamError(f"{what} {path} does not exist")
    if exc.errno == errno.ELOOP:
        return PixcamError(f"{what} {path} is a symlink loop (it points back at itself)")
    if exc.errno == errno.ENOTDIR:
        return PixcamError(f"{what} {path}: a part of the path is a file, not a folder")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PixcamError(f"{what} {path} is not readable: check its permissions")
    if exc.errno == errno.ENAMETOOLONG or too_long(path):
        return name_error(path, what)
    return PixcamError(f"{what} {shown(path)} cannot be read: {exc.strerror or exc}")


def open_error(path: os.PathLike[str] | str, what: str, exc: OSError) -> PixcamError:
    """The one line for an `exc` raised opening `path`: what is there and what to do."""
    return _open_error(Path(path), what, exc)


def open_file(path: os.PathLike[str] | str, what: str) -> BinaryIO:
    """`path` opened for reading, after checking it is a regular file; one-line PixcamError
    saying what is there otherwise (missing, a folder, a FIFO, a device, a symlink loop, no
    permission). Opened without blocking (a FIFO must not hang us) and checked on the open
    descriptor, so a file swapped in between cannot slip through."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _open_error(path, what, exc) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise PixcamError(f"{what} {path} is {_kind(mode)}, not a file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_file(path: os.PathLike[str] | str, what: str) -> int:
    """`path`'s size, after `open_file`'s checks (a regular file pixcam can read)."""
    with open_file(path, what) as fh:
        return os.fstat(fh.fileno()).st_size


def same_file(a: os.PathLike[str] | str, b: os.PathLike[str] | str) -> bool:
    """`a` and `b` name one file: the same inode, or, for one not there yet, the same path
    once symlinks and `..` are resolved."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.realpath(a) == os.path.realpath(b)


def check_not_overwriting(output: str, option: str, reads: dict[str, str | None]) -> None:
    """PixcamError when `output` is a file pixcam reads (`reads`: what it is → its path):
    writing it would destroy the user's file before (or while) it is read."""
    for what, source in reads.items():
        if source and same_file(output, source):
            raise PixcamError(
                f"{option} {output} is {what}: give another file name "
                "(pixcam never writes over a file it reads)"
            )


def find_background(name: str, what: str = "background") -> Path:
    """Resolve a background image/video setting to an existing file.

    A value with a directory part (or ~) is a path; a bare name such as "studio-grey.png" (or
    "studio-grey") is searched in `background_dirs()`. `what` names the setting in messages
    ("away card": its image is looked up the same way).
    """
    if not name.strip():
        raise PixcamError(f"no {what} file set: give a path or a name from backgrounds/")
    p = Path(name).expanduser()
    if too_long(p):
        raise name_error(p, f"{what} file")
    # "./photo.jpg" is a path too, though pathlib drops its "./" (one part, like a name).
    if p.is_absolute() or "/" in name or name.startswith("~"):
        if what_is(p) == "missing":
            raise PixcamError(f"{what} file {p} not found: check the path")
        check_file(p, f"{what} file")  # a folder, FIFO, device...: said what it is
        return p
    for folder in background_dirs():
        candidates = [folder / name]
        if not p.suffix:  # allow "studio-grey" for "studio-grey.png"
            candidates += [folder / (name + s) for s in IMAGE_SUFFIXES]
        for c in candidates:
            if os.path.lexists(c):
                check_file(c, f"{what} file")
                return c
    where = " or ".join(str(d) for d in background_dirs())
    raise PixcamError(f"{what} {name!r} not found in {where}: give a path or copy it there")
