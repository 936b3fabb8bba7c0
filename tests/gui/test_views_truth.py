"""Views that never lie (issue 12), driven as a user drives the app: the real main window with the
training UI, offscreen, the views drawn only where a person could see them (``render_hidden`` is
off, as in the app).

Covered: opening another project shows that project's state in every view, visible or not; views
hidden during a run show its end when raised; a saved trained project comes back whole in a fresh
window and training again continues its epochs; Reset weights clears the views; two seeded runs
draw equal curves; leaving the project during a run asks first; a failure names its layer and
offers the OOM retry whatever its sentence says.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from engine import failure_text  # noqa: E402
from engine.project import load_project, load_starter  # noqa: E402
from gui import dialogs, theme  # noqa: E402
from gui.document import Document  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from gui.training import install_training_ui  # noqa: E402
from gui.training.view_scheduler import is_shown  # noqa: E402
from gui.views import IDLE_MESSAGE  # noqa: E402


class Asked:
    def __init__(self):
        self.stop_run: list[bool] = []
        self.stop_answer = True


@pytest.fixture(scope="module")
def asked(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("views")
    mp.setenv("LAYERLAB_CONFIG_DIR", str(tmp / "config"))
    mp.setenv("LAYERLAB_RECOVERY_DIR", str(tmp / "recovery"))
    for name in ("show_error", "show_info"):
        mp.setattr(dialogs, name, lambda *a, **k: None)
    mp.setattr(dialogs, "ask_yes_no", lambda *a, **k: True)
    mp.setattr(dialogs, "ask_save_changes", lambda *a, **k: "discard")
    log = Asked()

    def ask_stop(parent):
        log.stop_run.append(True)
        return log.stop_answer

    mp.setattr(dialogs, "ask_stop_run", ask_stop)
    yield log
    mp.undo()


def make_window(qapp, starter="moons-mlp", mode=None):
    theme.apply_theme("light", persist=False)
    w = MainWindow(Document(load_starter(starter)), extensions=[lambda win: install_training_ui(win, mode=mode)],
                   autosave=False)
    w.resize(1280, 800)
    w.show()
    deadline = time.monotonic() + 60
    while not w.training.worker.is_ready and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.01)
    assert w.training.worker.is_ready
    return w


def close(w) -> None:
    w._close_confirmed = True
    w.training.shutdown()
    w.close()
    w.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)


@pytest.fixture(scope="module")
def win(qapp, asked):
    w = make_window(qapp)
    yield w
    close(w)


def settings(ctl, **values):
    base = {"device": "auto", "loss": "auto", "optimizer": "adam", "lr": 0.01, "batch_size": 32, "epochs": 5,
            "schedule": "none", "seed": 0}
    ctl.panel.set_settings({**base, **values})


def train(qtbot, ctl, timeout=60_000, **values) -> None:
    settings(ctl, **values)
    assert ctl.train()
    qtbot.waitUntil(lambda: not ctl.worker.busy, timeout=timeout)
    ctl.flush_frame()


def dock_of(win, view):
    return next(d for d in win.findChildren(type(win.palette_dock)) if d.widget() is view)


def shows_nothing(view) -> bool:
    """The view says it has nothing to show, and none of its plot items hold data."""
    import pyqtgraph as pg

    if view._message.text() != IDLE_MESSAGE:
        return False
    for item in view.findChildren(pg.PlotWidget):
        for it in item.getPlotItem().items:
            if isinstance(it, pg.PlotDataItem) and it.xData is not None and len(it.xData):
                return False
            if isinstance(it, pg.ImageItem) and it.image is not None:
                return False
    return True


@pytest.fixture(autouse=True)
def idle_start(request, qtbot):
    if "win" in request.fixturenames:
        ctl = request.getfixturevalue("win").training
        if ctl.worker.busy:
            ctl.stop_and_wait()
        settings(ctl)
    yield


# ----------------------------------------------------------------------------- the rule
def test_opening_another_project_shows_its_state_in_every_view(qtbot, win):
    ctl = win.training
    train(qtbot, ctl, epochs=20)
    assert ctl.views["boundary"].img.image is not None and ctl.panel.status_label.text()
    assert win.open_starter("digits-cnn")
    assert win.document.project.name.lower().startswith("digits")
    for key, view in ctl.views.items():
        assert shows_nothing(view), key  # visible or in a background tab: nothing of the moons run
    assert ctl.panel.status_label.text() == "" and not ctl.panel.csv_button.isEnabled()
    assert ctl.timeline.slider.maximum() == 0 and ctl.history.is_empty()
    assert win.document.overlay == {}
    assert win.open_starter("moons-mlp")


def test_a_view_that_does_not_fit_the_data_says_why_instead_of_drawing_empty_axes(qtbot, win):
    """The fitted curve for classification data (and the boundary for regression data) showed
    its sentence above empty axes and a legend, like a view that had failed to draw."""
    ctl = win.training

    def axes_shown(view) -> bool:
        import pyqtgraph as pg

        return any(p.isVisibleTo(view) for p in view.findChildren(pg.PlotWidget))

    boundary, curve = ctl.views["boundary"], ctl.views["regression"]
    train(qtbot, ctl, epochs=2)  # moons: two classes, two features
    assert axes_shown(boundary) and not boundary._message.isVisibleTo(boundary)
    assert not axes_shown(curve) and "one input feature" in curve._message.text()
    assert curve._message.isVisibleTo(curve)
    try:
        assert win.open_starter("sine-regression")
        for view in (boundary, curve):  # no run: the idle sentence over a fresh view's axes
            assert axes_shown(view) and view._message.text() == IDLE_MESSAGE
        train(qtbot, ctl, epochs=2)
        assert axes_shown(curve) and not curve._message.isVisibleTo(curve)
        assert not axes_shown(boundary) and "two input features" in boundary._message.text()
        # the curve and its points in the data's units (sin x over [-2pi, 2pi]), not the model's
        # standardised inputs (+-1.7), which had made the period look like 1.7
        ds = win.document.dataset
        raw = ds.normalization.invert(ds.x_train).numpy()[:, 0]
        shown_x, _y = curve.train_pts.getData()
        assert float(np.min(shown_x)) >= raw.min() - 1e-4 and float(np.max(shown_x)) <= raw.max() + 1e-4
        assert float(np.ptp(shown_x)) > 0.8 * float(np.ptp(raw)) > 8.0
        line_x, _line_y = curve.curve.getData()
        assert line_x is not None and float(np.ptp(line_x)) >= 0.95 * float(np.ptp(raw))
    finally:
        assert win.open_starter("moons-mlp")


def test_after_opening_another_project_no_caption_or_redraw_brings_the_last_run_back(qtbot, win):
    """The captions (a layer's shape and mean |w|, the probe's size) went with the curves, and the
    Log box, a layer or a node chosen after Open redrew the last run's frame."""
    ctl = win.training
    train(qtbot, ctl, epochs=5)
    weights, acts, loss = ctl.views["weights"], ctl.views["activations"], ctl.views["loss"]
    ctl.flush_frame()
    for view in (weights, acts, loss):  # as a person who had each of them in front saw it
        view.render(ctl.scheduler.frame)
    assert weights.stats.text() and acts.caption.text()
    assert win.open_starter("iris-mlp")
    assert weights.stats.text() == "" and acts.caption.text() == ""
    loss.log_box.toggle()
    loss.log_box.toggle()
    weights._layer_changed(0)
    acts._redraw()
    for key in ("loss", "weights", "activations"):
        assert shows_nothing(ctl.views[key]), key
    assert win.open_starter("moons-mlp")


