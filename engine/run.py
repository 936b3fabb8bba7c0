"""Running a project: prepare a run, execute it, write its outputs.

This is the one place that knows how a *project* (graph + data spec + settings + weights)
becomes a training run.  The CLI (``engine/commands/train.py``) and the GUI's training
process (``engine/runner.py``) are thin shells over it:

    prepared = prepare_run(project, overrides={"epochs": 5})    # data, checks, seeded model, config
    trainer, finished = execute(prepared, callbacks=[...])        # the engine Trainer
    save_run_outputs(out_dir, prepared.project, trainer.history)  # bundle + metrics.csv, one writer each

and the same preparation builds "the model at epoch k" for work outside training
(``engine/model_at.py``).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from engine.errors import LayerLabError
from engine.spec import InferContext


class WeightsMismatch(LayerLabError):
    """Stored weights do not fit the graph they are loaded into."""

    kind = "setup"


@dataclass
class PreparedRun:
    """Everything a run needs, checked: nothing left to fail but the training itself."""

    project: Any  # engine.project.Project
    dataset: Any  # engine.data.Dataset
    context: InferContext
    analysis: Any  # engine.validate.Analysis
    config: Any  # engine.train_config.TrainConfig
    compiled: Any  # engine.compile.CompiledModel (weights loaded from the project, or fresh from the seed)
    from_project_weights: bool = False


def context_for(dataset) -> InferContext:
    """What shape inference needs to know about ``dataset`` (an empty context for no data)."""
    if dataset is None:
        return InferContext()
    return InferContext(tuple(int(s) for s in dataset.input_shape), int(dataset.n_outputs), dataset.task)


def output_loss(graph) -> str:
    """The loss the graph's Output node asks for ("auto" when there is no Output)."""
    outputs = graph.nodes_of_type("Output")
    return outputs[0].params.get("loss", "auto") if outputs else "auto"


def run_config(stored: Mapping | None, graph, task: str | None, overrides: Mapping | None = None):
    """The ``TrainConfig`` of a run: the project's stored settings, overridden by ``overrides``
    (CLI flags, the training panel) where those are not None, with ``loss: auto`` resolved from
    the graph's Output node.  A bad stored setting is refused with its name (TrainingError)."""
    from engine.layers.io import resolve_loss
    from engine.train_config import TrainConfig

    known = {f.name for f in dataclasses.fields(TrainConfig)}
    merged = dict(stored or {})
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None and k in known})
    if merged.get("loss", "auto") == "auto":
        merged["loss"] = resolve_loss(output_loss(graph), task)
    return TrainConfig.from_dict(merged)


def _mend_step_counters(own: Mapping, weights: Mapping) -> Mapping:
    """Projects trained in the app before 2026-12-08 stored each BatchNorm's ``num_batches_tracked``
    (a 0-d tensor) with shape (1,); they load again, as the one number it is."""
    bad = [k for k, v in own.items() if k.endswith("num_batches_tracked") and v.dim() == 0
           and k in weights and tuple(weights[k].shape) == (1,)]
    if not bad:
        return weights
    return {**weights, **{k: weights[k].reshape(()) for k in bad}}


def load_weights(module, weights: Mapping) -> None:
    """Load a state dict that must fit ``module`` exactly (names, shapes); WeightsMismatch otherwise."""
    own = module.state_dict()
    weights = _mend_step_counters(own, weights)
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    wrong = sorted(k for k in own if k in weights and tuple(own[k].shape) != tuple(weights[k].shape))
    cast = sorted(k for k in own if k in weights and k not in wrong and weights[k].dtype != own[k].dtype)
    if cast:  # an int64 / bool / float16 copy would be trained as float32 without a word
        k = cast[0]
        raise WeightsMismatch(f"The stored weight '{k}' is {str(weights[k].dtype).replace('torch.', '')}, but the "
                              f"graph needs {str(own[k].dtype).replace('torch.', '')}.",
                              fix="store the weights in the graph's type, or retrain from scratch")
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{'…' if len(missing) > 3 else ''}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:3])}{'…' if len(extra) > 3 else ''}")
        if wrong:
            k = wrong[0]
            parts.append(f"'{k}' is {tuple(weights[k].shape)} but the graph needs {tuple(own[k].shape)}")
        raise WeightsMismatch("The stored weights do not fit the graph (" + "; ".join(parts) + ").",
                              fix="reset the weights or retrain from scratch")
    module.load_state_dict(dict(weights))


def build_run_model(graph, context: InferContext, weights: Mapping | None = None, *, seed: int | None = 0,
                    analysis=None):
    """The model a run starts from: ``weights`` when given (they must fit), else fresh weights
    that depend on ``seed`` alone (None: unseeded).  The one place both the CLI and the GUI's
    training process build it."""
    from engine.compile import compile_graph

    compiled = compile_graph(graph, context, analysis, seed=None if weights else seed)
    if weights:
        load_weights(compiled.module, weights)
    return compiled


