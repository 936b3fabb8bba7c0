"""Regenerate the README screenshots (docs/img/*.png) at 1280x800, offscreen.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/_screenshots.py [out_dir]

(The leading underscore keeps `make bench` from running it.)
"""
from __future__ import annotations

import os
import sys
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> int:
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "docs", "img")
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="layerlab-shots-")
    os.environ["LAYERLAB_CONFIG_DIR"] = tmp
    os.environ["LAYERLAB_RECOVERY_DIR"] = tmp
    from engine.project import load_starter
    from gui import theme
    from gui.app import create_application
    from gui.commands import ConnectCommand, RemoveNodeCommand, auto_layout
    from gui.document import Document
    from gui.main_window import MainWindow

    app = create_application(["shots"])

    def settle():
        for _ in range(4):
            app.processEvents()
        w.document.flush()
        app.processEvents()

    def shot(name: str, fit: bool = True):
        if fit:
            w.view.fit_to_view()
        settle()
        w.grab().save(os.path.join(out, name))
        print("wrote", os.path.join(out, name))

    # 1. the starter lab, with a layer selected so the inspector shows its form
    theme.apply_theme("light", app, persist=False)
    w = MainWindow(Document(load_starter()), extensions=[], autosave=False)
    w.resize(1280, 800)
    w.show()
    settle()
    doc = w.document
    w.scene.select_only([doc.graph.node_by_name("fc2").id])
    shot("starter_lab.png")

    # 2. a CNN whose Conv2d feeds a Linear without Flatten: the error and its one-click fix
    doc.new("cnn")
    settle()
    g = doc.graph
    for name in ("gap1", "flatten1"):
        doc.push(RemoveNodeCommand(doc, g.node_by_name(name).id))
    doc.push(ConnectCommand(doc, g.node_by_name("relu2").id, g.node_by_name("fc1").id))
    auto_layout(doc)  # close the gap the two removed layers left
    settle()
    w.scene.select_only([g.node_by_name("fc1").id])
    w.problems_dock.raise_()
    shot("cnn_error.png")

    # 3. the dark theme on the residual starter lab
    theme.apply_theme("dark", app, persist=False)
    doc.open_project(load_starter("spirals-residual"))
    settle()
    w.scene.select_only([doc.graph.node_by_name("add1").id])
    w.code_dock.raise_()
    # close enough for full detail (names, settings) on the skip connection and its Add
    a = w.scene.nodes[doc.graph.node_by_name("relu1").id].sceneBoundingRect()
    b = w.scene.nodes[doc.graph.node_by_name("add1").id].sceneBoundingRect()
    w.view.set_zoom(0.85)
    w.view.centerOn(a.united(b).center())
    shot("dark_theme.png", fit=False)
    w._close_confirmed = True
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
