"""The package layout's rules (docs/ARCHITECTURE.md), checked on the source without importing it:
plastics_core never imports Dagster."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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


def test_core_never_imports_dagster() -> None:
    modules = _modules("plastics_core")
    assert len(modules) > 10, f"plastics_core: no modules found under {REPO}"
    offenders = {
        str(p.relative_to(REPO)): sorted(m for m in _imports(p) if m.split(".")[0].startswith("dagster"))
        for p in modules
    }
    assert not {k: v for k, v in offenders.items() if v}
