"""The readable PyTorch package: a folder (or a .zip) that runs and trains without LayerLab.

    model.py              the network as a standalone nn.Module class (engine/export/codegen.py)
    weights.safetensors   its weights (current, or those of timeline epoch K)
    data.py, data.npz     the data, split and standardised exactly as LayerLab did it
    train.py              plain PyTorch training, standalone or under torchrun (DDP)
    pool_order.py         LayerLab's engine/pool_order.py, which train.py uses (ReLU after max pooling)
    predict.py            predictions for the splits, an .npz or (CSV projects) a CSV file
    README.md             the exact commands
    requirements.txt      torch, numpy, safetensors
    layerlab.json         where it came from (the project document, no weights), for the way back

Nothing in it is pickled.  After writing, the package is checked in this process: model.py with
weights.safetensors must compute what the LayerLab model computes, and data.py must rebuild the
very tensors LayerLab trained on.
"""
from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import json
import os
import pprint
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from engine.atomic import write_folder_atomically
from engine.export.codegen import model_source
from engine.export.preprocessing import divisor_of
from engine.export.common import (ExportFailed, ExportRefused, ExportResult, ExportSource, Verification,
                                  check_close, max_abs_diff, reference_outputs, safe_state_dict, write_atomically)

PACKAGE_FORMAT = "layerlab.package"
PACKAGE_VERSION = 1
MANIFEST = "layerlab.json"
#: raw data above this size is left out of the package (data.py then says where it belongs)
MAX_DATA_BYTES = 1 << 30
#: what the package's train.py writes into its own folder (its default --out runs/, and metrics.csv
#: beside the weights with --out .): results of the earlier weights, which a re-export must not leave
#: for an import to attach to the new ones
TRAIN_OUTPUTS = ("metrics.csv", "runs")
TEMPLATES = Path(__file__).with_name("templates")
_LOSS_FUNCTIONS = {"cross_entropy": "F.cross_entropy", "bce_with_logits": "F.binary_cross_entropy_with_logits",
                   "mse": "F.mse_loss", "l1": "F.l1_loss", "huber": "F.huber_loss"}


def is_earlier_package(folder: str | Path) -> bool:
    """Whether ``folder`` holds a package an earlier export wrote (the one kind of folder a package
    export replaces, besides an empty one)."""
    return (Path(folder) / MANIFEST).exists()


