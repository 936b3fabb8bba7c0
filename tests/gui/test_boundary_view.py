"""The decision-boundary view keeps its styled points across runs on the same data and redraws them
for other data (or none)."""
from __future__ import annotations

import types

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from gui.views.boundary_view import BoundaryView  # noqa: E402


def info(seed: int, n: int = 50, units=None):
    from engine.snapshots import ProbeInfo

    rng = np.random.default_rng(seed)
    xy = lambda: (rng.normal(size=(n, 2)).astype(np.float32), rng.integers(0, 2, n))  # noqa: E731
    return ProbeInfo(task="classification", input_shape=(2,), n_outputs=2,
                     class_names=["a", "b"],  # a list, as a caller may pass
                     layers=(), nodes=(), relu_nodes=(), node_ids={}, hist_bins=64, probe_x=np.zeros((1, 2)),
                     probe_y=np.zeros(1), grid_extent=(-3.0, 3.0, -3.0, 3.0), grid_size=4, train_xy=xy(),
                     val_xy=xy(), input_units=units)


def points(view):
    x, y = view.train_pts.getData()
    return np.column_stack([x, y])


def test_points_are_kept_for_the_same_data_and_redrawn_for_other_data(qapp):
    view = BoundaryView()
    first = info(0)
    view.reset(first)
    spots = view.train_pts.points()
    np.testing.assert_array_equal(points(view), first.train_xy[0])
    view.reset(info(0))  # a new run's ProbeInfo, the same arrays' values
    assert view.train_pts.points() is not None and list(view.train_pts.points()) == list(spots)
    other = info(1)
    view.reset(other)
    np.testing.assert_array_equal(points(view), other.train_xy[0])
    view.reset(None)
    assert len(points(view)) == 0
    view.reset(info(1))  # after nothing, the same data is drawn again
    np.testing.assert_array_equal(points(view), other.train_xy[0])


def test_points_of_one_class_share_one_brush_and_pen(qapp):
    """pyqtgraph renders one symbol per distinct brush or pen object: a brush per point made a
    run's start take ~0.3 s for the moons data.  The colours stay the classes' own."""
    from gui.views import class_color

    view = BoundaryView()
    data = info(2, n=200)
    view.reset(data)
    brushes = view.train_pts.data["brush"]
    assert len({id(b) for b in brushes}) == 2
    for b, c in zip(brushes, data.train_xy[1]):
        assert b.color().getRgb()[:3] == class_color(int(c))
    pens = view.val_pts.data["pen"]
    assert len({id(p) for p in pens}) == 2
    for p, c in zip(pens, data.val_xy[1]):
        assert p.color().getRgb()[:3] == class_color(int(c))


def test_the_boundary_and_its_points_are_drawn_in_the_datas_units(qapp):
    """The model sees standardised inputs; the axes are the data's (a student's x1 runs over the
    data's own range)."""
    units = ((10.0, 2.0), (-1.0, 0.5))  # x1 = 2 z + 10, x2 = 0.5 z - 1
    view = BoundaryView()
    i = info(0, units=units)
    view.reset(i)
    np.testing.assert_allclose(points(view), i.train_xy[0] * [2.0, 0.5] + [10.0, -1.0], rtol=1e-6)
    snap = types.SimpleNamespace(boundary=np.zeros((4, 4, 2), np.float32))
    view.render(types.SimpleNamespace(snapshot=snap))
    rect = view.img.mapRectToParent(view.img.boundingRect())
    assert (rect.left(), rect.right(), rect.top(), rect.bottom()) == pytest.approx((4.0, 16.0, -2.5, 0.5))


def test_the_key_sits_above_the_plane_and_covers_no_data(qtbot):
    """The legend sat inside the plane, top-right, over a moon's tip: docked, it took half the
    plane's width, and every corner of the moons holds points.  The key is a line above it now."""
    from gui.views import class_color

    view = BoundaryView()
    qtbot.addWidget(view)
    view.resize(420, 330)
    view.show()
    qtbot.waitExposed(view)
    data = info(0, n=200)
    view.reset(data)
    qtbot.wait(20)
    pi = view.plot.getPlotItem()
    assert pi.legend is None  # nothing drawn over the points
    assert view.key.isVisible()
    plane = view.plot.mapToGlobal(view.plot.rect().topLeft()).y()
    assert view.key.mapToGlobal(view.key.rect().bottomLeft()).y() < plane  # above the plot, not on it
    text = view.key.text()
    for i, name in enumerate(data.class_names):
        assert f"rgb{class_color(i)}'>●</span>&nbsp;{name}" in text  # each name beside its colour
    assert "validation" in text
    image = view.key.grab().toImage()  # the dots are drawn in the classes' colours
    seen = {image.pixelColor(x, y).getRgb()[:3] for x in range(image.width()) for y in range(image.height())}
    assert class_color(0) in seen and class_color(1) in seen
    view.reset(None)  # no data: no names of the last run's classes
    assert not view.key.isVisible() and view.key.text() == ""


def test_the_key_names_ten_classes_and_counts_the_rest():
    from gui.views.boundary_view import key_html

    text = key_html([f"c{i}" for i in range(12)])
    assert "c9" in text and "c10" not in text and "(+2 more)" in text
    assert "&lt;b&gt;" in key_html(["<b>"])  # a class name is text, not markup
