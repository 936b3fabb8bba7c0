"""Train and watch (issue 4), driven through the real main window, offscreen (pytest-qt).

One window with the training UI in its default mode (a warm training subprocess) serves the
module, because starting the subprocess costs seconds; the tests run in file order and leave
the worker idle.  Covered: a run starts, snapshots arrive and every view draws; pause, resume,
step and stop; a diverging run stops with the engine's sentence and leaves the window usable;
the timeline shows and restores an epoch's weights; run export; the canvas overlay; failures
(out of memory offers a retry); closing the window mid-run stops the subprocess (and, in thread
mode, the QThread) without hanging.
"""
from __future__ import annotations

import re
import time

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent, QTimer  # noqa: E402
from PySide6.QtGui import QColor  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from engine.events import RunFailed  # noqa: E402
from engine.project import load_starter  # noqa: E402
from engine.runner import state_from_numpy  # noqa: E402
from engine.tensorboard import read_scalars  # noqa: E402
from gui import dialogs, theme  # noqa: E402
from gui.document import Document  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from gui.training import install_training_ui  # noqa: E402

LONG = 100_000  # epochs for runs that the test stops itself


def _no_dialogs(mp: pytest.MonkeyPatch, tmp) -> None:
    mp.setenv("LAYERLAB_CONFIG_DIR", str(tmp / "config"))
    mp.setenv("LAYERLAB_RECOVERY_DIR", str(tmp / "recovery"))
    for name in ("show_error", "show_info"):
        mp.setattr(dialogs, name, lambda *a, **k: None)
    mp.setattr(dialogs, "ask_yes_no", lambda *a, **k: True)
    mp.setattr(dialogs, "ask_save_changes", lambda *a, **k: "discard")


def _make_window(mode: str | None = None, starter: str = "moons-mlp"):
    theme.apply_theme("light", persist=False)
    w = MainWindow(Document(load_starter(starter)), extensions=[lambda win: install_training_ui(win, mode=mode)],
                   autosave=False)
    w.resize(1280, 800)
    w.show()
    w.training.render_hidden = True  # draw the views in background tabs too: every view is exercised
    return w


def _close(w) -> None:
    w._close_confirmed = True
    w.close()
    w.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)


@pytest.fixture(scope="module")
def win(qapp, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    _no_dialogs(mp, tmp_path_factory.mktemp("training"))
    w = _make_window()
    deadline = time.monotonic() + 60
    while not w.training.worker.is_ready and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.01)
    assert w.training.worker.is_ready, "the training subprocess did not start"
    yield w
    if not w.training._shut:
        _close(w)
    mp.undo()


@pytest.fixture(autouse=True)
def fresh_start(request):
    """Each test starts idle, from the seed's weights and default settings, whatever the last one did."""
    if "win" in request.fixturenames:
        w = request.getfixturevalue("win")
        ctl = w.training
        if not ctl._shut:
            if ctl.worker.busy:
                ctl.worker.stop()
                deadline = time.monotonic() + 20
                while ctl.worker.busy and time.monotonic() < deadline:
                    QApplication.processEvents()
                    time.sleep(0.01)
            settings(ctl)
            ctl.reset_weights()
    yield


def settings(ctl, **values):
    base = {"device": "auto", "loss": "auto", "optimizer": "adam", "lr": 0.01, "batch_size": 32, "epochs": 5,
            "schedule": "none", "seed": 0}
    ctl.panel.set_settings({**base, **values})


def latest_step(ctl) -> int:
    return -1 if ctl.history.latest is None else ctl.history.latest.step


def wait_idle(qtbot, ctl, timeout=20_000):
    qtbot.waitUntil(lambda: not ctl.worker.busy, timeout=timeout)
    ctl.flush_frame()


