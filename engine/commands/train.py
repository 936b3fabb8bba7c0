"""``layerlab train``: train a project headless and save the trained bundle and its metrics."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.cli_support import (EXIT_INTERRUPTED, EXIT_OK, BadInput, ProgressPrinter, bad_input_about, int_in,
                                positive_float, positive_int, project_base_dir, resolve_project)
from engine.limits import MAX_BATCH_SIZE, MAX_SEED, regular_file

HELP = "train a project headless and save the trained bundle"


def add_arguments(t) -> None:
    t.add_argument("project", nargs="?", help="a .layerlab bundle or .json project (default: the starter lab)")
    t.add_argument("--data", help="train on this CSV (or .npz) file instead of the project's dataset")
    t.add_argument("--target", help="the CSV column to predict (required with a CSV --data)")
    t.add_argument("--epochs", type=positive_int, help="epochs to train (default: the project's)")
    t.add_argument("--batch-size", type=int_in(1, MAX_BATCH_SIZE), help="samples per step (default: the project's)")
    t.add_argument("--lr", type=positive_float, help="learning rate (default: the project's)")
    t.add_argument("--seed", type=int_in(0, MAX_SEED), help="seed of the initial weights and the shuffle "
                                                            "(default: the project's)")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), help="auto: CUDA when there is one, else the CPU")
    t.add_argument("--out", help="output folder for model.layerlab and metrics.csv (default: runs/<project>)")
    t.add_argument("--json", action="store_true", help="end stdout with one JSON line of the final metrics")


def data_spec_for_file(path: str, target: str | None, base: dict) -> dict:
    """The data spec for ``--data FILE``, keeping the project's split settings."""
    p = Path(path)
    regular_file(p, BadInput, "data file")  # a device or a FIFO is refused before anything opens it
    split = {k: base[k] for k in ("val_fraction", "test_fraction", "split_seed", "standardize") if k in base}
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return {"source": "npz", "path": str(p.resolve()), **split}
    if suffix in (".csv", ".tsv", ".txt"):
        if not target:
            raise BadInput(f"{path}: say which column to predict with --target COLUMN.")
        return {"source": "csv", "path": str(p.resolve()), "target": target, **split}
    raise BadInput(f"{path}: --data takes a .csv or .npz file.")


def refuse_broken_locks(project, overrides: dict, data_changed: bool) -> None:
    """A lab project's locked settings and data hold on the command line as in the app (--seed 5
    had trained without a word, and only a later ``lab check`` said the lab fixes it)."""
    import copy

    from engine.errors import LayerLabError
    from engine.labs.format import load_bundled_lab
    from engine.labs.locks import lock_problems
    from engine.labs.progress import lab_id_of

    lab_id = lab_id_of(project)
    if lab_id is None:
        return
    try:
        lab = load_bundled_lab(lab_id)
    except LayerLabError:  # an instructor's own lab: its file is not at hand here
        return
    changed = copy.copy(project)
    changed.training = {**(project.training or {}), **{k: v for k, v in overrides.items() if v is not None}}
    before = set(lock_problems(lab, project))
    new = [p for p in lock_problems(lab, changed) if p not in before]
    if data_changed and lab.locks.data:
        new.insert(0, "the data was changed (--data); the lab fixes it")
    if new:
        raise BadInput(f"{new[0]}: this project belongs to the lab '{lab.id}', and a run that breaks its locks "
                       "does not count; leave the flag out (or train a copy made outside the lab).")


