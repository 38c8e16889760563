"""Model store: local folder, https (a local http.server on a free 127.0.0.1 port), s3 (moto server),
checksums, cache. Remote downloads go through pooch; the servers are the only stand-ins."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from plastics_core.errors import ChecksumError, ModelError
from plastics_core.models import DEFAULT_ENSEMBLE, DEFAULT_MODEL, DEFAULT_PATCH_MODEL, SHA256, ModelStore
from plastics_core.models.store import sha256_file


def test_checksum_table_matches_shared_models(models_dir: Path) -> None:
    for key, sha in SHA256.items():
        assert sha256_file(models_dir / key) == sha, key


def test_local_resolve(models_dir: Path, tmp_path: Path) -> None:
    store = ModelStore(str(models_dir), cache_dir=tmp_path / "cache")
    ref = store.resolve(DEFAULT_MODEL)
    assert ref.path == models_dir / DEFAULT_MODEL and ref.sha256 == SHA256[DEFAULT_MODEL]
    assert ref.normalization == "div3000" and ref.kind == "pixel"
    patch = store.resolve(DEFAULT_PATCH_MODEL)
    assert patch.kind == "patch" and patch.normalization == "div3000"
    ens = store.resolve_ensemble(DEFAULT_ENSEMBLE)
    assert [r.name for r in ens] == sorted(k for k in SHA256 if k.startswith(DEFAULT_ENSEMBLE + "/"))
    assert len(ens) == 6 and all(r.normalization == "unit_norm" and r.kind == "pixel" for r in ens)
    # a bare ensemble member file name resolves too
    assert store.resolve(ens[0].name.rsplit("/", 1)[1]).name == ens[0].name
    assert store.list_available() == sorted(SHA256)
    assert [r.name for r in store.verify()] == sorted(SHA256)
    assert not (tmp_path / "cache").exists()  # local stores are used in place


def test_env_default_store(models_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PLASTICS_MODEL_STORE", str(models_dir))
    monkeypatch.setenv("PLASTICS_CACHE", str(tmp_path))
    store = ModelStore()
    assert store.location == str(models_dir) and store.cache_dir == tmp_path / "models"
    monkeypatch.delenv("PLASTICS_MODEL_STORE")
    with pytest.raises(ModelError, match="PLASTICS_MODEL_STORE"):
        ModelStore()


def test_unknown_model_lists_available(models_dir: Path) -> None:
    store = ModelStore(str(models_dir))
    with pytest.raises(ModelError, match="unknown model 'nope.h5'") as exc:
        store.resolve("nope.h5")
    assert DEFAULT_MODEL in str(exc.value) and DEFAULT_PATCH_MODEL in str(exc.value)
    with pytest.raises(ModelError, match=DEFAULT_ENSEMBLE):
        store.resolve_ensemble("v9_ensemble")


def _corrupt_copy(models_dir: Path, dest: Path) -> str:
    shutil.copytree(models_dir, dest)
    target = dest / DEFAULT_MODEL
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    return sha256_file(target)


def test_local_checksum_mismatch(models_dir: Path, tmp_path: Path) -> None:
    bad = _corrupt_copy(models_dir, tmp_path / "store")
    with pytest.raises(ChecksumError) as exc:
        ModelStore(str(tmp_path / "store")).resolve(DEFAULT_MODEL)
    msg = str(exc.value)
    assert DEFAULT_MODEL in msg and bad in msg and SHA256[DEFAULT_MODEL] in msg and "\n" not in msg


@pytest.fixture()
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static file server on a free 127.0.0.1 port serving ``<tmp>/www``: (store URL, www folder)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/models", root
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        _QuietHandler.requests.append(self.path)
        super().do_GET()


def test_https_download_and_cache(models_dir: Path, http_root: tuple[str, Path], tmp_path: Path) -> None:
    url, root = http_root
    shutil.copytree(models_dir, root / "models")
    cache = tmp_path / "cache"
    store = ModelStore(url, cache_dir=cache)
    ref = store.resolve(DEFAULT_MODEL)
    assert ref.path == cache / DEFAULT_MODEL and sha256_file(ref.path) == SHA256[DEFAULT_MODEL]
    ens = store.resolve_ensemble(DEFAULT_ENSEMBLE)
    assert all(r.path.is_file() and r.path.parent == cache / DEFAULT_ENSEMBLE for r in ens)
    shutil.rmtree(root / "models")  # cached: no network needed any more
    assert store.resolve(DEFAULT_MODEL).path == ref.path
    with pytest.raises(ModelError, match="HTTP 404"):
        store.resolve(DEFAULT_PATCH_MODEL)
    assert sorted(p.name for p in cache.iterdir()) == sorted([DEFAULT_ENSEMBLE, DEFAULT_MODEL])


def test_https_corrupt_cache_file_is_fetched_again(
    models_dir: Path, http_root: tuple[str, Path], tmp_path: Path
) -> None:
    """A cached file whose sha256 no longer matches is downloaded again; a verified one is not."""
    url, root = http_root
    (root / "models").mkdir()
    shutil.copy(models_dir / DEFAULT_MODEL, root / "models" / DEFAULT_MODEL)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / DEFAULT_MODEL).write_bytes(b"truncated download")
    _QuietHandler.requests.clear()
    store = ModelStore(url, cache_dir=cache)
    ref = store.resolve(DEFAULT_MODEL)
    assert sha256_file(ref.path) == SHA256[DEFAULT_MODEL]
    assert _QuietHandler.requests == [f"/models/{DEFAULT_MODEL}"]
    store.resolve(DEFAULT_MODEL)
    assert len(_QuietHandler.requests) == 1  # verified cache hit: no request
    assert sorted(p.name for p in cache.iterdir()) == [DEFAULT_MODEL]  # no temporary file left


def test_https_unreachable_is_one_line(tmp_path: Path) -> None:
    """Nothing listens on the port: one ModelError line, nothing in the cache."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="cannot download") as exc:
        ModelStore(f"http://127.0.0.1:{port}/models", cache_dir=cache).resolve(DEFAULT_MODEL)
    assert "\n" not in str(exc.value) and "check the network" in str(exc.value)
    assert not cache.exists() or list(cache.rglob("*")) == []


