"""Redaction of secrets in URLs and in free text (error messages, log lines, metadata).

One place decides what a secret looks like, so every message, log line, Dagster metadata entry
and event shows the same thing:

- URL userinfo: ``scheme://user:password@host`` -> ``scheme://***@host`` (a user name alone too:
  it is often an access key id);
- query values: ``?token=SECRET&sig=X`` -> ``?token=***&sig=***`` (a bare ``?SECRET`` -> ``?***``),
  in a URL and in text without one (``GET /v1/search?token=X``);
- ``password=``, ``secret=``, ``token=``, ``api_key=``, ``access_key=``, ``signature=`` pairs in
  free text (libpq keyword strings, botocore messages): the value -> ``***``;
- the secret values of every URL the process was configured with (:func:`remember`), wherever
  they appear (a service echoing a token in a message).

Text without any of these is returned unchanged (so names built from secret-free URLs, and the
run hashes computed from them, do not change). Used for the STAC catalog, the S3 endpoint
(``AWS_ENDPOINT_URL``), the model store, the store location and database URLs.
"""

from __future__ import annotations

import re
import threading

#: what a redacted value is replaced by
MASK = "***"

#: a URL inside text: a scheme, ``://``, then everything up to whitespace, a quote or ``<>``
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>[^\s'\"<>`]+)")
#: userinfo: from just after ``://`` to the last ``@`` of the URL's run of characters (a password
#: may hold an unescaped ``/``, ``?`` or ``#``; a path ``@`` is rare and redacting it is harmless)
_USERINFO = re.compile(r"^[^\s'\"<>`]*@")
#: ``name=value`` after ``?`` or ``&`` (a query string, in a URL or not)
_QUERY_PAIR = re.compile(r"(?P<lead>[?&][^\s=&#'\"<>`?]*=)(?P<value>[^\s&#'\"<>`]+)")
#: ``password=...`` and the like in free text (keyword connection strings, SDK messages)
_KEYWORD = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|secret|secret_?key|token|access_?token|api_?key|access_?key|signature)"
    r"\s*[=:]\s*)(?P<value>(?!\*\*\*)[^\s&;,'\"<>`)]+)",
    re.IGNORECASE,
)


#: secret values of the URLs this process was configured with (:func:`remember`): scrubbed from any
#: text, so a service that echoes a token in its own words ("token X is not valid") shows ``***``
_KNOWN: set[str] = set()
_KNOWN_LOCK = threading.Lock()
_KNOWN_MIN_CHARS = 6
_KNOWN_MAX = 256


def remember(url: str) -> None:
    """Note the secrets of a configured ``url`` (userinfo, query values) so that :func:`redact`
    also removes them where they appear on their own (as a whole word). Values under 6
    characters are not noted (they would mask ordinary words); URL-decoded forms are noted too.
    At most 256 values are kept per process."""
    from urllib.parse import unquote, urlsplit

    try:
        parts = urlsplit(str(url))
    except ValueError:
        return
    userinfo = parts.netloc.rpartition("@")[0]
    values = [*userinfo.split(":", 1)] if userinfo else []
    values += [p.partition("=")[2] or p for p in parts.query.split("&") if p]
    with _KNOWN_LOCK:
        for value in values:
            for form in {value, unquote(value)}:
                if len(form) >= _KNOWN_MIN_CHARS and len(_KNOWN) < _KNOWN_MAX:
                    _KNOWN.add(form)


def redact_url(url: str) -> str:
    """``url`` with its userinfo and every query value replaced by ``***``:
    ``http://user:pass@host/v1?token=SECRET`` -> ``http://***@host/v1?token=***``. A URL
    without userinfo or query is returned unchanged. Depends on ``url`` alone (not on what
    :func:`remember` noted), so names and hashes built from it are the same in every process."""
    text = _URL.sub(_redact_match, str(url))
    return _QUERY_PAIR.sub(lambda m: m["lead"] + MASK if m["value"] != MASK else m[0], text)


def redact(text: str) -> str:
    """``text`` with every URL's userinfo, every query value and every ``password=``-like value
    replaced by ``***`` (see the module docstring); text holding none is returned unchanged."""
    text = str(text)
    with _KNOWN_LOCK:
        known = sorted(_KNOWN, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)
    text = _URL.sub(_redact_match, text)
    text = _QUERY_PAIR.sub(lambda m: m["lead"] + MASK if m["value"] != MASK else m[0], text)
    return _KEYWORD.sub(lambda m: m["key"] + MASK, text)


def _redact_match(match: re.Match[str]) -> str:
    rest = match["rest"]
    user = _USERINFO.match(rest)
    if user is not None:
        rest = MASK + "@" + rest[user.end() :]
    head, sep, query = rest.partition("?")
    if sep:
        query, hash_sep, fragment = query.partition("#")
        parts = [_mask_part(p) for p in re.split(r"(&)", query)]
        rest = head + sep + "".join(parts) + hash_sep + fragment
    return match["scheme"] + rest


def _mask_part(part: str) -> str:
    """One ``name=value`` (or bare value, or separator) of a query string, its value masked."""
    if part in ("&", ""):
        return part
    name, eq, value = part.partition("=")
    if not eq:
        return MASK
    return f"{name}={MASK}" if value else part


def has_secret(text: str) -> bool:
    """Whether :func:`redact` would change ``text`` (it holds userinfo, a query or a password)."""
    return redact(text) != text


class RedactedError(Exception):
    """Stands in, as the ``__cause__`` of a project error, for a library error whose text may hold
    a secret (a URL with a token): a subclass named like the original's type (code that looks at
    type names in a cause chain still sees it), its redacted one-line message, its ``status_code``
    and its traceback (code locations only). Dagster stores causes in the event log."""


_STAND_INS: dict[str, type[RedactedError]] = {}


def redacted_cause(err: BaseException) -> RedactedError:
    """A :class:`RedactedError` for ``err`` (``raise ProjectError(...) from redacted_cause(err)``;
    ``from`` also hides ``err``'s own cause and context)."""
    name = type(err).__name__
    cls = _STAND_INS.get(name)
    if cls is None:
        cls = _STAND_INS.setdefault(name, type(name, (RedactedError,), {"__module__": __name__}))
    stand_in = cls(redact(" ".join(str(err).split())))
    for attr in ("status_code", "status"):
        value = getattr(err, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            setattr(stand_in, attr, value)
    return stand_in.with_traceback(err.__traceback__)
