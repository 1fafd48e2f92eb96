"""The import contract: docs/design.md's map, checked on the code.

Every `import` in the package (top-level, inside functions and under TYPE_CHECKING alike) may
name only its own group, a group on a lower floor, or the shared vocabulary; `chain` and
`video` sit side by side and never import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "daemon" / "pixcam"

# Lowest floor first. A top-level module is its own group, named as the module.
FLOORS: list[set[str]] = [
    {"errors", "paths", "modes", "native", "interrupt", "i420", "images", "parts", "config"},
    {"models"},
    {"chain", "video"},
    {"runner"},
    {"daemon", "run", "control", "tray", "tools"},
    {"cli", "__main__", "__init__"},
]
SIDE_BY_SIDE = {frozenset({"chain", "video"})}


def floor_of(group: str) -> int:
    for n, floor in enumerate(FLOORS):
        if group in floor:
            return n
    raise AssertionError(f"{group} is on no floor: add it to FLOORS in {__file__}")


def group_of(module: str) -> str:
    """`pixcam.chain.segment.engine` → `chain`; `pixcam.config` → `config`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts) if parts != ["pixcam"] else "pixcam"


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every pixcam import; `from pixcam import x` names `pixcam.x`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("pixcam.")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "pixcam":
                found += [(node.lineno, f"pixcam.{a.name}") for a in node.names]
            elif node.module.startswith("pixcam."):
                found.append((node.lineno, node.module))
    return found


def arrows() -> list[tuple[str, int, str, str]]:
    """(file, line, from group, to group) for every import between two groups."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, target in imported(tree):
            src, dst = group_of(here), group_of(target)
            if src != dst:
                out.append((str(path.relative_to(PACKAGE)), line, src, dst))
    return out


def test_every_group_has_a_floor() -> None:
    groups = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists())
    }
    for group in groups:
        floor_of(group)


@pytest.mark.parametrize("arrow", arrows(), ids=lambda a: f"{a[0]}:{a[1]}")
def test_imports_point_down(arrow: tuple[str, int, str, str]) -> None:
    where, line, src, dst = arrow
    assert frozenset({src, dst}) not in SIDE_BY_SIDE, f"{where}:{line}: {src} imports {dst}"
    assert floor_of(dst) <= floor_of(src), f"{where}:{line}: {src} imports {dst}, a floor up"


def test_the_contract_sees_a_wrong_arrow() -> None:
    tree = ast.parse("def f():\n    from pixcam.runner import pipeline\n")
    ((_line, target),) = imported(tree)
    assert floor_of(group_of(target)) > floor_of("chain")


def test_top_level_stays_small() -> None:
    modules = list(PACKAGE.glob("*.py"))
    assert len(modules) <= 15, sorted(p.name for p in modules)
