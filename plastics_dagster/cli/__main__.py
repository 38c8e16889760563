"""``python -m plastics_dagster.cli`` = the ``plastics`` console script."""

from plastics_dagster.cli import main

main()
