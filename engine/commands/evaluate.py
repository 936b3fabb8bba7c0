"""``layerlab evaluate``: a trained project's figures on its test split, with the confusion matrix."""
from __future__ import annotations

import json
import sys

from engine.cli_support import EXIT_OK, BadInput, non_negative_int, project_base_dir, resolve_project

HELP = "evaluate a trained project on its test split (accuracy, per-class figures, confusion matrix)"
SPLITS = ("test", "val", "train")


def add_arguments(p) -> None:
    p.add_argument("project", help="a trained .layerlab bundle (python main.py train writes one)")
    p.add_argument("--split", choices=SPLITS, default="test",
                   help="the split to evaluate (default: test, or validation when there is no test split)")
    p.add_argument("--epoch", type=non_negative_int, help="the weights the timeline kept for this epoch "
                   "(default: the project's current weights)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object instead of tables")
    p.add_argument("--samples", action="store_true",
                   help="with --json: also each sample's prediction, probabilities and confusion cell")


def ready_project(name: str, epoch: int | None):
    """The project ``name`` and its model at ``epoch`` (its dataset loaded)."""
    from engine.model_at import model_at

    project = resolve_project(name)
    return project, model_at(project, epoch, base_dir=project_base_dir(name))


def run(args) -> int:
    from engine.explain import evaluate

    if args.samples and not args.json:
        raise BadInput("--samples only makes sense with --json.")
    project, ready = ready_project(args.project, args.epoch)
    result = evaluate(ready, split=args.split)  # bad input raises NotApplicable: one line, exit 2
    if result.note:
        sys.stderr.write(result.note + "\n")
    if args.json:
        doc = {"project": project.name, **result.to_json(include_samples=args.samples)}
        print(json.dumps(doc))
    else:
        sys.stdout.write(report(project.name, result))
    return EXIT_OK


def report(name: str, r) -> str:
    """The human-readable evaluation: a headline, the per-class table and the confusion matrix."""
    from engine.explain.evaluation import SPLIT_TITLES

    when = "current weights" if r.epoch is None else f"weights after epoch {r.epoch}"
    lines = [f"{name}: {SPLIT_TITLES[r.split_used]} split, {r.n_samples} samples ({when})"]
    if r.task != "classification":
        lines.append(f"MSE {r.mse:.6g}   MAE {r.mae:.6g}   R² {_num(r.r2)}")
        if len(r.per_target) > 1:
            for j, t in enumerate(r.per_target):
                lines.append(f"  target {j}: MSE {t['mse']:.6g}   MAE {t['mae']:.6g}   R² {_num(t['r2'])}")
        return "\n".join(lines) + "\n"
    lines.append(f"accuracy {r.accuracy:.4f}" + (f"   ROC AUC {r.roc['auc']:.4f}" if r.roc and r.roc.get("auc")
                                                  is not None else ""))
    width = max(12, *(len(c) for c in r.class_names))
    lines += ["", f"{'class':<{width}}  precision  recall      f1  support"]
    rows = [(row["name"], row) for row in r.per_class] + [("macro avg", r.macro_avg),
                                                          ("weighted avg", r.weighted_avg)]
    for label, row in rows:
        lines.append(f"{label:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:6.4f}  "
                     f"{row['support']:7d}")
    k = len(r.class_names)
    cell = max(5, len(str(int(r.confusion_matrix.max()))) + 1)
    lines += ["", "confusion matrix (rows: true class, columns: predicted class, by index)",
              f"{'':<{width + 4}}" + "".join(f"{j:>{cell}}" for j in range(k))]
    for i in range(k):
        lines.append(f"{i:>2}  {r.class_names[i]:<{width}}" + "".join(f"{v:>{cell}d}" for v in r.confusion_matrix[i]))
    if r.confidently_wrong:
        worst = r.confidently_wrong[0]
        lines += ["", f"most confidently wrong: sample {worst['index']} is {r.class_names[worst['true']]} but was "
                      f"called {r.class_names[worst['predicted']]} with p = {worst['confidence']:.3f}"]
    return "\n".join(lines) + "\n"


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"
