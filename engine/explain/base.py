"""What every explain function shares: the model it looks at, its errors, and cooperative jobs.

``Subject`` is one view of "a model and its data" whatever the caller holds: a ``ReadyModel``
(``engine.model_at``), a compiled fx ``GraphModule`` or any ``nn.Module``, with or without its
``Dataset``.  ``Job`` is the worker-thread contract: a ``cancel`` callable checked between
batches or steps (it raises ``Cancelled``) and a ``progress`` callback that gets a fraction.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from engine.errors import LayerLabError


class NotApplicable(LayerLabError):
    """A method, option, sample or node that does not fit this model or its data."""

    kind = "bad_input"


class Cancelled(LayerLabError):
    """The caller asked the job to stop; nothing was returned."""

    kind = "cancelled"


CancelCheck = Callable[[], bool]
ProgressCallback = Callable[[float], None]


class Job:
    """Cancel and progress for one long computation.

    ``cancel`` is a callable returning True to stop (a ``threading.Event`` works too);
    ``progress`` receives a fraction in [0, 1].  ``step(done, total)`` does both."""

    def __init__(self, cancel: CancelCheck | Any = None, progress: ProgressCallback | None = None):
        if cancel is not None and not callable(cancel) and hasattr(cancel, "is_set"):
            cancel = cancel.is_set
        self._cancel = cancel
        self._progress = progress
        self._last = -1.0

    def check(self) -> None:
        if self._cancel is not None and self._cancel():
            raise Cancelled("The explanation was cancelled.")

    def report(self, fraction: float) -> None:
        if self._progress is not None:
            fraction = min(max(float(fraction), 0.0), 1.0)
            if fraction >= self._last + 0.01 or fraction == 1.0:  # at most ~100 calls a job
                self._last = fraction
                self._progress(fraction)

    def step(self, done: float, total: float) -> None:
        self.check()
        self.report(done / total if total else 1.0)

    def part(self, start: float, stop: float) -> "Job":
        """A job for the share ``start..stop`` of this one (same cancel, rescaled progress)."""
        sub = Job(self._cancel)
        if self._progress is not None:
            sub._progress = lambda f: self.report(start + (stop - start) * f)
        return sub

    def counted(self, forward: Callable, total_calls: int) -> Callable:
        """``forward`` wrapped to check cancel and report progress once per call: how a job sees
        inside a Captum method, which calls the model once per batch of perturbations or steps."""
        if self._cancel is None and self._progress is None:
            return forward
        calls = [0]
        total = max(int(total_calls), 1)

        def wrapped(*args, **kwargs):
            self.step(calls[0], total)
            out = forward(*args, **kwargs)
            calls[0] += 1
            return out

        return wrapped


NO_JOB = Job()


@dataclass
class Subject:
    """A model to explain and what is known about its data."""

    module: nn.Module
    input_shape: tuple[int, ...] | None
    task: str
    n_outputs: int | None
    dataset: Any = None  # engine.data.Dataset, when known
    analysis: Any = None  # engine.validate.Analysis, when the model was compiled from a graph
    node_ids: dict[str, str] = field(default_factory=dict)  # fx node name -> graph node id

    def __post_init__(self) -> None:
        # worked out once: a Subject is cached per model, and a saliency map costs ~1 ms in all
        self.modules = list(self.module.modules())
        self.has_embedding = any(isinstance(m, nn.Embedding) for m in self.modules)
        # a parameter follows its module's .to(device) (its data is replaced in place)
        self._first_param = next(iter(self.module.parameters()), None)
        self._shape = tuple(self.input_shape) if self.input_shape is not None else None
        out_shape = self.node_shape("output")
        self.output_width: int | None = int(out_shape[0]) if out_shape else self.n_outputs
        self.memo: dict = {}  # per-model answers that do not change (layers, taps, shapes)
        names = list(getattr(self.dataset, "feature_names", None) or [])
        if self.is_tabular and len(names) != self.input_shape[0]:
            names = [f"x{i}" for i in range(self.input_shape[0])]
        self.feature_names: list[str] = names  # tabular data: one per input column
        self.class_names: list[str] = list(getattr(self.dataset, "class_names", None) or [])

    def with_module(self, module: nn.Module) -> "Subject":
        """The same data and graph analysis over another module (a copy whose weights change)."""
        return dataclasses.replace(self, module=module)

    @property
    def device(self) -> torch.device:
        return self._first_param.device if self._first_param is not None else torch.device("cpu")

    @property
    def is_image(self) -> bool:
        return self.input_shape is not None and len(self.input_shape) == 3

    @property
    def is_tabular(self) -> bool:
        return self.input_shape is not None and len(self.input_shape) == 1

    def node_shape(self, fx_name: str) -> tuple[int, ...] | None:
        """The per-sample output shape of the graph node compiled to ``fx_name`` (None: unknown)."""
        nid = self.node_ids.get(fx_name)
        if self.analysis is None or nid is None or nid not in self.analysis.nodes:
            return None
        shape = self.analysis.nodes[nid].shape
        return tuple(shape) if shape is not None else None

    def batch(self, x) -> tuple[torch.Tensor, bool]:
        """``x`` as a float batch on the model's device, and whether it was a single sample."""
        t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(x)
        device = self.device
        if t.dtype is not torch.float32 or t.device != device:
            t = t.to(device, torch.float32)
        if self._shape is not None:
            if t.shape == self._shape:
                return t.unsqueeze(0), True
            if t.shape[1:] != self._shape:
                raise NotApplicable(f"The input has shape {tuple(t.shape)} but the model takes "
                                    f"{tuple(self.input_shape)} per sample (or a batch of those).")
        if t.shape[0] == 0:
            raise NotApplicable("There is no sample to explain (the batch is empty).")
        return t, False

    def train_split(self) -> torch.Tensor | None:
        ds = self.dataset
        if ds is None or ds.n_train == 0:
            return None
        return ds.x_train

    def data_range(self, x: torch.Tensor | None = None) -> tuple[float, float]:
        """(min, max) of the training inputs (of ``x`` when no data is known): SmoothGrad's noise
        and activation maximisation's clamp are set in these units."""
        ref = self.train_split()
        ref = ref if ref is not None else x
        if ref is None:
            return (0.0, 1.0)
        lo, hi = _cached_range(ref)
        return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)

    def train_mean(self) -> torch.Tensor | None:
        """The mean training input (one sample's shape), cached per dataset."""
        ref = self.train_split()
        return None if ref is None else _cached_mean(ref)


