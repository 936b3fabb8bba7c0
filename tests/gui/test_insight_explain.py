"""The Explain panel in the real window: what it draws is the engine's result (checked against
autograd or the engine called directly), long jobs can be cancelled and leave the window
responsive, and nothing of another project or model stays on screen."""
from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from PySide6.QtCore import QElapsedTimer, QPointF, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from engine.explain import (METHODS, activation_maximization, attribute, gradient_field,  # noqa: E402
                            permutation_importance)
from engine.model_at import ready_model  # noqa: E402
from gui.insight.attribution_view import SIGNED_MAP, UNSIGNED_MAP, signed_plane  # noqa: E402
from gui.insight.explain_panel import FIELD_GRID  # noqa: E402
from gui.insight.model_source import UNTRAINED  # noqa: E402
from tests.gui.insight_support import close, fresh_weights, make_window, quiet_dialogs, raise_dock, train  # noqa: E402


@pytest.fixture(scope="module")
def win(qapp):
    mp = pytest.MonkeyPatch()
    quiet_dialogs(mp)
    w = make_window(qapp, "iris-mlp")
    yield w
    close(w)
    mp.undo()


def open_explain(qtbot, w, starter: str, reopen: bool = True):
    """The Explain panel in front, on ``starter`` with seeded weights (``reopen`` False: as it is)."""
    if reopen:
        assert w.open_starter(starter)
        fresh_weights(w)
    panel = w.insight.explain
    raise_dock(qtbot, w.insight.explain_dock)
    qtbot.waitUntil(lambda: panel.info is not None and not panel.runner.busy, timeout=30_000)
    return panel


def model_of(w, weights=None):
    doc = w.document
    return ready_model(doc.graph.copy(), doc.context, weights if weights is not None else doc.project.weights,
                       dataset=doc.dataset)


def choose(panel, method: str, **options) -> None:
    panel.tabs.setCurrentIndex(0)
    panel.method_box.setCurrentIndex(panel.method_box.findData(method))
    for k, v in options.items():
        panel.options.set_value(k, v)


def run_and_wait(qtbot, panel, timeout=30_000):
    panel.run_button.click()
    qtbot.waitUntil(lambda: panel.outcome is not None and not panel.runner.busy, timeout=timeout)
    return panel.outcome


def test_methods_that_do_not_fit_are_greyed_with_their_reason_and_options_come_from_the_schema(qtbot, win):
    panel = open_explain(qtbot, win, "iris-mlp")
    model = panel.method_box.model()
    for k in range(panel.method_box.count()):
        name = panel.method_box.itemData(k)
        support = METHODS[name].supports(model_of(win))
        item = model.item(k)
        assert item.isEnabled() == support.ok, name
        if not support.ok:  # Grad-CAM on tabular data: greyed, the sentence as its tooltip
            assert item.toolTip() == support.reason and "image" in support.reason
    assert not model.item(panel.method_box.findData("gradcam")).isEnabled()
    choose(panel, "integrated_gradients")
    steps = panel.options.fields["n_steps"]
    assert (steps.minimum(), steps.maximum(), steps.value()) == (2, 2000, 50)
    baseline = panel.options.fields["baseline"]
    # tabular rows: no blurred baseline and no blur sigma to offer (they only fit images)
    assert [baseline.itemText(i) for i in range(baseline.count())] == ["zeros", "mean"]
    assert "blur_sigma" not in panel.options.fields
    assert [o["name"] for o in panel.options.schema] == [o.name for o in METHODS["integrated_gradients"].options
                                                          if o.name != "blur_sigma"]
    assert not panel.layer_box.isEnabled()  # no layer to choose for IG
    panel.options.set_value("n_steps", 80)
    assert panel.options.values() == {"n_steps": 80}


