"""The model manifest, model installation with sha256 checks, and model lookup.

Model files never ship with pixcam. `install()` puts each into the user's data directory in one
of three ways, as models.toml says: downloaded from its pinned upstream URL (or the same path
below `PIXCAM_MODEL_MIRROR`, or copied from a `--from DIR_OR_URL` copy), built from a fetched
file (`build`), or derived from an installed model with shipped numbers (the int8 models,
quantized from their float originals with the calibration ranges in the package). Every file is
checked against its sha256 before it is renamed into place, the origin is recorded for
`pixcam doctor`, and every load checks the hash again so a truncated or altered file is caught
before the interpreter sees it. A load reads the file into memory and hashes exactly the bytes
the interpreter gets (`read_verified`): the running stream never depends on the file staying as
it was (LiteRT would map it and read it on every frame; a file shortened in place then kills
the process with SIGBUS).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: tomllib's source, the `tomli` package
    import tomli as tomllib
from typing import Any

from pixcam import paths
from pixcam.errors import PixcamError
from pixcam.models import download
from pixcam.models.download import sha256_of as sha256_of  # used by tools.install_system

log = logging.getLogger(__name__)

MANIFEST = "models.toml"
INSTALL_HINT = "install it with `pixcam models install`"
ORIGINS = "origins.json"  # in the model folder: where each installed file came from


class ModelNotInstalled(PixcamError):
    """A known model whose file is not in the model folder (not installed yet)."""


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry; `path` is where the installed file lives (or would live)."""

    name: str
    family: str
    description: str
    file: str
    source: str
    sha256: str
    weights: str
    output_stride: int
    input: str
    resizable: bool
    default_resolution: int
    outputs: dict[str, str]
    licence: str
    size: int  # the model file's bytes
    segments_are_probabilities: bool = False
    url: str = ""  # the same file as `source`, at its public origin pinned to a git commit
    found_in: str = ""  # where a file without a public URL can be found
    source_sha256: str = ""  # the fetched file's hash when `build` turns it into another
    source_size: int = 0  # the fetched file's bytes when `build` turns it into another
    build: str = ""  # how the fetched file becomes the model file (see BUILDERS)
    derived_from: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return models_dir() / self.file

    @property
    def installed(self) -> bool:
        """A file is at `path`; False too when the folder may not be looked into (the load
        then says so: `check_models_dir`)."""
        try:
            return stat.S_ISREG(os.stat(self.path).st_mode)
        except OSError:  # Path.is_file raises for EACCES
            return False

    @property
    def present(self) -> bool:
        """Something is at `path` (a file, or a folder or FIFO in its place)."""
        return os.path.lexists(self.path)

    @property
    def capabilities(self) -> list[str]:
        caps = ["person"]
        if "part_heatmaps" in self.outputs:
            caps.append("parts")
        return caps

    @property
    def obtained(self) -> str:
        """How `pixcam models install` gets this model, in a word or three."""
        if self.derived_from:
            return f"made from {self.derived_from}"
        if self.build:
            return f"built from {Path(self.source).suffix.lstrip('.').upper()} download"
        return "download" if self.url else "--from DIR only"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "path": str(self.path),
            "sha256": self.sha256,
            "weights": self.weights,
            "output_stride": self.output_stride,
            "capabilities": self.capabilities,
            "installed": self.installed,
            "url": self.url,
            "obtained": self.obtained,
        }


def models_dir() -> Path:
    """`$PIXCAM_MODELS_DIR`, else `$XDG_DATA_HOME/pixcam/models` (~/.local/share)."""
    return paths.models_dir()


def check_models_dir() -> None:
    """PixcamError when the models folder is there but pixcam may not look into it: every
    model in it would otherwise be "not installed" or "not readable" one by one."""
    folder = models_dir()
    try:
        os.listdir(folder)
    except PermissionError:
        raise PixcamError(f"model folder {folder} is not readable: check its permissions") from None
    except OSError:  # missing, or not a folder: each model's own check names that
        return


