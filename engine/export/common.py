"""What every export format shares: the model to export, its metadata, the result, the checks.

``prepare_export(project, epoch)`` refuses a graph with errors (listing every one), builds the
model with the current weights or those of timeline epoch ``epoch`` (``engine.model_at``), and
picks a few real samples for the verification each format runs after writing its file.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine.atomic import atomic_write
from engine.errors import LayerLabError

#: how many real samples each export is checked on
VERIFY_SAMPLES = 8


class ExportRefused(LayerLabError):
    """The project cannot be exported as it is (graph errors, no weights, a bad path)."""

    kind = "export"

    def __init__(self, message: str, fix: str | None = None, errors: tuple[str, ...] = ()):
        super().__init__(message, fix)
        self.errors = tuple(errors)


class ExportFailed(LayerLabError):
    """The exporter itself failed, or its file does not compute what the model computes."""

    kind = "export"


@dataclass(frozen=True)
class Verification:
    """How the exported file was checked: ``runtime`` ran it on ``samples`` real inputs."""

    runtime: str
    samples: int
    max_abs_diff: float
    unit: str = "real sample"

    def sentence(self) -> str:
        return (f"Verified with {self.runtime} on {self.samples} {self.unit}{'s' if self.samples != 1 else ''}: "
                f"max abs difference {self.max_abs_diff:.2g}.")


@dataclass
class ExportResult:
    format: str
    path: Path  # the file or folder written
    files: list[Path]
    seconds: float
    verification: Verification | None = None
    notes: list[str] = field(default_factory=list)  # what the user should know (legacy, inference only...)
    log: str = ""  # the exporter's own console chatter and warnings, captured
    replaced: str = ""  # the file it wrote over, if any: overwriting is fine (as cp does), silently is not

    def summary(self) -> str:
        done = f" (replaced the existing {self.replaced})" if self.replaced else ""
        lines = [f"Exported {self.format} to {self.path} in {self.seconds:.1f} s{done}."]
        if self.verification is not None:
            lines.append(self.verification.sentence())
        lines += self.notes
        return "\n".join(lines)


@dataclass
class ExportSource:
    """The model an export writes, and what it needs to describe it."""

    project: Any  # engine.project.Project
    module: Any  # eval-mode fx GraphModule on the CPU
    compiled: Any  # engine.compile.CompiledModel
    dataset: Any  # engine.data.Dataset
    epoch: int | None
    samples: Any  # torch.Tensor: up to VERIFY_SAMPLES real (normalised) inputs
    metadata: dict

    @property
    def example(self):
        """A batch of two real inputs: the example the exporters trace (two, so the batch axis
        is not specialised to 1)."""
        return self.samples[:2]

    @property
    def synthetic_example(self):
        """A batch of two inputs of the samples' shape and dtype that hold nobody's data (zeros, valid
        indices for token inputs too): for files that store their example (.pt2's example_inputs),
        where two real rows of a user's CSV had been saved.  The checks still run on real samples."""
        import torch

        return torch.zeros_like(self.samples[:2])


def layerlab_version() -> str:
    try:
        from importlib.metadata import version

        return version("layerlab")
    except Exception:  # not installed: read the checkout's pyproject
        try:
            import tomllib

            pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except Exception:
            return "unknown"


def graph_errors(project, dataset) -> list[str]:
    from engine.run import context_for
    from engine.validate import ShapeInference

    analysis = ShapeInference(project.graph, context_for(dataset)).analyze()
    return [str(issue) for issue in analysis.errors]


def prepare_export(project, epoch: int | None = None, *, base_dir: str | None = None, dataset=None) -> ExportSource:
    """The project's model at ``epoch`` (None: its current weights) on the CPU, checked and ready to export."""
    import torch

    from engine.data import load_dataset
    from engine.model_at import model_at

    if dataset is None:
        dataset = load_dataset(project.data, project.normalization, base_dir=base_dir)
    errors = graph_errors(project, dataset)
    if errors:
        n = len(errors)
        raise ExportRefused(f"The graph has {n} error{'s' if n != 1 else ''}, so it cannot be exported: "
                            + " ".join(errors), fix="fix them in the editor (see the Problems panel)",
                            errors=tuple(errors))
    ready = model_at(project, epoch, dataset=dataset, device="cpu")
    pool = dataset.x_val if dataset.n_val >= 2 else dataset.x_train
    samples = pool[:VERIFY_SAMPLES].to(torch.float32).contiguous()
    if len(samples) < 2:
        samples = torch.cat([samples, samples])  # one-sample data: trace on a batch of two anyway
    return ExportSource(project, ready.module, ready.compiled, dataset, epoch, samples,
                        describe(project, dataset, epoch, base_dir))


def describe(project, dataset, epoch: int | None, base_dir: str | None = None) -> dict:
    """The facts every exported file carries: what goes in, what comes out, where it came from."""
    from engine.export.preprocessing import describe_preprocessing
    from engine.labs.check import trained_epochs

    norm = dataset.normalization.to_dict() if dataset.normalization is not None else None
    return {
        "layerlab_version": layerlab_version(),
        "project": project.name,
        # the epoch the weights come from ("current": weights no run of the project's made, e.g. imported)
        "epoch": int(epoch) if epoch is not None else (trained_epochs(project.history, project.run) or "current"),
        "task": dataset.task,
        "input_shape": [int(s) for s in dataset.input_shape],
        "n_outputs": int(dataset.n_outputs),
        "class_names": [str(c) for c in dataset.class_names],
        "feature_names": [str(f) for f in dataset.feature_names],
        "normalization": norm,
        # the loader's scaling too: the normalisation alone applies to pixels already divided by 16 or 255
        "preprocessing": describe_preprocessing(project.data, norm, dataset.input_shape, base_dir),
        "output": "logits (one per class)" if dataset.task == "classification" else "predicted targets",
        "data": dict(project.data),
        "training": dict(project.training or {}),  # so that a re-imported model trains on as it did
    }


def output_name(source: ExportSource) -> str:
    return "logits" if source.dataset.task == "classification" else "prediction"


def batch_dim():
    """The dynamic batch axis of every traced export."""
    from torch.export import Dim

    return Dim("batch")


def _console_log_handlers() -> list:
    """The logging handlers that write to the terminal (torch's own logger has one of its own)."""
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    return [h for lg in loggers for h in lg.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
            and getattr(h, "stream", None) in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)]


