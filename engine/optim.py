"""Optimisers, learning-rate schedules and the per-step update the trainer calls.

The update step is where small models lose most time to Python: ``torch.optim.Adam.step()``
spends ~60 µs per call in bookkeeping (hooks, grouping, state checks) around a ~15 µs fused
kernel.  ``LeanFusedAdam`` calls the very same fused kernel (``torch._fused_adam_`` /
``torch._fused_adamw_``) with the same hyper-parameters read from the optimiser's param group,
on the optimiser's own state tensors, so results are bit-identical to
``torch.optim.Adam(fused=True).step()`` (a test checks this) and the optimiser's
``state_dict()`` stays valid for checkpoints.

Every step object also honours a *non-finite guard*: ``flag`` is a 0-d float tensor on the
device that the trainer sets to 1.0 once a loss is non-finite.  Fused kernels take it as
``found_inf`` and skip the update without a host sync, so the weights stay exactly as they were
when the loss first broke (that is what lets ``probes`` name the layer that overflowed).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from engine.errors import TrainingError
from engine.train_config import TrainConfig

_FUSED_CAPABLE = ("adam", "adamw", "sgd", "adagrad")


def make_optimizer(config: TrainConfig, params: list[Tensor]) -> torch.optim.Optimizer:
    """The optimiser named in ``config``, fused where PyTorch has a fused kernel for it."""
    if not params:
        raise TrainingError("The model has no trainable parameters, so there is nothing to train.",
                            fix="add a layer with weights (e.g. Linear)")
    name, lr, wd = config.optimizer, config.lr, config.weight_decay
    kwargs: dict[str, Any]
    if name == "sgd":
        cls, kwargs = torch.optim.SGD, dict(lr=lr, momentum=config.momentum,
                                            nesterov=config.nesterov, weight_decay=wd)
    elif name == "adam":
        cls, kwargs = torch.optim.Adam, dict(lr=lr, weight_decay=wd)
    elif name == "adamw":
        cls, kwargs = torch.optim.AdamW, dict(lr=lr, weight_decay=wd)
    elif name == "rmsprop":
        cls, kwargs = torch.optim.RMSprop, dict(lr=lr, weight_decay=wd)
    elif name == "adagrad":
        cls, kwargs = torch.optim.Adagrad, dict(lr=lr, weight_decay=wd)
    else:  # TrainConfig validates names; this is a programming error
        raise TrainingError(f"Unknown optimizer {name!r}.")
    if name in _FUSED_CAPABLE:
        try:
            return cls(params, fused=True, **kwargs)
        except (RuntimeError, ValueError, TypeError):
            pass  # e.g. a dtype/device without a fused kernel: the default implementation works
    return cls(params, **kwargs)


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer,
                   steps_per_epoch: int) -> tuple[Any, str | None]:
    """The schedule and when to step it: "epoch", "step", "plateau" (epoch, with a metric) or None."""
    s = config.schedule
    if s == "none":
        return None, None
    if s == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma), "epoch"
    if s == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs), "epoch"
    if s == "onecycle":
        d = optimizer.defaults
        has_momentum = "betas" in d or float(d.get("momentum", 0) or 0) > 0
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
            cycle_momentum=has_momentum), "step"
    if s == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.gamma, patience=config.plateau_patience), "plateau"
    raise TrainingError(f"Unknown schedule {s!r}.")


# ---------------------------------------------------------------- update steps
class OptimizerStep:
    """One optimiser update; ``skipped(n)`` fixes step counters after ``n`` guarded (skipped) steps."""

    #: "device": skipped on the device via found_inf; "host": checked with .item(); "none"
    guard = "none"

    def __call__(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def skipped(self, n: int) -> None:
        pass


class _PlainStep(OptimizerStep):
    def __init__(self, optimizer: torch.optim.Optimizer):
        self._step = optimizer.step

    def __call__(self) -> None:
        self._step()


class _FusedFlagStep(OptimizerStep):
    """PyTorch's own fused step, told to skip via the ``found_inf`` attribute GradScaler also uses."""

    guard = "device"

    def __init__(self, optimizer: torch.optim.Optimizer, flag: Tensor):
        optimizer.found_inf = flag  # type: ignore[attr-defined]
        self._step = optimizer.step

    def __call__(self) -> None:
        self._step()


