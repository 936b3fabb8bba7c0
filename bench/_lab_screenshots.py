"""Regenerate the lab screenshots (docs/img/lab_panel.png, docs/img/lab_author.png) at 1280x800:

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python bench/_lab_screenshots.py [out_dir]

lab_panel.png: lab 2 mid-way - the starter trained and its question answered, a second hidden
layer added, a short run of the student's network, the training step open with what is still
missing and a hint.  lab_author.png: instructor mode on lab 1, its composite step open.
(The leading underscore keeps `make bench` from running it.)
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> int:
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "docs", "img")
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="layerlab-lab-shots-")
    os.environ["LAYERLAB_CONFIG_DIR"] = tmp
    os.environ["LAYERLAB_RECOVERY_DIR"] = tmp
    from engine.labs.format import load_bundled_lab
    from engine.project import load_starter
    from gui import dialogs, theme
    from gui.app import create_application, default_extensions
    from gui.commands import InsertOnEdgeCommand, SetParamCommand, auto_layout
    from gui.document import Document
    from gui.main_window import MainWindow

    app = create_application(["shots"])
    dialogs.ask_save_changes = lambda *a, **k: "discard"
    theme.apply_theme("light", app, persist=False)
    w = MainWindow(Document(load_starter()), extensions=default_extensions(), autosave=False)
    w.resize(1280, 800)
    w.show()

    def pump(seconds: float = 0.3, until=None, limit: float = 180.0) -> None:
        start = time.monotonic()
        while True:
            app.processEvents()
            w.document.flush()
            elapsed = time.monotonic() - start
            if (until is None and elapsed >= seconds) or (until is not None and (until() or elapsed > limit)):
                break
            time.sleep(0.02)

    ctl, doc, panel = w.training, w.document, w.lab_panel
    pump(until=lambda: ctl.worker.is_ready)

    def train(epochs: int) -> None:
        ctl.panel.epochs_box.setValue(epochs)
        ctl.panel.epochs_box.editingFinished.emit()
        pump(0.3)
        assert ctl.train()
        pump(until=lambda: not ctl.worker.busy)
        pump(until=lambda: not w.lab.busy)
        pump(0.5)

    # ---------------------------------------------------------------- lab 2, mid-way
    w.lab_actions.open_bundled("hidden-layers-activations")
    pump(until=lambda: not w.lab.busy)
    train(30)  # the starter: one hidden layer of 8 sigmoids
    box = panel.cards["starter-fails"].questions[0]
    box.choose("It cuts the plane into a few broad regions and misses the arms")
    box.submit()
    pump(until=lambda: not w.lab.busy)
    # a second hidden layer with a ReLU after the sigmoid
    g = doc.graph
    doc.push(SetParamCommand(doc, "fc1", "units", 32))
    edge = next(e.id for e in g.edges if e.src == "sigmoid1")
    doc.push(InsertOnEdgeCommand(doc, edge, "Linear"))
    hidden = next(n for n in g.nodes if n.type == "Linear" and n.id not in ("fc1", "fc2"))
    doc.push(SetParamCommand(doc, hidden.id, "units", 32))
    doc.push(InsertOnEdgeCommand(doc, next(e.id for e in g.edges if e.src == hidden.id), "ReLU"))
    auto_layout(doc)
    pump(until=lambda: not w.lab.busy)
    ctl.reset_weights()
    train(12)  # a short run: better, not there yet
    panel.intro_button.setChecked(False)
    panel.open("solve-spirals")
    panel.cards["solve-spirals"].hint_button.click()
    pump(until=lambda: not w.lab.busy)
    w.scene.select_only([])
    w.view.fit_to_view()
    pump(1.0)
    path = os.path.join(out, "lab_panel.png")
    w.grab().save(path)
    print("wrote", path, "-", panel.summary.text())

    # ---------------------------------------------------------------- instructor mode, on lab 1
    author = w.lab_actions.open_author(load_bundled_lab("xor-hidden-layer"))
    author.resize(1280, 800)
    author.tabs.setCurrentIndex(1)
    author.step_list.setCurrentRow(2)  # "Add a hidden layer with an activation": an "all" goal
    pump(1.0)
    path = os.path.join(out, "lab_author.png")
    author.grab().save(path)
    print("wrote", path, "-", author.status.text())
    author.tabs.setCurrentIndex(2)
    pump(0.5)
    path = os.path.join(out, "lab_author_locks.png")
    author.grab().save(path)
    print("wrote", path)
    author.close()
    w._close_confirmed = True
    ctl.shutdown()
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