@cache
def _manifest() -> dict[str, Any]:
    text = resources.files("pixcam.models").joinpath(MANIFEST).read_text(encoding="utf-8")
    return tomllib.loads(text)


def list_models() -> list[ModelSpec]:
    return [ModelSpec(**entry) for entry in _manifest()["model"]]


def default_model_name() -> str:
    return str(_manifest()["default"])


def is_default(name: str | None) -> bool:
    """Whether `name` asks for the project's default model: "default" (the config's own
    value), "" or None."""
    return name in (None, "", "default")


def get_spec(name: str | None) -> ModelSpec:
    """The manifest entry for `name` ("default" or None = the project's default)."""
    wanted = default_model_name() if is_default(name) else name
    for spec in list_models():
        if spec.name == wanted:
            return spec
    known = ", ".join(s.name for s in list_models())
    raise PixcamError(f"unknown model {wanted!r}; known models: {known}")


# Verified model bytes by the file's identity (path, device, inode, size, mtime, ctime): a
# setting checked before it is saved and then loaded is read and hashed once. Any change to the
# file (even one that keeps the mtime) changes its ctime, so it is read and hashed again.
_VERIFIED: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
_VERIFIED_LOCK = threading.Lock()
KEEP_VERIFIED = 4  # the fused pair plus the pair a change loads beside it


def read_verified(spec: ModelSpec) -> bytes:
    """The installed file's bytes, in memory, after checking that their sha256 matches.

    Give these bytes to the interpreter (not the path): what was checked is what runs, and
    nothing done to the file afterwards reaches the running stream.
    """
    path = spec.path
    reinstall = f"`pixcam models install --name {spec.name} --force`"
    if not spec.present:
        raise ModelNotInstalled(
            f"model {spec.name} is not installed ({path} missing); {INSTALL_HINT}"
        )
    try:
        with paths.open_file(path, "model file") as fh:
            st = os.fstat(fh.fileno())
            key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            with _VERIFIED_LOCK:
                cached = _VERIFIED.get(key)
            if cached is not None:
                return cached
            data = fh.read()
    except PixcamError as exc:
        raise PixcamError(f"{exc}; remove it and reinstall with {reinstall}") from None
    except OSError as exc:
        raise PixcamError(
            f"model file {path} cannot be read ({exc.strerror or exc}); reinstall with {reinstall}"
        ) from None
    found = hashlib.sha256(data).hexdigest()
    if found != spec.sha256:
        raise PixcamError(
            f"model file {path} is damaged or altered: sha256 {found[:12]}… but expected "
            f"{spec.sha256[:12]}…; reinstall it with {reinstall}"
        )
    with _VERIFIED_LOCK:
        _VERIFIED[key] = data
        while len(_VERIFIED) > KEEP_VERIFIED:
            _VERIFIED.popitem(last=False)
    return data


def verify(spec: ModelSpec) -> Path:
    """The installed file's path, after checking it is a file and its sha256 matches."""
    read_verified(spec)
    return spec.path


def resolve(name: str | None) -> ModelSpec:
    """The spec for `name`, with its installed file verified.

    When the default is a derived (quantized) model that has not been made yet (no
    ai-edge-quantizer), its float original serves instead, so pixcam still runs.
    """
    spec = get_spec(name)
    check_models_dir()
    if is_default(name) and not spec.present and spec.derived_from:
        base = get_spec(spec.derived_from)
        if base.installed:
            log.warning(
                "default model %s is not made yet, using %s; run `pixcam models install`",
                spec.name,
                base.name,
            )
            spec = base
    verify(spec)
    return spec


# ------------------------------------------------------------------------------ install
class Skipped(Exception):
    """A model that cannot be installed this way; not an error (the message says why)."""


# Builders turn a fetched file into the model file: "module:function", imported when needed.
BUILDERS = {
    "onnx2tflite": "pixcam.models.onnx2tflite:convert_onnx",
    "selfie2f32": "pixcam.models.selfie2f32:rewrite_selfie",
}