# ----------------------------------------------------------------------------- runs
def test_a_run_starts_snapshots_arrive_and_every_view_draws(qtbot, win):
    ctl = win.training
    assert ctl.worker.mode == "process"
    # Long enough (a few seconds) that the GUI timer draws several frames while it runs: a 40-epoch
    # moons run can finish inside one frame on a fast machine.
    epochs = 300
    settings(ctl, epochs=epochs)
    assert ctl.train()
    qtbot.waitUntil(lambda: ctl.info is not None, timeout=20_000)
    assert win.document.project.training["epochs"] == epochs or ctl.job.config["epochs"] == epochs
    wait_idle(qtbot, ctl, timeout=60_000)
    assert ctl.last_failure is None, ctl.last_failure
    assert ctl.last_finish.reason == "completed"
    assert ctl.worker.inbox.received >= 2 and ctl.frames >= 2
    # a CPU run: the subprocess sent weight frames and the GUI process built the snapshots
    assert ctl.worker.builds_snapshots and ctl.worker._bridge.build_error is None
    assert len(ctl.history.epochs) == epochs and len(ctl.history.checkpoints) == epochs + 1
    for key, view in ctl.views.items():
        if key != "regression":  # moons is classification: the fitted-curve view says why it is empty
            assert view.frames_drawn > 0, key
    v = ctl.views
    assert v["boundary"].img.image is not None and v["boundary"].img.image.ndim == 3
    assert len(v["loss"].train_curve.xData) >= 2
    assert v["activations"].img.image is not None
    assert v["regression"]._message.isVisibleTo(v["regression"])
    # the final weights are in the project and the panel says so
    w = win.document.project.weights
    assert w is not None and all(torch.isfinite(t).all() for t in w.values())
    assert f"Finished after {epochs} epochs" in ctl.panel.status_label.text()
    assert ctl.history.epochs[-1]["val_accuracy"] > 0.8


def test_pause_step_resume_and_stop(qtbot, win):
    ctl = win.training
    settings(ctl, epochs=LONG)
    assert ctl.train()
    qtbot.waitUntil(lambda: latest_step(ctl) > 0, timeout=20_000)
    ctl.panel.pause_button.click()
    assert ctl.worker.state == "paused"
    assert not ctl.panel.pause_button.isEnabled() and ctl.panel.resume_button.isEnabled()
    qtbot.wait(300)  # a snapshot already on its way may still land
    held = latest_step(ctl)
    qtbot.wait(400)
    assert latest_step(ctl) == held, "training went on while paused"
    ctl.panel.step_button.click()
    qtbot.waitUntil(lambda: latest_step(ctl) == held + 1, timeout=5000)
    qtbot.wait(300)
    assert latest_step(ctl) == held + 1, "Step ran more than one batch"
    ctl.panel.resume_button.click()
    assert ctl.worker.state == "running"
    qtbot.waitUntil(lambda: latest_step(ctl) > held + 50, timeout=10_000)
    ctl.panel.stop_button.click()
    wait_idle(qtbot, ctl)
    assert ctl.last_finish.reason == "stopped"
    assert ctl.panel.train_button.isEnabled()
    assert "Stopped" in ctl.panel.status_label.text()


def test_step_when_idle_starts_a_paused_run_of_one_batch(qtbot, win):
    ctl = win.training
    settings(ctl, epochs=LONG)
    ctl.panel.step_button.click()
    assert ctl.worker.state == "paused"
    qtbot.waitUntil(lambda: latest_step(ctl) == 1, timeout=20_000)
    qtbot.wait(300)
    assert latest_step(ctl) == 1
    ctl.worker.stop()
    wait_idle(qtbot, ctl)


def test_resume_clicked_at_once_after_step_runs_the_run_on(qtbot, win):
    """Step on an idle project, then Resume before the subprocess has built the trainer: the run
    goes on (it used to stay paused while the buttons said it was running)."""
    ctl = win.training
    settings(ctl, epochs=LONG)
    ctl.panel.step_button.click()
    ctl.panel.resume_button.click()
    assert ctl.worker.state == "running"
    qtbot.waitUntil(lambda: latest_step(ctl) > 20, timeout=20_000)
    ctl.worker.stop()
    wait_idle(qtbot, ctl)


def test_a_diverging_run_stops_with_the_sentence_and_the_window_stays_usable(qtbot, win):
    ctl, doc = win.training, win.document
    n_nodes = len(doc.graph.nodes)
    settings(ctl, optimizer="sgd", lr=1e6, epochs=50)
    assert ctl.train()
    wait_idle(qtbot, ctl)
    assert ctl.last_failure is not None and ctl.last_failure.kind == "non_finite"
    text = ctl.panel.status_label.text()
    # the engine's sentence: which step, and the first node whose output went non-finite
    assert re.search(r"Loss became (NaN|infinite) at epoch 1, step \d+: the output of 'fc\d' was the first", text), text
    assert "weights from before training are kept" in text
    # the window still answers, the graph is intact, the weights are finite, a new run can start
    fired = []
    QTimer.singleShot(0, lambda: fired.append(True))
    qtbot.waitUntil(lambda: bool(fired), timeout=1000)
    assert len(doc.graph.nodes) == n_nodes
    assert all(torch.isfinite(t).all() for t in doc.project.weights.values())
    assert ctl.panel.train_button.isEnabled()
    assert ctl.reset_weights()


