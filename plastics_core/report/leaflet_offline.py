"""Leaflet's JS/CSS, read from disk and inlined so preview maps open with no network.

Leaflet (BSD-2-Clause) is not committed to this repository. It comes from, in order:

1. ``$PLASTICS_LEAFLET_DIR``: a folder holding ``leaflet.js``, ``leaflet.css`` and ``images/``;
2. the PyPI package ``django-js-lib-leaflet`` (pinned in pyproject.toml; it ships Leaflet 1.9.4's
   ``dist`` files as package data, and is read here as plain files: Django is never imported);
3. ``~/.cache/plastics/leaflet/package/dist``: ``npm pack leaflet@1.9.4`` unpacked there.

The CSS's ``url(images/*.png)`` references are rewritten to ``data:`` URIs so nothing is fetched
from disk either.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plastics_core.errors import PlasticsError

LEAFLET_VERSION = "1.9.4"
ENV_VAR = "PLASTICS_LEAFLET_DIR"
NPM_CACHE = Path.home() / ".cache" / "plastics" / "leaflet" / "package" / "dist"
_FIX = (
    f"install it with `pip install django-js-lib-leaflet=={LEAFLET_VERSION}.1` (or `npm pack "
    f"leaflet@{LEAFLET_VERSION}` unpacked into ~/.cache/plastics/leaflet, or set {ENV_VAR})"
)


class LeafletMissingError(PlasticsError):
    """Leaflet's JS/CSS files were not found on disk, so an offline preview cannot be built."""


@dataclass(frozen=True)
class LeafletAssets:
    """Leaflet's minified JS and its CSS with images inlined as data URIs (UTF-8 text)."""

    js: str
    css: str
    source: Path


def _package_dir() -> Path | None:
    spec = importlib.util.find_spec("js_lib_leaflet")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "js_lib_leaflet"


def candidate_dirs() -> list[Path]:
    """Folders searched for ``leaflet.js`` + ``leaflet.css``, in priority order."""
    dirs: list[Path] = []
    env = os.environ.get(ENV_VAR)
    if env:
        dirs.append(Path(env))
    pkg = _package_dir()
    if pkg is not None:
        dirs.append(pkg)
    dirs.append(NPM_CACHE)
    return dirs


def find_leaflet_dir() -> Path:
    """The first folder holding Leaflet's files; raises LeafletMissingError naming the fix."""
    for d in candidate_dirs():
        if (d / "leaflet.js").is_file() and (d / "leaflet.css").is_file():
            return d
    tried = ", ".join(str(d) for d in candidate_dirs())
    raise LeafletMissingError(f"Leaflet {LEAFLET_VERSION} JS/CSS not found (looked in {tried}); {_FIX}")


def _inline_css_images(css: str, folder: Path) -> str:
    def repl(m: re.Match[str]) -> str:
        ref = m.group(2)
        path = folder / ref
        if not path.is_file():
            return m.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"url(data:image/png;base64,{data})"

    return re.sub(r"url\((['\"]?)(images/[A-Za-z0-9_.-]+\.png)\1\)", repl, css)


_CACHE: dict[Path, LeafletAssets] = {}


def load_leaflet() -> LeafletAssets:
    """Leaflet's JS and CSS text, ready to inline (cached per source folder)."""
    folder = find_leaflet_dir()
    if folder not in _CACHE:
        js = (folder / "leaflet.js").read_text(encoding="utf-8")
        css = _inline_css_images((folder / "leaflet.css").read_text(encoding="utf-8"), folder)
        _CACHE[folder] = LeafletAssets(js=js, css=css, source=folder)
    return _CACHE[folder]


def script_text(assets: LeafletAssets) -> str:
    """Leaflet's JS as the text of an inline ``<script>`` (no ``</script`` inside can end it)."""
    return assets.js.replace("</script", "<\\/script")


_EXTERNAL = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(https?:)?//", re.I)


def external_resources(html: str) -> list[str]:
    """Tags in ``html`` that would load something over the network when the page opens."""
    return [m.group(0) for m in _EXTERNAL.finditer(html)]


_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def json_island(element_id: str, data: Any) -> str:
    """``<script type="application/json" id=...>`` holding ``data`` as JSON that no string inside can
    end or turn into markup (``<``, ``>``, ``&``, U+2028/9 escaped). Read it back in the page with
    ``JSON.parse(el.textContent)``; the browser never executes it."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, sort_keys=True)
    text = "".join(_JSON_ESCAPES.get(ch, ch) for ch in text)
    return f'<script type="application/json" id="{element_id}">{text}</script>\n'


#: Online basemaps (off by default) may load tiles from these hosts once a curator switches them on.
BASEMAP_HOSTS = ("https://tile.openstreetmap.org", "https://server.arcgisonline.com")
_SCRIPT = re.compile(r"<script(\s[^>]*)?>(.*?)</script>", re.S | re.I)


def script_hash(body: str) -> str:
    """The CSP source expression (``'sha256-...'``) allowing an inline ``<script>`` whose text is ``body``."""
    digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


def inline_script_hashes(page: str) -> list[str]:
    """CSP source expressions of every inline executable ``<script>`` in ``page`` (for checking a
    finished page against its policy; a policy is never derived from a page that holds data)."""
    out: list[str] = []
    for m in _SCRIPT.finditer(page):
        if re.search(r"\btype\s*=\s*[\"']?application/json", m.group(1) or "", re.I):
            continue
        source = script_hash(m.group(2))
        if source not in out:
            out.append(source)
    return out


def content_security_policy(scripts: Sequence[str]) -> str:
    """A page's CSP: nothing from the network by default (``default-src 'none'``); only the inline
    scripts whose texts are ``scripts`` (the project's own, by hash; no ``'unsafe-inline'`` or
    ``'unsafe-eval'`` for scripts); inline styles; images from ``data:`` URIs (heatmap, Leaflet's
    icons) and the basemap hosts. Computed from the scripts alone, before any data exists, so a
    script that data smuggled into a page is never allowed."""
    hashes: list[str] = []
    for body in scripts:
        if script_hash(body) not in hashes:
            hashes.append(script_hash(body))
    return "; ".join(
        [
            "default-src 'none'",
            "script-src " + " ".join(hashes),
            "style-src 'unsafe-inline'",
            "img-src data: " + " ".join(BASEMAP_HOSTS),
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )
