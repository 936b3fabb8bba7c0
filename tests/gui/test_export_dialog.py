"""File > Export… and File > Import model…, driven as a user would (offscreen, dialogs answered)."""
from __future__ import annotations

import os

import textwrap

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PySide6.QtCore import Qt

from engine.model_at import model_at
from engine.project import load_project, load_starter
from gui import dialogs
from gui.document import Document
from gui.export_dialog import ExportDialog, install_export_ui
from gui.main_window import MainWindow

torch.set_num_threads(1)


@pytest.fixture
def answers(monkeypatch, tmp_path):
    """Every modal dialog replaced: errors recorded, paths and options answered from this dict."""
    log = {"errors": [], "infos": [], "open": "", "save": "", "options": None, "asked": [], "forms": [],
           "questions": [], "yes": True}
    monkeypatch.setenv("LAYERLAB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("LAYERLAB_RECOVERY_DIR", str(tmp_path / "recovery"))
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, text: log["errors"].append(text))
    monkeypatch.setattr(dialogs, "show_info", lambda parent, title, text: log["infos"].append(text))
    monkeypatch.setattr(dialogs, "ask_save_changes", lambda parent, name: "discard")
    # a list answers successive questions in turn
    monkeypatch.setattr(dialogs, "get_open_path",
                        lambda *a, **k: log["open"].pop(0) if isinstance(log["open"], list) else log["open"])
    monkeypatch.setattr(dialogs, "get_save_path", lambda *a, **k: log["save"])

    def yes_no(parent, title, text):
        log["questions"].append(text)
        return log["yes"]

    monkeypatch.setattr(dialogs, "ask_yes_no", yes_no)

    def options(parent, filename, warning, fields=(), values=None, problem=""):
        log["asked"].append(warning)
        log["forms"].append({"fields": fields, "values": dict(values or {}), "problem": problem})
        answer = log["options"]
        return answer.pop(0) if isinstance(answer, list) else answer

    monkeypatch.setattr(dialogs, "get_import_options", options)
    return log


def _window(qtbot, project):
    w = MainWindow(Document(project), extensions=[install_export_ui])
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    return w


@pytest.fixture
def trained_window(qtbot, answers, exports):
    project = exports.copy("starter:digits-cnn")
    project.checkpoints = {0: project.weights, 2: {k: v * 0.5 for k, v in project.weights.items()}}
    w = _window(qtbot, project)
    yield w
    w.document.undo_stack.setClean()
    w.close()


def _menu_texts(window):
    menu = next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == "File")
    return [a.text().replace("&", "") for a in menu.actions() if not a.isSeparator()]


def test_the_file_menu_has_export_and_import_before_quit(trained_window):
    texts = _menu_texts(trained_window)
    assert texts[-3:] == ["Export…", "Import model…", "Quit"]


def test_default_extensions_include_the_export_ui(monkeypatch):
    import gui.export_dialog
    from gui.app import default_extensions, install_export

    assert install_export in default_extensions()
    installed = []
    monkeypatch.setattr(gui.export_dialog, "install_export_ui", installed.append)
    install_export("the window")  # the extension imports the export UI when it is installed, then installs it
    assert installed == ["the window"]


def test_export_onnx_shows_the_verification(trained_window, qtbot, tmp_path):
    trained_window.document.project.history = [{"epoch": 1, "val_loss": 0.9}, {"epoch": 2, "val_loss": 0.4567,
                                                                               "val_accuracy": 0.875}]
    trained_window.act_export.trigger()
    dialog = trained_window.export_dialog
    assert isinstance(dialog, ExportDialog) and dialog.isVisible()
    # each epoch with its figures: the best one is picked by them
    assert [dialog.epoch.itemText(i) for i in range(dialog.epoch.count())] == \
        ["Current weights", "Before training (epoch 0)", "Timeline epoch 2 · val loss 0.457 · val accuracy 0.875"]
    dialog.format.setCurrentIndex(dialog.format.findData("onnx"))
    dialog.path.setText(str(tmp_path / "digits.onnx"))
    with qtbot.waitSignal(dialog.finished_export, timeout=180_000) as done:
        qtbot.mouseClick(dialog.export_button, Qt.LeftButton)
        assert dialog.progress.isVisible() and not dialog.export_button.isEnabled()  # busy, off the GUI thread
    result = done.args[0]
    assert result.verification.runtime == "onnxruntime"
    text = dialog.status.text()
    assert "Verified</b> with onnxruntime on 8 real samples" in text and "max abs difference" in text
    assert not dialog.progress.isVisible() and dialog.export_button.isEnabled()
    session = ort.InferenceSession(str(tmp_path / "digits.onnx"))
    x = trained_window.document.dataset.x_val[:3].numpy()
    ready = model_at(trained_window.document.project, device="cpu")
    with torch.no_grad():
        want = ready.module(torch.from_numpy(x)).numpy()
    assert np.abs(session.run(None, {"input": x})[0] - want).max() <= 1e-5
    # another format: the chosen folder stays, and the ONNX result goes
    dialog.format.setCurrentIndex(dialog.format.findData("python"))
    assert os.path.dirname(dialog.path.text()) == str(tmp_path) and dialog.status.text() == ""
    dialog.close()


