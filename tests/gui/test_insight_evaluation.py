"""The Evaluation panel in the real window: what it shows is checked against scikit-learn on
predictions computed here, a click on a confusion cell lists exactly that cell's samples, the
timeline's epoch is what gets evaluated, and nothing of another project or model stays."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from sklearn.metrics import classification_report, confusion_matrix  # noqa: E402

from engine.explain import evaluate  # noqa: E402
from engine.model_at import ready_model  # noqa: E402
from gui.insight.model_source import UNTRAINED  # noqa: E402
from tests.gui.insight_support import (click_cell, close, fresh_weights, make_window, predictions,  # noqa: E402
                                       quiet_dialogs, raise_dock, settings, train, wait_evaluated,
                                       wait_idle)


@pytest.fixture(scope="module")
def win(qapp):
    mp = pytest.MonkeyPatch()
    quiet_dialogs(mp)
    w = make_window(qapp, "iris-mlp")
    yield w
    close(w)
    mp.undo()


def current_model(w, weights=None):
    doc = w.document
    return ready_model(doc.graph.copy(), doc.context, weights if weights is not None else doc.project.weights,
                       dataset=doc.dataset)


def test_an_untrained_project_shows_a_sentence_and_evaluate_does_nothing(qtbot, win):
    assert win.open_starter("iris-mlp")
    panel = win.insight.evaluation
    raise_dock(qtbot, win.insight.evaluation_dock)
    assert panel.message.isVisible() and panel.message.text() == UNTRAINED
    assert not panel.tabs.isVisible()
    assert panel.evaluate() is False  # pressing Evaluate: the same sentence, no job, no traceback
    assert not panel.runner.busy and panel.message.text() == UNTRAINED


def test_figures_and_matrix_match_scikit_learn(qtbot, win):
    assert win.open_starter("iris-mlp")
    fresh_weights(win)
    panel = win.insight.evaluation
    raise_dock(qtbot, win.insight.evaluation_dock)
    ev = wait_evaluated(qtbot, panel)
    ds = win.document.dataset
    assert ev.split_used == "val" and "validation" in panel.model_label.text()  # iris has no test split
    assert panel.split_box.currentData() == "val" and "none in this data" in panel.split_box.itemText(0)
    y = ds.y_val.numpy()
    pred = predictions(current_model(win), ds.x_val)
    np.testing.assert_array_equal(ev.confusion_matrix, confusion_matrix(y, pred, labels=[0, 1, 2]))
    report = classification_report(y, pred, labels=[0, 1, 2], output_dict=True, zero_division=0)
    # the per-class table, as a person reads it
    for k in range(3):
        assert panel.table.item(k, 0).text() == ds.class_names[k]
        assert panel.table.item(k, 1).text() == f"{report[str(k)]['precision']:.3f}"
        assert panel.table.item(k, 2).text() == f"{report[str(k)]['recall']:.3f}"
        assert panel.table.item(k, 3).text() == f"{report[str(k)]['f1-score']:.3f}"
        assert panel.table.item(k, 4).text() == str(int(report[str(k)]['support']))
    assert panel.table.item(3, 0).text() == "macro average"
    assert panel.table.item(3, 3).text() == f"{report['macro avg']['f1-score']:.3f}"
    assert f"{100 * report['accuracy']:.1f} %" in panel.figures_label.text()
    # the heatmap holds the counts, and the toggle shows each row divided by its total
    view = panel.confusion
    np.testing.assert_array_equal(view.img.image, ev.confusion_matrix)
    view.set_mode("normalized")
    rows = ev.confusion_matrix.sum(1, keepdims=True)
    np.testing.assert_allclose(view.img.image, ev.confusion_matrix / np.maximum(rows, 1))
    view.set_mode("counts")
    assert view.left_axis.names == list(ds.class_names) and view.bottom_axis.names == list(ds.class_names)


def test_clicking_a_confusion_cell_lists_exactly_its_samples(qtbot, win):
    assert win.open_starter("iris-mlp")
    fresh_weights(win)
    panel = win.insight.evaluation
    raise_dock(qtbot, win.insight.evaluation_dock)
    ev = wait_evaluated(qtbot, panel)
    panel.tabs.setCurrentIndex(panel.confusion_index)
    qtbot.waitUntil(lambda: panel.confusion.plot.isVisible())
    ds = win.document.dataset
    y = ds.y_val.numpy()
    pred = predictions(current_model(win), ds.x_val)
    for t, p in [(t, p) for t in range(3) for p in range(3)]:
        click_cell(panel.confusion, t, p)
        assert panel.confusion.selected == (t, p)
        expected = [int(i) for i in np.flatnonzero((y == t) & (pred == p))]
        assert panel.samples.listed == expected == ev.cells[t][p]
        table = panel.samples.table
        assert table.rowCount() == len(expected)
        if expected:  # tabular rows: named columns, the data's own units, the predicted probabilities
            headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
            # one cell: its labels are in the title, not in two columns that pushed p out of sight
            assert headers[:3] == ["sample", "p(predicted)", "p(true)"] and headers[3:] == list(ds.feature_names)
            title = panel.samples.title.text()
            assert ds.class_names[t] in title and ds.class_names[p] in title
            raw = ds.normalization.invert(ds.x_val[expected[:1]])[0].numpy()
            assert [float(table.item(0, 3 + j).text()) for j in range(4)] == pytest.approx(raw, rel=1e-3)
            assert float(table.item(0, 1).text()) == pytest.approx(ev.probabilities[expected[0], p], abs=1e-3)
        else:
            assert "No sample" in panel.samples.empty.text()
    # the most confidently wrong samples come from several cells: there each row names its labels
    panel.wrong_button.click()
    listed = panel.samples.listed
    cells = {(int(ev.y_true[i]), int(ev.y_pred[i])) for i in listed}
    table = panel.samples.table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert len(cells) > 1 and headers[:3] == ["sample", "true", "predicted"], (cells, headers)


def confusion_page(qtbot, win, starter: str):
    """The Evaluation panel in front on ``starter`` with seeded weights, its matrix shown: (panel, evaluation)."""
    assert win.open_starter(starter)
    fresh_weights(win)
    panel = win.insight.evaluation
    raise_dock(qtbot, win.insight.evaluation_dock)
    ev = wait_evaluated(qtbot, panel)
    panel.tabs.setCurrentIndex(panel.confusion_index)
    return panel, ev


def fullest_mistake(ev) -> tuple[int, int]:
    """The off-diagonal cell with the most samples (untrained: many)."""
    off = ev.confusion_matrix.copy()
    np.fill_diagonal(off, 0)
    t, p = np.unravel_index(np.argmax(off), off.shape)
    return int(t), int(p)


def test_thumbnails_list_the_cell_and_confidently_wrong_and_go_to_explain(qtbot, win):
    panel, ev = confusion_page(qtbot, win, "digits-cnn")
    cm = ev.confusion_matrix
    t, p = fullest_mistake(ev)
    click_cell(panel.confusion, t, p)
    assert panel.samples.stack.currentWidget() is panel.samples.thumbs
    assert panel.samples.thumbs.count() == cm[t, p] == len(ev.cells[t][p])
    assert [panel.samples.thumbs.item(k).data(Qt.UserRole) for k in range(cm[t, p])] == ev.cells[t][p]
    panel.wrong_button.click()
    wrong = [w["index"] for w in ev.confidently_wrong]
    assert panel.samples.listed == wrong and len(wrong) > 0
    confidence = ev.probabilities.max(1)
    assert all(confidence[a] >= confidence[b] for a, b in zip(wrong, wrong[1:]))  # most confident first
    assert panel.samples.select_index(wrong[0])
    panel.samples.explain_button.click()
    explain = win.insight.explain
    assert explain.split_box.currentData() == ev.split_used and explain.index_box.value() == wrong[0]
    assert explain.target_box.currentData() is None  # the predicted class


def test_scrubbing_the_timeline_evaluates_that_epoch(qtbot, win):
    assert win.open_starter("iris-mlp")
    ctl, panel = win.training, win.insight.evaluation
    train(qtbot, win, epochs=8, lr=0.05)
    raise_dock(qtbot, win.insight.evaluation_dock)  # a run brings the loss curves to the front
    final = wait_evaluated(qtbot, panel, epoch=None)
    assert [cp.epoch for cp in ctl.history.checkpoints] == list(range(0, 9))
    shown = []
    panel.evaluated.connect(shown.append)
    # dragging the slider across the epochs evaluates once, where it stops
    for i in (7, 6, 5, 4, 3, 2, 1):
        ctl.timeline.show_checkpoint(i)
    at_one = wait_evaluated(qtbot, panel, epoch=1)
    wait_idle(qtbot, panel)
    qtbot.wait(400)
    assert [e.epoch for e in shown] == [1]
    assert "epoch 1 (timeline)" in panel.model_label.text()
    reference = evaluate(current_model(win, ctl.history.checkpoints[1].weights), split="val")
    np.testing.assert_array_equal(at_one.confusion_matrix, reference.confusion_matrix)
    np.testing.assert_allclose(at_one.probabilities, reference.probabilities, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(at_one.confusion_matrix, final.confusion_matrix)
    ctl.timeline.go_live()
    again = wait_evaluated(qtbot, panel, epoch=None)
    np.testing.assert_array_equal(again.confusion_matrix, final.confusion_matrix)


def test_opening_another_project_clears_the_panel_even_mid_job(qtbot, win):
    assert win.open_starter("digits-cnn")
    fresh_weights(win)
    panel = win.insight.evaluation
    raise_dock(qtbot, win.insight.evaluation_dock)
    wait_evaluated(qtbot, panel)
    assert panel.evaluate()  # a job in flight when the project goes
    assert win.open_starter("iris-mlp")
    assert panel.evaluation is None and panel.message.text().startswith("Another project was opened.")
    assert UNTRAINED in panel.message.text()
    wait_idle(qtbot, panel)
    qtbot.wait(100)
    assert panel.evaluation is None and panel.confusion.counts is None  # the late result was dropped
    assert panel.samples.listed == []


def test_each_run_is_evaluated_and_an_edit_that_breaks_the_weights_clears(qtbot, win):
    assert win.open_starter("iris-mlp")
    panel = win.insight.evaluation
    train(qtbot, win, epochs=2)
    raise_dock(qtbot, win.insight.evaluation_dock)
    first = wait_evaluated(qtbot, panel, epoch=None)
    assert "epoch 2" in panel.model_label.text()
    settings(win.training, epochs=2)
    assert win.training.train()  # the next run continues the history; the panel, in front, follows it
    qtbot.waitUntil(lambda: panel.evaluation is None)  # the old figures go when the run starts
    qtbot.waitUntil(lambda: not win.training.worker.busy, timeout=60_000)
    QApplication.processEvents()
    # what the panel says meanwhile names the new weights, not the last run's (it said "epoch 2")
    assert panel.evaluation is not None or "epoch 4" in panel.message.text(), panel.message.text()
    raise_dock(qtbot, win.insight.evaluation_dock)
    second = wait_evaluated(qtbot, panel, epoch=None)
    assert "epoch 4" in panel.model_label.text() and second is not first
    win.document.graph.set_param(win.document.graph.node_by_name("fc1").id, "units", 12)
    qtbot.waitUntil(lambda: panel.evaluation is None)
    qtbot.waitUntil(lambda: "no longer fit" in panel.message.text())  # once the document has checked
    assert panel.evaluate() is False


def test_regression_shows_its_figures_and_plots(qtbot, win):
    assert win.open_starter("sine-regression")
    fresh_weights(win)
    panel = win.insight.evaluation
    raise_dock(qtbot, win.insight.evaluation_dock)
    ev = wait_evaluated(qtbot, panel)
    assert ev.task == "regression"
    assert f"MSE <b>{ev.mse:.4g}</b>" in panel.figures_label.text()
    assert not panel.tabs.isTabVisible(panel.confusion_index) and panel.tabs.isTabVisible(panel.regression_index)
    xs, ys = panel.regression.scatter.getData()
    np.testing.assert_allclose(xs, ev.actual[:, 0])
    np.testing.assert_allclose(ys, ev.predicted[:, 0])
    _, res = panel.regression.residuals.getData()
    np.testing.assert_allclose(res, ev.actual[:, 0] - ev.predicted[:, 0], rtol=1e-6)


def test_the_split_box_offers_only_the_splits_the_data_has(qtbot, win):
    """No starter has a test split: the box said "test split" while the figures were the
    validation split's."""
    assert win.open_starter("moons-mlp")
    panel = win.insight.evaluation
    box = panel.split_box
    test_item = box.model().item(0)
    assert box.currentData() == "val" and not test_item.isEnabled() and "none" in test_item.text()
    spec = {**win.document.project.data, "test_fraction": 0.2}
    assert win.document.set_data_spec(spec)
    qtbot.waitUntil(lambda: win.document.dataset is not None and len(win.document.dataset.x_test) > 0,
                    timeout=30_000)
    QApplication.processEvents()
    assert box.currentData() == "test" and test_item.isEnabled() and test_item.text() == "test split"


