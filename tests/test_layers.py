"""The layers of plastics_core (docs/ARCHITECTURE.md, "Layers") import only downward.

Every module's imports are read from its source with ``ast``, including the lazy imports inside
functions and relative imports, so an upward import anywhere in the package fails here with the
pair of modules named.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "plastics_core"

#: Layer of each unit (a top-level module or a subpackage), low to high. A module may import a
#: lower layer, and within its own layer only its own unit (sibling subpackages stay independent);
#: the neutral layer (errors, redaction, retries, timing, threads) may import within itself.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("", "errors", "redact", "retry", "timing", "threads"),
    ("geo",),
    ("storage", "synthetic"),
    ("imagery", "models"),
    ("method",),
    ("params",),
    ("execution",),
    ("report", "sitedb", "evaluation", "alerts"),
    ("api",),
)
LAYER = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}
NEUTRAL = 0


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (``__init__`` as the package)."""
    mods: dict[str, Path] = {}
    for path in sorted((REPO / PACKAGE).rglob("*.py")):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _unit(module: str) -> str:
    """``plastics_core.geo.tiles`` -> ``geo``; ``plastics_core.params`` -> ``params``; the package -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imported(module: str, path: Path, mods: dict[str, Path]) -> set[tuple[str, int]]:
    """The package modules ``module`` imports anywhere in its source, with the line numbers."""
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name.startswith(PACKAGE) and name != module:
                found.add((name, node.lineno))
    return found


def _violation(importer: str, imported: str) -> str | None:
    low, high = _unit(imported), _unit(importer)
    if LAYER[low] > LAYER[high]:
        return "imports upward"
    if LAYER[low] == LAYER[high] and low != high and LAYER[low] != NEUTRAL:
        return "imports a sibling of its layer"
    return None


def test_every_unit_has_a_layer() -> None:
    mods = _modules()
    assert len(mods) > 50, f"{PACKAGE}: no modules found under {REPO}"
    missing = sorted({_unit(m) for m in mods} - set(LAYER))
    assert not missing, f"add these to LAYERS (and to docs/ARCHITECTURE.md): {missing}"


def test_imports_only_point_down() -> None:
    mods = _modules()
    offenders = [
        f"{importer}:{line} {why} -> {imported}"
        for importer, path in mods.items()
        for imported, line in sorted(_imported(importer, path, mods))
        if (why := _violation(importer, imported))
    ]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize(
    ("importer", "imported", "why"),
    [
        ("plastics_core.storage.store", "plastics_core.execution.tile_job", "imports upward"),
        ("plastics_core.models.store", "plastics_core.imagery.stac", "imports a sibling of its layer"),
        ("plastics_core.params", "plastics_core.execution.pipeline", "imports upward"),
        ("plastics_core.retry", "plastics_core.geo.tiles", "imports upward"),
        ("plastics_core.execution.pipeline", "plastics_core.params", None),
        ("plastics_core.retry", "plastics_core.redact", None),
        ("plastics_core.imagery.stac", "plastics_core.imagery.stac_read", None),
    ],
)
def test_the_rule_names_upward_and_sibling_imports(importer: str, imported: str, why: str | None) -> None:
    assert _violation(importer, imported) == why


def test_lazy_and_relative_imports_are_read(tmp_path: Path) -> None:
    source = "from . import b\n\ndef f():\n    from plastics_core.geo import tiles\n"
    path = tmp_path / "a.py"
    path.write_text(source, encoding="utf-8")
    mods = {"plastics_core.retry": path, "plastics_core.b": path, "plastics_core.geo.tiles": path}
    assert _imported("plastics_core.retry", path, mods) == {
        ("plastics_core.b", 1),
        ("plastics_core.geo.tiles", 4),
    }
