"""Weights as ``.safetensors``, with the graph as JSON in the file's header.

The header's metadata holds ``layerlab.graph`` (the graph document, declarative: nothing in it
runs) and the facts of ``describe`` (input shape, class names, normalisation...), so the one file
reopens in LayerLab (``main.py import``) and its weights load anywhere safetensors does.  Tied or
non-contiguous tensors, which ``save_file`` refuses, are saved as their own contiguous copies;
``layerlab.tied`` names the tensors that were one (``{"b": "a"}``: tie b to a after loading).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from engine.export.common import (ExportFailed, ExportResult, ExportSource, Verification, first_line,
                                  metadata_strings, safe_state_dict, write_atomically)


def export_safetensors(source: ExportSource, path: str | Path) -> ExportResult:
    from safetensors.torch import load_file, save_file

    path = Path(path)
    t0 = time.perf_counter()
    tensors, tied = safe_state_dict(source.module.state_dict())
    header = {"format": "pt", "layerlab.graph": json.dumps(source.project.graph.to_dict()),
              "layerlab.tied": json.dumps(tied), **metadata_strings(source.metadata)}
    try:
        write_atomically(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))
    except Exception as exc:
        raise ExportFailed(f"safetensors export failed: {first_line(exc)}") from exc
    back = load_file(str(path))
    diff = max((float((back[k].double() - v.double()).abs().max()) if v.numel() else 0.0
                for k, v in tensors.items()), default=0.0)
    if set(back) != set(tensors) or diff != 0.0:
        raise ExportFailed("The safetensors file does not read back the weights that were written.")
    return ExportResult("safetensors", path, [path], time.perf_counter() - t0,
                        Verification("safetensors.load_file (weights read back)", len(tensors), diff, unit="tensor"))
