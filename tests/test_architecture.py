"""The package layout's rules (docs/ARCHITECTURE.md), checked on the source without importing it:
no module over 300 lines, and plastics_core never imports Dagster."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("plastics_core", "plastics_dagster")
MAX_LINES = 300


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module name imported by ``path`` (``import a.b`` and ``from a.b import c`` give ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_over_the_line_limit(package: str) -> None:
    modules = _modules(package)
    assert len(modules) > 10, f"{package}: no modules found under {REPO}"
    long = {str(p.relative_to(REPO)): n for p in modules
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by role): {long}"


def test_core_never_imports_dagster() -> None:
    offenders = {str(p.relative_to(REPO)): sorted(m for m in _imports(p) if m.split(".")[0].startswith("dagster"))
                 for p in _modules("plastics_core")}
    assert not {k: v for k, v in offenders.items() if v}