def test_tabular_bars_are_named_from_the_header_and_equal_autograd(qtbot, win):
    panel = open_explain(qtbot, win, "iris-mlp")
    fired = []
    panel.attributionRun.connect(fired.append)
    panel.set_sample("val", 4)
    choose(panel, "input_x_gradient")
    outcome = run_and_wait(qtbot, panel)
    ds = win.document.dataset
    x = ds.x_val[4:5].clone().requires_grad_(True)
    ready = model_of(win)
    out = ready.module(x)
    target = int(out.argmax(1))
    out[0, target].backward()
    reference = (x * x.grad)[0].detach().numpy()
    assert outcome.attribution.target == target and fired == ["input_x_gradient"]
    bars = panel.view.bars
    assert panel.view.mode == "tabular"
    raw = ds.normalization.invert(ds.x_val[4:5])[0].numpy()
    assert [bars.names[k] for k in range(4)] == [f"{ds.feature_names[i]} = {raw[i]:.4g}" for i in bars.shown]
    np.testing.assert_allclose(bars.bars.opts["width"], reference[bars.shown], rtol=1e-5, atol=1e-7)
    assert list(bars.shown) == list(np.argsort(-np.abs(reference), kind="stable"))  # largest on top
    assert ds.class_names[target] in panel.view.caption.text()


def test_integrated_gradients_shows_its_completeness_delta(qtbot, win):
    panel = open_explain(qtbot, win, "iris-mlp")
    panel.set_sample("val", 0)
    choose(panel, "integrated_gradients")
    a = run_and_wait(qtbot, panel).attribution
    ref = attribute(model_of(win), win.document.dataset.x_val[0], None, "integrated_gradients")
    assert a.delta == pytest.approx(ref.delta, abs=1e-6)
    text = panel.view.caption.text()
    assert "Completeness" in text and f"Delta {ref.delta:.2g}" in text and f"{100 * ref.relative_delta:.2f} %" in text


def test_an_image_map_is_drawn_over_its_input_with_a_colour_bar(qtbot, win):
    panel = open_explain(qtbot, win, "digits-cnn")
    panel.set_sample("val", 3)
    choose(panel, "gradcam", relu=False)  # with negative evidence kept
    a = run_and_wait(qtbot, panel).attribution
    ref = attribute(model_of(win), win.document.dataset.x_val[3], None, "gradcam", relu=False)
    image = panel.view.image
    assert panel.view.mode == "image" and a.layer == panel.layer_box.currentText()
    np.testing.assert_allclose(image.overlay.image, signed_plane(ref.values), rtol=1e-5, atol=1e-7)
    peak = float(np.abs(ref.values).max())
    signed = bool(ref.values.min() < 0)  # a signed map: red for the class, blue against, around 0
    assert image.colorbar.levels() == pytest.approx((-peak, peak) if signed else (0.0, peak))
    assert image.colorbar.colorMap() is (SIGNED_MAP if signed else UNSIGNED_MAP)
    base = image.base.image  # the input as pixels (before standardisation), grey
    ds = win.document.dataset
    x = ds.normalization.invert(ds.x_val[3:4])[0, 0].numpy()
    np.testing.assert_array_equal(base[..., 0], np.round(np.clip(x, 0, 1) * 255).astype(np.uint8))
    np.testing.assert_array_equal(base[..., 0], base[..., 2])
    image.opacity.setValue(30)
    assert image.overlay.opacity() == pytest.approx(0.3)