def test_export_of_a_timeline_epoch_writes_those_weights(trained_window, qtbot, tmp_path):
    from safetensors.torch import load_file

    trained_window.act_export.trigger()
    dialog = trained_window.export_dialog
    dialog.format.setCurrentIndex(dialog.format.findData("safetensors"))
    dialog.epoch.setCurrentIndex(dialog.epoch.findData(2))
    dialog.path.setText(str(tmp_path / "epoch2.safetensors"))
    with qtbot.waitSignal(dialog.finished_export, timeout=60_000):
        dialog.export_button.click()
    saved = load_file(str(tmp_path / "epoch2.safetensors"))
    half = trained_window.document.project.checkpoints[2]
    assert all(torch.equal(saved[k], half[k]) for k in half)
    dialog.close()


def test_a_graph_with_errors_is_refused_with_its_errors(qtbot, answers, exports, tmp_path):
    project = exports.copy("starter:moons-mlp")
    w = _window(qtbot, project)
    w.document.graph.add_node("ReLU", name="loose")
    w.document.flush()
    w.act_export.trigger()
    dialog = w.export_dialog
    dialog.path.setText(str(tmp_path / "x.onnx"))
    with qtbot.waitSignal(dialog.finished_export, timeout=60_000):
        dialog.export_button.click()
    assert "Not exported" in dialog.status.text() and "<li>ReLU 'loose' has no input" in dialog.status.text()
    assert not (tmp_path / "x.onnx").exists()
    dialog.close()
    w.document.undo_stack.setClean()
    w.close()


def test_an_untrained_project_says_train_first(qtbot, answers, tmp_path):
    w = _window(qtbot, load_starter("moons-mlp"))
    w.act_export.trigger()
    dialog = w.export_dialog
    assert not dialog.epoch.isEnabled() and "train first" in dialog.epoch.currentText()
    assert not dialog.export_button.isEnabled()  # it had been clickable, only to refuse
    dialog.start_export()
    assert "no trained weights yet" in dialog.status.text()
    dialog.close()
    w.close()


def test_a_typed_path_that_exists_is_replaced_only_when_confirmed(trained_window, qtbot, answers, tmp_path):
    """The default name sits beside the project: a model imported from m.onnx was written over its
    own source without a word."""
    source = tmp_path / "model.onnx"
    source.write_bytes(b"the user's own model")
    trained_window.act_export.trigger()
    dialog = trained_window.export_dialog
    dialog.format.setCurrentIndex(dialog.format.findData("onnx"))
    dialog.path.setText(str(source))
    answers["yes"] = False
    dialog.export_button.click()
    assert answers["questions"] == [f"model.onnx already exists in {tmp_path}. Replace it?"]
    assert source.read_bytes() == b"the user's own model" and "Not exported" in dialog.status.text()
    assert not dialog.busy
    answers["yes"] = True
    with qtbot.waitSignal(dialog.finished_export, timeout=180_000):
        dialog.export_button.click()
    assert source.read_bytes().startswith(b"\x08")  # an ONNX protobuf now
    assert "(replaced the existing model.onnx)" in dialog.status.text()  # as the command line says
    # a path chosen with Browse… was confirmed by the save dialog itself: not asked twice
    answers.update(save=str(tmp_path / "other.safetensors"), questions=[])
    (tmp_path / "other.safetensors").write_bytes(b"old")
    dialog.format.setCurrentIndex(dialog.format.findData("safetensors"))
    dialog.browse()
    with qtbot.waitSignal(dialog.finished_export, timeout=60_000):
        dialog.export_button.click()
    assert answers["questions"] == [] and (tmp_path / "other.safetensors").read_bytes() != b"old"
    dialog.close()