def prepare_run(project, dataset=None, overrides: Mapping | None = None, *, base_dir: str | None = None,
                use_project_weights: bool = True) -> PreparedRun:
    """Load the data (unless given), check the graph against it, merge the settings and build the
    model: from the project's weights when it has some that fit (and ``use_project_weights``),
    else fresh weights that depend on the seed alone.  Bad input raises a LayerLabError."""
    from engine.compile import check_training_memory
    from engine.validate import GraphInvalid, ShapeInference

    if dataset is None:
        from engine.data import load_dataset

        dataset = load_dataset(project.data, project.normalization, base_dir=base_dir)
    context = context_for(dataset)
    analysis = ShapeInference(project.graph, context).analyze()
    if not analysis.ok:
        raise GraphInvalid(analysis)
    config = run_config(project.training, project.graph, dataset.task, overrides)
    check_training_memory(project.graph, analysis, config.batch_size)
    check_device(config)
    weights = project.weights if use_project_weights else None
    compiled = build_run_model(project.graph, context, weights, seed=config.seed, analysis=analysis)
    return PreparedRun(project, dataset, context, analysis, config, compiled, from_project_weights=bool(weights))


def check_device(config) -> None:
    """The settings' device and mixed precision exist on this machine (before anything is built)."""
    from engine.errors import TrainingError
    from engine.train import resolve_device

    device = resolve_device(config.device)  # "cuda" without CUDA is a sentence
    if config.amp == "fp16" and device.type != "cuda":
        raise TrainingError("Training setting 'amp' is 'fp16', which needs a CUDA GPU; set it to 'auto', 'off' "
                            "or 'bf16'.")


def execute(prepared: PreparedRun, callbacks: Iterable = (), on_snapshot_due=None):
    """Train the prepared model; returns ``(trainer, RunFinished)``.  Failures raise TrainingError."""
    from engine.train import Trainer

    trainer = Trainer(prepared.compiled.module, prepared.dataset, prepared.config, callbacks=callbacks,
                      on_snapshot_due=on_snapshot_due)
    return trainer, trainer.run()


# ----------------------------------------------------------------------------- outputs
def metrics_columns(rows: list[dict]) -> list[str]:
    """Every key any row has, in first-seen order, ``epoch`` first."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    if "epoch" in keys:
        keys.remove("epoch")
        keys.insert(0, "epoch")
    return keys


def metrics_csv_bytes(rows: list[dict]) -> bytes:
    """One row per epoch, one column per metric (empty where a row has no value)."""
    keys = metrics_columns(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
    return buf.getvalue().encode("utf-8")


def write_metrics_csv(path: str | os.PathLike, rows: list[dict]) -> Path:
    from engine.project import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, metrics_csv_bytes(rows))
    return path


def write_run_tensorboard(logdir: str | os.PathLike, rows: list[dict], loss_xy: tuple | None = None,
                          steps_per_epoch: int = 1) -> Path:
    """Epoch metrics under ``epoch/<name>`` (step = epoch) and, when given, the live training loss
    under ``train/loss`` (step = optimiser step)."""
    from engine.tensorboard import EventFileWriter

    with EventFileWriter(logdir) as w:
        for r in rows:
            epoch = int(r.get("epoch", 0))
            for k, v in r.items():
                if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    w.add_scalar(f"epoch/{k}", float(v), epoch)
        if loss_xy is not None:
            xs, ys = loss_xy
            for x, y in zip(xs, ys):
                w.add_scalar("train/loss", float(y), int(round(float(x) * steps_per_epoch)))
        return w.path


BUNDLE_NAME = "model.layerlab"
METRICS_NAME = "metrics.csv"


def save_run_outputs(out_dir: str | os.PathLike, project, rows: list[dict]) -> tuple[Path, Path]:
    """The trained bundle and its metrics CSV, side by side in ``out_dir``, written as one unit:
    a reader (or a crash) never finds the model of one save beside the metrics of another."""
    from engine.atomic import write_folder_atomically
    from engine.project import project_bytes

    # data paths are written relative to the folder the bundle lands in
    data, metrics = project_bytes(project, base_dir=str(Path(out_dir).resolve())), metrics_csv_bytes(rows)

    def write(folder: Path) -> None:
        (folder / BUNDLE_NAME).write_bytes(data)
        (folder / METRICS_NAME).write_bytes(metrics)

    out = write_folder_atomically(out_dir, write)
    return out / BUNDLE_NAME, out / METRICS_NAME


class OutputNotWritable(LayerLabError):
    """The run's output folder cannot take its results (read-only, not a folder, or too full)."""

    kind = "bad_input"


def check_output_folder(out_dir: str | os.PathLike, expected_bytes: int) -> None:
    """Before training: the output folder can be created and written, and has room for about
    ``expected_bytes`` (twice: the new files are written before the old ones go)."""
    import tempfile

    from engine.atomic import existing_folder_of, room_shortfall

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputNotWritable(f"--out {out}: exists and is not a folder.")
    probe_in = existing_folder_of(out)
    if not probe_in.is_dir() or not os.access(probe_in, os.W_OK | os.X_OK):
        raise OutputNotWritable(f"--out {out}: cannot write in {probe_in} (read-only or no permission).",
                                fix="choose another output folder with --out")
    try:
        fd, name = tempfile.mkstemp(prefix=".layerlab-probe-", dir=probe_in)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise OutputNotWritable(f"--out {out}: cannot write in {probe_in} ({e.strerror}).",
                                fix="choose another output folder with --out") from None
    short = room_shortfall(probe_in, 2 * int(expected_bytes) + (1 << 20), "saving this run")
    if short:
        raise OutputNotWritable(f"--out {out}: {short}.", fix="free some space or choose another folder")


def expected_bundle_bytes(module, epochs: int, kept_checkpoints: int = 64) -> int:
    """About how large a trained bundle of ``module`` will be: its weights and the timeline's copies."""
    state = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    return state * (1 + min(epochs + 1, kept_checkpoints)) + (64 << 10)