def run(args) -> int:
    from engine.policies import EpochCheckpoints, KeepTimeline, StopOnSignals
    from engine.run import (BUNDLE_NAME, check_output_folder, execute, expected_bundle_bytes, prepare_run,
                            save_run_outputs)
    from engine.labs.check import trained_epochs
    from engine.train import resolve_device

    with bad_input_about(args.project):  # everything up to the first step is input: exit 2, naming the file
        project = resolve_project(args.project)
        base_dir = project_base_dir(args.project)
        if args.data:
            project.data = data_spec_for_file(args.data, args.target, project.data)
            project.weights = None  # the old weights belong to another input size
            project.checkpoints = {}
            project.normalization = None
        elif args.target:
            raise BadInput("--target only makes sense with --data FILE.csv.")
        overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                     "seed": args.seed, "device": args.device}
        refuse_broken_locks(project, overrides, data_changed=bool(args.data))
        prepared = prepare_run(project, overrides=overrides, base_dir=base_dir)
        device = resolve_device(prepared.config.device)
    out_dir = Path(args.out or Path("runs") / Path(args.project or "moons-mlp").stem)
    check_output_folder(out_dir, expected_bundle_bytes(prepared.compiled.module, prepared.config.epochs))
    # the task rule the user sees (and overrides with the data's "task"), and notices when it was close
    for line in (f"task: {prepared.dataset.task_rule}", *(f"note: {n}" for n in prepared.dataset.notices)):
        sys.stderr.write(line + "\n")
    # a run from the weights the project's last run left goes on from that run, as in the app: its
    # epochs, metrics and timeline continue (they had started again at 1, and the timeline lost
    # every epoch before).  Other data (--data) describes another model: that run starts afresh.
    offset = trained_epochs(project.history, project.run) if prepared.from_project_weights and not args.data else None
    if offset:
        sys.stderr.write(f"note: continues the project's run from epoch {offset} "
                         f"(epochs {offset + 1} to {offset + prepared.config.epochs})\n")
    if (out_dir / BUNDLE_NAME).exists():  # said before the work, while Ctrl+C still keeps it
        sys.stderr.write(f"note: {out_dir} holds an earlier run; this one replaces it when saved "
                         "(give --out another folder to keep both)\n")

    timeline, signals = KeepTimeline(), StopOnSignals()
    callbacks = [ProgressPrinter(sys.stdout, sys.stderr, prepared.config.epochs, offset or 0), timeline, signals]
    if prepared.config.checkpoint_every_epoch:  # resumable checkpoints, in the run's own folder only
        callbacks.append(EpochCheckpoints(out_dir / "checkpoints"))
    try:
        trainer, result = execute(prepared, callbacks=callbacks)
    finally:
        signals.restore()
    history, checkpoints = trainer.history, timeline.checkpoints
    if offset:
        history = [dict(r) for r in project.history if r.get("epoch", 0) <= offset] + \
            [{**r, "epoch": r["epoch"] + offset} for r in history]
        checkpoints = {**{e: w for e, w in (project.checkpoints or {}).items() if e <= offset},
                       **{e + offset: w for e, w in checkpoints.items() if e > 0}}  # its epoch 0 is epoch offset
    dataset = prepared.dataset
    project.training = prepared.config.to_dict()
    project.history = history
    project.normalization = dataset.normalization.to_dict() if dataset.normalization else None
    project.weights = {k: v.detach().cpu() for k, v in prepared.compiled.module.state_dict().items()}
    project.checkpoints = checkpoints
    project.series = {}
    project.run = {"outcome": result.reason, "steps_per_epoch": trainer.steps_per_epoch,
                   "weights_epoch": (offset or 0) + len(trainer.history)}
    bundle, metrics = save_run_outputs(out_dir, project, history)
    final = dict(history[-1]) if history else {}
    summary = {k: final[k] for k in ("val_accuracy", "val_mse", "val_loss", "train_loss") if final.get(k) is not None}
    summary.update(task=dataset.task, task_rule=dataset.task_rule, epochs=len(trainer.history),
                   samples_per_s=round(_mean_speed(trainer.history), 1), device=str(device),
                   params=prepared.analysis.total_params, stopped=result.reason, out=str(out_dir))
    if result.reason == "interrupted":
        done = len(trainer.history)
        sys.stderr.write(f"Interrupted after {done} epoch{'s' if done != 1 else ''}; "
                         f"saved what was done in {bundle} and {metrics}\n")
        if args.json:
            print(json.dumps(summary))
        return EXIT_INTERRUPTED
    sys.stderr.write(f"Saved {bundle} and {metrics}\n")
    if args.json:
        print(json.dumps(summary))
    return EXIT_OK


def _mean_speed(history: list[dict]) -> float:
    speeds = [h["samples_per_s"] for h in history if h.get("samples_per_s")]
    return sum(speeds) / len(speeds) if speeds else 0.0
