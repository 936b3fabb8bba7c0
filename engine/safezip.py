"""Reading zip archives that come from other people: project bundles, npz arrays, labs, submissions.

Nothing is ever extracted to disk; members are read into memory by name, and only after their
sizes pass the resource policy (``engine/limits.py``):

    with open_zip(path, what="project", error=ProjectFileError) as z:
        raw = read_member(z, "project.json", limit=64 << 20)

- ``open_zip`` counts the archive's entries from its end record before ``zipfile`` builds one
  object per entry (a small file can declare millions), and refuses non-regular files unopened.
- ``check_member`` refuses a member whose declared size exceeds the limit or the memory limit, or
  whose declared sizes make it a decompression bomb, before a byte of it is inflated.
- ``read_member`` / ``open_member`` then count the bytes actually inflated while streaming, so a
  member whose header lies about its size is stopped at the limit, not at the end of memory.

Corrupt archives raise ``error`` (the caller's kind: ProjectFileError for projects, DataError for
npz); sizes over a limit raise LimitExceeded.  Both carry one sentence naming the member.
"""
from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from typing import BinaryIO

from engine.errors import LayerLabError, LimitExceeded, ProjectFileError, quote
from engine.limits import check_inflation, check_memory, fmt_bytes, memory_limit, open_regular

#: more entries than this in one archive is refused before zipfile reads its directory
MAX_MEMBERS = 10_000
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_CHUNK = 1 << 20
#: what zipfile and the decompressors raise for a damaged archive or member
CORRUPT = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error, RuntimeError,
           NotImplementedError, ValueError, struct.error)


def count_entries(f: BinaryIO) -> int | None:
    """The entry count an archive's end-of-central-directory record declares (None: no record)."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    tail_len = min(size, _EOCD_SIZE + 0xFFFF)  # the record plus the longest comment
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or at + _EOCD_SIZE > len(tail):
        return None
    total = struct.unpack("<H", tail[at + 10:at + 12])[0]
    return total  # 0xFFFF means "see the zip64 record": more than MAX_MEMBERS either way


class _OwningZipFile(zipfile.ZipFile):
    """A ZipFile that closes the file it was given (zipfile leaves a passed-in file open)."""

    def __init__(self, f: BinaryIO):
        self._owned = f  # set first: a failing __init__ still runs close() from __del__
        super().__init__(f)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._owned.close()


def open_zip(source: str | os.PathLike | BinaryIO, what: str = "archive",
             error: type[LayerLabError] = ProjectFileError, max_members: int = MAX_MEMBERS) -> zipfile.ZipFile:
    """A ZipFile over a regular file (a path: opened here, closed with the ZipFile) or an open binary
    file (left to its owner), after counting its entries."""
    owned = isinstance(source, (str, os.PathLike))
    f = open_regular(source, error, what) if owned else source
    try:
        n = count_entries(f)
        if n is not None and n >= max_members:
            raise LimitExceeded(f"this {what} declares {n:,}{'+' if n == 0xFFFF else ''} entries; LayerLab "
                                f"reads archives of fewer than {max_members:,}.")
        f.seek(0)
        return _OwningZipFile(f) if owned else zipfile.ZipFile(f)
    except LayerLabError:
        if owned:
            f.close()
        raise
    except CORRUPT:
        if owned:
            f.close()
        raise error(f"this {what} is corrupt or truncated (its zip archive cannot be read).") from None


def check_member(z: zipfile.ZipFile, name: str, limit: int | None = None, what: str = "archive",
                 error: type[LayerLabError] = ProjectFileError) -> zipfile.ZipInfo:
    """The member's ZipInfo once its declared sizes pass: at most ``limit`` (default: the memory
    limit) and within the memory limit, and not a bomb by its declared compression ratio."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise error(f"this {what} has no member {quote(name)}.") from None
    limit = memory_limit() if limit is None else limit
    where = f"{quote(name)} inside the {what}"
    check_inflation(info.file_size, info.compress_size, where)
    check_memory(info.file_size, where)
    if info.file_size > limit:
        raise LimitExceeded(f"{where} is {fmt_bytes(info.file_size)}, more than the {fmt_bytes(limit)} "
                            f"LayerLab reads for it.")
    return info


class _CountingReader(io.RawIOBase):
    """A member stream that refuses to inflate more than ``limit`` bytes, whatever its header said."""

    def __init__(self, stream, limit: int, where: str, compressed: int):
        self._stream, self._limit, self._where, self._compressed = stream, limit, where, compressed
        self.count = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.count

    def readinto(self, buffer) -> int:
        data = self._stream.read(min(len(buffer), self._limit + 1 - self.count, _CHUNK) or 1)
        self.count += len(data)
        if self.count > self._limit:
            raise LimitExceeded(f"{self._where} inflates to more than its declared {fmt_bytes(self._limit)}; "
                                "the archive lies about its size, so it is refused.")
        check_inflation(self.count, self._compressed, self._where)
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()


def open_member(z: zipfile.ZipFile, name: str, limit: int | None = None, what: str = "archive",
                error: type[LayerLabError] = ProjectFileError) -> io.RawIOBase:
    """A stream over a checked member that counts what it inflates (for readers that stream,
    e.g. the header of an .npy array inside an .npz)."""
    info = check_member(z, name, limit, what, error)
    try:
        raw = z.open(info)
    except CORRUPT:
        raise error(f"{quote(name)} inside the {what} is corrupt or encrypted.") from None
    return _CountingReader(raw, info.file_size, f"{quote(name)} inside the {what}", info.compress_size)


def read_member(z: zipfile.ZipFile, name: str, limit: int | None = None, what: str = "archive",
                error: type[LayerLabError] = ProjectFileError) -> bytes:
    """The bytes of member ``name``: sizes checked before reading (``check_member``), inflated bytes
    counted while reading, and the member's checksum verified.  At most ``limit`` bytes."""
    try:
        with open_member(z, name, limit, what, error) as f:
            out = bytearray()
            while chunk := f.read(_CHUNK):
                out += chunk
    except LayerLabError:
        raise
    except CORRUPT:
        raise error(f"{quote(name)} inside the {what} is corrupt (its data does not match its checksum).") from None
    return bytes(out)
