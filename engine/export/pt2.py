"""``.pt2``: a ``torch.export`` ExportedProgram with a dynamic batch axis.

Inference only: ``torch.export.load(path).module()`` runs forward passes, but it has no
``.train()`` mode (dropout and batch norm stay as exported, in eval mode), so it is no way to
go on training.  For training elsewhere, export the PyTorch package (``--format python``).

The program is exported on a synthetic example (zeros of the input's shape and dtype), since
``torch.export.save`` stores it in the file (``ep.example_inputs``); it is checked on real samples.
The metadata every format carries is the extra file ``layerlab.json``:

    extra = {"layerlab.json": ""}
    program = torch.export.load(path, extra_files=extra)
    meta = json.loads(extra["layerlab.json"])      # class_names, preprocessing, input_shape...
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from engine.export.common import (ExportFailed, ExportResult, ExportSource, Verification, batch_dim,
                                  captured_console, check_close, first_line, max_abs_diff, reference_outputs,
                                  write_atomically, write_torch_archive)

INFERENCE_ONLY = ("The .pt2 file is for inference only: torch.export.load(path).module() runs the model, "
                  "but .train() is not supported on it (use the PyTorch package to train).")


def export_pt2(source: ExportSource, path: str | Path) -> ExportResult:
    import torch

    path = Path(path)
    t0 = time.perf_counter()
    with captured_console() as log:
        try:
            # the file keeps the example as its example_inputs: a synthetic one, not two rows of the data
            program = torch.export.export(source.module, (source.synthetic_example,),
                                          dynamic_shapes=({0: batch_dim()},))
            extra = {"layerlab.json": json.dumps(source.metadata)}
            write_atomically(path, lambda tmp: write_torch_archive(
                path, tmp, lambda p: torch.export.save(program, str(p), extra_files=extra)))
        except Exception as exc:
            raise ExportFailed(f".pt2 export failed: {first_line(exc)}") from exc
    loaded = torch.export.load(str(path)).module()
    with torch.no_grad():
        diff = max_abs_diff(loaded(source.samples).numpy(), reference_outputs(source))
    check_close(".pt2", diff)
    return ExportResult("pt2", path, [path], time.perf_counter() - t0,
                        Verification("torch.export.load", len(source.samples), diff), [INFERENCE_ONLY], log[0])