_SUBJECTS: "dict[int, tuple[Any, Any, Any, Subject]]" = {}


def subject(model, dataset=None) -> Subject:
    """A ``Subject`` for a ``ReadyModel``, a compiled model or an ``nn.Module`` (+ its dataset).

    Cached per ReadyModel / CompiledModel object while it lives, checked against the module and
    dataset it holds now: a saliency map takes about a millisecond, and working this out again
    would cost a tenth of it.  A bare nn.Module is not cached (the entry would keep it alive)."""
    if isinstance(model, Subject):
        if dataset is None or dataset is model.dataset:
            return model
        model = model.module
    if isinstance(model, nn.Module):  # the Subject would keep the module alive: not cached
        return _build_subject(model, dataset)
    module_now = getattr(model, "module", None)
    dataset_now = dataset if dataset is not None else getattr(model, "dataset", None)
    key = id(model)
    hit = _SUBJECTS.get(key)
    if hit is not None and hit[0]() is model and hit[1] is module_now and hit[2] is dataset_now:
        return hit[3]
    built = _build_subject(model, dataset)

    def forget(ref, key=key):  # the model is gone: so is its entry (and the module and data it held)
        if _SUBJECTS.get(key, (None,))[0] is ref:
            del _SUBJECTS[key]

    try:
        ref = weakref.ref(model, forget)
    except TypeError:  # an object without weak references: not cached
        return built
    _SUBJECTS[key] = (ref, module_now, dataset_now, built)
    return built