def test_at_1280x800_the_confusion_page_is_whole_in_view_without_scrolling(qtbot, win):
    """The panel's scroll area sized it to its plots' last height: it stood 120 px taller than the
    dock, with the predicted-class axis, the colour bar's foot and "Explain this sample" below the fold."""
    from PySide6.QtCore import QRect

    panel, ev = confusion_page(qtbot, win, "digits-cnn")
    t, p = fullest_mistake(ev)
    click_cell(panel.confusion, t, p)
    for _ in range(5):
        QApplication.processEvents()
    area = win.insight.evaluation_dock.widget()
    assert area.verticalScrollBar().maximum() == 0
    seen = QRect(area.viewport().mapToGlobal(area.viewport().rect().topLeft()), area.viewport().size())

    def in_view(widget, rect=None) -> bool:
        rect = rect if rect is not None else widget.rect()
        return seen.contains(QRect(widget.mapToGlobal(rect.topLeft()), rect.size()))

    plot = panel.confusion.plot
    axis = plot.getPlotItem().getAxis("bottom")
    axis_rect = plot.mapFromScene(axis.mapRectToScene(axis.boundingRect())).boundingRect()
    bar = panel.confusion.colorbar
    bar_rect = plot.mapFromScene(bar.mapRectToScene(bar.boundingRect())).boundingRect()
    assert in_view(plot, axis_rect) and in_view(plot, bar_rect)
    assert in_view(panel.samples.explain_button) and in_view(panel.wrong_button)