def test_cache_dir_from_environment_at_run_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``$PLASTICS_CACHE`` is read when a store is created (not when the module is imported)."""
    monkeypatch.delenv("PLASTICS_CACHE", raising=False)
    assert ModelStore("https://example.invalid/m").cache_dir == Path.home() / ".cache" / "plastics" / "models"
    monkeypatch.setenv("PLASTICS_CACHE", str(tmp_path / "c1"))
    assert ModelStore("https://example.invalid/m").cache_dir == tmp_path / "c1" / "models"
    assert ModelStore("https://example.invalid/m", cache_dir=tmp_path / "x").cache_dir == tmp_path / "x"


def test_https_checksum_mismatch_leaves_no_cache_file(
    models_dir: Path, http_root: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = http_root
    bad = _corrupt_copy(models_dir, root / "models")
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError) as exc:
        ModelStore(url, cache_dir=cache).resolve(DEFAULT_MODEL)
    assert bad in str(exc.value) and SHA256[DEFAULT_MODEL] in str(exc.value) and "\n" not in str(exc.value)
    assert list(cache.rglob("*")) == []  # no partial or unverified file


def test_s3_store_via_moto(models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for k, v in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": endpoint,
        }.items():
            monkeypatch.setenv(k, v)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="models")
        for key in [DEFAULT_MODEL, *[k for k in SHA256 if k.startswith(DEFAULT_ENSEMBLE)]]:
            s3.upload_file(str(models_dir / key), "models", f"gpw/{key}")
        s3.put_object(Bucket="models", Key=f"bad/{DEFAULT_MODEL}", Body=b"not a model")
        cache = tmp_path / "cache"
        store = ModelStore("s3://models/gpw", cache_dir=cache)
        assert DEFAULT_MODEL in store.list_available() and DEFAULT_PATCH_MODEL not in store.list_available()
        ref = store.resolve(DEFAULT_MODEL)
        assert ref.path == cache / DEFAULT_MODEL and sha256_file(ref.path) == SHA256[DEFAULT_MODEL]
        assert len(store.resolve_ensemble(DEFAULT_ENSEMBLE)) == 6
        with pytest.raises(ModelError, match="not found"):
            store.resolve(DEFAULT_PATCH_MODEL)
        bad_cache = tmp_path / "bad_cache"
        with pytest.raises(ChecksumError, match=SHA256[DEFAULT_MODEL]):
            ModelStore("s3://models/bad", cache_dir=bad_cache).resolve(DEFAULT_MODEL)
        assert list(bad_cache.rglob("*")) == []
    finally:
        server.stop()
