"""Regenerate the evaluation / explain screenshots in docs/img (the real window, 1280x800):

    xvfb-run -a -s "-screen 0 1280x800x24" .venv/bin/python bench/_insight_screenshots.py [out_dir]

* insight_confusion.png  - fashion-cnn trained 3 epochs: the confusion matrix, a selected cell, its samples
* insight_gradcam.png    - the same model: Grad-CAM over a 28x28 test image
* insight_importance.png - an MLP on the bundled wine data: permutation importance with the column names
* insight_sanity.png     - the fashion model: the sanity-check grid (saliency, IG, Grad-CAM)

The models are trained first with the CLI (``main.py train``), as a person would.  (The leading
underscore keeps `make bench` from running it.)
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def train(project: str, out: str, epochs: int) -> str:
    subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "train", project, "--epochs", str(epochs),
                    "--out", out], check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return os.path.join(out, "model.layerlab")


def gradcam_sample(project_path: str, n: int = 400) -> int:
    """A correctly classified test image whose Grad-CAM map is not empty and lies mostly on the
    object (this small network often has no positive evidence at its last conv layer: the panel
    says so, but a screenshot should show a map)."""
    import numpy as np

    from engine.explain import attribute
    from engine.model_at import model_at
    from engine.project import load_project

    ready = model_at(load_project(project_path), device="cpu")
    x, y = ready.dataset.x_test[:n], ready.dataset.y_test[:n].numpy()
    pred = ready.module(x).argmax(1).numpy()
    best, best_score = 0, -1.0
    for i in np.flatnonzero(pred == y):
        cam = attribute(ready, x[i], None, "gradcam").values[0]
        if cam.max() <= 0:
            continue
        on_object = float((cam * (x[i, 0].numpy() > 0.1)).sum() / cam.sum())
        spread = float((cam > 0.3 * cam.max()).mean())
        score = on_object * min(spread, 0.3)  # on the garment, and more than a speck
        if score > best_score:
            best, best_score = int(i), score
    return best


def main() -> int:
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "docs", "img")
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="layerlab-insight-shot-")
    os.environ["LAYERLAB_CONFIG_DIR"] = tmp
    os.environ["LAYERLAB_RECOVERY_DIR"] = tmp
    import torch

    torch.set_num_threads(1)
    from engine.project import load_starter, save_project

    fashion = train("fashion-cnn", os.path.join(tmp, "fashion"), 3)
    wine_src = os.path.join(tmp, "wine.layerlab")
    wine = load_starter("iris-mlp")
    wine.name, wine.data = "Wine MLP", {"source": "wine", "test_fraction": 0.2}
    save_project(wine_src, wine)
    wine_path = train(wine_src, os.path.join(tmp, "wine"), 60)

    from PySide6.QtWidgets import QApplication

    from gui import theme
    from gui.app import build_window, create_application

    app = create_application([])
    theme.apply_theme("light", persist=False)
    w = build_window(fashion)
    w.resize(1280, 800)
    w.show()

    def wait(cond, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond() and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        if not cond():
            raise SystemExit("timed out waiting for the window")

    def settle(seconds: float = 0.6) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def shot(name: str) -> None:
        settle()
        path = os.path.join(out_dir, name)
        if not w.grab().save(path):
            raise SystemExit(f"cannot write {path}")
        print("wrote", path)

    wait(lambda: w.training.worker.is_ready)
    ins = w.insight
    ev_panel, ex_panel = ins.evaluation, ins.explain

    # 1. the confusion matrix, the cell of shirts taken for T-shirts, its samples
    ins.evaluation_dock.raise_()
    wait(lambda: ev_panel.evaluation is not None and not ev_panel.runner.busy)
    ev = ev_panel.evaluation
    ev_panel.tabs.setCurrentIndex(ev_panel.confusion_index)
    names = list(ev.class_names)
    ev_panel.show_cell(names.index("Shirt"), names.index("T-shirt/top"))
    ev_panel.samples.select_index(ev_panel.samples.listed[0])
    shot("insight_confusion.png")

    # 2. Grad-CAM (default settings: the last spatial layer, positive evidence) over a 28x28 test image
    sample = gradcam_sample(fashion)
    ex_panel.set_sample("test", sample)
    ins.explain_dock.raise_()
    wait(lambda: ex_panel.info is not None and not ex_panel.runner.busy)
    ex_panel.tabs.setCurrentIndex(0)
    ex_panel.method_box.setCurrentIndex(ex_panel.method_box.findData("gradcam"))
    ex_panel.run_attribution()
    wait(lambda: ex_panel.outcome is not None and not ex_panel.runner.busy)
    shot("insight_gradcam.png")

    # 3. the sanity check: saliency, Integrated Gradients, Grad-CAM as the layers are randomised
    ex_panel.tabs.setCurrentIndex(2)
    for name, box in ex_panel.sanity_checks.items():
        box.setChecked(name in ("saliency", "integrated_gradients", "gradcam"))
    ex_panel.run_sanity()
    wait(lambda: ex_panel.sanity is not None and not ex_panel.runner.busy, 180)
    shot("insight_sanity.png")

    # 4. permutation importance on the wine data, the columns named from its header
    assert w.open_path(wine_path, ask=False)
    ins.explain_dock.raise_()
    wait(lambda: ex_panel.info is not None and not ex_panel.runner.busy)
    ex_panel.tabs.setCurrentIndex(ex_panel.importance_index)
    ex_panel.run_importance()
    wait(lambda: ex_panel.importance is not None and not ex_panel.runner.busy, 120)
    shot("insight_importance.png")

    w._close_confirmed = True
    ins.shutdown()
    w.training.shutdown()
    w.close()
    QApplication.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