def test_two_feature_data_shows_the_gradient_field_over_the_boundary(qtbot, win):
    assert win.open_starter("moons-mlp")
    train(qtbot, win, epochs=10, batch_size=32)  # a trained boundary: untrained, p is near 0.5 everywhere
    panel = open_explain(qtbot, win, "moons-mlp", reopen=False)
    panel.set_sample("val", 7)
    choose(panel, "saliency")
    outcome = run_and_wait(qtbot, panel)
    assert panel.view.mode == "field"
    k = int(outcome.attribution.target)
    ref = gradient_field(model_of(win), n=FIELD_GRID, target=k)
    np.testing.assert_allclose(outcome.gradient_field.value, ref.value, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(panel.view.field.img.image, ref.value, rtol=1e-5, atol=1e-7)
    xs, ys = panel.view.field.arrows.getData()
    assert xs is not None and len(xs) > 100  # arrows across the grid
    # the black line is drawn where the model's p = 0.5: its path, taken to the plot's (x1, x2) through
    # the items' transforms, and the model asked there (a transposed contour would be far from 0.5)
    plot = panel.view.field
    plot.contour.boundingRect()  # pyqtgraph builds the path when the scene first measures or paints the item
    path = plot.contour.path
    assert path is not None, "no contour data"
    pts = [plot.contour.mapToItem(plot.img.parentItem(), QPointF(path.elementAt(i).x, path.elementAt(i).y))
           for i in range(0, path.elementCount(), 3)]
    assert len(pts) > 10
    ds = win.document.dataset
    with torch.no_grad():  # the plane is in the data's units: the model is asked in its standardised ones
        at = ds.normalization.apply(torch.tensor([[q.x(), q.y()] for q in pts], dtype=torch.float32))
        p = torch.softmax(model_of(win).module(at), 1)[:, k].numpy()
    assert np.median(np.abs(p - 0.5)) < 0.1 and np.mean(np.abs(p - 0.5) < 0.25) > 0.8, np.round(p, 2)
    sx, sy = panel.view.field.sample.getData()
    raw = ds.normalization.invert(ds.x_val[7:8])[0]
    assert (sx[0], sy[0]) == pytest.approx(tuple(raw.tolist()), rel=1e-5)
    # the plane spans what the live boundary view spans, in the data's units (the moons' x runs past 2)
    mean, std = np.array(ds.normalization.mean), np.array(ds.normalization.std)
    x0, x1 = plot.plot.getPlotItem().viewRange()[0]
    assert (x0, x1) == pytest.approx((ref.xs[0] * std[0] + mean[0], ref.xs[-1] * std[0] + mean[0]), rel=1e-4)
    assert x1 > 2.0
    # the plane is tinted with the classes' own colours, as the points are (a red-blue map had painted
    # the upper moon's region red around its blue points): where p(k) is high the tint leans to k's colour
    from gui.views import CLASS_COLORS

    lut = plot.img.lut.astype(float)
    white = np.array([255.0, 255.0, 255.0])
    for end, cls in ((lut[-1], k), (lut[0], 1 - k)):
        towards = end - white
        assert np.dot(towards, CLASS_COLORS[cls] - white) > 0.9 * np.linalg.norm(towards) * np.linalg.norm(
            CLASS_COLORS[cls] - white), (end, cls)
    assert np.allclose(lut[127], white, atol=3)  # p = 0.5: no class
    # the plane was in the standardised inputs while the boundary view drew the data's units: one unit now
    assert "standardised" not in plot.plot.getPlotItem().getAxis("bottom").labelText
    # at 1280x800 the plane keeps a readable height, and the bars come below it (the panel scrolls):
    # squeezed to the dock, the bars were drawn over the plane's lower half
    from gui.insight.attribution_view import FIELD_MIN_HEIGHT

    bars = panel.view.field_bars
    for _ in range(3):
        QApplication.processEvents()  # the layout follows the page shown at its next event
    assert plot.height() >= FIELD_MIN_HEIGHT
    assert bars.mapTo(panel, bars.rect().topLeft()).y() >= plot.mapTo(panel, plot.rect().bottomLeft()).y()


def test_an_attribution_job_can_be_cancelled(qtbot, win):
    panel = open_explain(qtbot, win, "digits-cnn")
    choose(panel, "kernel_shap", n_samples=100_000, patch=1)
    panel.run_button.click()
    bar = panel.job_bar
    qtbot.waitUntil(lambda: bar.bar.isVisible() and bar.bar.value() > 0, timeout=20_000)
    assert bar.cancel_button.isVisible()
    started = time.monotonic()
    bar.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.runner.busy, timeout=10_000)
    assert time.monotonic() - started < 10
    assert panel.outcome is None and "Cancelled" in bar.status.text() and not bar.bar.isVisible()
    assert panel.runner.wait(5)  # the thread has ended, nothing runs on
    choose(panel, "saliency")
    assert run_and_wait(qtbot, panel).attribution.method == "saliency"  # and the next job runs normally


