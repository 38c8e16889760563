"""``plastics models list|pull|verify``: the GPW model files through the model store.

The models (Earthrise Media, CC BY-NC 4.0) are never bundled: they are read from a store
(``--store`` or ``$PLASTICS_MODEL_STORE``, default ``../shared/models``) that is a folder,
``s3://bucket/prefix`` or ``https://...``; every file is checked against the committed sha256
table (:mod:`plastics_core.models.checksums`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from plastics_dagster.cli._base import progress

_STORE_HELP = "Model store: folder, s3://bucket/prefix or https://... [default: $PLASTICS_MODEL_STORE or ../shared/models]"
_CACHE_HELP = "Download cache for remote stores [default: $PLASTICS_CACHE/models or ~/.cache/plastics/models]"


def open_store(store: str | None, cache: Path | None = None) -> Any:
    """A :class:`plastics_core.models.store.ModelStore` for ``store`` (or the default location)."""
    from plastics_core.models.store import ModelStore
    from plastics_dagster.resources import default_model_store

    return ModelStore(store or default_model_store(), cache)


def _names(store: Any, names: tuple[str, ...]) -> list[str]:
    """Explicit names (validated by the store) or every known model present in the store."""
    if names:
        return [store.key_for(n) for n in names]
    return list(store.list_available())


@click.group("models")
def models() -> None:
    """List, pull (download + verify into the cache) and verify the GPW model files."""


@models.command("list")
@click.option("--store", help=_STORE_HELP)
def list_models(store: str | None) -> None:
    """Known models (sha256 table) and whether the store has each."""
    from plastics_core.models.checksums import SHA256

    model_store = open_store(store)
    present = set(model_store.list_available())
    click.echo(f"store: {model_store.shown}")
    for name in sorted(SHA256):
        mark = "present" if name in present else "missing"
        click.echo(f"{mark:8} {SHA256[name][:12]}  {name}")


@models.command("pull")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--store", help=_STORE_HELP)
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), help=_CACHE_HELP)
def pull(names: tuple[str, ...], store: str | None, cache: Path | None) -> None:
    """Fetch NAMEs (default: all in the store) into the local cache and verify their sha256.

    A local-folder store is verified in place (nothing is copied).
    """
    model_store = open_store(store, cache)
    keys = _names(model_store, names)
    refs = [model_store.resolve(k) for k in progress(keys, "pulling models", total=len(keys))]
    for ref in refs:
        click.echo(f"ok {ref.sha256[:12]}  {ref.name}  -> {ref.path}")
    click.echo(f"{len(refs)} model(s) ready")


@models.command("verify")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--store", help=_STORE_HELP)
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), help=_CACHE_HELP)
def verify(names: tuple[str, ...], store: str | None, cache: Path | None) -> None:
    """Re-check the sha256 of NAMEs (default: all in the store); exit 2 on a mismatch."""
    model_store = open_store(store, cache)
    keys = _names(model_store, names)
    if not keys:
        raise click.UsageError(
            f"no known model in store {model_store.shown}: set --store or PLASTICS_MODEL_STORE"
        )
    refs = model_store.verify(list(progress(keys, "verifying", total=len(keys))))
    for ref in refs:
        click.echo(f"ok {ref.sha256}  {ref.name}")
    click.echo(f"{len(refs)} model(s) verified")