def test_when_the_views_cannot_follow_training_goes_on_and_says_so(qtbot, win, monkeypatch):
    from engine.snapshots import SnapshotCollector

    def broken(self, frame):
        raise RuntimeError("replica broke")

    monkeypatch.setattr(SnapshotCollector, "from_raw", broken)  # the bridge thread finishes snapshots here
    ctl = win.training
    settings(ctl, epochs=300)
    with qtbot.waitSignal(ctl.worker.viewsFailed, timeout=20_000) as blocker:
        assert ctl.train()
        qtbot.waitUntil(lambda: "cannot follow" in ctl.panel.status_label.text(), timeout=20_000)
    assert "replica broke" in blocker.args[0]
    wait_idle(qtbot, ctl, timeout=60_000)
    assert ctl.last_failure is None and ctl.last_finish.reason == "completed"
    assert len(ctl.history.epochs) == 300  # epochs and checkpoints still arrive
    monkeypatch.undo()
    assert ctl.train()  # the next run builds its snapshots again
    qtbot.waitUntil(lambda: ctl.worker.builds_snapshots, timeout=20_000)
    wait_idle(qtbot, ctl, timeout=60_000)
    assert ctl.worker._bridge.build_error is None and ctl.frames > 0


def test_timeline_scrubs_back_and_restores_weights(qtbot, win):
    ctl, doc = win.training, win.document
    settings(ctl, epochs=4)
    assert ctl.train()
    wait_idle(qtbot, ctl)
    assert [c.epoch for c in ctl.history.checkpoints] == [0, 1, 2, 3, 4]
    final = {k: v.clone() for k, v in doc.project.weights.items()}
    ctl.timeline.show_checkpoint(2)
    assert not ctl.timeline.live
    cp = ctl.history.checkpoints[2]
    # every view shows epoch 2: the weights heatmap holds epoch 2's weights, time plots a cursor there
    wv = ctl.views["weights"]
    wv.layer_box.setCurrentText("fc2")
    np.testing.assert_allclose(wv.matrix_img.image, cp.weights["fc2.weight"], rtol=1e-6)
    assert ctl.views["loss"].loss_cursor.isVisible() and ctl.views["loss"].loss_cursor.value() == 2.0
    assert cp.snapshot is not None and cp.snapshot.boundary is not None
    ctl.timeline.restore_button.click()
    for k, v in doc.project.weights.items():
        assert torch.equal(v, torch.from_numpy(cp.weights[k]))
    assert not all(torch.equal(doc.project.weights[k], final[k]) for k in final)
    assert "epoch 2" in ctl.panel.status_label.text()
    ctl.timeline.go_live()
    assert ctl.timeline.live and not ctl.views["loss"].loss_cursor.isVisible()


def test_training_again_continues_the_history_until_the_weights_change(qtbot, win):
    ctl, doc = win.training, win.document
    settings(ctl, epochs=3)
    assert ctl.train()
    wait_idle(qtbot, ctl)
    ranges = [lay.hist_range for lay in ctl.info.layers]
    settings(ctl, epochs=2)
    assert ctl.train()  # from the weights the first run left: its curves, epochs and timeline go on
    wait_idle(qtbot, ctl)
    assert [r["epoch"] for r in ctl.history.epochs] == [1, 2, 3, 4, 5]
    assert [c.epoch for c in ctl.history.checkpoints] == [0, 1, 2, 3, 4, 5]
    x, _ = ctl.history.loss.arrays()
    assert np.all(np.diff(x) >= 0) and x[0] <= 3.0 and x[-1] == pytest.approx(5.0)  # one curve across both runs
    assert [lay.hist_range for lay in ctl.info.layers] == ranges  # histograms over time keep their bins
    assert "after 2 epochs" in ctl.panel.status_label.text() and "5 epochs in all" in ctl.panel.status_label.text()
    assert [r["epoch"] for r in doc.project.history] == [1, 2, 3, 4, 5]

    ctl.timeline.show_checkpoint(3)
    ctl.timeline.restore_button.click()  # back to epoch 3: what came after is another branch
    settings(ctl, epochs=1)
    assert ctl.train()
    wait_idle(qtbot, ctl)
    assert [r["epoch"] for r in ctl.history.epochs] == [1, 2, 3, 4]
    assert [c.epoch for c in ctl.history.checkpoints] == [0, 1, 2, 3, 4]
    assert ctl.history.loss.arrays()[0][-1] == pytest.approx(4.0)

    assert ctl.reset_weights()  # fresh weights: a fresh history
    assert ctl.train()
    wait_idle(qtbot, ctl)
    assert [r["epoch"] for r in ctl.history.epochs] == [1]


