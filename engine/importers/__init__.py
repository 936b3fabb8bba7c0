"""Bring an existing model into LayerLab as an editable graph with its weights.

    result = import_model("net.py", class_name="Net", input_shape=(1, 28, 28), weights="w.pt")
    save_project("net.layerlab", result.project)

Accepted:
    *.py                 a file defining an nn.Module (traced with torch.fx; RUNS THE FILE: trusted files only),
                         or building one at top level (model = nn.Sequential(...))
    a folder / *.zip     a LayerLab PyTorch package (model.py + weights.safetensors + layerlab.json)
    *.onnx               through LayerLab's own converter for the ops its layers cover
    *.safetensors        a LayerLab safetensors export (the graph is in its header)
    --weights FILE       safetensors, or a .pt / .pth state dict (loaded with weights_only=True)
Refused with a sentence: a .pt / .pth holding a whole pickled model (unpickling runs code).

Every import is checked: the graph, compiled with the imported weights, must compute what the
original computes (``ImportResult.max_abs_diff``).  The graph is laid out left to right.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.importers.fx_import import (ImportedGraph, ImportRefused, NeedsClassName, NeedsInputShape,
                                        WeightsWithoutModel)
from engine.importers.python_source import TRUST_WARNING
from engine.importers.weights import PICKLE_SUFFIXES

#: (per-sample input shape, outputs, task) -> a built-in dataset with those, so an imported model
#: opens with data it fits (the user can change it)
_DATA_FOR_SHAPE = {
    ((2,), 2, "classification"): {"source": "moons"},
    ((4,), 3, "classification"): {"source": "iris"},
    ((13,), 3, "classification"): {"source": "wine"},
    ((30,), 2, "classification"): {"source": "breast_cancer"},
    ((1, 8, 8), 10, "classification"): {"source": "digits"},
    ((1, 28, 28), 10, "classification"): {"source": "fashion_mnist", "val_fraction": 0.1, "test_fraction": 0.2,
                                          "standardize": False},  # as the Fashion starters
    ((10,), 1, "regression"): {"source": "diabetes"},
    ((1,), 1, "regression"): {"source": "sine"},
}


#: the import options each kind of file reads (the others would be ignored without a word)
OPTIONS_READ = {"py": {"class_name", "input_shape", "weights"}, "package": {"weights"}, "onnx": {"input_shape"}}


def file_kind(path: str | Path) -> str:
    """"package" (a folder or .zip), else the suffix: "py", "onnx", "safetensors", ..."""
    path = Path(path)
    return "package" if path.is_dir() or path.suffix.lower() == ".zip" else path.suffix.lower().lstrip(".")


@dataclass
class ImportResult:
    project: object  # engine.project.Project
    kind: str  # "python", "package", "onnx", "safetensors"
    max_abs_diff: float | None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        g = self.project.graph
        layers = sum(1 for n in g.nodes if n.type not in ("Input", "Output"))
        custom = sum(1 for n in g.nodes if n.type == "Custom")
        kind = {"python": "a Python", "package": "a LayerLab package's", "onnx": "an ONNX",
                "safetensors": "a LayerLab safetensors"}.get(self.kind, self.kind)
        lines = [f"Imported {layers} layer{'s' if layers != 1 else ''}" + (f" ({custom} Custom)" if custom else "")
                 + f" from {kind} model."]
        if self.max_abs_diff is not None:
            lines.append(f"Checked: the graph computes the original's outputs (max abs difference {self.max_abs_diff:.2g}).")
        return "\n".join(lines + self.notes)


def import_model(path: str | Path, *, class_name: str | None = None, input_shape: tuple | None = None,
                 weights: str | Path | None = None) -> ImportResult:
    """The project a model file describes; bad input raises ImportRefused (a LayerLabError) with one sentence."""
    path = Path(path)
    if not path.exists():
        raise ImportRefused(f"{path}: no such file or folder.")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == ".zip":
        from engine.importers.package import import_package

        return import_package(path, weights=weights)
    if suffix == ".py":
        return import_python(path, class_name=class_name, input_shape=input_shape, weights=weights)
    if suffix == ".onnx":
        from engine.importers.onnx_import import import_onnx

        return import_onnx(path, input_shape)  # for a file that leaves a sample's sizes open
    if suffix == ".safetensors":
        from engine.importers.package import import_safetensors

        return import_safetensors(path)
    if suffix in PICKLE_SUFFIXES:
        from engine.importers.weights import refuse_pickle_model_file

        refuse_pickle_model_file(path)
    raise ImportRefused(f"{path.name}: LayerLab imports .py, .onnx and .safetensors files and exported packages "
                        f"(a folder or .zip), not '{suffix or 'suffix-less'}' files.")


def import_python(path: Path, *, class_name: str | None = None, input_shape: tuple | None = None,
                  weights: str | Path | None = None, name: str | None = None) -> ImportResult:
    """A .py file's nn.Module (runs the file) -> a project."""
    from engine.importers.fx_import import convert
    from engine.importers.python_source import choose_model, input_shape_of, load_file
    from engine.importers.weights import load_state_dict

    file_module = load_file(path)
    model, model_name = choose_model(path, file_module, class_name)
    notes = []
    built = getattr(file_module, model_name, None) is model  # a top-level `model = nn.Sequential(...)`
    if built:
        notes.append(f"{path.name} defines no nn.Module class: imported the module it builds as `{model_name}`"
                     + (", with the weights it has once the file ran." if weights is None else "."))
    if weights is not None:
        state = load_state_dict(weights)
        try:
            model.load_state_dict(state)
        except Exception as exc:
            why = state_mismatch(model.state_dict(), state) or str(exc).strip().splitlines()[0][:200]
            raise ImportRefused(f"{Path(weights).name} does not fit {model_name}: {why}.") from None
    elif not built:
        notes.append(f"No weights were given: the graph has {model_name}'s freshly initialised weights.")
    shape = input_shape_of(file_module, model, input_shape)
    if shape is None:
        raise NeedsInputShape(f"LayerLab cannot tell the input shape of {model_name}.",
                              "give the shape of one sample with --input-shape, e.g. 1,28,28")
    if built and not list(model.children()):  # `model = nn.Linear(13, 3)`: traced as one layer, not into it
        from collections import OrderedDict

        from torch import nn

        model = nn.Sequential(OrderedDict([(model_name, model)]))
    imported = convert(model, shape, source_file=str(path))
    project = project_from(imported, name or model_name, notes=notes)
    return ImportResult(project, "python", imported.max_abs_diff, notes)