def builder(name: str) -> Callable[[bytes], bytes]:
    """The build function `name`; ImportError when it (or what it needs, e.g. onnx) is absent."""
    import importlib

    module, _, function = BUILDERS[name].partition(":")
    return getattr(importlib.import_module(module), function)


@dataclass(frozen=True)
class Want:
    """One file to fetch: its path below a `--from` source, its upstream URL, its sha256."""

    relpath: str
    url: str
    sha256: str
    size: int  # bytes: a source that announces or holds more is refused


def _obtain(
    spec: ModelSpec, source: str | None, want: Want, dest: Path, policy: download.Policy
) -> str:
    """Put the wanted file from `source` (from upstream when None) at `dest`, verified.

    Returns where it came from. `--from` sources are used as given, without the mirror.
    """
    if source is None:
        if not want.url:
            where = f" ({spec.found_in})" if spec.found_in else ""
            raise Skipped(
                f"no public download{where}; install it with "
                f"`pixcam models install --from DIR --name {spec.name}`"
            )
        return download.fetch(
            want.url, dest, want.sha256, size=want.size, label=spec.name, policy=policy
        )
    url = f"{source.rstrip('/')}/{want.relpath}"
    if not download.is_url(source):
        url = str(Path(source).expanduser().resolve() / want.relpath)
    return download.fetch(
        url, dest, want.sha256, size=want.size, label=spec.name, policy=policy, mirror=""
    )


def _check(spec: ModelSpec, data: bytes, how: str) -> None:
    found = hashlib.sha256(data).hexdigest()
    if found != spec.sha256:
        raise PixcamError(
            f"{spec.name}: {how} gives sha256 {found[:12]}…, expected {spec.sha256[:12]}… "
            "(another tool version?); not installed"
        )


def _install_one(spec: ModelSpec, source: str | None, policy: download.Policy) -> str:
    """Install one model file; returns its origin (for origins.json and the report)."""
    from pixcam.models import quantize

    if spec.derived_from is not None:
        base = get_spec(spec.derived_from)
        if not _intact(base):
            raise Skipped(f"made from {base.name}, which is not installed")
        try:
            data = quantize.derive(spec, base.path)
        except quantize.QuantizerMissing as exc:
            raise Skipped(f"{exc} (until then {base.name} serves)") from None
        _check(spec, data, f"quantizing {base.name}")
        quantize.write_atomic(spec.path, data)
        return f"quantized from {base.name} with the shipped calibration ranges"
    if not spec.build:
        want = Want(spec.source, spec.url, spec.sha256, spec.size)
        return _obtain(spec, source, want, spec.path, policy)
    try:
        build = builder(spec.build)
    except ImportError as exc:
        raise Skipped(f"needs the `{spec.build}` builder ({exc})") from None
    fetched = spec.path.with_name(f".{spec.file}{Path(spec.source).suffix}")
    try:
        want = Want(spec.source, spec.url, spec.source_sha256, spec.source_size)
        where = _obtain(spec, source, want, fetched, policy)
        data = build(fetched.read_bytes())
    finally:
        fetched.unlink(missing_ok=True)
    _check(spec, data, f"building from {where}")
    quantize.write_atomic(spec.path, data)
    return f"built by {spec.build} from {where}"


def _ordered(specs: list[ModelSpec], wanted: set[str] | None) -> list[ModelSpec]:
    """The models to install, each base before the models derived from it."""
    if wanted:
        bases = {s.derived_from for s in specs if s.name in wanted and s.derived_from}
        specs = [s for s in specs if s.name in wanted | bases]
    return sorted(specs, key=lambda s: s.derived_from is not None)


