"""The ``plastics`` command line (console script ``plastics = plastics_dagster.cli:main``).

The CLI holds no detection logic: each command parses its options, calls one function of
``plastics_core`` or ``plastics_dagster`` and prints the result. User errors (a
:class:`plastics_core.errors.PlasticsError`, a click usage error, an unreadable path) print
ONE line on stderr naming the problem and the fix and exit with code 2, without a traceback;
set ``PLASTICS_DEBUG=1`` to see the traceback instead.

Commands (each has ``--help``)::

    plastics demo                      whole graph on the embedded default (synthetic TPA Temesi)
    plastics run --roi NAME --window YYYY-MM-DD [--imagery ...] [--store ...] [--preset ...]
    plastics sites --roi NAME [--store ...] [--preset ...] [--param K=V] [--run-hash H] [--csv|--json]
    plastics roi add NAME FILE.geojson | roi list | roi remove NAME [--purge] | roi split NAME FILE.geojson --cell DEG
    plastics preview --roi NAME --window YYYY-MM-DD [--open]
    plastics blobs HEATMAP.tif -o OUT.geojson [thresholds]
    plastics candidates --blobs B.geojson --patches P.geojson --patch-threshold T -o OUT.geojson
    plastics models list | pull | verify
    plastics serve [--host 127.0.0.1] [--port 8000] [--store ...]
    plastics review list --roi NAME | set --roi NAME SITE_ID VERDICT | export
"""

from __future__ import annotations

from plastics_dagster.cli._base import PlasticsGroup
from plastics_dagster.cli.models import models
from plastics_dagster.cli.preview import preview
from plastics_dagster.cli.review import review
from plastics_dagster.cli.roi import roi
from plastics_dagster.cli.run import demo, run
from plastics_dagster.cli.serve import serve
from plastics_dagster.cli.sites import sites
from plastics_dagster.cli.stages import blobs, candidates

__all__ = ["cli", "main"]


cli = PlasticsGroup(
    name="plastics",
    help=(
        "Find plastic-waste dump sites in Sentinel-2 imagery with the Global Plastic Watch models "
        "(a Dagster asset graph). Start with `plastics demo`."
    ),
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
for _command in (demo, run, sites, roi, preview, blobs, candidates, models, review, serve):
    cli.add_command(_command)

#: the console-script entry point (a click Group whose ``main`` maps user errors to exit 2).
main = cli