@contextlib.contextmanager
def captured_console():
    """Collect what exporters print (stdout, stderr, log records, warnings) instead of letting it
    reach the terminal.  Yields a list; after the block, its single item is the text."""
    buf = io.StringIO()
    out: list[str] = []
    handlers = [(h, h.stream) for h in _console_log_handlers()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for h, _ in handlers:
                h.setStream(buf)
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                yield out
        finally:
            for h, stream in handlers:
                h.setStream(stream)
            seen = set()
            lines = [buf.getvalue().rstrip()]
            for w in caught:
                text = f"{w.category.__name__}: {w.message}"
                if text not in seen:
                    seen.add(text)
                    lines.append(text)
            out.append("\n".join(x for x in lines if x))


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` into a temp file beside ``path`` (with ``path``'s suffix), then rename it over
    ``path`` with the mode a plain write would give it (``engine.atomic``; mkstemp's own 0600 made
    exports readable by their owner only)."""
    atomic_write(path, write, keep_suffix=True)


def write_torch_archive(path: Path, tmp: Path, save: Callable[[Path], None]) -> None:
    """``save(p)`` into the temp file ``tmp`` with ``p`` named as ``path`` itself.

    torch names a .pt / .pt2 zip's root folder after the file it writes (``.model.pt.of5zwzy5.tmp/``
    for the atomic write's temp name) and offers no way to choose it, so the archive is written
    under the final name in a private folder beside ``path`` and moved onto ``tmp``."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", suffix=".dir", dir=tmp.parent) as folder:
        named = Path(folder) / path.name
        save(named)
        os.replace(named, tmp)


def max_abs_diff(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ExportFailed(f"The exported model returns shape {a.shape} where the LayerLab model returns {b.shape}.")
    return float(np.abs(a - b).max()) if a.size else 0.0


def check_close(fmt: str, diff: float, tolerance: float = 1e-4) -> None:
    if not diff <= tolerance:  # also catches NaN
        raise ExportFailed(f"The exported {fmt} file computes something else than the model "
                           f"(max abs difference {diff:.3g}); please report this.")


def reference_outputs(source: ExportSource):
    import torch

    with torch.no_grad():
        return source.module(source.samples).numpy()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def safe_state_dict(state: dict) -> tuple[dict, dict[str, str]]:
    """Tensors ``safetensors.save_file`` accepts: detached, on the CPU, contiguous, none sharing memory.

    ``save_file`` refuses tensors that share storage (tied weights, or views of one buffer) and
    non-contiguous ones; here such tensors get their own contiguous copy.  Returns the tensors and
    ``tied``: name -> the earlier name it is the very same tensor as (so a loader can tie them again)."""
    import torch

    out: dict = {}
    tied: dict[str, str] = {}
    first_name: dict[tuple, str] = {}
    used_storage: set[int] = set()
    for name, value in state.items():
        t = value.detach().to("cpu")
        if t.numel() == 0:
            out[name] = t.clone()
            continue
        ptr = t.untyped_storage().data_ptr()
        same = (ptr, t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if same in first_name:
            tied[name] = first_name[same]
        else:
            first_name[same] = name
        if ptr in used_storage or not t.is_contiguous():
            t = t.clone(memory_format=torch.contiguous_format)
        used_storage.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out, tied


def metadata_strings(meta: dict) -> dict[str, str]:
    """``meta`` as the str -> str map that ONNX metadata_props and safetensors headers hold: every
    value JSON (text too, quoted), so a reader decodes them all the same way."""
    return {f"layerlab.{k}": json.dumps(v) for k, v in meta.items()}
