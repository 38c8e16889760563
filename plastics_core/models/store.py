"""Model store: find, download, cache and checksum-verify the GPW model files.

The Global Plastic Watch models are by Earthrise Media, licensed Creative Commons
Attribution-NonCommercial 4.0 (CC BY-NC 4.0); they are data, never committed to this project.

A store ``location`` is one of:

- a local folder (files are verified and used in place, never copied);
- ``s3://bucket/prefix`` (read with s3fs; credentials and ``AWS_ENDPOINT_URL[_S3]`` from the
  environment only);
- ``https://host/path`` (``location + "/" + name`` is fetched, e.g. the public GPW repository's
  raw-file URLs).

Remote files are fetched with :func:`pooch.retrieve` (its HTTP downloader for ``https://``, an
s3fs downloader for ``s3://``) into the cache folder and verified by pooch against the committed
sha256 table :data:`plastics_core.models.checksums.SHA256`: pooch downloads to a temporary file
beside the target and moves it into place only when the checksum matches, so the cache never
holds a partial or unverified file, and a cached file whose checksum no longer matches is fetched
again. Cache folder: ``cache_dir`` (the ``model_store`` resource's ``cache_dir``, ``plastics
models pull --cache``), else ``$PLASTICS_CACHE/models``, else ``~/.cache/plastics/models``; the
environment is read when a store is created, never at import.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from plastics_core.errors import ChecksumError, CredentialsError, ModelError, PlasticsError
from plastics_core.geo.bands import Normalization, normalization_for
from plastics_core.models.checksums import SHA256
from plastics_core.redact import redact, remember

ModelKind = Literal["pixel", "patch"]


@dataclass(frozen=True)
class ModelRef:
    """A verified model file.

    - ``name``: path relative to the store root (``folder/file.h5`` for ensemble members).
    - ``path``: local file (the cache copy for remote stores).
    - ``sha256``: its verified checksum; ``normalization``: from :func:`bands.normalization_for`.
    - ``kind``: ``pixel`` (spectrogram, one pixel x 2 dates) or ``patch`` (window classifier).
    """

    name: str
    path: Path
    sha256: str
    normalization: Normalization
    kind: ModelKind


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_cache_dir() -> Path:
    root = os.environ.get("PLASTICS_CACHE")
    return Path(root) / "models" if root else Path.home() / ".cache" / "plastics" / "models"


def _known_list() -> str:
    return ", ".join(sorted(SHA256))


class ModelStore:
    """Resolve model names to verified local files (see module docstring)."""

    def __init__(self, location: str | os.PathLike[str] | None = None, cache_dir: Path | None = None):
        loc = str(location) if location is not None else os.environ.get("PLASTICS_MODEL_STORE", "")
        if not loc:
            raise ModelError(
                "no model store given: pass a folder, s3://bucket/prefix or https://... "
                "or set PLASTICS_MODEL_STORE"
            )
        self.location = loc.rstrip("/") if "://" in loc else loc
        remember(self.location)  # its secrets are scrubbed even where a server echoes them
        self.shown = redact(self.location)  # what messages and logs show: no user:password@, no ?token
        if loc.startswith("s3://"):
            self.scheme = "s3"
        elif loc.startswith(("https://", "http://")):
            self.scheme = "https"
        elif "://" in loc:
            raise ModelError(
                f"unsupported model store {redact(loc)!r}: use a folder, s3://... or https://..."
            )
        else:
            self.scheme = "local"
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"ModelStore({self.shown!r}, cache_dir={str(self.cache_dir)!r})"

    # ---- names -------------------------------------------------------------------------
    @staticmethod
    def key_for(name: str) -> str:
        """The table key for ``name`` (a full relative path or a bare file name)."""
        name = name.strip().strip("/")
        if name in SHA256:
            return name
        matches = [k for k in SHA256 if k.rsplit("/", 1)[-1] == name]
        if len(matches) == 1:
            return matches[0]
        raise ModelError(f"unknown model {name!r}: available models are {_known_list()}")

    def list_available(self) -> list[str]:
        """Known model names present in this store (https stores cannot list: all known names)."""
        if self.scheme == "local":
            return sorted(k for k in SHA256 if (Path(self.location) / k).is_file())
        if self.scheme == "s3":
            fs = self._s3()
            return sorted(k for k in SHA256 if fs.exists(f"{self.location}/{k}"))
        return sorted(SHA256)

    # ---- resolve -----------------------------------------------------------------------
    def resolve(self, name: str) -> ModelRef:
        """Verified local file for model ``name``; downloads remote files into the cache once."""
        key = self.key_for(name)
        expected = SHA256[key]
        if self.scheme == "local":
            path = Path(self.location) / key
            if not path.is_file():
                raise ModelError(
                    f"model {key} not found in store {self.shown}: run `plastics models pull`"
                    " against a store that has it or copy it there"
                )
            self._check(key, sha256_file(path), expected)
        else:
            path = self.cache_dir / key
            self._download(key, path, expected)  # pooch: a verified cached file is used as it is
        return ModelRef(
            name=key,
            path=path,
            sha256=expected,
            normalization=normalization_for(key),
            kind="patch" if "patch" in key.rsplit("/", 1)[-1] else "pixel",
        )

    def resolve_ensemble(self, folder: str) -> list[ModelRef]:
        """Every model in ensemble ``folder`` (e.g. ``v0.0.11_ensemble-8-25-21``), sorted by name."""
        prefix = folder.strip().strip("/") + "/"
        keys = sorted(k for k in SHA256 if k.startswith(prefix))
        if not keys:
            folders = sorted({k.split("/", 1)[0] for k in SHA256 if "/" in k})
            raise ModelError(f"unknown ensemble {folder!r}: available ensembles are {', '.join(folders)}")
        return [self.resolve(k) for k in keys]

    def verify(self, names: Iterable[str] | None = None) -> list[ModelRef]:
        """Resolve (pull if needed) and re-check ``names`` (default: all available); raises on mismatch."""
        keys = list(names) if names is not None else self.list_available()
        return [self.resolve(k) for k in keys]

    # ---- internals ---------------------------------------------------------------------
    def _check(self, key: str, actual: str, expected: str) -> None:
        if actual != expected:
            raise ChecksumError(
                f"model {key} from {self.shown} has sha256 {actual} but expected {expected}: "
                "the file is corrupt or not the published model; replace it"
            )

    def _s3(self) -> Any:
        """An ``s3fs.S3FileSystem`` (endpoint from the environment; s3fs ships no type hints)."""
        import s3fs

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        kwargs = {"endpoint_url": endpoint} if endpoint else {}
        return s3fs.S3FileSystem(client_kwargs=kwargs, skip_instance_cache=True)

    def _s3_downloader(self, key: str) -> Callable[[str, str, object], None]:
        """A pooch downloader (``(url, output_file, pooch)``) reading ``s3://`` with s3fs."""

        def download(url: str, output_file: str, _pooch: object = None) -> None:
            try:
                self._s3().get_file(url, str(output_file))
            except FileNotFoundError as exc:
                raise ModelError(f"model {key} not found at {url}: check the store location") from exc
            except PermissionError as exc:
                raise CredentialsError(
                    f"access denied to {url}: set AWS credentials in the environment"
                ) from exc
            except Exception as exc:
                if type(exc).__name__ in {"NoCredentialsError", "PartialCredentialsError"}:
                    raise CredentialsError(
                        f"no AWS credentials for {url}: set AWS_ACCESS_KEY_ID/"
                        "AWS_SECRET_ACCESS_KEY in the environment"
                    ) from exc
                raise

        return download

    def _download(self, key: str, path: Path, expected: str) -> None:
        """Fetch ``key`` into ``path`` through pooch, verified against ``expected`` (hex sha256)."""
        import pooch
        import requests

        pooch.get_logger().setLevel(logging.WARNING)  # no per-download INFO lines (URLs) on stderr
        path.parent.mkdir(parents=True, exist_ok=True)
        url, shown = f"{self.location}/{key}", f"{self.shown}/{key}"
        downloader = (
            self._s3_downloader(key)
            if self.scheme == "s3"
            else pooch.HTTPDownloader(progressbar=False, timeout=60)
        )
        try:
            pooch.retrieve(
                url,
                known_hash=f"sha256:{expected}",
                fname=path.name,
                path=path.parent,
                downloader=downloader,
                progressbar=False,
            )
        except PlasticsError:  # from the s3 downloader: already one clear line
            raise
        except ValueError as exc:  # pooch: the downloaded file's hash does not match
            found = re.search(r"but got ([0-9a-fA-F]{64})", str(exc))
            self._check(key, found.group(1).lower() if found else "of another file", expected)
            raise
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "an error"
            raise ModelError(f"model {key}: GET {shown} returned HTTP {status}: check the store URL") from exc
        except requests.RequestException as exc:
            raise ModelError(
                f"model {key}: cannot download {shown} ({exc.__class__.__name__}): "
                "check the network and store URL"
            ) from exc
