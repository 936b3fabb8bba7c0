"""ONNX export through torch 2.13's default (dynamo) exporter, checked by onnxruntime.

* a dynamic batch axis (``dynamic_shapes`` with ``torch.export.Dim``);
* ONE self-contained file (``external_data=False``: otherwise a ``.onnx.data`` file is written
  beside it even for tiny models, and the ``.onnx`` alone does not load);
* the exporter's console chatter captured into the result's log;
* class names, input shape, the preprocessing (the loader's scaling, then the normalisation) and the
  LayerLab version in ``metadata_props``;
* the per-node stack traces the exporter records (they hold this machine's file paths) dropped,
  the node's layer name (``pkg.torch.onnx.name_scopes``) kept: importers and Netron show it.

The TorchScript-based exporter (``dynamo=False``) is only a fallback, and then always with
``output_names`` (without them it fails on fx GraphModules: 'Graph' object has no attribute 'outputs').
"""
from __future__ import annotations

import time
from pathlib import Path

from engine.export.common import (ExportFailed, ExportResult, ExportSource, Verification, batch_dim,
                                  captured_console, check_close, first_line, max_abs_diff, metadata_strings,
                                  output_name, reference_outputs, write_atomically)

INPUT_NAME = "input"
#: node metadata worth keeping: the layer each ONNX node came from
KEEP_NODE_METADATA = ("pkg.torch.onnx.name_scopes",)


def export_onnx(source: ExportSource, path: str | Path) -> ExportResult:
    import torch

    path = Path(path)
    t0 = time.perf_counter()
    out_name = output_name(source)
    notes: list[str] = []
    with captured_console() as log:
        def write(tmp: Path) -> None:
            try:
                torch.onnx.export(source.module, (source.example,), str(tmp), dynamo=True, external_data=False,
                                  dynamic_shapes=({0: batch_dim()},), input_names=[INPUT_NAME],
                                  output_names=[out_name])
            except Exception as exc:  # the fallback exporter; output_names are what keep it working on fx
                print(f"The dynamo exporter failed ({first_line(exc)}); using the TorchScript-based exporter.")
                notes.append("Exported with the legacy TorchScript-based ONNX exporter (the default one failed).")
                torch.onnx.export(source.module, (source.example,), str(tmp), dynamo=False,
                                  input_names=[INPUT_NAME], output_names=[out_name],
                                  dynamic_axes={INPUT_NAME: {0: "batch"}, out_name: {0: "batch"}})
            _finish(tmp, source)

        try:
            write_atomically(path, write)
        except ExportFailed:
            raise
        except Exception as exc:
            raise ExportFailed(f"ONNX export failed: {first_line(exc)}") from exc
    verification = verify_onnx(path, source)
    return ExportResult("onnx", path, [path], time.perf_counter() - t0, verification, notes, log[0])


def _finish(path: Path, source: ExportSource) -> None:
    """Metadata in, machine paths out, and the full checker, on the written file."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        kept = [(p.key, p.value) for p in node.metadata_props if p.key in KEEP_NODE_METADATA]
        del node.metadata_props[:]
        for key, value in kept:
            node.metadata_props.add(key=key, value=value)
    del model.metadata_props[:]
    for key, value in metadata_strings(source.metadata).items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "LayerLab"
    model.producer_version = source.metadata["layerlab_version"]
    model.doc_string = (f"{source.project.name}: input {INPUT_NAME} (batch, "
                        f"{', '.join(map(str, source.metadata['input_shape']))}), prepared from "
                        f"{source.metadata['preprocessing']['raw_input']} as layerlab.preprocessing says: "
                        f"{source.metadata['preprocessing']['formula']}; output {output_name(source)}.")
    onnx.save(model, str(path))  # tiny models: one file, no external data
    onnx.checker.check_model(str(path), full_check=True)


def verify_onnx(path: Path, source: ExportSource) -> Verification:
    """Run the file in onnxruntime on the real samples and compare with the LayerLab model."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: source.samples.numpy()})[0]
    diff = max_abs_diff(got, reference_outputs(source))
    check_close("ONNX", diff)
    return Verification("onnxruntime", len(source.samples), diff)
