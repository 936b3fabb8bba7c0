"""Evaluation of a trained model on one split: the figures scikit-learn computes, plus the
samples behind them (which samples fell in each confusion cell, which were most confidently wrong).

    result = evaluate(model_at(project), split="test")    # or evaluate(module, dataset)
    result.accuracy, result.confusion_matrix, result.cells[true][predicted]
    result.to_json()                                       # plain lists and numbers

A project without a test split is evaluated on its validation split, and the result says so
(``split_used``, ``note``).  Large arrays stay numpy in the dataclass; ``to_json`` converts them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.explain.base import Job, NotApplicable, as_numpy, class_probabilities, finite_or_none, predict, subject

SPLITS = ("test", "val", "train")
SPLIT_TITLES = {"test": "test", "val": "validation", "train": "training"}


@dataclass
class Evaluation:
    """Metrics and per-sample results of one model on one split (``task`` says which half is filled)."""

    task: str
    split: str  # the split asked for
    split_used: str  # the split evaluated ("val" when "test" was asked for but is empty)
    n_samples: int
    note: str | None = None  # a sentence when split_used differs from split
    epoch: int | None = None
    # classification
    class_names: list[str] = field(default_factory=list)
    accuracy: float | None = None
    per_class: list[dict] = field(default_factory=list)  # name, precision, recall, f1, support
    macro_avg: dict | None = None
    weighted_avg: dict | None = None
    confusion_matrix: np.ndarray | None = None  # counts, rows = true class, columns = predicted
    confusion_normalized: np.ndarray | None = None  # each row divided by its total (0 for empty rows)
    cells: list[list[list[int]]] = field(default_factory=list)  # [true][predicted] -> sample indices
    y_true: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    probabilities: np.ndarray | None = None  # (N, K)
    confidently_wrong: list[dict] = field(default_factory=list)  # index, true, predicted, confidence, p_true
    roc: dict | None = None  # binary: fpr, tpr, thresholds, auc; else None
    roc_auc_ovr: float | None = None  # multi-class one-vs-rest macro AUC, when every class occurs
    reliability: dict | None = None  # top-label reliability diagram and the expected calibration error
    # regression
    mse: float | None = None
    mae: float | None = None
    r2: float | None = None
    per_target: list[dict] = field(default_factory=list)  # mse, mae, r2 per output column
    predicted: np.ndarray | None = None  # (N, T)
    actual: np.ndarray | None = None  # (N, T)
    residuals: np.ndarray | None = None  # actual - predicted

    def samples_in_cell(self, true: int, predicted: int) -> list[int]:
        """The split's sample indices the model put in cell (``true``, ``predicted``)."""
        return list(self.cells[true][predicted])

    def to_json(self, include_samples: bool = True) -> dict:
        """Plain JSON types only.  ``include_samples`` False leaves out the per-sample arrays."""
        out: dict[str, Any] = {"task": self.task, "split": self.split, "split_used": self.split_used,
                               "n_samples": self.n_samples, "note": self.note, "epoch": self.epoch}
        if self.task == "classification":
            out.update(
                class_names=list(self.class_names), accuracy=finite_or_none(self.accuracy),
                per_class=self.per_class, macro_avg=self.macro_avg, weighted_avg=self.weighted_avg,
                confusion_matrix=self.confusion_matrix.tolist(),
                confusion_matrix_normalized=np.round(self.confusion_normalized, 6).tolist(),
                confidently_wrong=self.confidently_wrong, roc=self.roc,
                roc_auc_ovr=finite_or_none(self.roc_auc_ovr), reliability=self.reliability)
            if include_samples:
                out.update(cells=self.cells, y_true=self.y_true.tolist(), y_pred=self.y_pred.tolist(),
                           probabilities=np.round(self.probabilities, 6).tolist())
        else:
            out.update(mse=finite_or_none(self.mse), mae=finite_or_none(self.mae), r2=finite_or_none(self.r2),
                       per_target=self.per_target)
            if include_samples:
                out.update(predicted=self.predicted.tolist(), actual=self.actual.tolist(),
                           residuals=self.residuals.tolist())
        return out


