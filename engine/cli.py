"""The headless command line: ``layerlab train | labs``.

Bad input (a missing or corrupt file, an unknown column, data it cannot
encode, a graph with errors, a bad flag value) exits with code 2 and ONE line
on stderr, and writes nothing.  A run that fails while training (e.g. the loss
goes NaN) exits with code 1 and one line.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from pathlib import Path

from engine.errors import LayerLabError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class BadInput(LayerLabError):
    """A bad command-line value."""


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus an error over several lines and exits; we want one line and exit 2."""

    def error(self, message):
        raise BadInput(f"{self.prog}: {message}")


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="layerlab", description="LayerLab: build, train and understand neural networks.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    t = sub.add_parser("train", help="train a project headless and save the trained bundle")
    t.add_argument("project", nargs="?", help="a .layerlab bundle or .json project (default: the starter lab)")
    t.add_argument("--data", help="train on this CSV (or .npz) file instead of the project's dataset")
    t.add_argument("--target", help="the CSV column to predict (required with a CSV --data)")
    t.add_argument("--epochs", type=_positive_int)
    t.add_argument("--batch-size", type=_positive_int)
    t.add_argument("--lr", type=_positive_float, help="learning rate")
    t.add_argument("--seed", type=int)
    t.add_argument("--device", choices=("auto", "cpu", "cuda"))
    t.add_argument("--out", help="output folder for model.layerlab and metrics.csv (default: runs/<project>)")
    t.add_argument("--json", action="store_true", help="end stdout with one JSON line of the final metrics")
    labs = sub.add_parser("labs", help="list the bundled labs and starter projects")
    labs.add_argument("--json", action="store_true", help="print the list as JSON")
    return parser


# ----------------------------------------------------------------------------- labs
def cmd_labs(args) -> int:
    from engine.project import DEFAULT_STARTER, list_starters

    starters = list_starters()
    if args.json:
        print(json.dumps(starters))
        return EXIT_OK
    width = max(len(s["name"]) for s in starters)
    print("Starter projects (python main.py train NAME.json, or open them in the app):")
    for s in starters:
        mark = " (default)" if s["name"] == DEFAULT_STARTER else ""
        print(f"  {s['name']:<{width}}  {s['title']}{mark}: {s['description']}")
    return EXIT_OK


# ----------------------------------------------------------------------------- train
def _data_spec_for_file(path: str, target: str | None, base: dict) -> dict:
    p = Path(path)
    if not p.exists():
        raise BadInput(f"{path}: no such file.")
    split = {k: base[k] for k in ("val_fraction", "test_fraction", "split_seed", "standardize") if k in base}
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return {"source": "npz", "path": str(p), **split}
    if suffix in (".csv", ".tsv", ".txt"):
        if not target:
            raise BadInput(f"{path}: say which column to predict with --target COLUMN.")
        return {"source": "csv", "path": str(p), "target": target, **split}
    raise BadInput(f"{path}: --data takes a .csv or .npz file.")


def _resolve_project(name: str | None):
    from engine.project import load_project, load_starter

    if name is None:
        return load_starter()
    p = Path(name)
    if not p.exists() and not p.suffix:
        return load_starter(name)  # a bundled starter named on the command line
    return load_project(p)


class _ProgressPrinter:
    """A one-line progress bar on stderr plus one metrics line per epoch on stdout."""

    def __init__(self, stream_out, stream_err, total_epochs: int):
        self.out, self.err, self.total_epochs = stream_out, stream_err, total_epochs
        self.tty = stream_err.isatty()
        self._last_draw = 0.0

    def __call__(self, event) -> None:
        name = type(event).__name__
        if name == "Progress" and self.tty:
            now = time.perf_counter()
            if now - self._last_draw < 0.1:
                return
            self._last_draw = now
            frac = event.step / max(event.total_steps, 1)
            bar = "#" * int(30 * frac)
            self.err.write(f"\r[{bar:<30}] {100 * frac:5.1f}%  loss {event.train_loss:.4f}  "
                           f"{event.samples_per_s:,.0f} samples/s  ETA {event.eta_s:5.1f}s ")
            self.err.flush()
        elif name == "EpochEnd":
            if self.tty:
                self.err.write("\r" + " " * 90 + "\r")
            m = event.metrics
            parts = [f"epoch {event.epoch}/{self.total_epochs}"]  # EpochEnd.epoch is 1-based
            for key in ("train_loss", "val_loss", "val_accuracy", "val_mse"):
                if key in m and m[key] is not None:
                    parts.append(f"{key} {m[key]:.4f}")
            self.out.write("  ".join(parts) + "\n")
            self.out.flush()


