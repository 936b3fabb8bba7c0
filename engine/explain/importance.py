"""Global feature importance for tabular models, named from the data's header.

- ``permutation_importance``: how much the test score drops when one column is shuffled
  (scikit-learn's ``permutation_importance`` over the model, with repeats and their spread);
- ``mean_abs_shap``: the mean |KernelSHAP value| of each feature over a sample of rows.

Both return a ``FeatureImportance`` whose ``features()`` are sorted, most important first.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from engine.explain.base import Job, NotApplicable, as_numpy, class_probabilities, predict, subject
from engine.explain.evaluation import SPLIT_TITLES, choose_split


@dataclass
class FeatureImportance:
    kind: str  # "permutation" | "mean_abs_shap"
    names: list[str]
    importance: np.ndarray  # (F,)
    std: np.ndarray  # (F,): over repeats (permutation) or over rows (SHAP)
    split_used: str
    scoring: str  # what the importance is measured in
    baseline_score: float | None = None  # permutation: the unshuffled score
    raw: np.ndarray | None = None  # permutation: (F, repeats); SHAP: (rows, F)
    note: str | None = None
    details: dict = field(default_factory=dict)

    def features(self) -> list[dict]:
        """``{"name", "importance", "std"}`` per feature, most important first (ties: input order)."""
        order = np.argsort(-self.importance, kind="stable")
        return [{"name": self.names[i], "importance": float(self.importance[i]), "std": float(self.std[i])}
                for i in order]

    def to_json(self) -> dict:
        return {"kind": self.kind, "split_used": self.split_used, "scoring": self.scoring,
                "baseline_score": self.baseline_score, "note": self.note, "features": self.features(),
                **self.details}


def _tabular(subj, what: str):
    ds = subj.dataset
    if ds is None:
        raise NotApplicable(f"{what} needs the model's dataset; none is loaded.")
    if not subj.is_tabular:
        raise NotApplicable(f"{what} is for tabular data (one value per named feature); this model takes "
                            f"inputs of shape {tuple(ds.input_shape)}. For images use an attribution map "
                            "(Occlusion, Grad-CAM, KernelSHAP on patches).")
    return ds


class _ModelEstimator:
    """The least scikit-learn needs to treat a torch model as a fitted estimator."""

    def __init__(self, module, task: str, device):
        self.module, self.task, self.device = module, task, device

    def fit(self, X, y=None):  # already trained; sklearn's permutation_importance only checks it exists
        return self

    def predict(self, X):
        out = predict(self.module, torch.as_tensor(np.asarray(X), dtype=torch.float32), device=self.device)
        if self.task == "classification":
            return as_numpy(class_probabilities(out).argmax(1))
        return as_numpy(out)


def permutation_importance(model, dataset=None, split: str = "test", *, n_repeats: int = 10, seed: int = 0,
                           cancel=None, progress=None) -> FeatureImportance:
    """Drop of the score (accuracy, or R² for regression) when each feature is shuffled, on
    ``split`` (the validation split when there is no test split), averaged over ``n_repeats``."""
    from sklearn.inspection import permutation_importance as sk_permutation_importance
    from sklearn.metrics import accuracy_score, r2_score

    subj = subject(model, dataset)
    ds = _tabular(subj, "Permutation importance")
    if not 1 <= n_repeats <= 1000:
        raise NotApplicable(f"n_repeats must lie in 1..1000, got {n_repeats}.")
    used, note = choose_split(ds, split)
    x, y = ds.split(used)
    if x.shape[0] < 2:
        raise NotApplicable(f"Permutation importance needs at least 2 rows; the {SPLIT_TITLES[used]} split has "
                            f"{x.shape[0]}.")
    X, Y = as_numpy(x).astype(np.float32), as_numpy(y)
    job = Job(cancel, progress)
    total_calls = 1 + X.shape[1] * n_repeats
    calls = [0]
    classification = ds.task == "classification"

    def scorer(estimator, X_, y_):
        job.step(calls[0], total_calls)
        calls[0] += 1
        pred = estimator.predict(X_)
        return accuracy_score(y_, pred) if classification else r2_score(y_, pred)

    est = _ModelEstimator(subj.module, ds.task, subj.device)
    pred = est.predict(X)
    baseline = accuracy_score(Y, pred) if classification else r2_score(Y, pred)
    res = sk_permutation_importance(est, X, Y, scoring=scorer, n_repeats=n_repeats, random_state=seed)
    job.report(1.0)
    return FeatureImportance("permutation", subj.feature_names, res.importances_mean, res.importances_std, used,
                             "accuracy" if classification else "r2", float(baseline), res.importances, note,
                             {"n_repeats": n_repeats})


def mean_abs_shap(model, dataset=None, split: str = "test", *, n_rows: int = 50, n_samples: int = 200,
                  target: int | None = None, baseline: str = "mean", seed: int = 0, cancel=None,
                  progress=None) -> FeatureImportance:
    """Mean |KernelSHAP value| per feature over up to ``n_rows`` rows of ``split``: for each row
    its predicted class (classification, unless ``target``) or the first output (regression)."""
    from engine.explain.attribution import attribute

    subj = subject(model, dataset)
    ds = _tabular(subj, "Mean |SHAP|")
    used, note = choose_split(ds, split)
    x, _ = ds.split(used)
    if not 1 <= n_rows:
        raise NotApplicable(f"n_rows must be at least 1, got {n_rows}.")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.permutation(x.shape[0])[:n_rows])
    a = attribute(subj, x[rows], target, "kernel_shap", n_samples=n_samples, baseline=baseline, seed=seed,
                  output="probability", cancel=cancel, progress=progress)
    values = np.abs(a.values.reshape(len(rows), -1))
    return FeatureImportance("mean_abs_shap", subj.feature_names, values.mean(0), values.std(0), used,
                             "mean |SHAP value| (class probability)" if ds.task == "classification"
                             else "mean |SHAP value| (output)", None, a.values.reshape(len(rows), -1), note,
                             {"rows": rows.tolist(), "n_samples": n_samples})
