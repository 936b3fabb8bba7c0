"""Export a project's model: ONNX, .pt2, safetensors, TorchScript (legacy) or a readable PyTorch package.

    result = export_project(project, "onnx", "model.onnx")            # the current weights
    result = export_project(project, "python", "pkg.zip", epoch=3)    # timeline epoch 3
    result.verification.max_abs_diff                                   # every export is checked

Every format takes the model through ``engine.model_at`` (the current weights or those of a
timeline epoch), refuses a graph with errors (listing them), writes its file atomically and then
checks what it wrote against the LayerLab model on real samples.  One module per format; the
importers (the way back) live in ``engine.importers``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.export.common import (ExportFailed, ExportRefused, ExportResult, ExportSource, Verification,
                                  prepare_export)


@dataclass(frozen=True)
class Format:
    name: str
    title: str
    suffix: str  # the default file suffix ("" for a folder)
    description: str
    legacy: bool = False


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("onnx", "ONNX", ".onnx", "One self-contained .onnx file with a dynamic batch axis, for onnxruntime, "
                                    "Netron and most deployment tools; checked with onnxruntime."),
    Format("pt2", "PyTorch .pt2 (torch.export)", ".pt2",
           "An ExportedProgram with a dynamic batch axis; loads with torch.export.load. Inference only."),
    Format("safetensors", "safetensors weights + graph", ".safetensors",
           "The weights, with the graph as JSON in the file's header; reopens in LayerLab."),
    Format("torchscript", "TorchScript (legacy)", ".pt",
           "For C++ (torch::jit::load). Deprecated in PyTorch: prefer .pt2 or ONNX.", legacy=True),
    Format("python", "PyTorch package (model.py, train.py...)", "",
           "Readable model.py, weights, data.py, a train.py that runs under torchrun, predict.py and a README; "
           "a folder, or a .zip."),
)}


def _writer(name: str) -> Callable:
    if name == "onnx":
        from engine.export.onnx import export_onnx
        return export_onnx
    if name == "pt2":
        from engine.export.pt2 import export_pt2
        return export_pt2
    if name == "safetensors":
        from engine.export.safetensors_export import export_safetensors
        return export_safetensors
    if name == "torchscript":
        from engine.export.torchscript import export_torchscript
        return export_torchscript
    from engine.export.python_package import export_python_package
    return export_python_package


def export_project(project, fmt: str, out: str | Path, *, epoch: int | None = None, base_dir: str | None = None,
                   dataset=None) -> ExportResult:
    """Write ``project``'s model as ``fmt`` to ``out``; raises ExportRefused / ExportFailed (LayerLabErrors)."""
    if fmt not in FORMATS:
        raise ExportRefused(f"Unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}.")
    source = prepare_export(project, epoch, base_dir=base_dir, dataset=dataset)
    return write_format(source, fmt, out, base_dir=base_dir)


def write_format(source: ExportSource, fmt: str, out: str | Path, *, base_dir: str | None = None) -> ExportResult:
    """One format from a prepared source (the benchmark writes several from one)."""
    writer = _writer(fmt)
    existed = Path(out).is_file()  # a package folder says itself what it replaced
    result = writer(source, out, base_dir=base_dir) if fmt == "python" else writer(source, out)
    if existed:
        result.replaced = Path(out).name
    return result


def default_path(project_name: str, fmt: str, folder: str | Path = ".") -> Path:
    from engine.export.codegen import class_name_for
    from engine.project import file_stem

    stem = class_name_for(project_name) if fmt == "python" else file_stem(project_name or "model", "model", sep="_")
    return Path(folder) / (stem.lower() + ("_package" if fmt == "python" else "") + FORMATS[fmt].suffix)


__all__ = ["FORMATS", "Format", "ExportFailed", "ExportRefused", "ExportResult", "ExportSource", "Verification",
           "default_path", "export_project", "prepare_export", "write_format"]
