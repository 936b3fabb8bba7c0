"""Builders of hostile files for the tests: decompression bombs of every container kind, headers that
lie or declare absurd sizes, and the plain valid documents the fuzzer mutates.

Bombs are built without ever holding their inflated content: deflate output after a full flush
does not depend on what came before, so the compressed form of 1 MiB of zeros is computed once
and repeated (4 GiB of zeros take 4 MB).  Their checksums are left wrong on purpose: a reader that
checks sizes first never gets far enough to notice.
"""
from __future__ import annotations

import gzip
import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

MiB, GiB = 1 << 20, 1 << 30
#: inflated size of every bomb: more than the address-space limit the hostile tests run under
BOMB_BYTES = 4 * GiB - 64 * MiB  # fits the 32-bit size fields of a plain (non-zip64) zip


def deflate_zeros(n_bytes: int, prefix: bytes = b"") -> bytes:
    """A raw deflate stream that inflates to ``prefix`` followed by zeros, ``n_bytes`` in all
    (rounded down to whole MiB of zeros)."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = co.compress(prefix) + co.flush(zlib.Z_FULL_FLUSH)
    chunk = co.compress(bytes(MiB)) + co.flush(zlib.Z_FULL_FLUSH)
    return head + chunk * ((n_bytes - len(prefix)) // MiB) + co.flush()


def raw_zip(members: list[tuple], declared_entries: int | None = None) -> bytes:
    """A zip archive written by hand so its headers can lie: each member is ``(name, deflated data,
    declared inflated size, crc)`` or ``(..., declared compressed size)``; ``declared_entries``
    overrides the end record's entry count."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, data, size, crc, *packed in members:
        packed_size = packed[0] if packed else len(data)
        offset = out.tell()
        fname = name.encode()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, packed_size, size, len(fname), 0))
        out.write(fname + data)
        central.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, packed_size, size,
                                  len(fname), 0, 0, 0, 0, 0, offset) + fname)
    cd = central.getvalue()
    n = len(members) if declared_entries is None else declared_entries
    cd_offset = out.tell()
    out.write(cd)
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, min(n, 0xFFFF), min(n, 0xFFFF), len(cd), cd_offset, 0))
    return out.getvalue()


def member(name: str, data: bytes) -> tuple[str, bytes, int, int]:
    """An honest member for raw_zip: ``data`` deflated, with its true size and checksum."""
    return (name, deflated(data), len(data), zlib.crc32(data))


def deflated(data: bytes) -> bytes:
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    return co.compress(data) + co.flush()


def npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """The header of a version 1.0 .npy file declaring ``shape`` of ``dtype``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def idx_header(dims: tuple[int, ...], type_code: int = 0x08) -> bytes:
    return bytes([0, 0, type_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def gzip_of_zeros(n_bytes: int, prefix: bytes = b"") -> bytes:
    """A gzip file inflating to ``prefix`` + zeros (``n_bytes`` in all), trailer checksum left wrong."""
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + deflate_zeros(n_bytes, prefix) + struct.pack("<2L", 0, n_bytes & 0xFFFFFFFF)


def png_header_only(width: int, height: int) -> bytes:
    """A tiny, otherwise valid PNG whose header declares ``width`` x ``height`` RGB pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">L", len(data)) + kind + data + struct.pack(">L", zlib.crc32(kind + data))
    ihdr = struct.pack(">2L5B", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def starter_doc(name: str = "moons-mlp") -> dict:
    root = Path(__file__).resolve().parents[1]
    return json.loads((root / "resources" / "starters" / f"{name}.json").read_text())


def project_with_data(data: dict, **fields) -> dict:
    """The default starter lab's document with another data spec (and other fields)."""
    doc = starter_doc()
    doc["data"] = data
    doc.update(fields)
    return doc


def bundle_with(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data)