def test_the_window_stays_responsive_during_a_long_kernelshap_run(qtbot, win):
    panel = open_explain(qtbot, win, "digits-cnn")
    choose(panel, "kernel_shap", n_samples=50_000, patch=1)
    panel.run_button.click()
    qtbot.waitUntil(lambda: panel.job_bar.bar.value() > 0, timeout=20_000)
    lateness, clock, last = [], QElapsedTimer(), [0]
    clock.start()
    timer = QTimer()
    timer.setTimerType(Qt.PreciseTimer)
    timer.setInterval(5)

    def tick():
        now = clock.elapsed()
        lateness.append(now - last[0] - 5)
        last[0] = now

    timer.timeout.connect(tick)
    timer.start()
    qtbot.wait(2000)
    timer.stop()
    still_running = panel.runner.busy
    panel.runner.cancel()
    qtbot.waitUntil(lambda: not panel.runner.busy, timeout=10_000)
    assert still_running  # the measurement was taken while KernelSHAP ran
    lateness = sorted(lateness[1:])
    p95 = lateness[int(0.95 * (len(lateness) - 1))]
    # generous bounds for a shared 2-core machine; bench/explain.py measures the real figure (<= 25 ms)
    assert len(lateness) > 100, len(lateness)
    print(f"timer lateness p95 {p95} ms, median {statistics.median(lateness)} ms, {len(lateness)} ticks")
    assert p95 <= 60, (p95, statistics.median(lateness))


def test_permutation_importance_bars_with_error_bars_named_from_the_header(qtbot, win):
    panel = open_explain(qtbot, win, "iris-mlp")
    panel.tabs.setCurrentIndex(panel.importance_index)
    assert panel.tabs.isTabEnabled(panel.importance_index)
    panel.repeats_box.setValue(5)
    panel.importance_button.click()
    qtbot.waitUntil(lambda: panel.importance is not None and not panel.runner.busy, timeout=30_000)
    ref = permutation_importance(model_of(win), split="test", n_repeats=5)
    order = [f["name"] for f in ref.features()]
    bars = panel.importance_bars
    assert bars.names == order  # most important on top, real column names
    np.testing.assert_allclose(bars.bars.opts["width"], ref.importance[bars.shown])
    np.testing.assert_allclose(bars.errors.opts["left"], ref.std[bars.shown])
    assert "validation" in panel.importance_caption.text()  # iris has no test split, and it says so


def test_feature_importance_is_for_tabular_data(qtbot, win):
    panel = open_explain(qtbot, win, "digits-cnn")
    assert not panel.tabs.isTabEnabled(panel.importance_index)
    assert "tabular" in panel.tabs.tabToolTip(panel.importance_index)


def test_the_sanity_check_grid_has_a_row_per_method_and_a_column_per_stage(qtbot, win):
    panel = open_explain(qtbot, win, "digits-cnn")
    fired = []
    panel.sanityCheckRun.connect(fired.append)
    for name, box in panel.sanity_checks.items():
        box.setChecked(name in ("saliency", "gradcam"))
    panel.set_sample("val", 2)
    panel.tabs.setCurrentIndex(2)
    panel.sanity_button.click()
    qtbot.waitUntil(lambda: panel.sanity is not None and not panel.runner.busy, timeout=60_000)
    result = panel.sanity
    assert fired == [["saliency", "gradcam"]] and result.methods == ["saliency", "gradcam"]
    grid = panel.sanity_grid
    stages = len(result.stages)
    assert stages == len(result.layers) + 1 >= 3
    assert len(grid.cells) == 2 * stages
    for m, name in enumerate(result.methods):
        assert grid.cells[(m, 0)][1].text() == "original"
        for s in range(1, stages):
            rho = result.stages[s].spearman[name]
            assert grid.cells[(m, s)][1].text() == ("ρ = –" if not np.isfinite(rho) else f"ρ = {rho:.2f}")
    assert "randomised" in grid.grid.itemAtPosition(0, 2).widget().text()