def _build_subject(model, dataset=None) -> Subject:
    from engine.compile import CompiledModel

    analysis, node_ids, context = None, {}, None
    if hasattr(model, "module") and hasattr(model, "compiled") and hasattr(model, "context"):  # ReadyModel
        dataset = dataset if dataset is not None else model.dataset
        context = model.context
        compiled = model.compiled
        module = model.module
    elif isinstance(model, CompiledModel):
        compiled, module = model, model.module
    elif isinstance(model, nn.Module):
        compiled, module = None, model
    else:
        raise NotApplicable(f"Cannot explain a {type(model).__name__}; give a trained model "
                            "(engine.model_at.model_at) or a torch module.")
    if compiled is not None:
        analysis = compiled.analysis
        node_ids = {fx: nid for nid, fx in compiled.node_names.items()}
    input_shape = task = n_outputs = None
    if dataset is not None:
        input_shape, task, n_outputs = tuple(dataset.input_shape), dataset.task, dataset.n_outputs
    elif context is not None and context.input_shape is not None:
        input_shape, task, n_outputs = tuple(context.input_shape), context.task, context.n_outputs
    elif analysis is not None:  # a compiled model alone: its Input node knows the shape
        for n in module.graph.nodes:
            info = analysis.nodes.get(node_ids.get(n.name, ""))
            if n.op == "placeholder" and info is not None and info.shape is not None:
                input_shape = tuple(info.shape)
            if n.op == "output" and info is not None and info.shape:
                n_outputs = int(info.shape[0])
    return Subject(module, input_shape, task or "classification", n_outputs, dataset, analysis, node_ids)


_RANGES: "dict[int, tuple[Any, tuple[float, float]]]" = {}
_MEANS: "dict[int, tuple[Any, torch.Tensor]]" = {}


def _cached(cache: dict, t: torch.Tensor, compute):
    # keyed by identity, holding a weak reference so a freed dataset's entry is never reused
    hit = cache.get(id(t))
    if hit is not None and hit[0]() is t:
        return hit[1]
    value = compute(t)
    if len(cache) > 16:
        cache.clear()
    cache[id(t)] = (weakref.ref(t), value)
    return value


def _cached_range(t: torch.Tensor) -> tuple[float, float]:
    return _cached(_RANGES, t, lambda a: (float(a.min()), float(a.max())))


def _cached_mean(t: torch.Tensor) -> torch.Tensor:
    return _cached(_MEANS, t, lambda a: a.float().mean(0))


@contextlib.contextmanager
def eval_mode(module: nn.Module, modules: list[nn.Module] | None = None) -> Iterator[nn.Module]:
    """Eval mode for the block, each submodule's own mode restored afterwards.  A model already in
    eval mode (a ReadyModel's) is left alone: ``Module.eval()`` costs a quarter of a millisecond,
    a sixth of a saliency map."""
    training = [m for m in (modules if modules is not None else module.modules()) if m.training]
    if training:
        module.eval()
    try:
        yield module
    finally:
        for m in training:
            m.training = True


def class_probabilities(out: torch.Tensor) -> torch.Tensor:
    """Class probabilities from the model's outputs: softmax, or for one logit (binary
    ``bce_with_logits``) the pair (1 - p, p)."""
    if out.shape[1] == 1:
        p = torch.sigmoid(out)
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(out, dim=1)


def predict(module: nn.Module, x: torch.Tensor, batch_size: int = 512, job: Job = NO_JOB,
            device: torch.device | None = None) -> torch.Tensor:
    """The model's outputs for ``x`` on the CPU: batched, eval mode, no autograd."""
    device = device or next((p.device for p in module.parameters()), torch.device("cpu"))
    outs = []
    n = x.shape[0]
    with eval_mode(module), torch.no_grad():
        for start in range(0, n, batch_size):
            job.step(start, n)
            outs.append(module(x[start:start + batch_size].to(device)).float().cpu())
    job.report(1.0)
    if not outs:
        return torch.zeros(0)
    return torch.cat(outs)


def as_numpy(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach()
        return (t if t.device.type == "cpu" else t.cpu()).numpy()
    return np.asarray(t)


def finite_or_none(v) -> float | None:
    """A float for JSON: None for NaN / infinity (JSON has neither)."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None
