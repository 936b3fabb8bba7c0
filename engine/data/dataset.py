"""The in-memory ``Dataset``, its ``Normalization`` and the train/val/test split.

Everything a loader produces ends up in ``build_dataset``: one place that splits,
fits the normalisation on the training split only, checks for non-finite values
and turns numpy arrays into tensors.  Loaders therefore only parse their format.

It does so in two stages: ``split_arrays`` checks and splits (numpy only: the editor learns the
data's shapes and classes from it before torch has loaded), ``SplitArrays.to_dataset`` normalises
and makes the tensors.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from typing import TYPE_CHECKING

import numpy as np

from engine.errors import DataError, quote
from engine.data.params import split_params

if TYPE_CHECKING:  # tensors are made in SplitArrays.to_dataset; nothing else here needs torch loaded
    import torch

TASKS = ("classification", "regression")

# A feature whose training std is below this is treated as constant: dividing by
# it would turn rounding noise into huge values.
_MIN_STD = 1e-8


@dataclass
class Normalization:
    """Standardisation ``(x - mean) / std`` fitted on the training split.

    ``mean`` and ``std`` hold one value per entry of axis 1 of a batch: per
    feature for tabular data ``(N, F)``, per channel for images ``(N, C, H, W)``
    (broadcast over the spatial axes).  A single value broadcasts over all of x.
    Image data is scaled to [0, 1] by its loader *before* this is fitted, so a
    saved normalisation of an image project applies to [0, 1] pixels.
    A (near-)zero std is replaced by 1 when applying, so constant features become 0.
    """

    mean: list[float]
    std: list[float]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise DataError(f"Normalization needs as many std values as mean values (got "
                            f"{len(self.mean)} and {len(self.std)}), and at least one.")

    @classmethod
    def fit(cls, x: np.ndarray | torch.Tensor) -> "Normalization":
        """Per-feature / per-channel statistics of a batch ``x`` (reduce all axes but 1)."""
        import torch

        t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
        if not torch.is_floating_point(t):
            t = t.float()
        if t.dim() < 2 or t.shape[0] == 0:
            raise DataError("Cannot fit a normalisation on an empty training split; "
                            "lower val_fraction / test_fraction or add data.")
        # torch's CPU reductions sum pairwise, so float32 is accurate here and
        # ~5x faster than a float64 copy on MNIST-sized data
        dims = (0,) + tuple(range(2, t.dim()))
        var, mean = torch.var_mean(t, dim=dims, correction=0)
        return cls(mean=mean.double().tolist(), std=var.double().sqrt().tolist())

    def _broadcast(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        n = len(self.mean)
        if n != 1 and (x.dim() < 2 or x.shape[1] != n):
            raise DataError(f"The saved normalisation has {n} values but the data has shape "
                            f"{tuple(x.shape[1:])} per sample; the data changed since this model was "
                            "trained -- load the original data or retrain.")
        view = (1, n) + (1,) * max(x.dim() - 2, 0) if n != 1 else (1,) * max(x.dim(), 1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).reshape(view)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).reshape(view)
        std = torch.where(std.abs() < _MIN_STD, torch.ones_like(std), std)
        return mean, std

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise a batch (first axis = samples); returns a new tensor."""
        import torch

        if not torch.is_floating_point(x):
            x = x.float()
        mean, std = self._broadcast(x)
        return (x - mean) / std

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        """Back to the original units (for plots and explanations)."""
        import torch

        if not torch.is_floating_point(x):
            x = x.float()
        mean, std = self._broadcast(x)
        return x * std + mean

    def units(self, n_features: int) -> tuple[tuple[float, float], ...]:
        """Per feature (offset, scale): a standardised value ``x`` is ``x * scale + offset`` in the
        data's own units (as ``invert`` gives it, near-zero stds included), for plots drawn in them."""
        import torch

        zero, one = (self.invert(torch.full((1, n_features), v)).double()[0] for v in (0.0, 1.0))
        return tuple((float(zero[i]), float(one[i] - zero[i])) for i in range(n_features))

    def to_dict(self) -> dict:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: Any) -> "Normalization":
        try:
            mean = [float(v) for v in d["mean"]]
            std = [float(v) for v in d["std"]]
        except (KeyError, TypeError, ValueError) as e:
            raise DataError("The saved normalisation is malformed: it needs lists of numbers "
                            f"under 'mean' and 'std' ({e}); retrain to recreate it.") from e
        if not all(math.isfinite(v) for v in mean + std):
            raise DataError("The saved normalisation contains non-finite numbers; retrain to recreate it.")
        return cls(mean=mean, std=std)