def looks(view) -> list:
    """What a person sees of a view's frame: each plot's axis ranges and legend, each colour scale."""
    import pyqtgraph as pg

    out = []
    for plot in view.findChildren(pg.PlotWidget):
        pi = plot.getPlotItem()
        out.append(np.round(np.asarray(pi.getViewBox().targetRange(), float), 4).tolist())
        if pi.legend is not None:
            out.append([label.text for _, label in pi.legend.items])
    key = getattr(view, "key", None)  # a key above a plot (the decision boundary's classes)
    if key is not None:
        out.append((key.isVisibleTo(view), key.text()))
    out.extend(tuple(round(float(v), 4) for v in bar.levels()) for bar, _, _ in view._colour_bars)
    return out


def test_after_opening_another_project_its_plots_look_as_in_a_fresh_window(qtbot, qapp, win):
    """Emptied plots had kept the last run's axes (its epochs, its loss range), colour scales and the
    metric legend (accuracy, in a regression project)."""
    ctl = win.training
    train(qtbot, ctl, epochs=8)
    for view in ctl.views.values():  # every view drawn, as if each had been in front
        view.render(ctl.scheduler.frame)
    trained = {key: looks(view) for key, view in ctl.views.items()}
    assert win.open_starter("sine-regression")
    fresh = make_window(qapp, "sine-regression")
    try:
        changed = 0
        for key, view in ctl.views.items():
            assert looks(view) == looks(fresh.training.views[key]), key
            changed += looks(view) != trained[key]
        assert changed >= 5  # the run had moved what this compares (ranges, scales, legends)
    finally:
        close(fresh)
    assert win.open_starter("moons-mlp")