def imported_training(value, notes: list | None = None) -> dict:
    """Training settings a file carries, checked as a project's are; left out (with a note) when
    they are not valid: a model file must not bring a run setting LayerLab would refuse."""
    from engine.project import _training_field

    if value is None:
        return {}
    try:
        return _training_field(value)
    except ValueError as exc:
        if notes is not None:
            notes.append(f"The file's training settings were left out: {exc}.")
        return {}


def state_mismatch(expected: dict, given: dict, shown: int = 3) -> str:
    """What keeps ``given`` weights from loading where ``expected`` ones belong, in a sentence
    (torch's own message put it all on lines after "Error(s) in loading state_dict for Net:")."""
    def some(names: list[str]) -> str:
        more = f" and {len(names) - shown} more" if len(names) > shown else ""
        return ", ".join(names[:shown]) + more

    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    resized = [f"{k} is {'x'.join(map(str, given[k].shape))} in the file but "
               f"{'x'.join(map(str, expected[k].shape))} in the model"
               for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k].shape)]
    parts = ([f"missing {some(missing)}"] if missing else []) + \
        ([f"not in the model: {some(unexpected)}"] if unexpected else []) + resized[:shown]
    return "; ".join(parts)


#: how a person gives an imported model other data, the end of the report's data line
CHOOSE_DATA = "in the Dataset panel (or train --data FILE)"


def data_note(data: dict) -> str:
    """The report's line for data a file records (LayerLab's own exports do)."""
    return f"Data: '{data.get('source')}', as the file records it; choose other data {CHOOSE_DATA}."


def project_from(imported: ImportedGraph, name: str, *, data: dict | None = None, n_outputs: int | None = None,
                 normalization=None, training: dict | None = None, positions: dict | None = None,
                 history: list | None = None, notes: list | None = None):
    """A Project around an imported graph: data it fits (``data``, or a built-in dataset of the same
    shape), 'auto' units on the Linear feeding the Output when the data has that many outputs, and
    positions laid out left to right (or ``positions``: node name -> position)."""
    from engine.layout import layered_layout
    from engine.project import Project

    graph = imported.graph
    n_out = imported.output_shape[0] if len(imported.output_shape) == 1 else None
    if data is not None and notes is not None:  # LayerLab's own exports record the data they were trained on
        notes.append(data_note(data))
    if data is None:
        shape_in = tuple(imported.input_shape)
        data = next((dict(d) for (shape, k, _task), d in _DATA_FOR_SHAPE.items()
                     if shape == shape_in and k == n_out), None)
        choose = f"choose its own data {CHOOSE_DATA}"
        if data is not None:
            n_outputs = n_out
            if notes is not None:  # said: the user had to find out from a later train's task line
                notes.append(f"Data: the built-in '{data['source']}' dataset, whose inputs {shape_in} and "
                             f"{n_out} outputs fit the model; {choose}.")
        else:  # data of the model's input shape at least: its shapes flow, only the outputs differ
            data = next((dict(d) for (shape, _k, _task), d in _DATA_FOR_SHAPE.items() if shape == shape_in), None)
            if notes is not None:
                notes.append(f"No built-in dataset has inputs of shape {shape_in} and {n_out} outputs"
                             + (f": it opens on '{data['source']}', whose inputs fit" if data else
                                ": it opens on 'moons', which does not fit it")
                             + f"; {choose}.")
            data = data or {"source": "moons"}
    output = next(n for n in graph.nodes if n.type == "Output")
    feeding = [graph.node(e.src) for e in graph.in_edges(output.id)]
    if n_outputs is not None and feeding and feeding[0].type == "Linear" and feeding[0].params["units"] == n_outputs:
        graph.set_param(feeding[0].id, "units", "auto")  # as many as the data has classes: what a starter does
    placed = layered_layout(graph)
    for node in graph.nodes:
        graph.move(node.id, (positions or {}).get(node.name) or placed[node.id])
    return Project(graph=graph, data=data, training=imported_training(training, notes), name=name,
                   description=f"Imported into LayerLab from {name}.", normalization=normalization,
                   history=list(history or []), weights=dict(imported.weights))


__all__ = ["OPTIONS_READ", "file_kind", "ImportRefused", "ImportResult", "NeedsClassName", "NeedsInputShape",
           "WeightsWithoutModel", "TRUST_WARNING", "CHOOSE_DATA", "data_note", "import_model", "import_python", "project_from",
           "imported_training", "state_mismatch"]