def test_the_live_views_follow_a_theme_switch(win):
    import pyqtgraph as pg

    from gui import theme

    plots = [p for v in win.training.views.values() for p in v.findChildren(pg.PlotWidget)]
    assert len(plots) >= 8
    try:
        for name in ("dark", "light"):
            t = theme.apply_theme(name, persist=False)
            for p in plots:
                assert p.backgroundBrush().color().name() == QColor(t.base).name()
                axis = p.getPlotItem().getAxis("bottom")
                assert axis.textPen().color().name() == QColor(t.subtext).name()
                assert axis.labelStyle.get("color") == QColor(t.subtext).name()
    finally:
        theme.apply_theme("light", persist=False)


def test_export_csv_and_tensorboard(qtbot, win, tmp_path):
    ctl = win.training
    settings(ctl, epochs=3)
    assert ctl.train()
    wait_idle(qtbot, ctl)
    rows = ctl.history.epochs
    assert rows
    csv_path = ctl.export_csv(tmp_path / "m.csv")
    lines = csv_path.read_text().strip().splitlines()
    assert lines[0].startswith("epoch,") and len(lines) == len(rows) + 1
    ev = ctl.export_tensorboard(tmp_path / "tb")
    scalars = read_scalars(ev)
    assert [s for s, _ in scalars["epoch/val_loss"]] == [r["epoch"] for r in rows]
    assert scalars["epoch/val_loss"][-1][1] == pytest.approx(rows[-1]["val_loss"], rel=1e-6)
    assert "train/loss" in scalars


def test_canvas_overlay_and_node_selection(qtbot, win):
    ctl, doc = win.training, win.document
    settings(ctl, epochs=LONG)
    assert ctl.train()
    qtbot.waitUntil(lambda: bool(doc.overlay.get("edge_colors")), timeout=20_000)
    ov = doc.overlay
    edge_ids = {e.id for e in doc.graph.edges}
    assert set(ov["edge_colors"]) <= edge_ids and len(ov["edge_colors"]) >= 4
    assert all(len(c) == 4 for c in ov["edge_colors"].values())
    relu2 = doc.graph.node_by_name("relu2")
    assert relu2.id in ov["node_images"] and not ov["node_images"][relu2.id].isNull()
    ctl.panel.overlay_mode.setCurrentIndex(1)  # weight magnitude
    qtbot.waitUntil(lambda: ctl.overlay_mode == "weight", timeout=1000)
    doc.set_selected_node(relu2.id)  # a click on the canvas
    assert ctl.views["activations"].node_box.currentText() == "relu2"
    ctl.worker.stop()
    wait_idle(qtbot, ctl)
    assert doc.overlay == {}  # the overlay is for the duration of a run
    ctl.panel.overlay_mode.setCurrentIndex(0)


def test_out_of_memory_offers_a_retry_with_half_the_batch(qtbot, win):
    ctl = win.training
    settings(ctl, epochs=LONG, batch_size=64)
    ctl._on_failed(RunFailed(message="Training ran out of memory at epoch 1. Lower the batch size or use a smaller "
                                     "model.", kind="out_of_memory", batch_size=64))
    assert ctl.panel.retry_button.isVisibleTo(ctl.panel)
    assert "32" in ctl.panel.retry_button.text() and "retry" in ctl.panel.status_label.text()
    ctl.panel.retry_button.click()
    assert ctl.job.config["batch_size"] == 32 and ctl.panel.batch_box.value() == 32
    qtbot.waitUntil(lambda: latest_step(ctl) > 0, timeout=20_000)
    ctl.worker.stop()
    wait_idle(qtbot, ctl)


