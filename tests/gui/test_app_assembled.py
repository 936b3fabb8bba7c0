"""The window as `python main.py` builds it (the editor shown, then every part in
``gui.app.default_extensions`` installed): at 1280x800 every dock tab is in sight with its whole
title and the Lab panel waits hidden for a lab; the parts find each other: an attribution run in the
real Explain panel ticks the lab's inspection goal, and the Evaluation tab brought to the front
counts as a view the student opened.
"""
from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QTabBar  # noqa: E402

from engine.labs.progress import events  # noqa: E402
from gui.app import default_extensions  # noqa: E402
from gui.lab_panel import MARK_MET, MARK_OPEN  # noqa: E402
from tests.gui.insight_support import close, make_window, quiet_dialogs, raise_dock  # noqa: E402


@pytest.fixture(scope="module")
def win(qapp, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("assembled")
    mp.setenv("LAYERLAB_CONFIG_DIR", str(tmp / "config"))
    mp.setenv("LAYERLAB_RECOVERY_DIR", str(tmp / "recovery"))
    quiet_dialogs(mp)
    # as run_app builds it: the editor shown first, the other parts installed once torch is in
    w = make_window(qapp, "moons-mlp", extensions=[], install_later=default_extensions())
    yield w
    close(w)
    mp.undo()


def settle(qtbot, w) -> None:
    w.document.flush()
    qtbot.waitUntil(lambda: not w.lab.busy, timeout=30_000)
    QApplication.processEvents()


def test_every_part_is_installed(win):
    assert win.training is not None and win.insight is not None and win.lab is not None
    assert win.act_export is not None


def test_at_1280x800_every_dock_tab_is_in_sight_with_its_whole_title_and_no_lab_panel_without_a_lab(qtbot, win):
    QApplication.processEvents()
    assert not win.lab_dock.isVisible()  # no lab open: the palette has the left column to itself
    bars = [b for b in win.findChildren(QTabBar, options=Qt.FindDirectChildrenOnly) if b.isVisible()]
    titles = {b.tabText(i) for b in bars for i in range(b.count())}
    assert {"Loss", "Evaluation", "Explain", "Weights", "Dead ReLUs", "Training"} <= titles
    for bar in bars:
        names = [bar.tabText(i) for i in range(bar.count())]
        assert bar.elideMode() == Qt.ElideNone, names
        for i, name in enumerate(names):
            rect = bar.tabRect(i)
            assert rect.left() >= 0 and rect.right() <= bar.width(), f"tab {name!r} is out of sight in {names}"


def test_the_train_button_is_in_front_when_the_app_has_loaded(win):
    """Installed after the window was shown, the Training tab stayed behind the Dataset tab: a
    student saw no Train button anywhere."""
    from gui.training.view_scheduler import is_shown

    QApplication.processEvents()
    assert is_shown(win.training.panel.train_button)
    assert not is_shown(win.dataset_panel)  # its tab is behind


def test_a_saliency_map_in_the_explain_panel_ticks_the_labs_goal(qtbot, win):
    assert win.lab_actions.open_bundled("explaining-predictions")
    settle(qtbot, win)
    panel, cards = win.insight.explain, win.lab_panel.cards
    assert cards["saliency"].mark.text() == MARK_OPEN
    assert win.training.reset_weights()  # seeded weights: a model to explain without a run
    raise_dock(qtbot, win.insight.explain_dock)
    qtbot.waitUntil(lambda: panel.info is not None and not panel.runner.busy, timeout=30_000)
    panel.tabs.setCurrentIndex(0)
    panel.method_box.setCurrentIndex(panel.method_box.findData("saliency"))
    panel.run_button.click()
    qtbot.waitUntil(lambda: panel.outcome is not None and not panel.runner.busy, timeout=30_000)
    settle(qtbot, win)
    assert cards["saliency"].mark.text() == MARK_MET
    assert cards["second-method"].mark.text() == MARK_OPEN  # saliency is not one of the second methods
    recorded = events(win.document.project)
    assert {"kind": "attribution_run", "method": "saliency"} in recorded
    assert {"kind": "view_opened", "view": "attribution"} in recorded


def test_the_evaluation_tab_in_front_counts_as_opened(qtbot, win):
    raise_dock(qtbot, win.insight.evaluation_dock)
    qtbot.waitUntil(lambda: {"kind": "view_opened", "view": "evaluation"} in events(win.document.project),
                    timeout=10_000)