def install(
    source: str | None = None,
    names: Iterable[str] | None = None,
    force: bool = False,
    policy: download.Policy | None = None,
) -> Iterator[str]:
    """Install models (from upstream, or from a folder / URL prefix); yields one line each.

    Raises PixcamError after the report when a model failed, and at once when the network
    is missing (every other download would fail the same way).
    """
    policy = policy or download.Policy()
    local = source is not None and not download.is_url(source)
    if local and not Path(str(source)).expanduser().is_dir():
        what = paths.what_is(Path(str(source)).expanduser())
        raise PixcamError(f"model source {source} is {what}, not a folder or an http(s) URL")
    specs = list_models()
    wanted = set(names) if names else None
    if wanted:
        unknown = wanted - {s.name for s in specs}
        if unknown:
            raise PixcamError(
                f"unknown model(s) {', '.join(sorted(unknown))}; see `pixcam models list`"
            )
    _make_models_dir()
    failures = 0
    for spec in _ordered(specs, wanted):
        forced = force and (wanted is None or spec.name in wanted)  # not the bases pulled in
        if not forced and _intact(spec):
            yield f"ok       {spec.name} (already installed)"
            continue
        started = time.monotonic()
        try:
            _check_target(spec)
            origin = _install_one(spec, source, policy)
            record_origin(spec, origin)
        except Skipped as why:
            yield f"skipped  {spec.name}: {why}"
            continue
        except (download.NoNetworkError, download.DiskError):
            raise  # every other model would fail the same way
        except OSError as exc:  # a write in the model folder (quantized model, origins.json)
            raise PixcamError(
                f"{spec.name}: cannot write in {models_dir()}: {exc.strerror or exc}"
            ) from None
        except PixcamError as exc:
            failures += 1
            yield f"FAILED   {exc}"
            continue
        took = time.monotonic() - started
        yield f"installed {spec.name} ({took:.1f} s, {origin})"
    if failures:
        raise PixcamError(f"{failures} model(s) could not be installed (see above)")


def _make_models_dir() -> None:
    folder = models_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        what = paths.what_is(folder)
        if what != "missing":
            raise PixcamError(
                f"model folder {folder} is {what}, not a folder: move it away, or set "
                "PIXCAM_MODELS_DIR to a folder"
            ) from None
        raise PixcamError(
            f"cannot create the model folder {folder}: {exc.strerror or exc}; set "
            "PIXCAM_MODELS_DIR to a folder you can write"
        ) from None


def _intact(spec: ModelSpec) -> bool:
    """The model is installed and its bytes are right."""
    try:
        read_verified(spec)
    except PixcamError:
        return False
    return True


def _check_target(spec: ModelSpec) -> None:
    """PixcamError when a folder stands where the model file goes (a rename cannot replace
    it, and removing a folder is the user's decision); a damaged file is simply replaced."""
    if os.path.isdir(spec.path):
        raise PixcamError(
            f"{spec.name}: model file {spec.path} is a folder; remove it and install again"
        )


# ------------------------------------------------------------------------------ origins
def origins() -> dict[str, dict[str, str]]:
    """What `install` recorded per model: origin, sha256, when."""
    try:
        data = json.loads((models_dir() / ORIGINS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_origin(spec: ModelSpec, origin: str) -> None:
    data = origins()
    data[spec.name] = {
        "origin": origin,
        "sha256": spec.sha256,
        "installed": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    path = models_dir() / ORIGINS
    tmp = path.with_name(f".{ORIGINS}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def format_table(specs: list[ModelSpec]) -> str:
    default = default_model_name()
    rows = [("name", "family", "weights", "stride", "can do", "installed by", "installed")]
    for s in specs:
        mark = " (default)" if s.name == default else ""
        rows.append(
            (
                s.name + mark,
                s.family,
                s.weights,
                str(s.output_stride),
                "+".join(s.capabilities),
                s.obtained,
                "yes" if s.installed else "no",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for s in specs:
        if not s.url and not s.derived_from:
            lines.append(f"{s.name}: no public download; in {s.found_in}")
    lines.append(f"model folder: {models_dir()}")
    return "\n".join(lines)
