"""The GUI's run history (gui/training/snapshots.py, no Qt): bounded series and runs that continue."""
from __future__ import annotations

import numpy as np
import pytest

from engine.snapshots import Snapshot
from gui.training.snapshots import TimelineCheckpoint, RunHistory, SeriesBuffer


def test_series_buffer_stays_bounded_spans_the_run_and_ends_at_now():
    buf = SeriesBuffer(capacity=8)
    for i in range(100):
        buf.append(float(i), float(i) * 2)
    x, y = buf.arrays()
    assert len(buf) <= 8
    assert x[0] == 0.0 and x[-1] == 99.0  # the whole run, up to the newest sample
    assert np.all(np.diff(x) > 0) and np.array_equal(y, 2 * x)
    gaps = np.diff(x[:-1])
    assert gaps.max() == gaps.min()  # an even density


def test_series_buffer_truncate_drops_what_came_later():
    buf = SeriesBuffer(capacity=16)
    for i in range(10):
        buf.append(i * 0.5, i)
    buf.truncate(2.0)
    x, y = buf.arrays()
    assert x.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0] and y.tolist() == [0, 1, 2, 3, 4]
    buf.append(2.5, 99)  # a continuing run appends after the cut
    assert buf.arrays()[1].tolist()[-1] == 99
    buf.truncate(-1.0)
    assert len(buf) == 0 and buf.last is None


def _snap(epoch: float, loss: float) -> Snapshot:
    return Snapshot(step=int(epoch * 10), epoch=epoch, samples=0, elapsed_s=0.0, train_loss=loss,
                    grad_norms={"fc1": loss}, weight_hist={"fc1": np.ones(4, np.float32)})


def test_run_history_continues_a_run_from_an_epoch():
    h = RunHistory()
    for e in range(1, 5):  # a first run: epochs 1..4
        h.add(_snap(e - 0.5, 1.0 / e))
        h.add(_snap(float(e), 1.0 / e))
        h.add_epoch(e, {"epoch": e, "val_loss": 1.0 / e})
    h.checkpoints = [TimelineCheckpoint(e, {}, None) for e in range(5)]

    h.truncate(2)  # restored epoch 2, training goes on from there
    h.x_offset = 2
    assert [r["epoch"] for r in h.epochs] == [1, 2] and [c.epoch for c in h.checkpoints] == [0, 1, 2]
    assert h.loss.arrays()[0].max() == 2.0 and h.grad_norms["fc1"].arrays()[0].max() == 2.0
    assert h.epoch_series("val_loss")[0].tolist() == [1.0, 2.0]

    h.add(_snap(0.5, 0.3))  # the new run's own epochs start at 0 again
    h.add_epoch(3, {"epoch": 1, "val_loss": 0.3})  # the trainer says epoch 1; the history says 3
    x, _ = h.loss.arrays()
    assert x[-1] == pytest.approx(2.5) and np.all(np.diff(x) > 0)
    assert h.epochs[-1]["epoch"] == 3 and h.epoch_series("val_loss")[0].tolist() == [1.0, 2.0, 3.0]