def write_metrics_csv(history: list[dict]) -> bytes:
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(history)
    return buf.getvalue().encode()


def cmd_train(args) -> int:
    from engine.compile import compile_graph
    from engine.data import load_dataset
    from engine.project import atomic_write_bytes, save_project
    from engine.spec import InferContext
    from engine.train import TrainConfig, Trainer, resolve_device
    from engine.validate import GraphInvalid, ShapeInference

    project = _resolve_project(args.project)
    if args.data:
        project.data = _data_spec_for_file(args.data, args.target, project.data)
        project.weights = None  # the old weights belong to another input size
    elif args.target:
        raise BadInput("--target only makes sense with --data FILE.csv.")
    dataset = load_dataset(project.data)
    context = InferContext(tuple(dataset.input_shape), dataset.n_outputs, dataset.task)
    analysis = ShapeInference(project.graph, context).analyze()
    if not analysis.ok:
        raise GraphInvalid(analysis)
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                 "seed": args.seed, "device": args.device}
    config_dict = {**project.training, **{k: v for k, v in overrides.items() if v is not None}}
    output = project.graph.nodes_of_type("Output")[0]
    config_dict.setdefault("loss", _loss_for(output.params["loss"], dataset.task))
    config = TrainConfig.from_dict(config_dict)
    device = resolve_device(config.device)  # raises for cuda without CUDA, before anything is written
    out_dir = Path(args.out or Path("runs") / Path(args.project or "moons-mlp").stem)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInput(f"--out {out_dir}: exists and is not a folder.")

    compiled = compile_graph(project.graph, context, analysis, seed=config.seed)
    if project.weights:
        _load_weights(compiled.module, project.weights)
    trainer = Trainer(compiled.module, dataset, config,
                      callbacks=[_ProgressPrinter(sys.stdout, sys.stderr, config.epochs)])
    result = trainer.run()
    history = trainer.history
    project.training = config.to_dict()
    project.history = history
    project.normalization = dataset.normalization.to_dict() if dataset.normalization else None
    project.weights = {k: v.detach().cpu() for k, v in compiled.module.state_dict().items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    save_project(out_dir / "model.layerlab", project)
    atomic_write_bytes(out_dir / "metrics.csv", write_metrics_csv(history))
    final = dict(history[-1]) if history else {}
    summary = {k: final[k] for k in ("val_accuracy", "val_mse", "val_loss", "train_loss") if final.get(k) is not None}
    summary.update(epochs=len(history), samples_per_s=round(_mean_speed(history), 1), device=str(device),
                   params=analysis.total_params, stopped=getattr(result, "reason", None), out=str(out_dir))
    sys.stderr.write(f"Saved {out_dir / 'model.layerlab'} and {out_dir / 'metrics.csv'}\n")
    if args.json:
        print(json.dumps(summary))
    return EXIT_OK


def _loss_for(output_loss: str, task: str) -> str:
    from engine.layers.io import resolve_loss

    return resolve_loss(output_loss, task)


def _mean_speed(history: list[dict]) -> float:
    speeds = [h["samples_per_s"] for h in history if h.get("samples_per_s")]
    return sum(speeds) / len(speeds) if speeds else 0.0


def _load_weights(module, weights: dict) -> None:
    own = module.state_dict()
    if set(own) != set(weights) or any(own[k].shape != weights[k].shape for k in own):
        raise BadInput("The project's saved weights do not fit its graph; retrain from scratch (they are ignored "
                       "if you pass --data).")
    module.load_state_dict(weights)


# ----------------------------------------------------------------------------- entry
COMMANDS = {"train": cmd_train, "labs": cmd_labs}


def run_cli(argv: list[str]) -> int:
    """Run a CLI command; returns the exit code. Never lets a traceback reach the user for bad input."""
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise BadInput("layerlab: name a command: train or labs (or run without arguments for the app).")
        return COMMANDS[args.command](args)
    except LayerLabError as err:
        from engine.errors import TrainingError

        sys.stdout.flush()
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        sys.stderr.write(f"error: {first_line}\n")
        return EXIT_FAILED if isinstance(err, TrainingError) else EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