def export_python_package(source: ExportSource, path: str | Path, *, base_dir: str | None = None) -> ExportResult:
    """Write the package to the folder ``path``, or to a zip when ``path`` ends in .zip."""
    path = Path(path)
    t0 = time.perf_counter()
    as_zip = path.suffix.lower() == ".zip"
    if not as_zip and path.exists() and (not path.is_dir() or (any(path.iterdir()) and not is_earlier_package(path))):
        raise ExportRefused(f"{path} exists and is not an empty folder or an earlier LayerLab package.",
                            fix="choose a new folder, or a path ending in .zip")
    files, notes = package_files(source, base_dir)
    with tempfile.TemporaryDirectory(prefix="layerlab-package-") as tmp:
        folder = Path(tmp) / "package"
        folder.mkdir()
        for name, content in files.items():
            (folder / name).write_bytes(content)
        verification = verify_package(folder, source)
        if as_zip:
            write_atomically(path, lambda t: t.write_bytes(_zip_bytes(files, path.stem)))
            written = [path]
        else:  # as one unit: a full disk mid-copy had left a package with half a train.py
            earlier = EarlierPackage.of(path, files)
            try:
                with earlier.train_outputs_removed():
                    write_folder_atomically(path, lambda staging: [shutil.copyfile(folder / name, staging / name)
                                                                   for name in files])
            except OSError as e:  # its file name would be the staging copy's
                raise ExportFailed(f"Cannot write the package to {path}: {(e.strerror or str(e)).lower()}.",
                                   fix="free some space or choose another folder") from None
            written = [path / name for name in files]
            notes = earlier.sentences() + notes
    return ExportResult("python", path, written, time.perf_counter() - t0, verification, notes)


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@dataclass
class EarlierPackage:
    """What a re-export finds in the folder of an earlier package, and does with it: its package files
    are replaced (``edited``: those that differ from what that export wrote), train.py's results are
    removed (``stale``), anything else is kept as it is (``kept``)."""

    folder: Path
    replaced: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, folder: Path, files: dict[str, bytes]) -> "EarlierPackage":
        found = cls(folder)
        if not folder.is_dir():
            return found
        try:
            written = json.loads((folder / MANIFEST).read_text()).get("files") or {}
        except (OSError, ValueError, AttributeError):
            written = {}  # an older package (no hashes) or a damaged manifest: edits cannot be told
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            name = entry.name + ("/" if entry.is_dir() else "")
            if entry.name in files:
                found.replaced.append(entry.name)
                if entry.name in written and entry.is_file() and _sha256(entry.read_bytes()) != written[entry.name]:
                    found.edited.append(entry.name)
            elif entry.name in TRAIN_OUTPUTS:
                found.stale.append(name)
            else:
                found.kept.append(name)
        return found

    @contextlib.contextmanager
    def train_outputs_removed(self):
        """train.py's results moved aside while the package is written, deleted once it is, and put back
        if it could not be (the earlier package then stays whole)."""
        if not self.stale:
            yield
            return
        aside = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}.stale-", dir=self.folder.parent))
        names = [n.rstrip("/") for n in self.stale]
        for n in names:
            os.replace(self.folder / n, aside / n)
        try:
            yield
        except BaseException:
            for n in names:
                os.replace(aside / n, self.folder / n)
            shutil.rmtree(aside, ignore_errors=True)
            raise
        shutil.rmtree(aside, ignore_errors=True)

    def sentences(self) -> list[str]:
        if not self.replaced and not self.stale:
            return []
        out = [f"Replaced the earlier package in {self.folder}: {', '.join(self.replaced)}."]
        if self.edited:
            out.append(f"{_and(self.edited)} had changed since that export (edited, or trained with "
                       "train.py --out .), and {} replaced all the same.".format("was" if len(self.edited) == 1
                                                                                  else "were"))
        if self.stale:
            out.append(f"Removed {_and(self.stale)}: train.py's results for the earlier weights, which an "
                       "import would have attached to these.")
        if self.kept:
            out.append(f"Kept {_and(self.kept)}: not part of a package.")
        return out


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _zip_bytes(files: dict[str, bytes], folder: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            z.writestr(f"{folder}/{name}", content)
    return buf.getvalue()


#: the array of data.npz that says by what its x is divided already
SCALED_BY = "scaled_by"


def package_files(source: ExportSource, base_dir: str | None = None) -> tuple[dict[str, bytes], list[str]]:
    """Every file of the package, by name, and the notes for the user."""
    import numpy as np
    from safetensors.torch import save

    from engine.data import load_raw
    from engine.run import run_config

    project, meta, notes = source.project, source.metadata, []
    model = model_source(project.graph, source.compiled, meta)
    tensors, _tied = safe_state_dict(source.module.state_dict())
    config = run_config(project.training, project.graph, source.dataset.task)
    raw = load_raw(project.data, base_dir)
    arrays = {"x": np.asarray(raw["x"], dtype=np.float32), "y": np.asarray(raw["y"])}
    if raw.get("fixed_test") is not None:
        arrays["x_test"] = np.asarray(raw["fixed_test"][0], dtype=np.float32)
        arrays["y_test"] = np.asarray(raw["fixed_test"][1])
    scale = divisor_of(meta["preprocessing"])
    if scale is not None:  # x is the loader's, already divided: predict.py --npz data.npz must not divide again
        arrays[SCALED_BY] = np.float64(scale)
    files: dict[str, bytes] = {"model.py": model.text.encode(), "weights.safetensors": save(tensors, {"format": "pt"})}
    data_bytes = sum(a.nbytes for a in arrays.values())
    if data_bytes <= MAX_DATA_BYTES:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        files["data.npz"] = buf.getvalue()
    else:
        notes.append(f"The raw data ({data_bytes / 2**30:.1f} GiB) was left out; put it in data.npz "
                     "(arrays x and y, as data.load_raw expects) before training.")
    csv_encoding = None
    if project.data.get("source") == "csv":
        from engine.data.csv_import import csv_encoding as encode

        csv_encoding = encode({**_full_spec(project.data)}, base_dir)
    files["data.py"] = data_py(source, config, csv_encoding).encode()
    import_line = f"from model import {model.class_name} as Model  # noqa: E402"
    files["train.py"] = train_py(config, meta, import_line).encode()
    files["pool_order.py"] = pool_order_py().encode()
    files["predict.py"] = predict_py(import_line, csv_encoding is not None).encode()
    files["README.md"] = readme(source, model.class_name, config, "data.npz" in files, csv_encoding is not None).encode()
    files["requirements.txt"] = requirements().encode()
    manifest = {"format": PACKAGE_FORMAT, "version": PACKAGE_VERSION, "model_class": model.class_name,
                "model_input": model.input_name, "metadata": meta, "project": project.to_dict(),
                # what this export wrote: a re-export into the folder can tell the files edited since
                "files": {name: _sha256(content) for name, content in files.items()}}
    files[MANIFEST] = json.dumps(manifest, indent=1).encode()
    return files, notes


def _full_spec(spec: dict) -> dict:
    from engine.data import default_spec

    return {**default_spec(spec["source"]), **spec}


# ----------------------------------------------------------------------------- the generated files
def _fill(template: str, **parts: str) -> str:
    text = (TEMPLATES / template).read_text()
    for key, value in parts.items():
        marker = f"#@@{key}@@"
        if marker not in text:
            raise KeyError(f"{template} has no {marker}")
        text = text.replace(marker, value)
    return text


def pool_order_py() -> str:
    """The engine's own module, shipped as is: train.py trains CNNs with LayerLab's exact ReLU/max-pool
    swap instead of a second copy of it (the module imports only torch)."""
    import engine.pool_order

    text = inspect.getsource(engine.pool_order)
    return "# Copied from LayerLab (engine/pool_order.py) by its Python package export.\n" + text


def data_py(source: ExportSource, config, csv_encoding: dict | None) -> str:
    from engine.data import dataset as dataset_module
    from engine.spec import py_literal

    ds, meta = source.dataset, source.metadata
    scale = divisor_of(meta["preprocessing"])
    split = {k: ds.spec[k] for k in ("val_fraction", "test_fraction", "split_seed", "stratify")}
    settings = "\n".join([
        f"#: the data spec LayerLab loaded\nSOURCE = {py_literal(dict(source.project.data))}",
        f"TASK = {ds.task!r}",
        f"CLASS_NAMES = {[str(c) for c in ds.class_names]!r}",
        f"FEATURE_NAMES = {[str(f) for f in ds.feature_names]!r}",
        f"INPUT_SHAPE = {tuple(int(s) for s in ds.input_shape)!r}",
        f"#: the train/val/test split: its fractions and seed\nSPLIT = {py_literal(split)}",
        f"#: what LayerLab's loader divided the raw values by before anything else (None: nothing); data.npz\n"
        f"#: holds x already divided by it, new raw inputs go through preprocess()\n"
        f"INPUT_SCALE = {py_literal(scale)}",
        f"#: standardisation statistics LayerLab fitted on the training split (None: not standardised)\n"
        f"NORMALIZATION = {py_literal(meta['normalization'])}",
    ])
    split_source = "\n\n\n".join(inspect.getsource(getattr(dataset_module, f)).rstrip()
                                 for f in ("_allocate", "_held_out_sizes", "split_indices"))
    csv_source = ""
    if csv_encoding is not None:
        keep = {k: csv_encoding[k] for k in ("delimiter", "decimal_comma", "header", "columns", "features",
                                             "targets", "target_numeric")}
        csv_source = _fill("csv_reader.py.tmpl", CSV_ENCODING=f"CSV = {pprint.pformat(keep, sort_dicts=False, width=110)}")
    return _fill("data.py.tmpl", SETTINGS=settings, SPLIT_SOURCE="# LayerLab's split (engine/data/dataset.py), "
                 "copied so the rows land in the same splits\n" + split_source, CSV_SOURCE=csv_source)


def train_py(config, meta: dict, import_line: str) -> str:
    task = meta["task"]
    settings = "\n".join([
        f"TASK = {task!r}",
        f"METRIC = {'accuracy' if task == 'classification' else 'mse'!r}",
        f"EPOCHS = {config.epochs}",
        f"BATCH_SIZE = {config.batch_size}",
        f"LR = {config.lr!r}",
        f"SEED = {config.seed if config.seed is not None else 0}",
        "#: the epoch the exported weights come from: a run resumed from them counts on from it",
        f"WEIGHTS_EPOCH = {meta['epoch'] if isinstance(meta['epoch'], int) else 0}",
        f"GRAD_CLIP = {config.grad_clip!r}",
    ])
    return _fill("train.py.tmpl", MODEL_IMPORT=import_line, SETTINGS=settings, OPTIMIZER=optimizer_code(config),
                 SCHEDULER=scheduler_code(config), TARGETS=targets_code(config.loss, task),
                 LOSS=f"    return {_LOSS_FUNCTIONS[config.loss]}(out, target)",
                 LOSS_SUM=f"    return {_LOSS_FUNCTIONS[config.loss]}(out, target, reduction=\"sum\"), "
                          + ("target.shape[0]" if config.loss == "cross_entropy" else "target.numel()"),
                 SCORE=score_code(task))


def optimizer_code(config) -> str:
    wd = config.weight_decay
    kinds = {
        "sgd": ("SGD", f"lr=lr, momentum={config.momentum!r}, nesterov={config.nesterov!r}, weight_decay={wd!r}", True),
        "adam": ("Adam", f"lr=lr, weight_decay={wd!r}", True),
        "adamw": ("AdamW", f"lr=lr, weight_decay={wd!r}", True),
        "rmsprop": ("RMSprop", f"lr=lr, weight_decay={wd!r}", False),
        "adagrad": ("Adagrad", f"lr=lr, weight_decay={wd!r}", True),
    }
    cls, args, fusable = kinds[config.optimizer]
    if not fusable:
        return f"    return torch.optim.{cls}(params, {args})"
    return (f"    params = list(params)\n"
            f"    try:  # fused: one kernel updates every parameter (as in LayerLab)\n"
            f"        return torch.optim.{cls}(params, {args}, fused=True)\n"
            f"    except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device / dtype\n"
            f"        return torch.optim.{cls}(params, {args})")


def scheduler_code(config) -> str:
    s = config.schedule
    sched = "torch.optim.lr_scheduler"
    if s == "none":
        return "    return None, None"
    if s == "step":
        return f"    return {sched}.StepLR(optimizer, {config.step_size}, {config.gamma!r}), \"epoch\""
    if s == "cosine":
        return f"    return {sched}.CosineAnnealingLR(optimizer, T_max=epochs), \"epoch\""
    if s == "onecycle":
        momentum = config.optimizer in ("adam", "adamw") or (config.optimizer == "sgd" and config.momentum > 0)
        return (f"    return {sched}.OneCycleLR(optimizer, max_lr=optimizer.defaults[\"lr\"], "
                f"total_steps=epochs * steps_per_epoch,\n"
                f"                                          cycle_momentum={momentum!r}), \"step\"")
    return (f"    return {sched}.ReduceLROnPlateau(optimizer, mode=\"min\", factor={config.gamma!r}, "
            f"patience={config.plateau_patience}), \"plateau\"")


def targets_code(loss: str, task: str) -> str:
    if task == "regression":
        return "    y = y.float()\n    return y.reshape(-1, 1) if y.dim() == 1 else y.reshape(len(y), -1)"
    if loss == "cross_entropy":
        return "    return y.long()"
    return "    if n_out == 1:\n        return y.float().reshape(-1, 1)\n    return F.one_hot(y.long(), n_out).float()"


def score_code(task: str) -> str:
    if task == "classification":
        return ('    """Correctly classified samples in the batch."""\n'
                "    pred = (out[:, 0] > 0).long() if out.shape[1] == 1 else out.argmax(dim=1)\n"
                "    return (pred == y).sum()")
    return '    """Summed squared error over the batch."""\n    return (out.float() - target).pow(2).sum()'


def predict_py(import_line: str, has_csv: bool) -> str:
    return _fill("predict.py.tmpl", MODEL_IMPORT=import_line,
                 CSV_USAGE="    python predict.py --csv new.csv    # rows with the training file's columns\n"
                 if has_csv else "",
                 CSV_ARGUMENT='    p.add_argument("--csv", help="a CSV file with the training file\'s columns")'
                 if has_csv else "",
                 CSV_BRANCH="        elif args.csv:\n            raw_x, y = data.read_csv(args.csv)\n"
                            "            x = data.preprocess(raw_x)" if has_csv else "")


def requirements() -> str:
    import numpy
    import safetensors
    import torch

    return (f"# the versions this package was exported and checked with\ntorch>={torch.__version__.split('+')[0]}\n"
            f"numpy>={numpy.__version__}\nsafetensors>={safetensors.__version__}\n")


def readme(source: ExportSource, class_name: str, config, has_data: bool, has_csv: bool) -> str:
    meta = source.metadata
    pre = meta["preprocessing"]
    scale = divisor_of(pre)
    epoch = "its current weights" if source.epoch is None else f"the weights of timeline epoch {source.epoch}"
    shape = ", ".join(map(str, meta["input_shape"]))
    lines = [
        f"# {meta['project']}",
        "",
        f"Exported from LayerLab {meta['layerlab_version']} with {epoch}. It runs with PyTorch alone.",
        "",
        "| file | what it is |",
        "| --- | --- |",
        f"| `model.py` | the network: class `{class_name}`, input `(batch, {shape})`, output {meta['output']} |",
        "| `weights.safetensors` | its weights |",
        "| `data.py` | the data, split and standardised exactly as in LayerLab"
        + (" (raw arrays in `data.npz`)" if has_data else " (put the raw arrays in `data.npz`)") + " |",
        "| `train.py` | training: standalone or under `torchrun` (DDP) |",
        "| `pool_order.py` | a training-step speed-up train.py uses (the same numbers, see its docstring) |",
        "| `predict.py` | predictions |",
        "| `layerlab.json` | where it came from, to open it again in LayerLab |",
        "",
        "## Inputs",
        "",
        f"Raw inputs are {pre['raw_input']}. "
        + (f"The model takes them after these steps, in order (`{pre['formula']}`):" if pre["steps"]
           else "The model takes them as they are."),
        *(["", *(f"- {_step_sentence(step)}" for step in pre["steps"])] if pre["steps"] else []),
        "",
        "`data.preprocess(raw)` applies these steps (`predict.py --npz` and `predict(model, raw)` take raw "
        "inputs); `layerlab.json` lists them with their numbers (`metadata.preprocessing`)."
        + (f" The x in `data.npz` is already divided by {scale:g}, as LayerLab's loader gave it." if scale else ""),
        "",
        "## Commands",
        "",
        "```sh",
        "pip install -r requirements.txt",
        "python predict.py                       # predictions and accuracy on the validation split",
        *(["python predict.py --csv new.csv        # a CSV file with the training file's columns"] if has_csv else []),
        f"python train.py                         # {config.epochs} epochs, batch size {config.batch_size}, "
        f"{config.optimizer} lr {config.lr:g}, seed {config.seed if config.seed is not None else 0}: into runs/",
        "python train.py --epochs 5 --resume     # 5 more epochs from the exported weights (then from runs/'s)",
        "python predict.py --weights runs/weights.safetensors   # predictions with the weights train.py wrote",
        "torchrun --standalone --nproc_per_node 2 train.py   # 2 processes (DDP) on this machine",
        "```",
        "",
        "On a cluster: `torchrun --nnodes N --nproc_per_node GPUS --rdzv_backend c10d --rdzv_endpoint HOST:29500 "
        "train.py` on every node.  `--batch-size` is per process.  Training writes `weights.safetensors` and "
        "`metrics.csv` (LayerLab's columns) to `--out`, from rank 0 only: by default `runs/` in this folder, so "
        "the exported `weights.safetensors` stays as it is; `--out .` replaces it.",
        "",
        "## Back into LayerLab",
        "",
        "```sh",
        "python main.py import path/to/this/folder --out trained.layerlab",
        "```",
        "",
        "This traces `model.py` into an editable graph and brings this folder's `weights.safetensors` (and a "
        "`metrics.csv` beside it) along: the exported weights, or those of `python train.py --out .`. "
        "Importing runs `model.py`: only import packages you trust.",
        "",
    ]
    return "\n".join(lines)


def _step_sentence(step: dict) -> str:
    if step["op"] == "divide":
        return f"divide by {step['by']:g} (LayerLab's loader does this before anything else);"
    numbers = lambda values: ", ".join(f"{v:.6g}" for v in values)  # noqa: E731
    return (f"subtract mean [{numbers(step['mean'])}] and divide by std [{numbers(step['std'])}] along axis "
            f"{step['axis']} (a std below {step['min_std']:g} counts as 1).")


# ----------------------------------------------------------------------------- verification
def load_module(path: Path, name: str):
    """Import one file of a package under a private name (its folder first on sys.path)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def verify_package(folder: Path, source: ExportSource) -> Verification:
    """model.py + weights.safetensors compute the LayerLab model's outputs; data.py rebuilds its data."""
    import torch
    from safetensors.torch import load_file

    manifest = json.loads((folder / MANIFEST).read_text())
    tag = f"_layerlab_check_{abs(hash(str(folder)))}"
    model_module = load_module(folder / "model.py", tag + "_model")
    model = getattr(model_module, manifest["model_class"])()
    model.load_state_dict(load_file(str(folder / "weights.safetensors")))
    with torch.no_grad():
        diff = max_abs_diff(model.eval()(source.samples).numpy(), reference_outputs(source))
    check_close("model.py", diff, tolerance=1e-5)
    if (folder / "data.npz").exists():
        data_module = load_module(folder / "data.py", tag + "_data")
        splits = data_module.load_splits()
        ds = source.dataset
        for name in ("train", "val", "test"):
            x, y = splits[name]
            want_x, want_y = ds.split(name)
            if x.shape != want_x.shape or not torch.equal(x, want_x) or not torch.equal(y, want_y):
                raise ExportFailed(f"data.py does not rebuild LayerLab's {name} split; please report this.")
    return Verification("model.py + weights.safetensors (PyTorch)", len(source.samples), diff)
