"""Screenshots of saved and failed runs (issue 12) at 1280x800: a re-opened trained project, and
the training panel after a diverged run.

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python bench/_screenshots_runs.py [out_dir]

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
    tmp = tempfile.mkdtemp(prefix="layerlab-shots-")
    os.environ["LAYERLAB_CONFIG_DIR"] = tmp
    os.environ["LAYERLAB_RECOVERY_DIR"] = tmp
    from PySide6.QtWidgets import QApplication

    from engine.project import load_starter
    from gui import theme
    from gui.app import create_application, default_extensions
    from gui.document import Document
    from gui.main_window import MainWindow

    app = create_application(["shots"])
    theme.apply_theme("light", app, persist=False)

    def settle(seconds: float = 0.3) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def window(starter: str = "moons-mlp") -> MainWindow:
        w = MainWindow(Document(load_starter(starter)), extensions=default_extensions(), autosave=False)
        w.resize(1280, 800)
        w.show()
        deadline = time.monotonic() + 60
        while not w.training.worker.is_ready and time.monotonic() < deadline:
            settle(0.05)
        return w

    def run(w: MainWindow, **settings) -> None:
        ctl = w.training
        ctl.panel.set_settings({"device": "auto", "loss": "auto", "optimizer": "adam", "lr": 0.01, "batch_size": 32,
                                "epochs": 5, "schedule": "none", "seed": 0, **settings})
        assert ctl.train()
        while ctl.worker.busy:
            settle(0.05)
        ctl.flush_frame()
        settle()

    def shot(w: MainWindow, name: str) -> None:
        w.view.fit_to_view()
        settle(0.5)
        w.grab().save(os.path.join(out, name))
        print("wrote", os.path.join(out, name))

    def close(w: MainWindow) -> None:
        w._close_confirmed = True
        w.close()
        settle()

    # 1. train the moons MLP, save it, and open it in a fresh window: its run comes back whole
    first = window()
    run(first, epochs=150)
    path = os.path.join(tmp, "moons-trained.layerlab")
    first.document.save(path)
    close(first)
    again = window("digits-cnn")
    again.open_path(path, ask=False)
    settle(1.0)
    again.training.timeline.slider.setValue(again.training.timeline.slider.maximum())
    shot(again, "reopened_trained_project.png")
    close(again)

    # 2. a run that diverges: the panel says so, at which step, and what to do
    w = window()
    run(w, optimizer="adam", lr=100.0, epochs=50)
    w.training.docks["panel"].raise_()
    shot(w, "diverged_run.png")
    close(w)
    QApplication.instance().quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