def test_activation_maximisation_shows_the_engines_image(qtbot, win):
    panel = open_explain(qtbot, win, "digits-cnn")
    panel.tabs.setCurrentIndex(3)
    panel.actmax_class.setCurrentIndex(3)
    panel.actmax_steps.setValue(20)
    panel.actmax_button.click()
    qtbot.waitUntil(lambda: panel.actmax is not None and not panel.runner.busy, timeout=30_000)
    ref = activation_maximization(model_of(win), target=3, steps=20)
    np.testing.assert_allclose(panel.actmax.image, ref.image, rtol=1e-5, atol=1e-6)
    shown = win.document.dataset.normalization.invert(torch.as_tensor(ref.image)[None])[0, 0].numpy()
    np.testing.assert_allclose(panel.actmax_img.image, shown, rtol=1e-5, atol=1e-5)  # in pixel units
    assert "class 3" in panel.actmax_caption.text()


def test_opening_another_project_clears_the_explain_panel(qtbot, win):
    panel = open_explain(qtbot, win, "digits-cnn")
    choose(panel, "saliency")
    run_and_wait(qtbot, panel)
    assert panel.view.mode == "image"
    assert win.open_starter("iris-mlp")  # untrained
    assert panel.outcome is None and panel.view.mode == "" and panel.view.image.overlay.image is None
    assert not panel.tabs.isVisible() and panel.message.text() == UNTRAINED
    assert not panel.run_button.isEnabled()


def test_scrubbing_the_timeline_explains_that_epoch_again(qtbot, win):
    assert win.open_starter("iris-mlp")
    train(qtbot, win, epochs=4, lr=0.05)
    panel = win.insight.explain
    raise_dock(qtbot, win.insight.explain_dock)
    qtbot.waitUntil(lambda: panel.info is not None and not panel.runner.busy, timeout=30_000)
    panel.set_sample("val", 1)
    choose(panel, "saliency")
    run_and_wait(qtbot, panel)
    win.training.timeline.show_checkpoint(1)  # epoch 1: a quick method is recomputed for it
    qtbot.waitUntil(lambda: panel.outcome is not None and not panel.runner.busy, timeout=30_000)
    weights = win.training.history.checkpoints[1].weights
    ref = attribute(model_of(win, weights), win.document.dataset.x_val[1], None, "saliency")
    np.testing.assert_allclose(panel.outcome.attribution.values, ref.values, rtol=1e-5, atol=1e-7)
    win.training.timeline.go_live()
    qtbot.waitUntil(lambda: panel.outcome is not None and not panel.runner.busy, timeout=30_000)
    now = attribute(model_of(win), win.document.dataset.x_val[1], None, "saliency")
    np.testing.assert_allclose(panel.outcome.attribution.values, now.values, rtol=1e-5, atol=1e-7)
    assert not np.allclose(ref.values, now.values)


def test_no_explain_code_or_captum_is_loaded_at_start_up():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from PySide6.QtWidgets import QApplication; app = QApplication([]);"
            "from gui.app import build_window; w = build_window(); app.processEvents();"
            "assert hasattr(w, 'insight'), 'the insight UI is installed';"
            "print(sorted(m for m in sys.modules if m.startswith(('captum', 'engine.explain', 'sklearn'))));"
            "w.training.shutdown()")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_regression_model_is_asked_what_raises_an_output_not_what_a_class_looks_for(qtbot, win):
    panel = open_explain(qtbot, win, "sine-regression")
    assert panel.tabs.tabText(panel.actmax_index) == "What raises an output"
    assert panel.actmax_class_label.text() == "Output" and panel.actmax_class.itemText(0) == "output 0"
    panel = open_explain(qtbot, win, "digits-cnn")
    assert panel.tabs.tabText(panel.actmax_index) == "What a class looks for"
    assert panel.actmax_class_label.text() == "Class"
