"""``plastics review list | set | export`` on a published SQLite site database."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from plastics_core.sitedb.engine import open_database
from plastics_dagster.cli import cli
from tests import _review_data as d


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def published(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Three published sites of ROI temesi; their ids, highest score first."""
    url = f"sqlite:///{cli_env}/sites.sqlite"
    monkeypatch.setenv("PLASTICS_DATABASE_URL", url)
    monkeypatch.setenv("PLASTICS_REVIEWER", "ana")
    engine = open_database(url)
    d.publish(engine, {"2024-01-01": d.enriched({"temesi": 0.9, "north": 0.7, "west": 0.5})})
    engine.dispose()
    out = invoke("review", "list", "--roi", d.ROI, "--json")
    assert out.exit_code == 0, out.output
    return [json.loads(line)["site_id"] for line in out.output.splitlines()]


def test_list_set_export(published: list[str], cli_env: Path) -> None:
    assert len(published) == 3
    table = invoke("review", "list", "--roi", d.ROI)
    assert table.exit_code == 0 and table.output.splitlines()[0].startswith(published[0])
    assert "3 sites" in table.output
    note = '=HYPERLINK("http://x") </textarea>'
    done = invoke("review", "set", "--roi", d.ROI, published[0], "reject", "--note", note)
    assert done.exit_code == 0, done.output
    assert f"reject recorded for site {published[0]} of ROI {d.ROI} by ana (score 0.900" in done.output
    invoke("review", "set", "--roi", d.ROI, published[1], "confirm", "--reviewer", "budi")
    queue = invoke("review", "list", "--roi", d.ROI, "--json").output.splitlines()
    assert [json.loads(line)["site_id"] for line in queue] == [published[2]]
    every = [
        json.loads(line)
        for line in invoke("review", "list", "--roi", d.ROI, "--all", "--json").output.splitlines()
    ]
    assert [(i["site_id"], (i["latest"] or {}).get("verdict")) for i in every] == [
        (published[0], "reject"),
        (published[1], "confirm"),
        (published[2], None),
    ]
    exported = invoke("review", "export", "--roi", d.ROI)
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    assert [(r["site_id"], r["verdict"], r["reviewer"]) for r in rows] == [
        (published[0], "reject", "ana"),
        (published[1], "confirm", "budi"),
    ]
    assert rows[0]["note"] == "'" + note  # a spreadsheet shows it as text
    out = cli_env / "verdicts.json"
    assert invoke("review", "export", "--format", "json", "-o", str(out)).exit_code == 0
    assert [v["note"] for v in json.loads(out.read_text())][0] == note


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "--roi", d.ROI, "8f0000000000000", "confirm"), "is not a published site of ROI"),
        (("set", "--roi", "nowhere", "8f0000000000000", "confirm"), "has no published sites"),
        (("set", "--roi", d.ROI, "x", "maybe"), "'maybe' is not one of"),
        (("list", "--roi", d.ROI, "--margin", "2"), "2"),
        (("list", "--roi", d.ROI, "--database", "mysql://u:hunter2@h/db"), "unsupported site database"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(published: list[str], args: tuple[str, ...], message: str) -> None:
    result = invoke("review", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert "hunter2" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1
