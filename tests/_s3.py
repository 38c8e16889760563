"""A local S3 API server (moto, on a free 127.0.0.1 port) with one bucket, for fixtures."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def moto_bucket(monkeypatch: pytest.MonkeyPatch, url: str) -> Iterator[str]:
    """Start a moto server, point the AWS environment at it, create ``url``'s bucket; yield ``url``."""
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        }.items():
            monkeypatch.setenv(key, value)
        bucket = url.removeprefix("s3://").split("/", 1)[0]
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}").create_bucket(Bucket=bucket)
        yield url
    finally:
        server.stop()
