"""CSV text that spreadsheets open as data, never as formulas.

A spreadsheet (Excel, LibreOffice, Google Sheets) evaluates a cell whose text starts with ``=``,
``+``, ``-`` or ``@`` as a formula, and a leading tab or carriage return can hide such a start.
Text from outside (geocoder addresses, names from a store) may carry one, e.g.
``=HYPERLINK("http://...?x="&A1, "open")``. As the OWASP "CSV Injection" page recommends, every
*text* cell starting with one of those characters gets a single quote (``'``) in front, which
the spreadsheet shows as plain text. Numeric columns stay numbers: ``-0.5`` in a float column is
a number, not a formula, and is written unchanged.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

#: First characters that make a spreadsheet treat a cell as a formula (OWASP CSV Injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize_cell(value: Any) -> Any:
    """``value`` with a ``'`` in front when it is a string starting with :data:`FORMULA_STARTS`;
    any other value (numbers, None, other strings) is returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralize_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells are passed through :func:`neutralize_cell`.

    Columns of a numeric, boolean or datetime dtype are copied unchanged (their values are never
    formulas); in object/string columns only the ``str`` cells are changed.
    """
    out = df.copy()
    for col in out.columns:
        series = out[col]
        if (
            pd.api.types.is_numeric_dtype(series)
            or pd.api.types.is_bool_dtype(series)
            or pd.api.types.is_datetime64_any_dtype(series)
        ):
            continue
        out[col] = series.map(neutralize_cell)
    return out


def safe_csv_text(df: pd.DataFrame, **to_csv: Any) -> str:
    """``df.to_csv(**to_csv)`` (as text) after :func:`neutralize_frame`."""
    text: str = neutralize_frame(df).to_csv(**to_csv)
    return text
