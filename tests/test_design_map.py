"""docs/design.md's map is the folder tree: every module and package of daemon/pixcam has its
line there, and every line names something that exists."""

from __future__ import annotations

import re

from conftest import REPO

PACKAGE = REPO / "daemon" / "pixcam"
DESIGN = REPO / "docs" / "design.md"
ENTRY = re.compile(r"^((?:│   |    )*)[├└]── (\S+)")


def mapped() -> set[str]:
    """The paths the map names, relative to daemon/pixcam/ (folders end in "/")."""
    text = DESIGN.read_text(encoding="utf-8")
    block = text.split("## The map", 1)[1].split("```", 2)[1]
    found: set[str] = set()
    parents: list[str] = []
    for line in block.splitlines():
        m = ENTRY.match(line)
        if not m:
            continue
        depth = len(m.group(1)) // 4
        parents = parents[:depth]
        name = m.group(2)
        found.add("".join(parents) + name)
        if name.endswith("/"):
            parents.append(name)
    return found


def tree() -> set[str]:
    """Every module of the package and every package folder (a folder with __init__.py; the
    folder's line stands for its __init__.py, which may have a line of its own)."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        folder = path.parent
        if folder != PACKAGE and not (folder / "__init__.py").exists():
            continue  # a script in a data folder (backgrounds/generate.py)
        if folder != PACKAGE:
            found.add(f"{folder.relative_to(PACKAGE)}/")
            if path.name == "__init__.py":
                continue
        found.add(str(path.relative_to(PACKAGE)))
    return found


def test_every_module_and_package_is_on_the_map() -> None:
    missing = sorted(tree() - mapped())
    assert not missing, f"add a line for each to the map in {DESIGN}: {missing}"


def test_everything_on_the_map_exists() -> None:
    gone = sorted(p for p in mapped() if not (PACKAGE / p.rstrip("/")).exists())
    assert not gone, f"the map in {DESIGN} names what is not there: {gone}"
