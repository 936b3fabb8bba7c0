"""Versioned JSON documents: format check and forward migration, shared by every file type."""
from __future__ import annotations

from typing import Any, Callable

from engine.errors import ProjectFileError, quote

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
        raise ProjectFileError(f"The {what} document has an invalid version {quote(version)}.")
    if version > current:
        raise ProjectFileError(f"The {what} was saved by a newer LayerLab (format version {version}; "
                               f"this one reads up to {current}). Update LayerLab to open it.")
    while version < current:
        doc = migrations[version](doc)
        version += 1
        doc["version"] = version
    return doc


#: deeper nesting than this is no LayerLab document (ours nest 5 levels); refusing it early keeps
#: json, copy.deepcopy and the writers away from Python's recursion limit
MAX_JSON_DEPTH = 64


def parse_json_document(raw: bytes, what: str = "project") -> Any:
    """Decode the bytes of a JSON document from a file; any problem is one ProjectFileError sentence
    (bad UTF-8, bad JSON, nesting too deep, integers with thousands of digits)."""
    import json

    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProjectFileError(f"this {what} is not valid JSON (the file is corrupt or foreign).") from None
    except RecursionError:
        raise ProjectFileError(f"this {what}'s JSON nests too deeply to be a LayerLab document.") from None
    except ValueError:  # an integer beyond Python's digit limit
        raise ProjectFileError(f"this {what}'s JSON holds a number with thousands of digits; "
                               "no LayerLab setting takes one.") from None
    if json_depth(doc, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ProjectFileError(f"this {what}'s JSON nests more than {MAX_JSON_DEPTH} levels deep; "
                               "no LayerLab document does.")
    return doc


def json_depth(doc: Any, stop: int = MAX_JSON_DEPTH) -> int:
    """How deeply lists and dicts nest in ``doc`` (a scalar is 0), without recursion; counting stops
    just past ``stop``."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict)):
            deepest = max(deepest, depth)
            if depth > stop:
                return depth
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return deepest
