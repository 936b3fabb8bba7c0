"""Reading members of zip archives that come from other people (lab bundles, submissions).

``read_member(zipfile, name, limit_bytes)`` is ``engine/safezip.read_member`` (declared sizes checked
before a byte is inflated, inflated bytes counted while streaming, bombs refused, checksums
verified) with its refusals sorted into the ``problem`` the lab code reports: "missing",
"oversized" or "corrupt".  Nothing is ever extracted to disk, and nothing read is unpickled or run.
"""
from __future__ import annotations

import struct
import zipfile

from engine.errors import LimitExceeded, ProjectFileError
from engine.safezip import CORRUPT  # noqa: F401 - engine.labs.format and .submission catch these
from engine.safezip import read_member as _safe_read_member

_EOCD = b"PK\x05\x06"


class ZipMemberError(ProjectFileError):
    """A member cannot be read: ``problem`` is "missing", "oversized" or "corrupt"."""

    def __init__(self, message: str, problem: str):
        super().__init__(message)
        self.problem = problem


def read_member(z: zipfile.ZipFile, name: str, limit_bytes: int) -> bytes:
    """The bytes of member ``name``, at most ``limit_bytes`` of them (declared and actual)."""
    if name not in z.NameToInfo:
        raise ZipMemberError(f"'{name}' is missing from the archive.", "missing")
    try:
        return _safe_read_member(z, name, limit_bytes)
    except LimitExceeded as exc:
        raise ZipMemberError(exc.message, "oversized") from None
    except ProjectFileError as exc:
        raise ZipMemberError(exc.message, "corrupt") from None


def looks_truncated(raw: bytes) -> bool:
    """A zip whose end-of-archive record is missing or incomplete: the file was cut short (a partial copy)."""
    if raw[:4] != b"PK\x03\x04":
        return False
    at = raw.rfind(_EOCD, max(0, len(raw) - (22 + 0xFFFF)))
    if at < 0 or at + 22 > len(raw):
        return True
    (comment,) = struct.unpack("<H", raw[at + 20:at + 22])
    return at + 22 + comment > len(raw)