def test_views_hidden_during_a_run_show_its_end_when_raised(qtbot, win):
    ctl = win.training
    weights_dock, dead_dock = dock_of(win, ctl.views["weights"]), dock_of(win, ctl.views["dead_relu"])
    dock_of(win, ctl.views["boundary"]).raise_()
    dock_of(win, ctl.views["activations"]).raise_()
    QApplication.processEvents()
    assert not is_shown(ctl.views["weights"]) and not is_shown(ctl.views["dead_relu"])  # background tabs
    train(qtbot, ctl, epochs=300)
    drawn = ctl.views["weights"].frames_drawn, ctl.views["dead_relu"].frames_drawn
    weights_dock.raise_()
    dead_dock.raise_()
    QApplication.processEvents()
    wv, dv = ctl.views["weights"], ctl.views["dead_relu"]
    assert is_shown(wv) and is_shown(dv)
    assert (wv.frames_drawn, dv.frames_drawn) > drawn
    last = ctl.history.last_epoch
    assert last == 300
    for curve in dv._curves.values():  # the dead-ReLU curves run to the last epoch
        assert curve.xData is not None and curve.xData[-1] == pytest.approx(last, abs=1e-6)
    rect = wv.hist_img.mapRectToParent(wv.hist_img.boundingRect())
    assert rect.right() == pytest.approx(last, rel=0.02)  # the histogram over time too
    dock_of(win, ctl.views["boundary"]).raise_()


def test_reset_weights_clears_every_view(qtbot, win):
    ctl = win.training
    train(qtbot, ctl, epochs=5)
    assert ctl.views["loss"].train_curve.xData is not None and len(ctl.views["loss"].train_curve.xData)
    assert ctl.reset_weights()
    for key, view in ctl.views.items():
        assert shows_nothing(view), key
    assert "Fresh weights" in ctl.panel.status_label.text()
    assert win.document.project.history == [] and win.document.project.checkpoints == {}
    # an edit that the weights no longer fit: with no run, the views do not speak of "this run"
    # (an imported project's views said "The graph changed since this run" before it had any)
    from gui.commands import SetParamCommand

    doc = win.document
    fc = next(n for n in doc.graph.nodes if n.type == "Linear")
    doc.push(SetParamCommand(doc, fc.id, "units", 7))
    qtbot.waitUntil(lambda: "no longer fit" in ctl.views["loss"]._message.text(), timeout=5_000)
    assert all("this run" not in v._message.text() and "project's weights" in v._message.text()
               for v in ctl.views.values())
    doc.undo_stack.undo()


