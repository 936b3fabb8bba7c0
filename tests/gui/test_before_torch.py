"""The editor works before torch has loaded (issue 14): the window opens on the starter project with
its shapes and parameter counts, edits and undo work, and nothing imports torch meanwhile; once
torch is in, the data becomes tensors and the code view fills in.

Run in a fresh interpreter whose import system refuses torch (and the libraries built on it), so
an import that sneaks into the editor's path fails the test instead of quietly taking 2 seconds."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    sys.path.insert(0, {repo!r})
    BLOCKED = ("torch", "safetensors.torch", "captum", "sklearn", "scipy", "pyqtgraph", "onnx", "onnxruntime")

    class NoTorch:
        allow = False
        def find_spec(self, name, path=None, target=None):
            if not self.allow and name.split(".")[0] in BLOCKED or name == "safetensors.torch" and not self.allow:
                raise ImportError("the editor imported " + name + " before torch was loaded")
            return None

    blocker = NoTorch()
    sys.meta_path.insert(0, blocker)
    from gui.app import build_window, create_application
    from gui.torch_loader import TorchLoader, set_loader
    app = create_application([])
    loader = TorchLoader()
    set_loader(loader)  # the app's loader: torch is "loading" until it reports
    w = build_window(None, extensions=[])
    w.show()
    app.processEvents()
    doc, out = w.document, {{}}
    out["context"] = [list(doc.context.input_shape), doc.context.n_outputs, doc.context.task]
    out["params"] = doc.analysis.total_params
    out["pending"] = doc.data_pending
    item = w.scene.nodes[doc.graph.nodes_of_type("Input")[0].id]
    out["input_caption"] = item.summary + " | " + item.shape_text
    w.code_dock.raise_()
    w.code_view.refresh()
    out["code_before"] = w.code_view.text()
    from gui.commands import SetParamCommand
    fc1 = doc.graph.node_by_name("fc1")
    doc.push(SetParamCommand(doc, fc1.id, "units", 16))
    doc.flush()
    out["params_after_edit"] = doc.analysis.total_params
    out["nodes_before_add"] = len(doc.graph.nodes)
    w.scene.add_layer("Dropout", w.view.visible_centre())
    doc.flush()
    out["nodes_after_add"] = len(doc.graph.nodes)
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    doc.flush()
    out["params_after_undo"] = doc.analysis.total_params
    out["torch_loaded_meanwhile"] = any(m.split(".")[0] in BLOCKED for m in sys.modules)
    out["summary"] = w.dataset_panel.summary.text()
    # now torch "arrives": the data becomes tensors, the code view compiles
    blocker.allow = True
    loader.start()
    import time
    deadline = time.monotonic() + 120
    while not loader.is_loaded() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    # the tensors are built once the loader reports (queued to the GUI thread): wait for them,
    # within a deadline, rather than a fixed number of event-loop turns (a loaded machine needs more)
    deadline = time.monotonic() + 60
    while doc.dataset is None and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    out["dataset_after"] = type(doc.dataset).__name__
    w.code_view.refresh()
    out["code_after"] = w.code_view.text()
    print(json.dumps(out))
""")


def test_the_editor_works_before_torch_has_loaded(tmp_path):
    env = {"LAYERLAB_CONFIG_DIR": str(tmp_path / "config"), "LAYERLAB_RECOVERY_DIR": str(tmp_path / "rec"),
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(repo=str(REPO))], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["context"] == [[2], 2, "classification"]  # the data's shapes, read without torch
    assert out["params"] > 4000 and out["pending"] is True
    assert "samples" in out["input_caption"] and "(2)" in out["input_caption"]
    assert "Loading PyTorch" in out["code_before"]
    assert out["params_after_edit"] < out["params"] and out["nodes_after_add"] == out["nodes_before_add"] + 1
    assert out["params_after_undo"] == out["params"]
    assert out["torch_loaded_meanwhile"] is False
    assert "moons" in out["summary"] and "Loading PyTorch" in out["summary"]
    assert out["dataset_after"] == "Dataset"
    assert "class LayerLabModel" in out["code_after"] or "def forward" in out["code_after"]
