"""``plastics preview --roi R --window W``: print (``--open``: open) the stored preview map.

Prints the page's local path on a local store, or a presigned ``https`` URL (7 days) on an S3
store -- the link a browser opens (browsers refuse ``file://`` links from the Dagster UI). The page
is ``<store>/preview/<roi>/<window>/<run-hash>.html`` (see :mod:`plastics_dagster.assets.preview`);
with several run hashes stored, ``--run-hash`` picks one.
"""

from __future__ import annotations

import click

from plastics_core.errors import PlasticsError
from plastics_dagster.cli._instance import open_store
from plastics_dagster.cli.run import _STORE_HELP


@click.command("preview")
@click.option("--roi", required=True, help="ROI name.")
@click.option("--window", required=True, help="Window start YYYY-MM-DD.")
@click.option("--run-hash", help="Run hash of the preview when several are stored.")
@click.option("--open", "open_", is_flag=True, help="Open it in the default browser too.")
@click.option("--store", help=_STORE_HELP)
def preview(roi: str, window: str, run_hash: str | None, open_: bool, store: str | None) -> None:
    """Print the path or https URL of the preview map of ROI x WINDOW (and open it with --open)."""
    from plastics_core.storage.layout import HTML_EXT, asset_folder, asset_path, stored_run_hashes
    from plastics_core.storage.store import is_local as _is_local
    from plastics_dagster.assets.preview import browser_url
    from plastics_dagster.partitions import parse_window
    from plastics_dagster.registry import roi_key

    parse_window(window)
    root = open_store(store)
    name = roi_key(root, roi).stem
    pages = stored_run_hashes(asset_folder(root, "preview", name, window), HTML_EXT)
    if run_hash and run_hash not in pages:  # never another run's page
        stored = f"the stored run hashes are {', '.join(pages)}" if pages else "none is stored"
        raise PlasticsError(
            f"no preview of ROI {roi} window {window} with run hash {run_hash!r} in {root} "
            f"({stored}): pick one with --run-hash, or omit it"
        )
    if run_hash:
        pages = [run_hash]
    if not pages:
        raise PlasticsError(
            f"no preview of ROI {roi} window {window} in {root}: materialize `preview` for "
            f"{roi}|{window} (UI) or run `plastics run --roi {roi} --window {window}` first"
        )
    if len(pages) > 1 and (not run_hash or run_hash not in pages):
        raise PlasticsError(
            f"{len(pages)} previews of {roi} {window} are stored (run hashes {', '.join(pages)}): "
            "pick one with --run-hash"
        )
    page = asset_path(root, "preview", name, window, pages[0], HTML_EXT)
    link = page.path if _is_local(page) else browser_url(page)
    if link is None:
        raise PlasticsError(f"cannot sign a URL for {page}: check the store's S3 credentials")
    click.echo(link)
    if open_:
        import webbrowser
        from pathlib import Path

        webbrowser.open(Path(link).as_uri() if _is_local(page) else link)
