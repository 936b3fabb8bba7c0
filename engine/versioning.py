"""Versioned JSON documents: format check and forward migration, shared by every file type."""
from __future__ import annotations

from typing import Any, Callable

from engine.errors import ProjectFileError

Migration = Callable[[dict], dict]


def migrate(doc: Any, fmt: str, current: int, migrations: dict[int, Migration], what: str) -> dict:
    """Check ``doc`` is a ``fmt`` document and bring it to version ``current``.

    ``migrations[n]`` turns version n into n + 1.  A foreign document, a bad version or one newer than
    ``current`` raises ProjectFileError with one sentence (``what`` names the kind, e.g. "project").
    """
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise ProjectFileError(f"This is not a LayerLab {what} (its 'format' field is missing or different).")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ProjectFileError(f"The {what} document has an invalid version {version!r}.")
    if version > current:
        raise ProjectFileError(f"The {what} was saved by a newer LayerLab (format version {version}; "
                               f"this one reads up to {current}). Update LayerLab to open it.")
    while version < current:
        doc = migrations[version](doc)
        version += 1
        doc["version"] = version
    return doc
