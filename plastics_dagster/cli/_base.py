"""Shared CLI plumbing: the root group that turns user errors into one line + exit 2.

Error contract (tested in tests/test_cli.py):

- :class:`plastics_core.errors.PlasticsError` (also when wrapped by a Dagster step failure),
  click usage errors and OS errors on user-given paths -> ``Error: <one line>`` on stderr,
  exit code 2, no traceback.
- an unreachable S3 store endpoint (botocore/aiohttp connection errors, no credentials) ->
  one line naming the endpoint and the fix, exit code 2.
- ``KeyboardInterrupt`` -> ``Aborted.`` and exit code 130.
- anything else is a bug and propagates with its traceback.
- ``PLASTICS_DEBUG=1`` re-raises every error (full traceback) for debugging.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import click

from plastics_core.errors import PlasticsError

USER_ERROR = 2
T = TypeVar("T")


def find_user_error(exc: BaseException) -> PlasticsError | None:
    """The PlasticsError in ``exc``'s cause/context chain (Dagster wraps step errors), or None."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, PlasticsError):
            return cur
        seen.add(id(cur))
        user = getattr(cur, "user_exception", None)  # DagsterUserCodeExecutionError
        if isinstance(user, PlasticsError):
            return user
        cur = cur.__cause__ or cur.__context__
    return None


#: The longest error line the CLI prints (characters after ``Error: ``); longer messages keep their
#: start and their end (the fix) around an ellipsis.
MAX_ERROR_CHARS = 600
_TAIL_CHARS = 200


def one_line(text: str) -> str:
    """Collapse whitespace/newlines so a message prints as exactly one line."""
    return " ".join(str(text).split())


def bounded(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters: its head and its last ``_TAIL_CHARS`` characters
    (where the fix is) around `` ... ``."""
    if len(text) <= limit:
        return text
    tail = min(_TAIL_CHARS, limit // 3)
    return f"{text[: limit - tail - 5]} ... {text[-tail:]}"


def fail(message: str, code: int = USER_ERROR) -> int:
    """Print ``Error: message`` (one line, at most :data:`MAX_ERROR_CHARS` characters) on stderr and
    return ``code``."""
    text = str(message)
    if len(text) > 8 * MAX_ERROR_CHARS:  # collapse only what can be printed, never megabytes
        text = f"{text[: 4 * MAX_ERROR_CHARS]} {text[-4 * MAX_ERROR_CHARS :]}"
    click.echo(f"Error: {bounded(one_line(text))}", err=True)
    return code


def _usage_message(exc: click.ClickException) -> str:
    msg = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        msg = f"{one_line(msg)} (see '{ctx.command_path} --help')"
    return msg


class PlasticsGroup(click.Group):
    """A click Group whose ``main`` applies the error contract of this module."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        debug = os.environ.get("PLASTICS_DEBUG", "") not in ("", "0")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow C++ INFO/WARNING off (set 0 to see)
        code = 0
        try:
            rv = super().main(args, prog_name or "plastics", complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            code = 130
        except click.ClickException as exc:
            if debug:
                raise
            code = fail(
                _usage_message(exc), USER_ERROR if isinstance(exc, click.UsageError) else exc.exit_code
            )
        except OSError as exc:
            if debug:
                raise
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            code = fail(f"{exc.strerror or exc}{where}: check the path and its permissions")
        except Exception as exc:
            from plastics_core.storage.store import unreachable_store_error

            user = find_user_error(exc) or unreachable_store_error(exc)
            if user is None or debug:
                raise
            code = fail(str(user), getattr(user, "exit_code", USER_ERROR))
        if standalone_mode:
            sys.exit(code)
        return code


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """``tqdm`` progress bar on stderr (only on a terminal; never with ``PLASTICS_PROGRESS=0``)."""
    from tqdm import tqdm

    disable = True if os.environ.get("PLASTICS_PROGRESS", "") == "0" else None
    yield from tqdm(items, desc=desc, total=total, unit="step", file=sys.stderr, disable=disable, leave=False)


def echo_kv(rows: Sequence[tuple[str, object]]) -> None:
    """Print ``key: value`` rows with aligned keys on stdout."""
    width = max((len(k) for k, _ in rows), default=0)
    for key, value in rows:
        click.echo(f"{key.ljust(width)}  {value}")