def test_reset_weights_is_a_function_of_the_seed(win):
    ctl, doc = win.training, win.document
    settings(ctl, seed=5)
    assert ctl.reset_weights()
    a = {k: v.clone() for k, v in doc.project.weights.items()}
    assert ctl.reset_weights()
    assert all(torch.equal(a[k], v) for k, v in doc.project.weights.items())
    settings(ctl, seed=6)
    assert ctl.reset_weights()
    assert not all(torch.equal(a[k], v) for k, v in doc.project.weights.items())


def test_reset_weights_asks_before_it_throws_a_trained_run_away(qtbot, win, monkeypatch):
    """One click on Reset weights discarded the trained run, its curves and the lab steps it had
    ticked, with nothing to bring them back."""
    ctl, doc = win.training, win.document
    settings(ctl, epochs=2)
    assert ctl.train()
    wait_idle(qtbot, ctl)
    trained = {k: v.clone() for k, v in doc.project.weights.items()}
    asked = []
    monkeypatch.setattr(dialogs, "ask_yes_no", lambda parent, title, text: asked.append(text) or False)
    ctl.panel.reset_button.click()
    assert len(asked) == 1 and "trained weights (epoch 2)" in asked[0] and "Undo cannot bring them back" in asked[0]
    assert all(torch.equal(v, trained[k]) for k, v in doc.project.weights.items())  # "No" keeps them
    assert ctl.history.last_epoch == 2
    monkeypatch.setattr(dialogs, "ask_yes_no", lambda parent, title, text: asked.append(text) or True)
    ctl.panel.reset_button.click()
    assert len(asked) == 2 and ctl.history.last_epoch == 0
    assert not all(torch.equal(v, trained[k]) for k, v in doc.project.weights.items())
    ctl.panel.reset_button.click()  # fresh weights and no run: nothing to lose, nothing asked
    assert len(asked) == 2


def test_an_invalid_graph_or_missing_data_gives_a_sentence(win):
    ctl, doc = win.training, win.document
    saved = doc.dataset
    doc.dataset = None
    try:
        assert not ctl.train()
        assert "no dataset" in ctl.panel.status_label.text()
    finally:
        doc.dataset = saved
    settings(ctl, lr=0.01, batch_size=32)


def test_editing_the_graph_during_a_run_never_stores_weights_that_do_not_fit(qtbot, win):
    from gui.commands import SetParamCommand

    ctl, doc = win.training, win.document
    settings(ctl, epochs=LONG)
    assert ctl.reset_weights()
    before = {k: v.clone() for k, v in doc.project.weights.items()}
    assert ctl.train()
    qtbot.waitUntil(lambda: latest_step(ctl) > 0, timeout=20_000)
    fc2 = doc.graph.node_by_name("fc2")
    doc.push(SetParamCommand(doc, fc2.id, "units", 32))  # the student edits while it trains
    ctl.worker.stop()
    wait_idle(qtbot, ctl)
    assert "no longer fit" in ctl.panel.status_label.text() and "undo the edit to keep them" in \
        ctl.panel.status_label.text()
    assert all(torch.equal(before[k], v) for k, v in doc.project.weights.items())
    # the views say the graph changed, rather than show a run the project does not hold
    assert all("graph changed" in v._message.text() for v in ctl.views.values())
    doc.undo_stack.undo()
    assert doc.graph.node(fc2.id).params["units"] == 64
    # the undo makes the run's weights fit again: they are kept, with the run, and nothing disagrees
    # (the curves had shown the run while the project, and Evaluation, held the weights from before it)
    qtbot.waitUntil(lambda: "undone" in ctl.panel.status_label.text(), timeout=5_000)
    final = state_from_numpy(ctl.last_finish.weights)
    assert all(torch.equal(final[k], v) for k, v in doc.project.weights.items())
    assert not all(torch.equal(before[k], v) for k, v in doc.project.weights.items())
    assert doc.project.run["outcome"] == ctl.last_finish.reason and doc.project.history == ctl.history.epochs
    assert not any("graph changed" in v._message.text() for v in ctl.views.values())


