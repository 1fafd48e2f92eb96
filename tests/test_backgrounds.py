"""The bundled background images: present, the right size, small, and reproducible."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "backgrounds"


def _generator() -> types.ModuleType:  # backgrounds/ is not a package: load the script by path
    spec = importlib.util.spec_from_file_location("bg_generate", FOLDER / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_recipe_has_its_committed_png() -> None:
    names = set(_generator().RECIPES)
    assert names == {p.name for p in FOLDER.glob("*.png")}
    assert len(names) >= 3


@pytest.mark.parametrize("path", sorted(FOLDER.glob("*.png")), ids=lambda p: p.name)
def test_png_is_full_hd_rgb_and_small(path: Path) -> None:
    with Image.open(path) as img:
        assert img.size == (1920, 1080)
        assert img.mode == "RGB"
        pixels = np.asarray(img)
    assert path.stat().st_size < 500_000
    assert pixels.std() > 3  # not a flat fill


def test_default_config_image_is_bundled() -> None:
    default = tomllib.loads((REPO / "config" / "default.toml").read_text())
    assert (FOLDER / default["effects"]["image"]).is_file()


def test_generator_reproduces_the_committed_image() -> None:
    # Pixels, not bytes: the PNG encoder may differ between Pillow/zlib versions.
    rendered = np.asarray(_generator().render("studio-grey.png"))
    with Image.open(FOLDER / "studio-grey.png") as img:
        committed = np.asarray(img)
    assert np.array_equal(rendered, committed)