def test_save_to_is_refused_as_the_command_line_refuses_it(trained_window, qtbot, answers, tmp_path):
    """ONNX written over the open project itself (named .layerlab) after one Yes: the project was
    gone, and the window's title said nothing was unsaved."""
    doc = trained_window.document
    project = tmp_path / "mine.layerlab"
    assert trained_window._save_to(str(project))
    before = project.read_bytes()
    trained_window.act_export.trigger()
    dialog = trained_window.export_dialog
    dialog.format.setCurrentIndex(dialog.format.findData("onnx"))
    dialog.path.setText(str(project))
    dialog.export_button.click()
    assert f"Save to {project}: is the project being exported; choose another file." in dialog.status.text()
    assert answers["questions"] == [] and project.read_bytes() == before and not dialog.busy
    # a folder that is no earlier package is refused by the exporter, without a question first
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "notes.txt").write_text("mine")
    dialog.format.setCurrentIndex(dialog.format.findData("python"))
    dialog.path.setText(str(tmp_path / "runs"))
    with qtbot.waitSignal(dialog.finished_export, timeout=60_000):
        dialog.export_button.click()
    assert answers["questions"] == [] and "Not exported" in dialog.status.text()
    assert (tmp_path / "runs" / "notes.txt").read_text() == "mine"
    assert doc.path == str(project)
    dialog.close()


def test_a_typed_name_keeps_its_stem_when_the_format_changes(trained_window, tmp_path):
    trained_window.act_export.trigger()
    dialog = trained_window.export_dialog
    dialog.format.setCurrentIndex(dialog.format.findData("onnx"))
    default = dialog.path.text()
    dialog.format.setCurrentIndex(dialog.format.findData("pt2"))
    assert dialog.path.text().endswith(".pt2") and dialog.path.text() != default  # a default name follows the format
    dialog.path.setText(str(tmp_path / "best_epoch.pt2"))
    dialog.format.setCurrentIndex(dialog.format.findData("safetensors"))
    assert dialog.path.text() == str(tmp_path / "best_epoch.safetensors")  # it had gone back to the default
    dialog.format.setCurrentIndex(dialog.format.findData("python"))
    assert dialog.path.text() == str(tmp_path / "best_epoch")
    dialog.close()


def test_switching_format_drops_the_last_exports_messages(trained_window, qtbot, tmp_path):
    trained_window.act_export.trigger()
    dialog = trained_window.export_dialog
    dialog.format.setCurrentIndex(dialog.format.findData("torchscript"))
    dialog.path.setText(str(tmp_path / "m.pt"))
    with qtbot.waitSignal(dialog.finished_export, timeout=120_000):
        dialog.export_button.click()
    assert dialog.details_button.isVisibleTo(dialog) == bool(dialog.details.toPlainText() != "(the exporter said nothing)")
    dialog.details_button.setChecked(True)
    dialog.format.setCurrentIndex(dialog.format.findData("python"))
    assert not dialog.details_button.isVisibleTo(dialog) and not dialog.details.isVisibleTo(dialog)
    assert dialog.details.toPlainText() == "" and dialog.status.text() == ""
    dialog.close()


def test_import_model_warns_then_opens_the_imported_project(qtbot, answers, tmp_path):
    source = tmp_path / "net.py"
    source.write_text(textwrap.dedent('''
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 8)
                self.act = nn.ReLU()
                self.out = nn.Linear(8, 3)
            def forward(self, x):
                return self.out(self.act(self.fc(x)))
    '''))
    w = _window(qtbot, load_starter("moons-mlp"))
    answers.update(open=str(source), save=str(tmp_path / "net.layerlab"), options={"class_name": "Net",
                                                                                    "input_shape": None})
    w.act_import_model.trigger()
    qtbot.waitUntil(lambda: w.document.path is not None and w.document.path.endswith("net.layerlab"), timeout=60_000)
    assert answers["asked"] == ["Importing a .py file runs it; only import files you trust."]
    assert [n.type for n in w.document.graph.nodes] == ["Input", "Linear", "ReLU", "Linear", "Output"]
    assert w.document.project.data == {"source": "iris"}  # 4 inputs, 3 classes: data that fits
    assert w.document.analysis.ok
    # the whole report, the data it opens on included (the status bar had cut it mid-sentence)
    assert len(answers["infos"]) == 1 and "Data: the built-in 'iris' dataset" in answers["infos"][0]
    assert w.statusBar().currentMessage() == "Imported 3 layers from a Python model."
    assert load_project(tmp_path / "net.layerlab").weights is not None
    assert answers["errors"] == []
    w.close()


NET_WITHOUT_SHAPE = textwrap.dedent('''
    import torch.nn as nn
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.Linear(8, 3))
        def forward(self, x):
            return self.body(x)
''')


