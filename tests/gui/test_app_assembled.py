"""The window as `python main.py` builds it (every part in ``gui.app.default_extensions``): the
parts find each other. An attribution run in the real Explain panel ticks the lab's inspection
goal, and the Evaluation tab brought to the front counts as a view the student opened.
"""
from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QApplication  # noqa: E402

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
    w = make_window(qapp, "moons-mlp", extensions=default_extensions())
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