class _HostGuardedStep(OptimizerStep):
    """For optimisers without a fused kernel, on CPU, where ``.item()`` costs ~1 µs (no device sync)."""

    guard = "host"

    def __init__(self, optimizer: torch.optim.Optimizer, flag: Tensor):
        self._step = optimizer.step
        self._flag = flag

    def __call__(self) -> None:
        if not self._flag.item():
            self._step()


class LeanFusedAdam(OptimizerStep):
    """Adam/AdamW update through the fused kernel without ``Optimizer.step``'s Python overhead.

    Only for the plain case (one param group, no amsgrad/maximize/capturable/differentiable,
    all parameters on one device with one dtype).  If a parameter gets no gradient (an unused
    branch), it falls back to ``optimizer.step()`` for good, which handles that case.
    """

    guard = "device"

    def __init__(self, optimizer: torch.optim.Optimizer, params: list[Tensor], flag: Tensor):
        group = optimizer.param_groups[0]
        self._opt = optimizer
        self._group = group
        self._params = params
        self._flag = flag
        self._kernel = torch._fused_adamw_ if group.get("decoupled_weight_decay") or \
            isinstance(optimizer, torch.optim.AdamW) else torch._fused_adam_
        states = []
        for p in params:
            st = optimizer.state[p]
            if len(st) == 0:  # mirrors Adam._init_group for fused=True
                st["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            states.append(st)
        # One tensor holds every parameter's step counter (each state's "step" is a 0-d view into
        # it), so the per-step increment is one kernel instead of one per parameter.
        self._steps_base = torch.stack([st["step"].detach().to(torch.float32) for st in states])
        for i, st in enumerate(states):
            st["step"] = self._steps_base[i]
        self._steps = [st["step"] for st in states]
        self._exp_avgs = [st["exp_avg"] for st in states]
        self._exp_avg_sqs = [st["exp_avg_sq"] for st in states]
        self._fallback: Callable[[], Any] | None = None

    @staticmethod
    def supports(optimizer: torch.optim.Optimizer, params: list[Tensor]) -> bool:
        if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
            return False
        if not hasattr(torch, "_fused_adam_") or len(optimizer.param_groups) != 1:
            return False
        g = optimizer.param_groups[0]
        if not g.get("fused") or g.get("amsgrad") or g.get("maximize") or g.get("capturable") \
                or g.get("differentiable") or isinstance(g.get("lr"), Tensor):
            return False
        if {id(p) for p in g["params"]} != {id(p) for p in params} or not params:
            return False
        p0 = params[0]
        return all(p.device == p0.device and p.dtype == p0.dtype for p in params)

    def __call__(self) -> None:
        if self._fallback is not None:
            self._fallback()
            return
        g = self._group
        beta1, beta2 = g["betas"]
        self._steps_base.add_(1)
        try:
            self._kernel(self._params, [p.grad for p in self._params], self._exp_avgs,
                         self._exp_avg_sqs, [], self._steps, amsgrad=False, lr=g["lr"],
                         beta1=float(beta1), beta2=float(beta2), weight_decay=g["weight_decay"],
                         eps=g["eps"], maximize=False, grad_scale=None, found_inf=self._flag)
            self._opt._opt_called = True  # type: ignore[attr-defined]  # what LR schedulers check
        except TypeError:
            # some parameter got no gradient: let torch.optim skip it, from now on
            self._steps_base.sub_(1)
            self._opt.found_inf = self._flag  # type: ignore[attr-defined]
            self._fallback = self._opt.step
            self._fallback()

    def skipped(self, n: int) -> None:
        if self._fallback is None and n > 0:
            self._steps_base.sub_(n)


def make_step(optimizer: torch.optim.Optimizer, params: list[Tensor], flag: Tensor,
              device: torch.device, lean: bool = True) -> OptimizerStep:
    """The fastest correct update step for this optimiser, guarded by ``flag`` where possible."""
    fused = any(g.get("fused") for g in optimizer.param_groups)
    if lean and LeanFusedAdam.supports(optimizer, params):
        return LeanFusedAdam(optimizer, params, flag)
    if fused:
        return _FusedFlagStep(optimizer, flag)
    if device.type == "cpu":
        return _HostGuardedStep(optimizer, flag)
    return _PlainStep(optimizer)
