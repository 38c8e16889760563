"""Credentials for write endpoints, from the environment (read at each request, never logged).

- ``PLASTICS_API_USERS``: HTTP basic users, ``name:password`` pairs separated by commas
  (a password may hold ``:``, not ``,``); the request's user name is the reviewer's name.
- ``PLASTICS_API_TOKEN``: a bearer token (``Authorization: Bearer TOKEN``); its reviewer name is
  ``$PLASTICS_API_TOKEN_USER`` (default ``api``).

Neither set: every write is refused (403). Read endpoints never need credentials.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os

from fastapi import Request

from plastics_core.api.problems import Problem

USERS_ENV = "PLASTICS_API_USERS"
TOKEN_ENV = "PLASTICS_API_TOKEN"
TOKEN_USER_ENV = "PLASTICS_API_TOKEN_USER"
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="plastics", charset="UTF-8"'}


def _users() -> dict[str, str]:
    users: dict[str, str] = {}
    for entry in os.environ.get(USERS_ENV, "").split(","):
        name, sep, password = entry.strip().partition(":")
        if sep and name and password:
            users[name] = password
    return users


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def require_writer(request: Request) -> str:
    """FastAPI dependency of every write endpoint: the reviewer's name, or a 401/403 problem."""
    users, token = _users(), os.environ.get(TOKEN_ENV, "")
    if not users and not token:
        raise Problem(
            403,
            f"writes are disabled on this server: set {USERS_ENV} (name:password,...) or "
            f"{TOKEN_ENV} where `plastics serve` runs.",
        )
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token and _same(value.strip(), token):
        return os.environ.get(TOKEN_USER_ENV, "") or "api"
    if scheme.lower() == "basic" and users:
        try:
            name, sep, password = (
                base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            name, sep, password = "", "", ""
        expected = users.get(name)
        if sep and expected is not None and _same(password, expected):
            return name
    raise Problem(
        401,
        "this endpoint needs credentials: HTTP basic (a user of the server) or a bearer token.",
        _CHALLENGE,
    )