@dataclass
class Dataset:
    """A whole dataset in memory, already split and normalised.

    x tensors are float32 ``(N, *input_shape)``; y is int64 ``(N,)`` for
    classification and float32 ``(N, n_outputs)`` for regression.  Any split may
    have 0 rows (the test split often does).  ``feature_names`` is empty for
    image data; ``class_names`` is empty for regression.
    """

    name: str
    task: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    input_shape: tuple[int, ...]
    n_outputs: int
    class_names: list[str] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    normalization: Normalization | None = None
    spec: dict = field(default_factory=dict)
    #: why the task is what it is (a sentence, e.g. "classification, because the target holds text")
    task_rule: str = ""
    #: things the user should know about how the data was read (a borderline task rule...)
    notices: tuple[str, ...] = ()

    SPLITS = ("train", "val", "test")

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_val(self) -> int:
        return int(self.x_val.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def n_features(self) -> int:
        return int(math.prod(self.input_shape))

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of the split called ``name`` ("train", "val" or "test")."""
        if name not in self.SPLITS:
            raise DataError(f"Unknown split {name!r}; use one of {', '.join(self.SPLITS)}.")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def to(self, device: torch.device | str) -> "Dataset":
        moved = {}
        for s in self.SPLITS:
            moved[f"x_{s}"] = getattr(self, f"x_{s}").to(device)
            moved[f"y_{s}"] = getattr(self, f"y_{s}").to(device)
        return dataclasses.replace(self, **moved)

    def summary(self) -> dict:
        """JSON-able overview for the dataset panel and the CLI."""
        return summarize(self, {s: getattr(self, f"y_{s}").detach().cpu().numpy() for s in self.SPLITS},
                         standardized=self.normalization is not None)


def summarize(data, y: dict[str, np.ndarray], standardized: bool) -> dict:
    """The overview of a ``Dataset`` or ``SplitArrays`` (``y``: the targets of each split, numpy)."""
    out: dict[str, Any] = {
        "name": data.name,
        "task": data.task,
        "input_shape": list(data.input_shape),
        "n_features": int(math.prod(data.input_shape)),
        "n_outputs": data.n_outputs,
        "counts": {s: int(len(y[s])) for s in Dataset.SPLITS},
        "standardized": standardized,
        "task_rule": data.task_rule,
        "notices": list(data.notices),
    }
    if data.task == "classification":
        out["class_names"] = list(data.class_names)
        out["class_counts"] = {}
        for s in Dataset.SPLITS:
            counts = np.bincount(y[s].astype(np.int64), minlength=data.n_outputs).tolist() if len(y[s]) \
                else [0] * data.n_outputs
            out["class_counts"][s] = dict(zip(data.class_names, counts))
    else:
        t = np.asarray(y["train"], np.float64).reshape(len(y["train"]), -1)
        if t.size:
            out["target_stats"] = {"mean": t.mean(0).tolist(), "std": t.std(0).tolist(),
                                   "min": t.min(0).tolist(), "max": t.max(0).tolist()}
    return out


@dataclass
class SplitArrays:
    """A dataset checked and split, still as numpy arrays: what the editor knows about the data (its
    shapes, classes and counts) before torch has loaded.  ``to_dataset`` makes the ``Dataset``."""

    name: str
    task: str
    x: dict[str, np.ndarray]  # split -> inputs, as the loader gave them
    y: dict[str, np.ndarray]  # split -> class indices (int64) or targets (float32, (N, T))
    input_shape: tuple[int, ...]
    n_outputs: int
    class_names: list[str]
    feature_names: list[str]
    spec: dict
    standardize: bool
    task_rule: str = ""
    notices: tuple[str, ...] = ()

    def summary(self, normalization: Normalization | None = None) -> dict:
        return summarize(self, self.y, standardized=normalization is not None or self.standardize)

    @property
    def n_train(self) -> int:
        return int(len(self.y["train"]))

    @property
    def n_val(self) -> int:
        return int(len(self.y["val"]))

    @property
    def n_test(self) -> int:
        return int(len(self.y["test"]))

    @property
    def n_features(self) -> int:
        return int(math.prod(self.input_shape))

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3

    def to_dataset(self, normalization: Normalization | None = None) -> Dataset:
        """The tensors: inputs float32, standardised with ``normalization`` (a trained project's saved
        statistics) or, when the spec asks for it, statistics fitted on the training split."""
        import torch

        x = {s: torch.from_numpy(np.ascontiguousarray(self.x[s], dtype=np.float32)) for s in Dataset.SPLITS}
        if normalization is None and self.standardize:
            normalization = Normalization.fit(x["train"])
        if normalization is not None:
            x = {s: normalization.apply(t) for s, t in x.items()}
        y = {s: torch.from_numpy(np.ascontiguousarray(self.y[s])) for s in Dataset.SPLITS}
        return Dataset(
            name=self.name, task=self.task,
            x_train=x["train"], y_train=y["train"], x_val=x["val"], y_val=y["val"], x_test=x["test"],
            y_test=y["test"], input_shape=self.input_shape, n_outputs=self.n_outputs,
            class_names=list(self.class_names), feature_names=list(self.feature_names),
            normalization=normalization, spec=dict(self.spec), task_rule=self.task_rule, notices=self.notices)


# --------------------------------------------------------------------------- splitting

def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainder),
    so the held-out splits keep the class balance and the totals are exact."""
    n = counts.sum()
    if n == 0 or total <= 0:
        return np.zeros_like(counts)
    quota = counts * total / n
    base = np.floor(quota).astype(np.int64)
    rest = total - base.sum()
    if rest > 0:
        # stable sort -> ties go to the lower class index, deterministically
        order = np.argsort(-(quota - base), kind="stable")
        base[order[:rest]] += 1
    return np.minimum(base, counts)


def _held_out_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    # A non-zero fraction always gets at least one row, but training keeps at least one.
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    while n_test + n_val > n - 1 and (n_test or n_val):
        if n_val >= n_test and n_val:
            n_val -= 1
        else:
            n_test -= 1
    return n_val, n_test


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int,
                  labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffled ``(train, val, test)`` index arrays; stratified when ``labels`` is given."""
    rng = np.random.default_rng(seed)
    n_val, n_test = _held_out_sizes(n, val_fraction, test_fraction)
    if labels is None:
        perm = rng.permutation(n)
        return perm[n_val + n_test:], perm[:n_val], perm[n_val:n_val + n_test]

    classes, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes))
    held = _allocate(counts, n_val + n_test)
    test_per_class = _allocate(held, n_test)
    train, val, test = [], [], []
    for k in range(len(classes)):
        idx = rng.permutation(np.flatnonzero(inverse == k))
        t, h = test_per_class[k], held[k]
        test.append(idx[:t])
        val.append(idx[t:h])
        train.append(idx[h:])
    # shuffle within each split so classes are interleaved
    return tuple(rng.permutation(np.concatenate(part)) for part in (train, val, test))  # type: ignore[return-value]


# --------------------------------------------------------------------------- labels

def encode_labels(values: np.ndarray | list) -> tuple[np.ndarray, list[str]]:
    """Map arbitrary labels to ``0..K-1`` in sorted order; class names are the labels as text."""
    arr = np.asarray(values)
    classes, inverse = np.unique(arr, return_inverse=True)
    names = []
    for c in classes.tolist():
        if isinstance(c, float) and c.is_integer():
            c = int(c)
        names.append(str(c))
    return inverse.astype(np.int64).reshape(-1), names


def encode_integer_labels(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Labels stored as integers (IDX, npz).  Zero-based labels that use most of ``0..max`` are taken
    as class indices, so class ``k`` stays class ``k`` when a subset lacks a few classes (the first 100
    MNIST images); sparse ones are renumbered to contiguous classes named by their original labels,
    so ``{0, 99999}`` is two classes, not a 100,000-way output."""
    arr = np.asarray(values).reshape(-1)
    if arr.size and arr.min() == 0:
        k = int(arr.max()) + 1
        if k <= 2 * len(np.unique(arr)):
            return arr.astype(np.int64), [str(i) for i in range(k)]
    return encode_labels(arr)


# --------------------------------------------------------------------------- the task rule

#: an integer-valued target with at most this many distinct values is taken as class labels ...
MAX_AUTO_CLASSES = 50
#: ... and between this many and MAX_AUTO_CLASSES the choice is borderline, so a notice says so
BORDERLINE_CLASSES = 10


@dataclass(frozen=True)
class TaskDecision:
    """Classification or regression, the rule that decided it (a sentence the user sees), and a
    notice when the rule was borderline and the user may want to override it with ``task``."""

    task: str
    rule: str
    notice: str = ""


def _override_hint(task: str) -> str:
    return f"set \"task\": \"{task}\" in the data settings"


def decide_task(y: np.ndarray, requested: str, what: str, typed: bool) -> TaskDecision:
    """The task rule, one place for every file source.  ``what`` names the target ("the target column
    'price'"); ``typed``: the file stores number types (npz, IDX), unlike a CSV where all is text.

    - ``requested`` "classification" / "regression" (the data spec's ``task``) wins;
    - text or true/false targets are classes;
    - typed files: integers are class labels, floating-point numbers are regression targets;
    - text files: whole numbers with at most MAX_AUTO_CLASSES distinct values are classes, anything
      else is a regression target."""
    if requested in TASKS:
        return TaskDecision(requested, f"{requested}, as the data's \"task\" setting says")
    y = np.asarray(y)
    if y.dtype.kind in "USOb":
        kind = "true/false values" if y.dtype.kind == "b" else "text"
        return TaskDecision("classification", f"classification, because {what} holds {kind}")
    finite = bool(np.isfinite(y).all()) if y.dtype.kind == "f" else True
    integral = finite and (y.dtype.kind in "iu" or bool(np.all(np.mod(y, 1) == 0)))
    distinct = len(np.unique(y)) if integral and y.ndim == 1 else None
    if typed:
        if y.dtype.kind in "iu":
            rule = TaskDecision("classification", f"classification, because {what} is stored as integers")
            if distinct is not None and distinct > MAX_AUTO_CLASSES:
                rule = TaskDecision(rule.task, rule.rule, f"{what} holds {distinct:,} distinct integers, so "
                                    f"the network gets {distinct:,} outputs; if they are amounts, "
                                    f"{_override_hint('regression')}.")
            return rule
        rule = TaskDecision("regression", f"regression, because {what} is stored as floating-point numbers")
        if distinct is not None and distinct <= MAX_AUTO_CLASSES:
            rule = TaskDecision(rule.task, rule.rule, f"{what} holds only {distinct} distinct whole numbers; "
                                f"if they are class labels, {_override_hint('classification')}.")
        return rule
    if distinct is None:
        return TaskDecision("regression", f"regression, because {what} holds fractional numbers")
    if distinct <= MAX_AUTO_CLASSES:
        rule = TaskDecision("classification", f"classification, because {what} holds {distinct} distinct "
                            f"whole numbers (at most {MAX_AUTO_CLASSES} are taken as classes)")
        if distinct > BORDERLINE_CLASSES:
            rule = TaskDecision(rule.task, rule.rule, f"{what} holds {distinct} distinct whole numbers, "
                                f"taken as {distinct} classes; if they are amounts, {_override_hint('regression')}.")
        return rule
    return TaskDecision("regression", f"regression, because {what} holds {distinct:,} distinct whole numbers "
                        f"(more than {MAX_AUTO_CLASSES} are taken as amounts)",
                        f"{what} holds {distinct:,} distinct whole numbers, taken as amounts to predict; if "
                        f"they are class labels, {_override_hint('classification')}.")


# --------------------------------------------------------------------------- assembly

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_float32_range(x: np.ndarray, what: str, name: str) -> None:
    """Refuse numbers that 32-bit floats (what the model computes in) cannot hold, before they are
    cast to infinity (1e300 in a CSV cell)."""
    x = np.asarray(x)
    if x.dtype.kind == "f" and x.dtype.itemsize > 4 and x.size:
        finite = np.abs(x[np.isfinite(x)])
        if finite.size and finite.max() > _FLOAT32_MAX:
            raise DataError(f"{name}: {what} holds numbers too large for 32-bit floats (up to {finite.max():.3g}; "
                            f"the limit is {_FLOAT32_MAX:.3g}); rescale them, e.g. to other units.")


def _check_finite(x: np.ndarray, what: str, name: str) -> None:
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise DataError(f"{name}: {what} contains {bad} NaN or infinite value(s); "
                        "clean the data (fill or drop them) and load it again.")


def build_dataset(*, normalization: Normalization | None = None, **arrays) -> Dataset:
    """Split, normalise and wrap arrays a loader produced (``split_arrays`` then ``to_dataset``)."""
    return split_arrays(**arrays).to_dataset(normalization)


def split_arrays(*, name: str, task: str, x: np.ndarray, y: np.ndarray, spec: dict,
                 class_names: list[str] | None = None, feature_names: list[str] | None = None,
                 fixed_test: tuple[np.ndarray, np.ndarray] | None = None,
                 task_rule: str = "", notices: tuple[str, ...] | list[str] = ()) -> SplitArrays:
    """Check and split arrays a loader produced (numpy only).

    ``y`` holds class indices (classification) or targets ``(N,)``/``(N, T)``
    (regression).  ``fixed_test`` is a test split that ships with the data (e.g.
    the MNIST t10k files); then ``test_fraction`` is not used.  The returned
    ``Dataset.spec`` is ``spec`` with the split defaults filled in.
    """
    if task not in TASKS:
        raise DataError(f"{name}: task must be 'classification' or 'regression', got {task!r}.")
    split = split_params(spec)
    full_spec = {**spec, **split}
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim < 2:
        raise DataError(f"{name}: expected one row per sample, got data of shape {x.shape}.")
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{name}: {x.shape[0]} samples but {y.shape[0]} targets; they must match.")
    if x.shape[0] < 2:
        raise DataError(f"{name}: only {x.shape[0]} sample(s); at least 2 are needed to train and validate.")
    _check_finite(x, "the input data", name)
    _check_finite(y, "the target", name)
    check_float32_range(x, "the input data", name)
    if task == "regression":
        check_float32_range(y, "the target", name)

    class_names = list(class_names or [])
    if task == "classification":
        y = y.astype(np.int64).reshape(-1)
        if not class_names:
            class_names = [str(i) for i in range(int(y.max()) + 1)]
        if y.min() < 0 or y.max() >= len(class_names):
            raise DataError(f"{name}: class labels must lie in 0..{len(class_names) - 1}.")
        present = np.unique(y)
        if len(present) < 2:
            only = class_names[int(present[0])] if len(present) else "none"
            raise DataError(f"{name}: every sample has the same class ({quote(only)}); a classifier needs at "
                            "least two classes -- check the labels, or use task \"regression\".")
        n_outputs = len(class_names)
    else:
        y = y.astype(np.float32).reshape(y.shape[0], -1)
        n_outputs = int(y.shape[1])
        class_names = []

    if fixed_test is not None:
        x_test, y_test = np.asarray(fixed_test[0]), np.asarray(fixed_test[1])
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(f"{name}: the test data has shape {x_test.shape[1:]} per sample but the "
                            f"training data has {x.shape[1:]}; they must match.")
        _check_finite(x_test, "the test data", name)
        check_float32_range(x_test, "the test data", name)
        y_test = (y_test.astype(np.int64).reshape(-1) if task == "classification"
                  else y_test.astype(np.float32).reshape(y_test.shape[0], -1))
        if task == "classification" and y_test.size and (y_test.min() < 0 or y_test.max() >= n_outputs):
            raise DataError(f"{name}: the test labels contain classes the training labels do not have.")
        test_fraction = 0.0
    else:
        test_fraction = split["test_fraction"]

    stratify_by = y if (task == "classification" and split["stratify"]) else None
    tr, va, te = split_indices(x.shape[0], split["val_fraction"], test_fraction,
                               split["split_seed"], stratify_by)
    if fixed_test is None:
        x_test, y_test = x[te], y[te]
    return SplitArrays(
        name=name, task=task, x={"train": x[tr], "val": x[va], "test": x_test},
        y={"train": y[tr], "val": y[va], "test": y_test},
        input_shape=tuple(int(d) for d in x.shape[1:]), n_outputs=n_outputs, class_names=class_names,
        feature_names=list(feature_names or []), spec=full_spec, standardize=bool(split["standardize"]),
        task_rule=task_rule or f"{task}, as the {name} dataset is", notices=tuple(notices))
