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


def test_image_templates_tile_each_unit_as_its_image():
    from gui.views.weights_view import weight_image

    w = np.arange(6 * 2 * 3, dtype=np.float32).reshape(6, 6)  # 6 units reading 1x2x3 images
    img = weight_image(w, "linear", (1, 2, 3))
    # tile_images: 6 tiles of 2x3 with 1-pixel NaN gaps; unit 0 is the top-left tile
    np.testing.assert_array_equal(img[:2, :3], w[0].reshape(2, 3))
    assert np.isnan(img).any() and img.shape[0] > 2


def test_the_series_round_trip_through_named_arrays():
    h = RunHistory(capacity=16)
    for i in range(40):
        snap = Snapshot(step=i, epoch=i / 10, samples=i, elapsed_s=0.0, train_loss=1.0 / (i + 1), lr=0.01,
                        grad_norms={"fc1": float(i)}, dead_relu={"relu1": 0.5},
                        weight_hist={"fc1": np.full(4, i, np.float32)})
        h.add(snap)
    h.add_epoch(1, {"train_loss": 0.5})
    again = RunHistory(capacity=16)
    again.load_series_arrays(h.series_arrays())
    again.load_epochs(h.epochs)
    for name in ("loss", "lr"):
        for a, b in zip(getattr(h, name).arrays(), getattr(again, name).arrays()):
            np.testing.assert_array_equal(a, b)
    for group in ("grad_norms", "dead_relu", "weight_hist"):
        for a, b in zip(getattr(h, group)[next(iter(getattr(h, group)))].arrays(),
                        getattr(again, group)[next(iter(getattr(again, group)))].arrays()):
            np.testing.assert_array_equal(a, b)
    assert again.epochs == h.epochs and again.epoch_series("train_loss")[1].tolist() == [0.5]
    again.load_series_arrays({"loss.x": np.zeros(3), "loss.y": np.zeros(2), "weird": np.zeros(1)})  # skipped
