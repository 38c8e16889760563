"""docs/CONFIGURATION.md's environment table and the code stay in step.

Every ``PLASTICS_*`` name the code of ``plastics_core``, ``plastics_dagster`` and ``bench`` holds as
a string literal (``os.environ.get("PLASTICS_X")``, ``EnvVar("PLASTICS_X")``, a constant such as
``ENV_VAR = "PLASTICS_X"``) must be a row of the table, and every ``PLASTICS_*`` row must be such a
literal in the code. Found by parsing the code (``ast``), not by grepping docstrings.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "CONFIGURATION.md"
CODE = ("plastics_core", "plastics_dagster", "bench")
ENV_NAME = re.compile(r"PLASTICS_[A-Z0-9_]+")
#: ``PLASTICS_*`` literals in the code that are not environment variables.
NOT_ENV = {"PLASTICS_NAME": "GeoTIFF tag holding a raster's name (plastics_core/storage/outputs.py)"}


def names_in_code() -> dict[str, list[str]]:
    """``PLASTICS_*`` string literals in the code -> the files holding them."""
    found: dict[str, list[str]] = {}
    for package in CODE:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and ENV_NAME.fullmatch(node.value)
                ):
                    found.setdefault(node.value, []).append(str(path.relative_to(REPO)))
    return found


def names_in_doc() -> set[str]:
    """``PLASTICS_*`` names in the first column of the "Environment variables" table."""
    text = DOC.read_text()
    section = text.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| `")]
    assert rows, "no table rows under '## Environment variables'"
    return {name for row in rows for name in ENV_NAME.findall(row.split("|")[1])}


def test_every_variable_read_by_the_code_is_documented() -> None:
    code = {k: v for k, v in names_in_code().items() if k not in NOT_ENV}
    missing = {name: files for name, files in code.items() if name not in names_in_doc()}
    assert not missing, f"add these to the table in docs/CONFIGURATION.md: {missing}"


def test_every_documented_variable_is_read_by_the_code() -> None:
    stale = names_in_doc() - set(names_in_code()) - set(NOT_ENV)
    assert not stale, f"documented in docs/CONFIGURATION.md but not read by the code: {sorted(stale)}"


def test_the_check_sees_known_reads() -> None:
    """The scan finds reads written in each style the code uses (guards the checker itself)."""
    code = names_in_code()
    assert "plastics_core/models/store.py" in code["PLASTICS_CACHE"]  # os.environ.get(...)
    assert "plastics_dagster/step_io.py" in code["PLASTICS_STEP_STORE"]  # a module constant
    assert {"PLASTICS_STORE", "PLASTICS_MODEL_STORE"} <= names_in_doc()