def test_two_seeded_runs_draw_equal_curves(qtbot, win):
    ctl = win.training
    curves = []
    for _ in range(2):
        settings(ctl, seed=3)
        assert ctl.reset_weights()  # the same seed: the same initial weights, the same batches
        train(qtbot, ctl, epochs=8, seed=3)
        tc, vc = ctl.views["loss"].train_curve, ctl.views["loss"].val_curve
        curves.append((tc.xData.copy(), tc.yData.copy(), vc.xData.copy(), vc.yData.copy()))
    for a, b in zip(*curves):
        np.testing.assert_array_equal(a, b)
    assert list(curves[0][0]) == [float(e) for e in range(1, 9)]  # one point per epoch, from epoch 1


def test_a_saved_trained_project_comes_back_whole_in_a_fresh_window(qtbot, qapp, win, asked, tmp_path):
    ctl = win.training
    assert ctl.reset_weights()
    train(qtbot, ctl, epochs=12)
    path = tmp_path / "trained.layerlab"
    assert win.document.save(str(path))
    saved = load_project(path)
    assert len(saved.history) == 12 and 12 in saved.checkpoints and saved.series and saved.run.get("status")

    other = make_window(qapp, starter="digits-cnn")
    try:
        assert other.open_path(str(path), ask=False)
        oc = other.training
        oc.flush_frame()
        assert oc.history.last_epoch == 12 and [c.epoch for c in oc.history.checkpoints][-1] == 12
        lv = oc.views["loss"]
        assert lv.train_curve.xData[-1] == 12 and lv.val_curve.xData[-1] == 12
        assert oc.views["boundary"].img.image is not None  # the model as it ended, drawn
        assert oc.panel.csv_button.isEnabled() and "Finished after 12 epochs" in oc.panel.status_label.text()
        assert oc.timeline.slider.maximum() == len(oc.history.checkpoints) - 1
        csv_path = oc.export_csv(tmp_path / "again.csv")
        assert len(csv_path.read_text().strip().splitlines()) == 13
        settings(oc, epochs=3)
        assert oc.train()
        qtbot.waitUntil(lambda: not oc.worker.busy, timeout=60_000)
        assert [r["epoch"] for r in oc.history.epochs] == list(range(1, 16))  # the epochs go on
        other.document.save(str(path))
        assert [r["epoch"] for r in load_project(path).history] == list(range(1, 16))  # nothing dropped
    finally:
        close(other)


def test_leaving_the_project_during_a_run_asks_first(qtbot, win, asked):
    ctl = win.training
    settings(ctl, epochs=100_000)
    assert ctl.train()
    qtbot.waitUntil(lambda: ctl.history.latest is not None, timeout=20_000)
    asked.stop_run.clear()
    asked.stop_answer = False  # Cancel: nothing happens
    assert not win.open_starter("iris-mlp")
    assert asked.stop_run == [True] and ctl.worker.busy
    assert win.document.project.name == "Moons MLP"
    asked.stop_answer = True  # Stop and keep the weights, then the other project opens
    before = {k: v.clone() for k, v in win.document.project.weights.items()}
    assert win.new_project(None)
    assert asked.stop_run == [True, True] and not ctl.worker.busy
    assert ctl.last_finish is not None and ctl.last_finish.reason == "stopped"
    assert win.document.project.name == "Untitled"
    assert before  # the stopped run's weights went into the old project before it was replaced
    assert win.open_starter("moons-mlp")


def test_closing_the_window_during_a_run_asks_first(qtbot, qapp, asked):
    w = make_window(qapp)
    try:
        ctl = w.training
        settings(ctl, epochs=100_000)
        assert ctl.train()
        qtbot.waitUntil(lambda: ctl.history.latest is not None, timeout=20_000)
        asked.stop_run.clear()
        asked.stop_answer = False
        w.close()
        assert asked.stop_run == [True] and w.isVisible() and ctl.worker.busy
        asked.stop_answer = True
        w.close()
        assert asked.stop_run == [True, True] and not w.isVisible()
        assert ctl._shut and ctl.last_finish.reason == "stopped"
        assert all(torch.isfinite(t).all() for t in w.document.project.weights.values())
    finally:
        if not w.training._shut:
            close(w)


