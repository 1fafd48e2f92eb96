"""The model manifest, model installation with sha256 checks, and model lookup.

Model files never ship with pixcam: `install()` copies them from a folder (or downloads them
from a URL prefix) into the user's data directory, and every load checks the hash again so a
truncated or altered file is caught before the interpreter sees it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pixcam.errors import PixcamError

log = logging.getLogger(__name__)

MANIFEST = "models.toml"
INSTALL_HINT = "install it with `pixcam models install --from DIR_OR_URL`"


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
    segments_are_probabilities: bool = False
    derived_from: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return models_dir() / self.file

    @property
    def installed(self) -> bool:
        return self.path.is_file()

    @property
    def capabilities(self) -> list[str]:
        caps = ["person"]
        if "part_heatmaps" in self.outputs:
            caps.append("parts")
        return caps

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
        }


def models_dir() -> Path:
    """`$PIXCAM_MODELS_DIR`, else `$XDG_DATA_HOME/pixcam/models` (~/.local/share)."""
    from pixcam import paths

    return paths.models_dir()


@cache
def _manifest() -> dict[str, Any]:
    text = resources.files("pixcam").joinpath(MANIFEST).read_text(encoding="utf-8")
    return tomllib.loads(text)


def list_models() -> list[ModelSpec]:
    return [ModelSpec(**entry) for entry in _manifest()["model"]]


def default_model_name() -> str:
    return str(_manifest()["default"])


def get_spec(name: str | None) -> ModelSpec:
    """The manifest entry for `name` ("default" or None = the project's default)."""
    wanted = default_model_name() if name in (None, "", "default") else name
    for spec in list_models():
        if spec.name == wanted:
            return spec
    known = ", ".join(s.name for s in list_models())
    raise PixcamError(f"unknown model {wanted!r}; known models: {known}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(spec: ModelSpec) -> Path:
    """The installed file's path, after checking it exists and its sha256 matches."""
    path = spec.path
    if not path.is_file():
        raise PixcamError(f"model {spec.name} is not installed ({path} missing); {INSTALL_HINT}")
    found = sha256_of(path)
    if found != spec.sha256:
        raise PixcamError(
            f"model file {path} is damaged or altered: sha256 {found[:12]}… but expected "
            f"{spec.sha256[:12]}…; reinstall it with "
            f"`pixcam models install --from DIR_OR_URL --name {spec.name} --force`"
        )
    return path


def resolve(name: str | None) -> ModelSpec:
    """The spec for `name`, with its installed file verified.

    When the default is a derived (quantized) model that has not been made yet, its float
    original serves instead, so a fresh install without calibration photos still runs.
    """
    spec = get_spec(name)
    if name in (None, "", "default") and not spec.installed and spec.derived_from:
        base = get_spec(spec.derived_from)
        if base.installed:
            log.warning(
                "default model %s is not made yet, using %s; run `pixcam models quantize`",
                spec.name,
                base.name,
            )
            spec = base
    verify(spec)
    return spec


def _is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https", "file")


def _fetch(source: str, relpath: str, dest: Path) -> None:
    """Copy or download one file to `dest` (a temporary name beside the final one)."""
    if _is_url(source):
        url = source.rstrip("/") + "/" + urllib.parse.quote(relpath)
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, dest.open("wb") as out:
                shutil.copyfileobj(resp, out)
        except OSError as exc:
            raise PixcamError(f"cannot download {url}: {exc}") from None
    else:
        src = Path(source).expanduser() / relpath
        if not src.is_file():
            raise FileNotFoundError(src)
        shutil.copyfile(src, dest)


def install(source: str, names: Iterable[str] | None = None, force: bool = False) -> Iterator[str]:
    """Install models from a folder or URL prefix; yields one report line per model.

    Files go to a temporary name first and are renamed into place only after the hash
    matches, so a failed copy never leaves a half-written model behind.
    """
    if not _is_url(source) and not Path(source).expanduser().is_dir():
        raise PixcamError(f"model source {source} is not a folder or an http(s) URL")
    wanted = set(names) if names else None
    specs = list_models()
    if wanted:
        unknown = wanted - {s.name for s in specs}
        if unknown:
            raise PixcamError(
                f"unknown model(s) {', '.join(sorted(unknown))}; see `pixcam models list`"
            )
        specs = [s for s in specs if s.name in wanted]
    target = models_dir()
    target.mkdir(parents=True, exist_ok=True)
    failures = 0
    for spec in specs:
        if spec.derived_from is not None:
            yield f"skipped  {spec.name}: made from {spec.derived_from} by `pixcam models quantize`"
            continue
        if spec.installed and not force and sha256_of(spec.path) == spec.sha256:
            yield f"ok       {spec.name} (already installed)"
            continue
        fd, tmp_name = tempfile.mkstemp(dir=target, prefix=f".{spec.file}.")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            _fetch(source, spec.source, tmp)
            found = sha256_of(tmp)
            if found != spec.sha256:
                failures += 1
                yield (
                    f"FAILED   {spec.name}: {spec.source} has sha256 {found[:12]}…, "
                    f"expected {spec.sha256[:12]}…; not installed"
                )
                continue
            tmp.replace(spec.path)
            yield f"installed {spec.name} -> {spec.path}"
        except FileNotFoundError as exc:
            failures += 1
            yield f"missing  {spec.name}: {exc.filename} not found in the source"
        finally:
            tmp.unlink(missing_ok=True)
    if failures and wanted:
        raise PixcamError(f"{failures} model(s) could not be installed (see above)")


def format_table(specs: list[ModelSpec]) -> str:
    default = default_model_name()
    rows = [("name", "family", "weights", "stride", "can do", "installed")]
    for s in specs:
        mark = " (default)" if s.name == default else ""
        rows.append(
            (
                s.name + mark,
                s.family,
                s.weights,
                str(s.output_stride),
                "+".join(s.capabilities),
                "yes" if s.installed else "no",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(f"model folder: {models_dir()}")
    return "\n".join(lines)
