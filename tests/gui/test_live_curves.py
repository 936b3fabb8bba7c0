"""Live curves redraw only when their data changes, and markers are not re-rendered every frame."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

import pyqtgraph as pg  # noqa: E402
import pyqtgraph.graphicsItems.ScatterPlotItem as scatter_module  # noqa: E402

from gui.views import add_curve, make_plot  # noqa: E402


@pytest.fixture
def rebuilds(monkeypatch):
    """How many times pyqtgraph rebuilt a PlotDataItem's drawing."""
    count = {"n": 0}
    original = pg.PlotDataItem.updateItems

    def counting(self, *args, **kwargs):
        count["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pg.PlotDataItem, "updateItems", counting)
    return count


def shown(curve):
    x, y = curve.getData()
    return (np.array([]), np.array([])) if x is None else (x, y)


def test_the_same_values_are_not_drawn_twice_but_new_ones_always_are(qapp, rebuilds):
    plot = make_plot()
    curve = add_curve(plot, pen="b", name="train")
    x, y = np.arange(5.0), np.array([3.0, 2.0, 1.5, 1.2, 1.1])
    curve.setData(x, y)
    n = rebuilds["n"]
    curve.setData(x.copy(), y.copy())  # equal values in new arrays: nothing to redraw
    assert rebuilds["n"] == n
    y2 = y.copy()
    y2[2] = 1.4  # one value changes, not the last one
    curve.setData(x, y2)
    assert rebuilds["n"] == n + 1
    np.testing.assert_array_equal(shown(curve)[1], y2)
    curve.setData(np.append(x, 5.0), np.append(y2, 1.0))  # a new point
    assert len(shown(curve)[0]) == 6


def test_a_cleared_curve_draws_the_same_values_again(qapp):
    """The cache must never keep a curve empty: a view cleared between two runs with the same
    values shows the second run."""
    plot = make_plot()
    curve = add_curve(plot, pen="b")
    x, y = np.arange(4.0), np.ones(4)
    curve.setData(x, y)
    curve.setData([], [])
    assert len(shown(curve)[0]) == 0
    curve.setData(x, y)
    np.testing.assert_array_equal(shown(curve)[0], x)
    curve.setData(x=x[:2], y=y[:2])  # keyword calls always go through, and reset the cache
    curve.setData(x, y)
    np.testing.assert_array_equal(shown(curve)[0], x)


def test_the_curve_is_in_its_plot_and_legend(qapp):
    plot = make_plot()
    plot.getPlotItem().addLegend()
    curve = add_curve(plot, pen="r", name="validation")
    assert curve in plot.getPlotItem().listDataItems()
    assert [label.text for _, label in plot.getPlotItem().legend.items] == ["validation"]


def test_loss_view_markers_are_rendered_once_not_every_frame(qapp, monkeypatch):
    """pyqtgraph keys its rendered markers by pen and brush object: made anew each frame, every
    marker was re-rendered at every frame (4,000 renders in a 3-second run)."""
    from gui.views.loss_view import LossView

    renders = {"n": 0}
    original = scatter_module.renderSymbol

    def counting(*args, **kwargs):
        renders["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(scatter_module, "renderSymbol", counting)
    view = LossView()
    for epochs in range(1, 30):
        x = np.arange(1.0, epochs + 1)
        view.val_curve.setData(x, 1.0 / x)
        view._metric_curve("val_accuracy").setData(x, 1.0 - 1.0 / (x + 1))
    assert renders["n"] <= 4


def test_the_legend_shows_a_curves_marker_before_any_data(qapp):
    """pyqtgraph's legend draws the marker from the curve's scatter item, which got its style only
    with the first points: the loss view's legend showed navy validation markers after a failed run."""
    plot = make_plot()
    curve = add_curve(plot, pen="b", symbol="o", symbolSize=5, symbolBrush=pg.mkBrush("#ff7f0e"), symbolPen=None)
    assert curve.scatter.opts["brush"].color().getRgb()[:3] == (255, 127, 14)
    assert curve.scatter.opts["size"] == 5


@pytest.mark.parametrize("steps_between_points", [1, 25])
def test_the_live_loss_is_smoothed_over_steps_so_a_fast_run_does_not_lag_its_epochs(qapp, steps_between_points):
    """The live loss's points each average the steps since the one before.  Smoothed per point,
    a fast moons run (25 steps between points) drew its live curve epochs behind the per-epoch
    train loss; a slow run (a step per point) is smoothed as before."""
    from engine.smoothing import smooth_ema
    from gui.training.snapshots import RunHistory
    from gui.views import Frame
    from gui.views.loss_view import LossView

    steps_per_epoch = 25
    history = RunHistory()
    history.steps_per_epoch = steps_per_epoch
    x = np.arange(1, 41) * steps_between_points / steps_per_epoch
    loss = 0.7 * np.exp(-x) + 0.05  # falling fast, as a run's first epochs do
    for xi, v in zip(x, loss):
        history.loss.append(float(xi), float(v))
    view = LossView()
    view.log_box.setChecked(False)
    view.render(Frame(snapshot=None, history=history, info=None))
    _x, drawn = shown(view.raw_curve)
    _x, kept = history.loss.arrays()  # the values as the history stores them (float32)
    weight = view.smooth_slider.value() / 100.0
    assert 0 < weight < 1
    if steps_between_points == 1:
        np.testing.assert_allclose(drawn, smooth_ema(kept, weight), rtol=1e-6)
        assert drawn[5] > kept[5] * 1.01  # really smoothed: it lags a falling curve
    else:  # 0.6 ** 25 per point: each point is shown as it came, but for a lag of ~1e-5
        np.testing.assert_allclose(drawn, kept, rtol=1e-4)


def test_the_loss_header_gives_the_epoch_the_timeline_shows(qapp):
    """Scrubbed back to epoch 4, the header still read the last epoch's losses."""
    from gui.training.snapshots import RunHistory
    from gui.views import Frame
    from gui.views.loss_view import LossView

    history = RunHistory()
    for epoch in range(1, 11):
        history.add_epoch(epoch, {"train_loss": 1.0 / epoch, "val_loss": 2.0 / epoch})
    view = LossView()
    view.render(Frame(snapshot=None, history=history, info=None))
    assert view.value_label.text() == "train 0.1   val 0.2"
    view.render(Frame(snapshot=None, history=history, info=None, cursor=4.0))
    assert view.value_label.text() == "epoch 4:  train 0.25   val 0.5"
