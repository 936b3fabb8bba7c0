"""TensorBoard event files for a run's metrics, written without TensorBoard.

``torch.utils.tensorboard`` imports the ``tensorboard`` package, which LayerLab
does not depend on, so this module writes the file format itself: TFRecord
framing (length, masked CRC-32C of the length, payload, masked CRC-32C of the
payload) around hand-encoded ``Event`` protocol buffers whose ``Summary`` holds
``simple_value`` scalars.  That is all TensorBoard needs to plot scalars.

``read_scalars`` decodes such files again (used by the tests and by anyone who
wants to check an export without installing TensorBoard).
"""
from __future__ import annotations

import math
import os
import socket
import struct
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

FILE_VERSION = "brain.Event:2"

# ----------------------------------------------------------------------------- CRC-32C (Castagnoli)
_CRC32C_POLY = 0x82F63B78


def _make_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _CRC32C_POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's mask: rotate right by 15 and add a constant (so CRCs of CRCs stay strong)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return (header + struct.pack("<I", masked_crc32c(header)) + payload
            + struct.pack("<I", masked_crc32c(payload)))


# ----------------------------------------------------------------------------- protobuf encoding
def _varint(value: int) -> bytes:
    if value < 0:  # int64 negatives are ten-byte two's complement varints
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint((field << 3) | wire_type)


def _len_delimited(field: int, data: bytes) -> bytes:
    return _key(field, 2) + _varint(len(data)) + data


def encode_scalar_event(tag: str, value: float, step: int, wall_time: float) -> bytes:
    """``Event{wall_time, step, summary: Summary{value: [Value{tag, simple_value}]}}``."""
    summary_value = _len_delimited(1, tag.encode("utf-8")) + _key(2, 5) + struct.pack("<f", float(value))
    summary = _len_delimited(1, summary_value)
    return (_key(1, 1) + struct.pack("<d", float(wall_time)) + _key(2, 0) + _varint(int(step))
            + _len_delimited(5, summary))


def encode_file_version_event(wall_time: float) -> bytes:
    return _key(1, 1) + struct.pack("<d", float(wall_time)) + _len_delimited(3, FILE_VERSION.encode())


# ----------------------------------------------------------------------------- writer
class EventFileWriter:
    """Append scalar events to one ``events.out.tfevents.*`` file in ``logdir``.

    >>> with EventFileWriter("runs/moons") as w:
    ...     w.add_scalar("loss/train", 0.31, step=100)
    """

    _counter = 0

    def __init__(self, logdir: str | os.PathLike, filename_suffix: str = ""):
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        EventFileWriter._counter += 1
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                f"{os.getpid()}.{EventFileWriter._counter}{filename_suffix}")
        self.path = self.logdir / name
        self._file = open(self.path, "wb")
        self._file.write(tfrecord(encode_file_version_event(time.time())))

    def add_scalar(self, tag: str, value: float, step: int, wall_time: float | None = None) -> None:
        if value is None or not math.isfinite(float(value)):
            return  # TensorBoard plots NaN as a gap anyway; skipping keeps the file readable by strict tools
        self._file.write(tfrecord(encode_scalar_event(tag, value, step, time.time() if wall_time is None else wall_time)))

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()

    def __enter__(self) -> "EventFileWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_scalars(logdir: str | os.PathLike, rows: Iterable[Mapping], step_key: str = "step",
                  wall_time_key: str | None = None, tag_prefix: str = "") -> Path:
    """Write every numeric column of ``rows`` (dicts) as a scalar series keyed by ``rows[step_key]``.

    ``{"step": 100, "epoch": 1, "train_loss": 0.3, "val_acc": 0.9}`` becomes the tags
    ``train_loss`` and ``val_acc`` at step 100 (the step and wall-time columns are not plotted).
    Returns the path of the file written.
    """
    start = time.time()
    with EventFileWriter(logdir) as writer:
        for i, row in enumerate(rows):
            step = int(row.get(step_key, i))
            wall = float(row[wall_time_key]) if wall_time_key and wall_time_key in row else start
            for key, value in row.items():
                if key in (step_key, wall_time_key) or isinstance(value, bool):
                    continue
                if isinstance(value, (int, float)):
                    writer.add_scalar(tag_prefix + key, float(value), step, wall)
        return writer.path


# ----------------------------------------------------------------------------- reading back
def iter_records(path: str | os.PathLike) -> Iterator[bytes]:
    """Payloads of a TFRecord file; raises ValueError on a bad CRC or a truncated record."""
    data = Path(path).read_bytes()
    pos = 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError(f"truncated record header at byte {pos}")
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if hcrc != masked_crc32c(header):
            raise ValueError(f"bad length CRC at byte {pos}")
        payload = data[pos + 12:pos + 12 + length]
        if len(payload) != length or pos + 16 + length > len(data):
            raise ValueError(f"truncated record at byte {pos}")
        (pcrc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        if pcrc != masked_crc32c(payload):
            raise ValueError(f"bad payload CRC at byte {pos}")
        yield payload
        pos += 16 + length


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _read_varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield field, wire, value


def decode_event(payload: bytes) -> dict:
    """The parts of an Event this module writes: wall_time, step, file_version, scalars {tag: value}."""
    event: dict = {"wall_time": 0.0, "step": 0, "scalars": {}}
    for field, wire, value in _fields(payload):
        if field == 1 and wire == 1:
            event["wall_time"] = struct.unpack("<d", value)[0]
        elif field == 2 and wire == 0:
            event["step"] = value - (1 << 64) if value >= 1 << 63 else value
        elif field == 3 and wire == 2:
            event["file_version"] = value.decode()
        elif field == 5 and wire == 2:
            for f, w, v in _fields(value):
                if f != 1 or w != 2:
                    continue
                tag, scalar = None, None
                for f2, w2, v2 in _fields(v):
                    if f2 == 1 and w2 == 2:
                        tag = v2.decode("utf-8")
                    elif f2 == 2 and w2 == 5:
                        scalar = struct.unpack("<f", v2)[0]
                if tag is not None and scalar is not None:
                    event["scalars"][tag] = scalar
    return event


def read_scalars(path: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` from one event file (or every event file in a folder)."""
    p = Path(path)
    files = sorted(p.glob("events.out.tfevents.*")) if p.is_dir() else [p]
    out: dict[str, list[tuple[int, float]]] = {}
    for f in files:
        for payload in iter_records(f):
            ev = decode_event(payload)
            for tag, value in ev["scalars"].items():
                out.setdefault(tag, []).append((ev["step"], value))
    return out
