"""Reading members of zip archives that come from other people (lab bundles, submissions).

``read_member(zipfile, name, limit_bytes)`` has the contract of ``engine/safezip.read_member``
(branch ``trust``), so the two can be folded together: the member's declared size is checked
against the limit before a byte is inflated, and the inflated bytes are counted while streaming,
so a member whose header lies about its size stops at the limit instead of filling memory.
Nothing is ever extracted to disk, and nothing read here is unpickled or executed.
"""
from __future__ import annotations

import struct
import zipfile
import zlib

from engine.errors import ProjectFileError

_CHUNK = 1 << 20
_EOCD = b"PK\x05\x06"
#: what zipfile and the decompressors raise for a damaged archive or member
CORRUPT = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error, RuntimeError,
           NotImplementedError, ValueError, struct.error)


class ZipMemberError(ProjectFileError):
    """A member cannot be read: ``problem`` is "missing", "oversized" or "corrupt"."""

    def __init__(self, message: str, problem: str):
        super().__init__(message)
        self.problem = problem


def read_member(z: zipfile.ZipFile, name: str, limit_bytes: int) -> bytes:
    """The bytes of member ``name``, at most ``limit_bytes`` of them (declared and actual)."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise ZipMemberError(f"'{name}' is missing from the archive.", "missing") from None
    if info.file_size > limit_bytes:
        raise ZipMemberError(f"'{name}' declares {info.file_size:,} bytes, more than the {limit_bytes:,} "
                             "LayerLab reads for it.", "oversized")
    out = bytearray()
    try:
        with z.open(info) as f:
            while True:
                chunk = f.read(min(_CHUNK, limit_bytes + 1 - len(out)) or 1)
                if not chunk:
                    break
                out += chunk
                if len(out) > limit_bytes:
                    raise ZipMemberError(f"'{name}' inflates to more than its declared size; the archive lies "
                                         "about its size, so it is refused.", "oversized")
    except ZipMemberError:
        raise
    except CORRUPT:
        raise ZipMemberError(f"'{name}' is corrupt (its data cannot be inflated or does not match its "
                             "checksum).", "corrupt") from None
    return bytes(out)


def looks_truncated(raw: bytes) -> bool:
    """A zip whose end-of-archive record is missing or incomplete: the file was cut short (a partial copy)."""
    if raw[:4] != b"PK\x03\x04":
        return False
    at = raw.rfind(_EOCD, max(0, len(raw) - (22 + 0xFFFF)))
    if at < 0 or at + 22 > len(raw):
        return True
    (comment,) = struct.unpack("<H", raw[at + 20:at + 22])
    return at + 22 + comment > len(raw)