def test_an_import_that_needs_a_shape_asks_the_form_again(qtbot, answers, tmp_path):
    """The refusal ended the import, quoting a command-line flag (--input-shape) to a GUI user."""
    (tmp_path / "net.py").write_text(NET_WITHOUT_SHAPE)
    w = _window(qtbot, load_starter("moons-mlp"))
    answers.update(open=str(tmp_path / "net.py"), save=str(tmp_path / "net.layerlab"),
                   options=[{"class_name": None, "input_shape": None, "weights": None},
                            {"class_name": None, "input_shape": (4,), "weights": None}])
    w.act_import_model.trigger()
    qtbot.waitUntil(lambda: (w.document.path or "").endswith("net.layerlab"), timeout=60_000)
    first, second = answers["forms"]
    assert first["fields"] == ("class", "shape", "weights") and first["problem"] == ""
    assert "cannot tell the input shape of Net" in second["problem"] and "--" not in second["problem"]
    assert answers["errors"] == [] and w.document.project.data == {"source": "iris"}
    # a class name the file does not define asks again too (it ended the import)
    answers.update(forms=[], save=str(tmp_path / "again.layerlab"),
                   options=[{"class_name": "Nope", "input_shape": (4,), "weights": None},
                            {"class_name": "Net", "input_shape": (4,), "weights": None}])
    w.act_import_model.trigger()
    qtbot.waitUntil(lambda: (w.document.path or "").endswith("again.layerlab"), timeout=60_000)
    assert "no nn.Module class named 'Nope' (it defines: Net)" in answers["forms"][1]["problem"]
    assert answers["errors"] == []
    w.close()


def test_a_state_dict_picked_alone_is_imported_with_the_py_it_belongs_to(qtbot, answers, tmp_path):
    """A .pth was refused, naming command-line flags; the GUI had no way to give a .py its weights."""
    from torch import nn

    (tmp_path / "net.py").write_text(NET_WITHOUT_SHAPE.replace("nn.LazyLinear(8)", "nn.Linear(4, 8)"))
    torch.manual_seed(3)
    trained = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    torch.save({f"body.{k}": v for k, v in trained.state_dict().items()}, tmp_path / "trained.pth")
    w = _window(qtbot, load_starter("moons-mlp"))
    answers.update(open=[str(tmp_path / "trained.pth"), str(tmp_path / "net.py")], save=str(tmp_path / "n.layerlab"),
                   options=[{"class_name": None, "input_shape": (4,), "weights": str(tmp_path / "trained.pth")}])
    w.act_import_model.trigger()
    qtbot.waitUntil(lambda: (w.document.path or "").endswith("n.layerlab"), timeout=60_000)
    assert "holds weights (a state dict) but not the network" in answers["questions"][0]
    assert answers["forms"][0]["values"]["weights"] == str(tmp_path / "trained.pth")  # filled in for the person
    x = torch.randn(5, 4)
    with torch.no_grad():
        want = trained(x)
        got = model_at(w.document.project, device="cpu").module(x)
    assert torch.allclose(got, want, atol=1e-6)  # the weights of the .pth, not fresh ones
    w.close()


def test_import_refusals_are_one_sentence(qtbot, answers, tmp_path):
    import pickle

    class Payload:
        def __reduce__(self):
            return print, ("unpickled!",)

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump(Payload(), f)
    w = _window(qtbot, load_starter("moons-mlp"))
    answers.update(open=str(tmp_path / "evil.pt"))
    w.act_import_model.trigger()
    qtbot.waitUntil(lambda: bool(answers["errors"]), timeout=30_000)
    assert "would run code" in answers["errors"][0] or "pickle" in answers["errors"][0]
    assert w.document.path is None
    # a cancelled trust question imports nothing
    answers.update(open=str(tmp_path / "net.py"), options=None)
    (tmp_path / "net.py").write_text("raise SystemExit('must not run')\n")
    w.act_import_model.trigger()
    assert len(answers["errors"]) == 1
    w.close()


def test_import_model_starts_in_the_projects_folder_not_the_working_directory(qtbot, answers, tmp_path,
                                                                               monkeypatch):
    from engine.project import save_project

    folder = tmp_path / "lab_session"
    folder.mkdir()
    save_project(folder / "mine.layerlab", load_starter("moons-mlp"))
    w = _window(qtbot, load_starter("moons-mlp"))
    assert w.open_path(str(folder / "mine.layerlab"), ask=False)
    asked = []
    monkeypatch.setattr(dialogs, "get_open_path", lambda parent, title, filters, directory="": asked.append(directory) or "")
    w.act_import_model.trigger()
    assert asked == [str(folder)]
    w.close()
