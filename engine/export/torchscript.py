"""TorchScript (legacy): ``torch.jit.script`` (or, where scripting fails, ``torch.jit.trace``).

TorchScript is deprecated in torch 2.13 and every call warns; LayerLab offers it, labelled as
legacy, for C++ users of libtorch (``torch::jit::load``).  The deprecation warnings are captured
into the result's log instead of reaching the console.

The metadata every format carries is in the file as the extra file ``layerlab.json``:

    extra = {"layerlab.json": ""}
    model = torch.jit.load(path, _extra_files=extra)
    meta = json.loads(extra["layerlab.json"])      # class_names, preprocessing, input_shape...
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from engine.export.common import (ExportFailed, ExportResult, ExportSource, Verification, captured_console,
                                  check_close, first_line, max_abs_diff, reference_outputs, write_atomically,
                                  write_torch_archive)

LEGACY = ("TorchScript is a legacy format (deprecated: every call warns in torch 2.13); prefer .pt2 or ONNX unless you load "
          "models from C++ with torch::jit::load.")


def export_torchscript(source: ExportSource, path: str | Path) -> ExportResult:
    import torch

    path = Path(path)
    t0 = time.perf_counter()
    notes = [LEGACY]
    with captured_console() as log:
        try:
            try:
                scripted = torch.jit.script(source.module)
            except Exception as exc:  # e.g. a Custom op with *args: trace what it does on real inputs
                print(f"torch.jit.script failed ({first_line(exc)}); traced instead.")
                notes.append("Traced rather than scripted: the file replays the operations of one real batch.")
                scripted = torch.jit.trace(source.module, (source.example,), check_trace=False)
            extra = {"layerlab.json": json.dumps(source.metadata)}  # class names, preprocessing, input shape
            write_atomically(path, lambda tmp: write_torch_archive(
                path, tmp, lambda p: torch.jit.save(scripted, str(p), _extra_files=extra)))
        except Exception as exc:
            raise ExportFailed(f"TorchScript export failed: {first_line(exc)}") from exc
        loaded = torch.jit.load(str(path))
        with torch.no_grad():
            diff = max_abs_diff(loaded(source.samples).numpy(), reference_outputs(source))
    check_close("TorchScript", diff)
    return ExportResult("torchscript", path, [path], time.perf_counter() - t0,
                        Verification("torch.jit.load", len(source.samples), diff), notes, log[0])
