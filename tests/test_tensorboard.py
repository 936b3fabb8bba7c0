"""TensorBoard event files written without TensorBoard (engine/tensorboard.py).

The files are parsed back by this module's own decoder, and - where the ``tensorboard`` package
is installed (an optional test dependency) - by TensorBoard's own event reader.
"""
from __future__ import annotations

import struct

import pytest

from engine.tensorboard import (EventFileWriter, crc32c, decode_event, iter_records, masked_crc32c, read_scalars,
                                write_scalars)


def test_crc32c_known_vectors():
    assert crc32c(b"") == 0
    assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeroes


def test_scalars_round_trip(tmp_path):
    rows = [{"epoch": e, "step": e * 25, "train_loss": 1.0 / (e + 1), "val_accuracy": 0.5 + e / 10, "note": "x",
             "flag": True} for e in range(5)]
    path = write_scalars(tmp_path / "run", rows, step_key="step")
    assert path.name.startswith("events.out.tfevents.")
    got = read_scalars(tmp_path / "run")
    assert set(got) == {"epoch", "train_loss", "val_accuracy"}  # strings and booleans are not plotted
    assert [s for s, _ in got["train_loss"]] == [0, 25, 50, 75, 100]
    assert got["val_accuracy"][-1][1] == pytest.approx(0.9)
    first = decode_event(next(iter_records(path)))
    assert first["file_version"] == "brain.Event:2"


def test_large_and_negative_steps_and_non_finite_values(tmp_path):
    with EventFileWriter(tmp_path) as w:
        w.add_scalar("a", 1.5, step=2**40)
        w.add_scalar("a", 2.5, step=-3)
        w.add_scalar("a", float("nan"), step=5)  # skipped
    assert read_scalars(w.path)["a"] == [(2**40, 1.5), (-3, 2.5)]


def test_corruption_is_detected(tmp_path):
    path = write_scalars(tmp_path, [{"step": 1, "loss": 0.5}])
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="CRC"):
        list(iter_records(path))


def test_record_framing():
    from engine.tensorboard import tfrecord

    rec = tfrecord(b"abc")
    (n,) = struct.unpack("<Q", rec[:8])
    assert n == 3 and rec[12:15] == b"abc"
    assert struct.unpack("<I", rec[8:12])[0] == masked_crc32c(rec[:8])


def test_tensorboard_itself_reads_the_files(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    write_scalars(tmp_path, [{"step": s, "epoch/train_loss": 1.0 / (s + 1)} for s in range(4)])
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert "epoch/train_loss" in acc.Tags()["scalars"]
    assert [(e.step, round(e.value, 5)) for e in acc.Scalars("epoch/train_loss")] == \
        [(0, 1.0), (1, 0.5), (2, 0.33333), (3, 0.25)]
