"""Regenerate docs/img/export_dialog.png: the Export dialog after a verified ONNX export.

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python bench/_export_screenshot.py [out.png]

A real X display (not offscreen) so the dialog is a real top-level window over the main window;
the whole 1280x800 screen is grabbed.  (The leading underscore keeps `make bench` from running it.)
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> int:
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "docs", "img", "export_dialog.png")
    tmp = tempfile.mkdtemp(prefix="layerlab-shot-")
    os.environ["LAYERLAB_CONFIG_DIR"] = tmp
    os.environ["LAYERLAB_RECOVERY_DIR"] = tmp
    import torch

    torch.set_num_threads(1)
    from PySide6.QtGui import QGuiApplication

    from engine.project import load_starter
    from engine.run import execute, prepare_run
    from gui import theme
    from gui.app import create_application
    from gui.document import Document
    from gui.export_dialog import install_export_ui
    from gui.main_window import MainWindow

    project = load_starter("digits-cnn")
    prepared = prepare_run(project, overrides={"epochs": 3})
    trainer, _ = execute(prepared)
    project.weights = prepared.compiled.module.state_dict()
    project.history = trainer.history
    project.checkpoints = {3: project.weights}
    project.normalization = prepared.dataset.normalization.to_dict()

    app = create_application(["shot"])
    theme.apply_theme("light", app, persist=False)
    w = MainWindow(Document(project), extensions=[install_export_ui], autosave=False)
    w.setGeometry(0, 0, 1280, 800)
    w.show()
    for _ in range(20):
        app.processEvents()
    w.view.fit_to_view()
    w.act_export.trigger()
    dialog = w.export_dialog
    dialog.format.setCurrentIndex(dialog.format.findData("onnx"))
    folder = os.path.join(tempfile.gettempdir(), "layerlab-demo", "exports")
    os.makedirs(folder, exist_ok=True)
    dialog.path.setText(os.path.join(folder, "digits_cnn.onnx"))
    dialog.resize(640, 300)
    dialog.move(320, 150)
    done = []
    dialog.finished_export.connect(done.append)
    dialog.export_button.click()
    t0 = time.time()
    while not done and time.time() - t0 < 300:
        app.processEvents()
        time.sleep(0.02)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    print(dialog.status.text())
    QGuiApplication.primaryScreen().grabWindow(0).save(out)
    print("wrote", out)
    w.document.undo_stack.setClean()
    w.close()
    return 0 if done and not isinstance(done[0], Exception) else 1


if __name__ == "__main__":
    sys.exit(main())