def test_a_batchnorm_graph_trained_in_the_app_keeps_weights_that_load_again(qtbot, win, tmp_path):
    """BatchNorm's num_batches_tracked (0-d) came back from the training process with shape (1,):
    Evaluation, Export, training on and the saved project then all refused the weights."""
    from engine.compile import compile_graph
    from engine.project import load_project, save_project
    from engine.run import load_weights

    ctl, doc = win.training, win.document
    g = doc.graph
    edge = next(e for e in g.edges if g.node(e.src).name == "fc1")
    bn_id = win.scene.insert_layer_on(edge.id, "BatchNorm1d")
    try:
        settings(ctl, epochs=2)
        assert ctl.reset_weights() and ctl.train()
        wait_idle(qtbot, ctl)
        weights = doc.project.weights
        key = f"{g.node(bn_id).name}.num_batches_tracked"
        assert tuple(weights[key].shape) == () and int(weights[key]) > 0
        load_weights(compile_graph(g, doc.context).module, weights)  # what Evaluation and Export do
        path = tmp_path / "bn.layerlab"
        save_project(path, doc.snapshot())
        again = load_project(path)
        load_weights(compile_graph(again.graph, doc.context).module, again.weights)
        for state in again.checkpoints.values():  # the timeline's epochs too
            assert tuple(state[key].shape) == ()
    finally:
        doc.undo_stack.undo()  # the module's window goes back to the starter's graph
    assert bn_id not in {n.id for n in g.nodes}


def test_undoing_the_edit_that_made_untrained_weights_stale_brings_the_idle_views_back(win):
    """An imported project has weights but no run: after an edit and its undo, the views still
    said the weights no longer fit."""
    from gui.commands import SetParamCommand
    from gui.views import IDLE_MESSAGE

    ctl, doc = win.training, win.document
    assert ctl.reset_weights() and ctl.history.is_empty() and doc.project.weights
    fc2 = doc.graph.node_by_name("fc2")
    doc.push(SetParamCommand(doc, fc2.id, "units", 24))
    doc.flush()
    assert all("no longer fit" in v._message.text() for v in ctl.views.values())
    doc.undo_stack.undo()
    doc.flush()
    assert not doc.weights_stale
    assert all(v._message.text() == IDLE_MESSAGE for v in ctl.views.values())


def test_closing_the_window_during_a_run_stops_the_subprocess(qtbot, win):
    ctl = win.training
    settings(ctl, epochs=LONG)
    assert ctl.train()
    qtbot.waitUntil(lambda: latest_step(ctl) > 0, timeout=20_000)
    proc = ctl.worker._proc
    t0 = time.monotonic()
    _close(win)
    assert time.monotonic() - t0 < 8
    assert ctl._shut and not proc.is_alive()
    assert ctl.worker._bridge.isFinished()


def test_thread_mode_trains_and_closes_cleanly_mid_run(qtbot, tmp_path):
    mp = pytest.MonkeyPatch()
    _no_dialogs(mp, tmp_path)
    try:
        w = _make_window(mode="thread")
        ctl = w.training
        settings(ctl, epochs=LONG)
        assert ctl.train()
        qtbot.waitUntil(lambda: latest_step(ctl) > 0 and ctl.frames > 0, timeout=20_000)
        thread = ctl.worker._thread
        t0 = time.monotonic()
        _close(w)
        assert time.monotonic() - t0 < 8
        assert thread.isFinished()
    finally:
        mp.undo()


def test_the_training_subprocess_never_imports_qt():
    import json
    import subprocess
    import sys

    code = ("import sys, json; import engine.runner, engine.snapshots, engine.train; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_training_subprocess_dies_with_a_crashed_gui(tmp_path):
    """A GUI that crashes (here: SIGKILL mid-run) must not leave a trainer running on its own."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "crash.py"
    script.write_text(
        "import os, sys, time\n"
        "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from gui.training.worker import TrainingWorker\n"
        "w = TrainingWorker(mode='process')\n"
        "w.warm()\n"
        "while not w.is_ready:\n"
        "    app.processEvents(); time.sleep(0.01)\n"
        "print(w._proc.pid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    pid = int(out.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 10
    alive = True
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            alive = False
            break
        time.sleep(0.1)
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "the training subprocess outlived the GUI process"