def choose_split(dataset, split: str = "test") -> tuple[str, str | None]:
    """The split to evaluate and, when it is not the one asked for, a sentence saying why."""
    if split not in SPLITS:
        raise NotApplicable(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    if dataset.split(split)[0].shape[0] > 0:
        return split, None
    if split == "test" and dataset.n_val > 0:
        return "val", "This project has no test split, so these are the validation figures."
    raise NotApplicable(f"The {SPLIT_TITLES[split]} split of this dataset is empty; "
                        "set a test or validation share in the data settings.")


def evaluate(model, dataset=None, split: str = "test", *, batch_size: int = 512, max_listed: int = 20,
             reliability_bins: int = 10, cancel=None, progress=None) -> Evaluation:
    """Evaluate ``model`` (a ReadyModel, or a module with ``dataset``) on ``split``.

    Forward passes are batched, in eval mode, without autograd; ``cancel`` / ``progress`` as in
    ``engine.explain.base.Job``."""
    subj = subject(model, dataset)
    ds = subj.dataset
    if ds is None:
        raise NotApplicable("Evaluation needs the model's dataset; none is loaded.")
    used, note = choose_split(ds, split)
    x, y = ds.split(used)
    job = Job(cancel, progress)
    out = predict(subj.module, x, batch_size, job, subj.device)
    result = Evaluation(task=ds.task, split=split, split_used=used, n_samples=int(x.shape[0]), note=note,
                        epoch=getattr(model, "epoch", None))
    if ds.task == "classification":
        _classification(result, out, as_numpy(y).astype(np.int64), list(ds.class_names), max_listed,
                        reliability_bins)
    else:
        _regression(result, as_numpy(out).astype(np.float64), as_numpy(y).astype(np.float64))
    return result


# ----------------------------------------------------------------------------- classification
def _classification(r: Evaluation, out, y: np.ndarray, class_names: list[str], max_listed: int,
                    n_bins: int) -> None:
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix

    k = max(len(class_names), 2)
    probs = as_numpy(class_probabilities(out)).astype(np.float64)
    if probs.shape[1] != k:
        raise NotApplicable(f"The model gives {probs.shape[1]} class scores but the dataset has {k} classes; "
                            "set the last Linear's units to auto and retrain.")
    pred = probs.argmax(1)
    labels = list(range(k))
    names = class_names or [str(i) for i in labels]
    r.class_names, r.y_true, r.y_pred, r.probabilities = names, y, pred, probs
    r.accuracy = float(accuracy_score(y, pred))
    # report keyed by class index: names need not be unique, nor differ from "accuracy"
    report = classification_report(y, pred, labels=labels, target_names=[str(i) for i in labels],
                                   output_dict=True, zero_division=0)
    r.per_class = [{"name": names[i], **_figures(report[str(i)])} for i in labels]
    r.macro_avg = _figures(report["macro avg"])
    r.weighted_avg = _figures(report["weighted avg"])
    cm = confusion_matrix(y, pred, labels=labels)
    r.confusion_matrix = cm
    totals = cm.sum(1, keepdims=True)
    r.confusion_normalized = np.divide(cm, totals, out=np.zeros(cm.shape, dtype=np.float64), where=totals > 0)
    cells: list[list[list[int]]] = [[[] for _ in labels] for _ in labels]
    for i, (t, p) in enumerate(zip(y.tolist(), pred.tolist())):
        cells[t][p].append(i)
    r.cells = cells
    confidence = probs.max(1)
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:max_listed]
    r.confidently_wrong = [{"index": int(i), "true": int(y[i]), "predicted": int(pred[i]),
                            "confidence": float(confidence[i]), "p_true": float(probs[i, y[i]])} for i in wrong]
    r.roc, r.roc_auc_ovr = _roc(y, probs, k)
    r.reliability = _reliability(pred == y, confidence, n_bins)


def _figures(row: dict) -> dict:
    return {"precision": float(row["precision"]), "recall": float(row["recall"]),
            "f1": float(row["f1-score"]), "support": int(row["support"])}


def _roc(y: np.ndarray, probs: np.ndarray, k: int) -> tuple[dict | None, float | None]:
    from sklearn.metrics import roc_auc_score, roc_curve

    present = np.unique(y)
    if k == 2:
        if len(present) < 2:
            return {"fpr": [], "tpr": [], "thresholds": [], "auc": None,
                    "note": "The split holds only one class, so there is no ROC curve."}, None
        fpr, tpr, thr = roc_curve(y, probs[:, 1])
        thr = np.minimum(thr, 1.0)  # sklearn puts +inf first; a probability threshold of 1 reads the same
        return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thr.tolist(),
                "auc": float(roc_auc_score(y, probs[:, 1])), "positive_class": 1}, None
    if len(present) == k:
        return None, float(roc_auc_score(y, probs, multi_class="ovr", labels=list(range(k))))
    return None, None


def _reliability(correct: np.ndarray, confidence: np.ndarray, n_bins: int) -> dict:
    """Top-label reliability: accuracy against confidence in equal-width bins (sklearn's
    ``calibration_curve``), the count in each bin and the expected calibration error."""
    from sklearn.calibration import calibration_curve

    edges = np.linspace(0.0, 1.0, n_bins + 1)
    frac, mean_conf = calibration_curve(correct.astype(np.int64), confidence, n_bins=n_bins, strategy="uniform",
                                        pos_label=1)
    # the same binning as calibration_curve, for the counts it does not return
    ids = np.searchsorted(edges[1:-1], confidence)
    counts = np.bincount(ids, minlength=n_bins)
    nonempty = counts > 0
    ece = float(np.sum(counts[nonempty] / max(len(confidence), 1) * np.abs(frac - mean_conf)))
    return {"bin_edges": edges.tolist(), "bins": np.flatnonzero(nonempty).tolist(),
            "mean_confidence": mean_conf.tolist(), "accuracy": frac.tolist(),
            "count": counts[nonempty].tolist(), "ece": ece}


# ----------------------------------------------------------------------------- regression
def _regression(r: Evaluation, pred: np.ndarray, y: np.ndarray) -> None:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y = y.reshape(len(y), -1)
    pred = pred.reshape(len(pred), -1)
    if pred.shape[1] != y.shape[1]:
        raise NotApplicable(f"The model gives {pred.shape[1]} outputs but the dataset has {y.shape[1]} "
                            "targets; set the last Linear's units to auto and retrain.")
    r.actual, r.predicted, r.residuals = y, pred, y - pred
    r.mse = float(mean_squared_error(y, pred))
    r.mae = float(mean_absolute_error(y, pred))
    r.r2 = float(r2_score(y, pred)) if len(y) > 1 else None
    r.per_target = [{"mse": float(mean_squared_error(y[:, j], pred[:, j])),
                     "mae": float(mean_absolute_error(y[:, j], pred[:, j])),
                     "r2": float(r2_score(y[:, j], pred[:, j])) if len(y) > 1 else None}
                    for j in range(y.shape[1])]
