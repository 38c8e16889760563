"""Keys of the granule cache: the folder of one source file, and file-safe band keys.

Catalog ids and hrefs are untrusted text: a folder name is never an id as such but a bounded
readable prefix and a hash (:meth:`Granule.folder`), so no id climbs out of the cache root
(``..``), shares another item's folder or exceeds a file name's 255 bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

#: characters of a catalog id kept readable at the start of its folder name
PREFIX_CHARS = 64


def path_part(text: str) -> str:
    """A band key as one folder name inside a granule's folder: unchanged when it is already safe
    (letters, digits, ``._-``, no leading or trailing dot, at most :data:`PREFIX_CHARS`
    characters); else at most :data:`PREFIX_CHARS` of its safe characters plus a hash of the
    original, so none climbs out (``..``), shares another's folder or exceeds a file name's
    255 bytes."""
    clean = _UNSAFE.sub("_", text).strip(".")
    if clean and clean == text and len(clean) <= PREFIX_CHARS:
        return clean
    return f"{clean[:PREFIX_CHARS] or '_'}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Granule:
    """What identifies one cached source file: the catalog item's ``item_id``, the asset's
    ``href`` as the catalog gave it, the ``catalog`` URL (redacted: no credential) and the
    ``collection``. Two items with the same id but another catalog, collection or file never
    share a folder. A plain string given to :class:`GranuleCache` is ``Granule(item_id=string)``
    (a caller-chosen unique name, e.g. a file path)."""

    item_id: str
    href: str = ""
    catalog: str = ""
    collection: str = ""

    def folder(self) -> str:
        """The granule's folder name: up to :data:`PREFIX_CHARS` safe characters of the id (for
        people), ``-``, then 24 hex digits of the sha256 of all four fields (the key); ASCII,
        at most 89 bytes, whatever the id."""
        key = json.dumps([self.catalog, self.collection, self.item_id, self.href], ensure_ascii=True)
        prefix = _UNSAFE.sub("_", self.item_id).strip(".")[:PREFIX_CHARS].strip(".") or "_"
        return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"