def test_a_failure_names_its_layer_and_offers_the_retry_whatever_its_sentence(qtbot, qapp, asked, monkeypatch):
    for name in ("non_finite", "diverged", "out_of_memory", "bad_batch", "crashed"):
        monkeypatch.setattr(failure_text, name, lambda *a, **k: "Quelque chose s'est mal passé.")
    w = make_window(qapp, mode="thread")  # the reworded sentences apply in this process
    try:
        ctl = w.training
        settings(ctl, optimizer="sgd", lr=1e6, epochs=50)
        assert ctl.train()
        qtbot.waitUntil(lambda: not ctl.worker.busy, timeout=60_000)
        failure = ctl.last_failure
        assert failure is not None and failure.kind == "non_finite" and failure.node
        text = ctl.panel.status_label.text()
        assert text.startswith("Quelque chose") and f"'{failure.node}'" in text
        assert w.document.selected_node == w.document.graph.node_by_name(failure.node).id
        assert "weights from before training are kept" in text

        from engine.train import Trainer

        def oom(self, epoch, prep):
            raise torch.OutOfMemoryError("the allocator's own words")

        monkeypatch.setattr(Trainer, "_train_epoch", oom)
        settings(ctl, epochs=5, batch_size=64)
        assert ctl.train()
        qtbot.waitUntil(lambda: not ctl.worker.busy, timeout=60_000)
        assert ctl.last_failure.kind == "out_of_memory"
        assert ctl.panel.retry_button.isVisibleTo(ctl.panel) and "32" in ctl.panel.retry_button.text()
    finally:
        close(w)


def test_a_diverging_run_says_so_and_suggests_a_lower_learning_rate(qtbot, win):
    ctl = win.training
    assert ctl.reset_weights()
    train(qtbot, ctl, optimizer="adam", lr=100.0, epochs=40)
    assert ctl.last_failure is not None and ctl.last_failure.kind == "diverged"
    text = ctl.panel.status_label.text()
    assert "diverged" in text and "Lower the learning rate" in text and f"step {ctl.last_failure.step}" in text
    assert all(torch.isfinite(t).all() for t in win.document.project.weights.values())
    assert ctl.reset_weights()



def test_the_weights_view_has_colour_scales_with_the_levels_it_draws(qtbot, win):
    ctl = win.training
    train(qtbot, ctl, epochs=3)
    ctl.docks["weights"].raise_()
    QApplication.processEvents()
    wv = ctl.views["weights"]
    assert wv.frames_drawn > 0
    assert wv.matrix_bar.levels() == pytest.approx(tuple(wv.matrix_img.levels))  # the bar says what the colours mean
    lo, hi = wv.matrix_bar.levels()
    assert lo == pytest.approx(-hi) and hi > 0  # weights: symmetric around zero
    assert wv.hist_bar.levels() == pytest.approx(tuple(wv.hist_img.levels))
    dock_of(win, ctl.views["boundary"]).raise_()


def test_after_a_failure_the_views_show_the_weights_the_project_kept(qtbot, win):
    ctl = win.training
    assert ctl.reset_weights()
    train(qtbot, ctl, optimizer="adam", lr=100.0, epochs=40)
    assert ctl.last_failure is not None and ctl.last_failure.kind == "diverged"
    kept = win.document.project.weights
    # the frame on screen is the kept checkpoint's: its weights are the project's weights
    fc2 = ctl.scheduler.frame.snapshot.weights["fc2"]
    np.testing.assert_allclose(fc2, kept["fc2.weight"].numpy(), rtol=1e-6)
    assert ctl.reset_weights()
