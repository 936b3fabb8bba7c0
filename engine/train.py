"""The headless training engine: ``Trainer(model, data, config, callbacks).run()``.

The trainer owns the loop and knows nothing about the UI.  It reports through callbacks that
receive the small frozen events of ``engine.events`` and stops cooperatively
(``request_stop(reason)`` / ``should_stop``); ``pause()``, ``resume()`` and ``step()`` (one batch
while paused) may be called from any thread.  Policies - early stopping, per-epoch checkpoints,
the GUI's Stop, lab goals - are callbacks (``engine.events.Callback``, ``engine.policies``) that
ask it to stop; none runs per step.

Speed rules the loop follows (they matter most for the small models of lab sessions):

* Data lives on the training device as tensors and is batched by index: one gather per epoch
  (``x[perm]``) and then ``split`` views - no DataLoader, no per-step indexing.
* No host/device sync per step: each step's loss is kept as a device tensor and read only when
  a report is due (every ``progress_interval_s`` of wall clock, and at the end of an epoch).
* The optimiser update goes through PyTorch's fused kernels, for Adam/AdamW without the
  Python bookkeeping of ``Optimizer.step()`` (see ``engine.optim``).
* On CPU, small models run on one thread (``choose_num_threads``): thread wake-ups cost more
  than tiny matmuls gain from them.
* On CPU, convolutional models train in the channels-last memory format
  (``choose_memory_format``): oneDNN's convolutions and PyTorch's pooling are several times faster
  in it than in the default NCHW layout (measured in ``bench/engine_throughput.py``).  The
  results equal the NCHW path up to float rounding (tests/test_train.py states the tolerance).
* On CUDA: autocast mixed precision (bf16, or fp16 with a GradScaler), cuDNN autotuning, TF32.

Non-finite losses (design): a per-step device-side flag, ``flag |= (loss * 0 != 0)`` (NaN or
inf times zero is NaN, which is "true"), costs two tiny kernels and no sync.  The fused
optimiser kernels take that flag as ``found_inf`` and skip their update once it is set, so the
weights freeze at the state that produced the first bad loss.  When the next report reads the
flag, the first non-finite entry among the kept per-step losses gives the exact step; that batch
is re-run through ``engine.probes.find_first_nonfinite`` to name the first node whose output
went non-finite, and the run fails with ``NonFiniteLoss`` (its sentence, and the node's name).

Divergence that stays finite is caught at the same reads: a step whose loss exceeds
``DIVERGENCE_FACTOR`` times the lowest running loss of the run so far fails with ``Diverged``.  (Optimisers without a fused kernel check
the flag on the host before each update on CPU, where that is cheap; on CUDA they go unguarded
and the probe then sees the weights of the report time.)
"""
from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

try:  # the engine call behind Tensor.backward(), minus ~25 µs/step of argument checking
    from torch.autograd.graph import _engine_run_backward
except ImportError:  # pragma: no cover - other torch versions: use the public path
    _engine_run_backward = None

from engine import failure_text, probes
from engine.atomic import atomic_write
from engine.errors import (Diverged, LayerLabError, ModelDataMismatch, NonFiniteLoss, OutOfMemory,
                           TrainingError)
from engine.events import EpochEnd, EventSink, Progress, RunFailed, RunFinished, RunStarted, TrainEvent
from engine.policies import EarlyStopping
from engine.state_io import join_state, split_state
from engine.losses import LossSpec, make_loss
from engine.pool_order import relu_after_max_pool
from engine.optim import OptimizerStep, make_optimizer, make_scheduler, make_step
from engine.train_config import TrainConfig

__all__ = ["Trainer", "TrainConfig", "choose_num_threads", "resolve_device", "seed_everything"]

_DEFAULT_THREADS = torch.get_num_threads()
#: forward FLOPs per batch below which training uses one CPU thread.  Measured on a 2-core
#: machine: nets of 0.3-10 MFLOP/batch ran 1.2x (idle machine) to 10-100x (busy machine) faster
#: on one thread; from ~13 MFLOP two threads won by 1.1-1.6x when the machine was idle.
SMALL_MODEL_FLOPS = 20e6
#: above this size the per-epoch permuted copy of the data is replaced by per-batch gathers
_PREGATHER_MAX_BYTES = 512 * 2**20
#: version 2: optimiser / schedule / scaler state as safetensors + JSON (no pickle), policy state
CHECKPOINT_VERSION = 2
#: a loss this many times the lowest running loss of the run means the run diverged...
DIVERGENCE_FACTOR = 1e4
#: ... and so does any loss above this (float32 overflows at 3.4e38)
DIVERGENCE_CEILING = 1e30


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether torch ran out of memory.  CUDA raises ``torch.OutOfMemoryError``; the CPU allocator
    raises a plain RuntimeError, recognisable only by its own words - read here, where torch's
    exception is caught, and nowhere else."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc).lower()


# ---------------------------------------------------------------- small public helpers
def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) random generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; "cuda" without CUDA is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(
                "The device 'cuda' was requested, but no CUDA GPU is available on this machine.",
                fix="set device to 'auto' or 'cpu'",
            )
        return torch.device("cuda")
    if name == "cpu":
        return torch.device("cpu")
    raise TrainingError(f"Unknown device {name!r}; choose 'auto', 'cpu' or 'cuda'.")


def choose_num_threads(model: nn.Module, example: Tensor) -> int:
    """CPU threads for training ``model`` on batches like ``example``.

    Lab-size networks spend their time in per-op overhead, and waking a second thread costs
    more than it saves; one thread is both faster and far steadier there (see
    ``SMALL_MODEL_FLOPS``).  Larger models get PyTorch's default thread count.
    """
    try:
        from torch.utils.flop_counter import FlopCounterMode

        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                model(example)
        finally:
            model.train(was_training)
        flops = float(counter.get_total_flops())
    except Exception:  # an op the counter cannot follow: fall back to a size estimate
        flops = 2.0 * len(example) * sum(p.numel() for p in model.parameters())
    return 1 if flops < SMALL_MODEL_FLOPS else _DEFAULT_THREADS


def _finite_or_none(v: float | None) -> float | None:
    return v if v is None or math.isfinite(v) else None


def choose_memory_format(model: nn.Module, device: torch.device) -> torch.memory_format:
    """channels_last for convolutional models on a CPU, else the default (contiguous) format.

    Measured on the project's 2-core machine (bench/engine_throughput.py, and per op with the
    profiler): for Conv2d -> ReLU -> MaxPool2d on 28x28 images, max pooling took 31 % of a step in
    NCHW and 7 % in channels-last, the convolution's backward 31 % and 15 %; a whole step ran 2.3x
    faster.  Models without Conv2d have no 4-D weights for the format to change."""
    if device.type == "cpu" and any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return torch.channels_last
    return torch.contiguous_format


def _in_format(x: Tensor, memory_format: torch.memory_format) -> Tensor:
    """``x`` in ``memory_format`` where that applies (4-D image batches)."""
    if memory_format is torch.channels_last and x.dim() == 4:
        return x.contiguous(memory_format=memory_format)
    return x


class _Gathered:
    """Batches gathered on demand (for data too large to copy once per epoch)."""

    def __init__(self, t: Tensor, index_chunks: Sequence[Tensor],
                 memory_format: torch.memory_format = torch.contiguous_format):
        self._t, self._idx, self._format = t, index_chunks, memory_format

    def __len__(self) -> int:
        return len(self._idx)

    def __getitem__(self, i: int) -> Tensor:
        return _in_format(self._t.index_select(0, self._idx[i]), self._format)


def failure_event(err: LayerLabError, *, batch_size: int = 0, steps: int = 0) -> RunFailed:
    """The ``RunFailed`` event for an error, with its kind and what the error knows."""
    kind = getattr(err, "kind", "internal")
    if kind not in ("non_finite", "diverged", "out_of_memory", "shape", "data", "setup", "interrupted"):
        kind = "setup" if kind in ("training", "bad_input", "graph", "file") else "internal"
    return RunFailed(message=str(err), kind=kind, node=getattr(err, "node", None), epoch=getattr(err, "epoch", None),
                     step=getattr(err, "step", None), batch_size=getattr(err, "batch_size", batch_size), steps=steps)


# ---------------------------------------------------------------- the trainer
class Trainer:
    """Trains ``model`` on ``data`` as ``config`` says, reporting to ``callbacks``.

    ``data`` has ``task`` ("classification" | "regression"), ``x_train, y_train, x_val, y_val``
    tensors (validation may be None/empty).  ``on_snapshot_due(model)``, if given, is called from
    the training thread every ``config.snapshot_interval_s`` seconds on average (never within half
    of it) with the model as written - the hook for live views, which copy what they need.  It
    runs right after an optimiser step, while that step's gradients are still in ``p.grad``.
    """

    def __init__(self, model: nn.Module, data: Any, config: TrainConfig | None = None,
                 callbacks: Iterable[EventSink] = (),
                 on_snapshot_due: Callable[[nn.Module], None] | None = None):
        self.config = config if config is not None else TrainConfig()
        if not isinstance(self.config, TrainConfig):
            raise TrainingError("The training settings must be a TrainConfig.")
        if not isinstance(model, nn.Module):
            raise TrainingError(f"Expected a torch.nn.Module to train, got {type(model).__name__}.")
        self.model = model
        self.data = data
        self.callbacks: list[EventSink] = list(callbacks)
        if self.config.early_stopping_patience and not any(isinstance(c, EarlyStopping) for c in self.callbacks):
            self.callbacks.append(EarlyStopping(self.config.early_stopping_patience))
        self.on_snapshot_due = on_snapshot_due
        self.task = getattr(data, "task", None)
        if self.task not in ("classification", "regression"):
            raise TrainingError(f"The dataset's task must be 'classification' or 'regression', "
                                f"got {self.task!r}.")
        x_train, y_train = getattr(data, "x_train", None), getattr(data, "y_train", None)
        if not isinstance(x_train, Tensor) or not isinstance(y_train, Tensor):
            raise TrainingError("The dataset has no training tensors (x_train / y_train).")
        if len(x_train) == 0:
            raise TrainingError("The training set is empty.", fix="load data or change the split")
        if len(x_train) != len(y_train):
            raise TrainingError(f"The training set has {len(x_train)} inputs but {len(y_train)} "
                                f"targets.")

        self.device = resolve_device(self.config.device)
        self.amp_dtype = self._resolve_amp()
        self.n_train = len(x_train)
        self.steps_per_epoch = math.ceil(self.n_train / self.config.batch_size)
        self.total_steps = self.config.epochs * self.steps_per_epoch

        self.model.to(self.device)
        self.memory_format = choose_memory_format(self.model, self.device)
        if self.memory_format is torch.channels_last:
            self.model.to(memory_format=torch.channels_last)
        # the step and evaluation run a twin with each ReLU -> MaxPool2d swapped (same numbers, less
        # work: engine/pool_order.py); everything else sees the model as written
        self._step_model = relu_after_max_pool(self.model)
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        # inputs take the dtype of the model's weights (float32 unless the model says otherwise)
        self._input_dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()),
                                 torch.float32)
        self.optimizer = make_optimizer(self.config, self._params)
        self.scheduler, self._schedule_when = make_scheduler(self.config, self.optimizer,
                                                             self.steps_per_epoch)
        self.scaler = (torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None)

        self.history: list[dict[str, Any]] = []
        self.epoch = 0  # completed epochs
        self.global_step = 0  # completed optimiser steps (updated at reports and epoch ends)
        self.num_threads = 0  # CPU threads of the current/last run (0 on CUDA)
        self._reference_loss: float | None = None  # the first loss of the current run (divergence guard)

        # run control: _go is set while running freely; pause() clears it, step() lets one
        # batch through while paused, request_stop() sets _stop (and clears _go to wake the loop)
        self._cond = threading.Condition()
        self._go = threading.Event()
        self._go.set()
        self._stop = threading.Event()
        self._stop_reason = "stopped"
        self._single_steps = 0
        self._running = False
        self._waiting = False
        self._paused_s = 0.0
        self._prepared: dict[str, Any] | None = None
        self._recent_epoch, self._recent_next = -1, 0  # recent_loss(): what it has read so far
        # the run in progress (set by _run), and the epoch in progress (set by _train_epoch)
        self._flag: Tensor | None = None  # the non-finite guard (see module doc)
        self._opt_step: OptimizerStep | None = None
        self._run_t0 = self._next_snapshot = 0.0
        self._run_steps0 = 0
        self._epoch_perm: Tensor | None = None
        self._epoch_batches: tuple[Any, Any] = ((), ())
        self._losses: list[Tensor] | None = None  # losses[k] is the loss of step (_fold_from + k) of the epoch
        self._outs: list[Tensor] = []  # model outputs, for the running train metric
        self._fold_from = 0
        self._epoch_sum: Tensor | None = None
        self._epoch_score: Tensor | None = None
        self._epoch_t0 = 0.0
        self._epoch_paused0 = 0.0
        self._epoch_index = 0
        self._last_train_loss = math.nan
        for cb in self.callbacks:  # last: a policy may steer the trainer at once (a Stop sent early)
            setup = getattr(cb, "setup", None)
            if callable(setup):
                setup(self)

    # ------------------------------------------------------------ run control (thread-safe)
    def request_stop(self, reason: str = "stopped") -> None:
        """Stop after the step in progress; the run ends with ``reason`` (the first one asked)."""
        with self._cond:
            if not self._stop.is_set():
                self._stop_reason = reason
            self._stop.set()
            self._go.clear()
            self._cond.notify_all()

    @property
    def should_stop(self) -> bool:
        return self._stop.is_set()

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        if value:
            self.request_stop()

    def pause(self) -> None:
        with self._cond:
            self._go.clear()
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            if not self._stop.is_set():
                self._go.set()
            self._cond.notify_all()

    def step(self) -> None:
        """While paused, run exactly one more batch (then stay paused)."""
        with self._cond:
            if not self._go.is_set() and not self._stop.is_set():
                self._single_steps += 1
                self._cond.notify_all()

    @property
    def is_paused(self) -> bool:
        return not self._go.is_set() and not self._stop.is_set()

    @property
    def is_waiting(self) -> bool:
        """True while the training thread is actually blocked in a pause."""
        return self._waiting

    def _hold(self, flush: Callable[[], None]) -> bool:
        """Called when _go is clear: wait while paused.  True = do the next batch, False = stop."""
        with self._cond:
            if self._stop.is_set():
                return False
            if self._go.is_set():
                return True
        flush()  # show where we paused (and the loss after a single step)
        t0 = time.perf_counter()
        with self._cond:
            self._waiting = True
            try:
                while True:
                    if self._stop.is_set():
                        ok = False
                        break
                    if self._go.is_set():
                        ok = True
                        break
                    if self._single_steps > 0:
                        self._single_steps -= 1
                        ok = True
                        break
                    self._cond.wait()
            finally:
                self._waiting = False
        self._paused_s += time.perf_counter() - t0
        return ok

    # ------------------------------------------------------------ live readings
    def recent_loss(self) -> float | None:
        """Mean training loss of the steps since the previous call (None before any step).

        For live views, from a snapshot hook on the training thread.  The loop keeps each
        step's loss as a device tensor until its next report; this reads only the ones added
        since the last call: one sync per call, none per step.  With no new step it returns
        the epoch's running loss as of the last report."""
        losses = self._losses
        if losses is None:
            return None
        if self._epoch_index != self._recent_epoch:
            self._recent_epoch, self._recent_next = self._epoch_index, 0
        fold_from = self._fold_from
        new = losses[max(0, self._recent_next - fold_from):]
        self._recent_next = fold_from + len(losses)
        if not new:
            v = self._last_train_loss
            return None if math.isnan(v) else float(v)
        return float(torch.stack(new).float().mean())

    # ------------------------------------------------------------ events
    def _emit(self, event: TrainEvent) -> None:
        for cb in self.callbacks:
            cb(event)

    # ------------------------------------------------------------ setup
    def _resolve_amp(self) -> torch.dtype | None:
        amp, dev = self.config.amp, self.device
        if amp == "off" or (amp == "auto" and dev.type != "cuda"):
            return None
        if amp == "fp16" and dev.type != "cuda":
            raise TrainingError("fp16 mixed precision needs a CUDA GPU.", fix="set amp to 'off' or 'bf16'")
        if amp == "bf16":
            return torch.bfloat16
        if amp == "fp16":
            return torch.float16
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _autocast(self) -> Callable[[], Any] | None:
        if self.amp_dtype is None:
            return None
        dev_type, dtype = self.device.type, self.amp_dtype
        return lambda: torch.autocast(device_type=dev_type, dtype=dtype)

    def _split(self, name_x: str, name_y: str) -> tuple[Tensor, Tensor] | None:
        x, y = getattr(self.data, name_x, None), getattr(self.data, name_y, None)
        if not isinstance(x, Tensor) or not isinstance(y, Tensor) or len(x) == 0:
            return None
        if len(x) != len(y):
            raise TrainingError(f"The dataset's {name_x} has {len(x)} rows but {name_y} has {len(y)}.")
        return x, y

    def _prepare(self) -> dict[str, Any]:
        """Move data to the device once, check the model's output against the targets, bind the loss."""
        if self._prepared is not None:
            return self._prepared
        dev, cfg = self.device, self.config
        x_train, y_train = self._split("x_train", "y_train")  # type: ignore[misc]
        x = _in_format(x_train.to(dev, self._input_dtype), self.memory_format)
        y = y_train.to(dev)
        n_probe = min(cfg.batch_size, len(x))
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model(x[:n_probe])
        except Exception as e:
            raise ModelDataMismatch(failure_text.bad_batch(tuple(x[:n_probe].shape), str(e).strip().splitlines()[0]
                                                           if str(e).strip() else type(e).__name__)) from e
        finally:
            self.model.train(was_training)
        if not isinstance(out, Tensor) or out.dim() != 2:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ModelDataMismatch(
                f"The model's output has shape {shape}, but training needs (batch, outputs).",
                fix="end the model with a Flatten and a Linear layer",
            )
        n_out = int(out.shape[1])
        spec = make_loss(cfg.loss, self.task, n_out, y if self.task == "classification" else None)
        y_t = spec.prepare_targets(y)
        if self.task == "regression" and y_t.shape[1] != n_out:
            raise ModelDataMismatch(
                f"The model outputs {n_out} value{'s' if n_out != 1 else ''} per sample but the "
                f"data has {y_t.shape[1]} target{'s' if y_t.shape[1] != 1 else ''}.",
                fix=f"give the last layer {y_t.shape[1]} outputs",
            )
        val = self._split("x_val", "y_val")
        xv = yv = yv_t = None
        if val is not None:
            xv = _in_format(val[0].to(dev, self._input_dtype), self.memory_format)
            yv = val[1].to(dev)
            yv_t = spec.prepare_targets(yv)
        bs = cfg.batch_size
        sizes = torch.full((self.steps_per_epoch,), float(bs), device=dev)
        sizes[-1] = float(self.n_train - bs * (self.steps_per_epoch - 1))
        per_sample = max(1, x[0].numel())
        self._prepared = dict(
            x=x, y=y, y_t=y_t, xv=xv, yv=yv, yv_t=yv_t, spec=spec, n_out=n_out, sizes=sizes,
            pregather=x.element_size() * x.numel() + y_t.element_size() * y_t.numel()
            <= _PREGATHER_MAX_BYTES,
            eval_chunk=max(bs, min(8192, 2**20 // per_sample)),
            probe_batch=x[:n_probe],
            # d(loss)/d(loss) for the backward call; the loss is fp32 under autocast
            grad_one=torch.ones((), device=dev,
                                dtype=torch.float32 if self.amp_dtype is not None else out.dtype),
        )
        return self._prepared

    def _generator(self, epoch: int) -> torch.Generator:
        g = torch.Generator()
        if self.config.seed is None:
            g.seed()
        else:  # depends on (seed, epoch) only, so a resumed run shuffles like an uninterrupted one
            g.manual_seed(self.config.seed * 1_000_003 + epoch)
        return g

    # ------------------------------------------------------------ the run
    def run(self) -> RunFinished:
        """Train until the configured epochs are done, a stop is requested or early stopping fires.

        Returns the ``RunFinished`` event.  On failure, emits ``RunFailed`` and raises
        ``TrainingError`` (its message is the sentence to show).
        """
        with self._cond:
            if self._running:
                raise TrainingError("This trainer is already running.")
            self._running = True
        prev_threads = torch.get_num_threads()
        try:
            return self._run()
        except LayerLabError as e:
            self._emit_failed(e)
            raise
        except Exception as e:  # anything torch raises mid-run becomes one sentence of a known kind
            if is_out_of_memory(e):
                err: TrainingError = OutOfMemory(failure_text.out_of_memory(self.epoch + 1, self.config.batch_size),
                                                 batch_size=self.config.batch_size)
            else:
                text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                err = TrainingError(failure_text.crashed(self.epoch + 1, self.global_step, text))
                err.kind = "internal"
            self._emit_failed(err)
            raise err from e
        finally:
            if torch.get_num_threads() != prev_threads:
                torch.set_num_threads(prev_threads)
            with self._cond:
                self._running = False
                self._stop.clear()
                self._go.set()
                self._single_steps = 0

    def _emit_failed(self, err: LayerLabError) -> None:
        try:
            self._emit(failure_event(err, batch_size=self.config.batch_size, steps=self.global_step))
        except Exception:
            pass  # a broken callback must not hide the original failure

    def _run(self) -> RunFinished:
        cfg, dev = self.config, self.device
        prep = self._prepare()
        if dev.type == "cpu":
            self.num_threads = cfg.num_threads or choose_num_threads(self.model, prep["probe_batch"])
            if torch.get_num_threads() != self.num_threads:
                torch.set_num_threads(self.num_threads)
        else:
            self.num_threads = 0
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if cfg.seed is not None:
            seed_everything(cfg.seed + self.epoch)
        self._flag = torch.zeros((), device=dev)  # the non-finite guard (see module doc)
        # with a GradScaler (fp16), the scaler drives the step and skips non-finite gradients itself
        self._opt_step = (
            make_step(self.optimizer, self._params, self._flag, dev) if self.scaler is None
            else OptimizerStep())
        self._paused_s = 0.0
        self._reference_loss = None
        self._run_t0 = time.perf_counter()
        self._next_snapshot = self._run_t0 + cfg.snapshot_interval_s
        self._run_steps0 = self.global_step
        self.model.train()
        self._emit(RunStarted(device=str(dev), n_params=sum(p.numel() for p in self.model.parameters()),
                              total_steps=self.total_steps, num_threads=self.num_threads,
                              amp=str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off",
                              start_epoch=self.epoch, steps_per_epoch=self.steps_per_epoch,
                              batch_size=cfg.batch_size, epochs=cfg.epochs))
        reason = "completed"
        for epoch in range(self.epoch, cfg.epochs):
            if not self._train_epoch(epoch, prep):
                reason = self._stop_reason
                break
            self._end_epoch(epoch, prep)
            if self._stop.is_set():  # a policy (early stopping, a goal) or the user asked
                reason = self._stop_reason
                break
        finished = RunFinished(reason=reason, history=tuple(dict(h) for h in self.history),  # type: ignore[arg-type]
                               steps=self.global_step)
        self._emit(finished)
        return finished

    def _train_epoch(self, epoch: int, prep: dict[str, Any]) -> bool:
        """One pass over the training set.  False if a stop was requested."""
        cfg, dev = self.config, self.device
        bs = cfg.batch_size
        # the epoch's clock counts its shuffle and gather too, as the exported train.py's does
        self._epoch_t0 = time.perf_counter()
        perm = torch.randperm(self.n_train, generator=self._generator(epoch)).to(dev)
        if prep["pregather"]:
            xs = _in_format(prep["x"].index_select(0, perm), self.memory_format).split(bs)
            ys = prep["y_t"].index_select(0, perm).split(bs)
        else:
            chunks = perm.split(bs)
            xs, ys = _Gathered(prep["x"], chunks, self.memory_format), _Gathered(prep["y_t"], chunks)
        self._epoch_perm = perm
        self._epoch_batches = (xs, ys)

        model, params, loss_fn = self._step_model, self._params, prep["spec"].fn
        flag, opt_step, scaler = self._flag, self._opt_step, self.scaler
        clip = cfg.grad_clip
        clip_fn = torch.nn.utils.clip_grad_norm_
        autocast = self._autocast()
        sched_step = self.scheduler.step if self._schedule_when == "step" else None
        run_backward, grad_one = _engine_run_backward, (prep["grad_one"],)
        go_is_set = self._go.is_set
        perf = time.perf_counter
        snapshot = self.on_snapshot_due if cfg.snapshot_interval_s > 0 else None

        self._losses = []
        self._outs = []
        self._fold_from = 0
        self._epoch_sum = torch.zeros((), device=dev)
        self._epoch_score = torch.zeros((), device=dev)
        self._epoch_paused0 = self._paused_s
        self._epoch_index = epoch
        self._last_train_loss = math.nan
        append = self._losses.append
        append_out = self._outs.append
        step0 = self.global_step
        t_progress = self._epoch_t0 + cfg.progress_interval_s
        t_snapshot = self._next_snapshot if snapshot else math.inf  # one clock for the whole run
        next_check = min(t_progress, t_snapshot)
        done = 0
        for i in range(len(xs)):
            if not go_is_set():
                self.global_step = step0 + done
                if not self._hold(lambda: self._report(done)):
                    self.global_step = step0 + done
                    self._report(done)
                    return False
            xb, yb = xs[i], ys[i]
            if autocast is None:
                out = model(xb)
                loss = loss_fn(out, yb)
            else:
                with autocast():
                    out = model(xb)
                loss = loss_fn(out.float(), yb)
            if scaler is None:
                if run_backward is not None:
                    run_backward((loss,), grad_one, False, False, (),
                                 allow_unreachable=True, accumulate_grad=True)
                else:
                    loss.backward()
                if clip:
                    clip_fn(params, clip, foreach=True)
                lossd = loss.detach()
                flag.logical_or_(lossd * 0)
                opt_step()
            else:
                scaler.scale(loss).backward()
                if clip:
                    scaler.unscale_(self.optimizer)
                    clip_fn(params, clip, foreach=True)
                lossd = loss.detach()
                flag.logical_or_(lossd * 0)
                scaler.step(self.optimizer)
                scaler.update()
            append(lossd)
            append_out(out.detach())
            if sched_step is not None:
                sched_step()
            done = i + 1
            now = perf()
            if now >= next_check:
                self.global_step = step0 + done
                if now >= t_progress:
                    self._report(done)
                    t_progress = perf() + cfg.progress_interval_s
                if snapshot is not None and now >= t_snapshot:
                    snapshot(self.model)  # as written, not the step's pool-order twin
                    # On a fixed grid, so the views get snapshot_interval_s's rate and not a little
                    # less; far behind it (a long step, a pause, a slow snapshot) the grid restarts.
                    interval = cfg.snapshot_interval_s
                    t_snapshot += interval
                    done_at = perf()
                    if t_snapshot < done_at + interval / 2:
                        t_snapshot = done_at + interval
                    self._next_snapshot = t_snapshot
                next_check = min(t_progress, t_snapshot)
            # Freed only now: a snapshot taken above reads this step's gradients as they are,
            # with no hooks in the backward pass to keep copies of them.
            for p in params:
                p.grad = None
        self.global_step = step0 + done
        return True

    # ------------------------------------------------------------ reporting
    def _fold(self, done: int) -> float:
        """Read the losses kept since the last report (the only sync point in the loop).

        Returns the mean training loss of the epoch so far; raises NonFiniteLoss if a loss went
        non-finite (naming the step and the first node whose output broke) and Diverged if one
        grew past ``DIVERGENCE_FACTOR`` times the run's first loss.
        """
        prep = self._prepared
        assert prep is not None
        losses, start = self._losses, self._fold_from
        if losses:
            chunk = torch.stack(losses)
            self._epoch_sum += torch.dot(chunk, prep["sizes"][start:start + len(losses)])
            flag, peak, first = torch.stack([self._flag.to(chunk.dtype), chunk.max(), chunk[0]]).tolist()
            if flag:
                self._fail_nonfinite(chunk, start, done)
            if self._reference_loss is None:
                self._reference_loss = first  # the loss at the run's starting weights
            limit = min(DIVERGENCE_FACTOR * max(self._reference_loss, 1e-2), DIVERGENCE_CEILING)
            if peak > limit:
                self._fail_diverged(chunk, start, done, limit)
            self._epoch_score += self._score_outputs(start, start + len(chunk))
            losses.clear()
            self._outs.clear()
            self._fold_from = start + len(chunk)
        seen = min(done * self.config.batch_size, self.n_train)
        if seen:
            self._last_train_loss = self._epoch_sum.item() / seen
        return self._last_train_loss

    def _score_outputs(self, first: int, stop: int) -> Tensor:
        """Correct count (classification) or summed squared error (regression) of the outputs
        kept for steps [first, stop) of this epoch.  The running train metric thus costs no
        kernel in the training step itself, only one batched computation per report."""
        prep = self._prepared
        assert prep is not None
        spec: LossSpec = prep["spec"]
        bs = self.config.batch_size
        out = torch.cat(self._outs).float()
        idx = self._epoch_perm[first * bs:min(stop * bs, self.n_train)]
        if self.task == "classification":
            return spec.correct(out, prep["y"].index_select(0, idx))
        return spec.squared_error(out, prep["y_t"].index_select(0, idx))

    def _report(self, done: int) -> None:
        train_loss = self._fold(done)
        now = time.perf_counter()
        seen = min(done * self.config.batch_size, self.n_train)
        t_train = max(now - self._epoch_t0 - (self._paused_s - self._epoch_paused0), 1e-9)
        run_steps = self.global_step - self._run_steps0
        run_time = max(now - self._run_t0 - self._paused_s, 1e-9)
        eta = (self.total_steps - self.global_step) * run_time / run_steps if run_steps else math.nan
        self._emit(Progress(epoch=self._epoch_index + 1, step=self.global_step,
                            total_steps=self.total_steps, train_loss=train_loss,
                            samples_per_s=seen / t_train, eta_s=eta))

    def _fail_nonfinite(self, chunk: Tensor, start: int, done: int) -> None:
        bad = (~torch.isfinite(chunk)).nonzero()
        j = int(bad[0, 0]) if len(bad) else 0
        value = float(chunk[j])
        kind = "NaN" if math.isnan(value) else "infinite"
        step_in_epoch = start + j  # 0-based
        self._opt_step.skipped(done - step_in_epoch)  # guarded steps did not count
        global_step = self.global_step - done + step_in_epoch + 1
        xb = self._epoch_batches[0][step_in_epoch]
        finding = probes.find_first_nonfinite(self.model, xb, self._autocast())
        self.global_step = global_step - 1
        epoch = self._epoch_index + 1
        raise NonFiniteLoss(failure_text.non_finite(kind, epoch, global_step, finding.describe(), finding.where),
                            epoch=epoch, step=global_step, node=finding.name, where=finding.where)

    def _fail_diverged(self, chunk: Tensor, start: int, done: int, limit: float) -> None:
        j = int((chunk > limit).nonzero()[0, 0])
        global_step = self.global_step - done + start + j + 1
        epoch = self._epoch_index + 1
        lr = float(self.optimizer.param_groups[0]["lr"])
        raise Diverged(failure_text.diverged(epoch, global_step, float(self._reference_loss), float(chunk[j]), lr),
                       epoch=epoch, step=global_step)

    # ------------------------------------------------------------ end of epoch
    def _end_epoch(self, epoch: int, prep: dict[str, Any]) -> None:
        """Metrics, schedule, history; then the EpochEnd event (policies act on it)."""
        done = len(self._epoch_batches[0])
        train_loss = self._fold(done)
        t_train = max(time.perf_counter() - self._epoch_t0 - (self._paused_s - self._epoch_paused0),
                      1e-9)
        lr = float(self.optimizer.param_groups[0]["lr"])
        metric = "accuracy" if self.task == "classification" else "mse"
        # running metric over the epoch, from the outputs the training steps computed anyway
        denom = self.n_train if self.task == "classification" else self.n_train * prep["y_t"].shape[1]
        train_metric = self._epoch_score.item() / denom
        metrics: dict[str, Any] = {"epoch": epoch + 1, "train_loss": _finite_or_none(train_loss),
                                   f"train_{metric}": _finite_or_none(train_metric)}
        if prep["xv"] is not None:
            val_loss, val_metric = self._evaluate(prep["xv"], prep["yv"], prep["yv_t"])
            metrics["val_loss"] = _finite_or_none(val_loss)
            metrics[f"val_{metric}"] = _finite_or_none(val_metric)
        else:
            val_loss = None
            metrics["val_loss"] = None
            metrics[f"val_{metric}"] = None
        metrics["lr"] = lr
        metrics["samples_per_s"] = self.n_train / t_train
        metrics["elapsed_s"] = time.perf_counter() - self._run_t0
        self.history.append(metrics)
        self.epoch = epoch + 1

        monitor = val_loss if val_loss is not None else train_loss
        if self._schedule_when == "epoch":
            self.scheduler.step()
        elif self._schedule_when == "plateau":
            self.scheduler.step(monitor)
        self._emit(EpochEnd(epoch=epoch + 1, metrics=dict(metrics)))

    def _evaluate(self, x: Tensor, y: Tensor, y_t: Tensor) -> tuple[float, float]:
        """(mean loss, accuracy or mse) of the model on one split, in eval mode, one sync."""
        prep = self._prepared
        assert prep is not None
        spec: LossSpec = prep["spec"]
        chunk = prep["eval_chunk"]
        autocast = self._autocast()
        was_training = self.model.training
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        score = torch.zeros((), device=self.device)
        count = 0
        try:
            with torch.no_grad():
                for s in range(0, len(x), chunk):
                    xc = x[s:s + chunk]
                    if autocast is None:
                        out = self._step_model(xc)
                    else:
                        with autocast():
                            out = self._step_model(xc)
                    out = out.float()
                    total, n = spec.sum_and_count(out, y_t[s:s + chunk])
                    loss_sum += total
                    count += n
                    if self.task == "classification":
                        score += spec.correct(out, y[s:s + chunk])
                    else:
                        score += spec.squared_error(out, y_t[s:s + chunk])
        finally:
            self.model.train(was_training)
        loss_total, score_total = torch.stack([loss_sum, score]).tolist()
        denom = len(x) if self.task == "classification" else y_t.numel()
        return loss_total / max(count, 1), score_total / max(denom, 1)

    def evaluate(self, split: str = "val") -> dict[str, float]:
        """Loss and accuracy (classification) or mse (regression) on "train", "val" or "test"."""
        prep = self._prepare()
        spec: LossSpec = prep["spec"]
        part = self._split(f"x_{split}", f"y_{split}")
        if part is None:
            raise TrainingError(f"The dataset has no '{split}' split to evaluate.")
        x = _in_format(part[0].to(self.device, self._input_dtype), self.memory_format)
        y = part[1].to(self.device)
        loss, score = self._evaluate(x, y, spec.prepare_targets(y))
        metric = "accuracy" if self.task == "classification" else "mse"
        return {"loss": loss, metric: score}

    # ------------------------------------------------------------ checkpoints
    @staticmethod
    def _checkpoint_paths(path: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
        """``<stem>.safetensors`` (weights), ``<stem>.json`` (run state, written last: a checkpoint
        exists once its .json does) and ``<stem>.optim.safetensors`` (optimiser/schedule tensors)."""
        p = Path(path)
        if p.suffix != ".safetensors":
            p = p.with_name(p.name + ".safetensors")
        stem = p.name[: -len(".safetensors")]
        return p, p.with_name(stem + ".json"), p.with_name(stem + ".optim.safetensors")

    def _policies(self) -> dict[str, Any]:
        """Callbacks whose state a checkpoint keeps, by class name."""
        return {type(cb).__name__: cb for cb in self.callbacks if callable(getattr(cb, "state_dict", None))}

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """A resumable checkpoint: weights to ``<path>.safetensors``; optimiser, schedule and
        scaler state to ``<path>.optim.safetensors`` (tensors) plus the run state and the
        policies' state in ``<path>.json``.  Nothing is pickled; each file is written atomically,
        the JSON last, so a checkpoint whose JSON exists is whole.  Returns the weights path."""
        from safetensors.torch import save_file

        weights, meta_path, optim_path = self._checkpoint_paths(path)
        tensors = {k: v.detach().to("cpu", copy=True).contiguous()
                   for k, v in self.model.state_dict().items()}
        atomic_write(weights, lambda t: save_file(tensors, str(t), metadata={"format": "pt"}))
        extra = {"optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                 "scaler": self.scaler.state_dict() if self.scaler is not None else None}
        extra_doc, extra_tensors = split_state(extra)
        atomic_write(optim_path, lambda t: save_file(extra_tensors, str(t)))
        steps = [st["step"] for st in self.optimizer.state.values() if "step" in st]
        meta = {
            "format": "layerlab-checkpoint", "version": CHECKPOINT_VERSION,
            "epoch": self.epoch, "global_step": self.global_step,
            "optimizer_steps": int(float(steps[0])) if steps else 0,
            "weights": weights.name, "optimizer_state": optim_path.name, "optimizer_doc": extra_doc,
            "config": self.config.to_dict(), "history": self.history,
            "policies": {name: cb.state_dict() for name, cb in self._policies().items()},
        }
        atomic_write(meta_path, lambda t: t.write_text(json.dumps(meta, indent=2)))
        return weights

    def load_checkpoint(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Restore weights, optimiser/schedule state, epoch, step, history and the policies' state;
        returns the metadata."""
        from safetensors.torch import load_file

        weights, meta_path, optim_path = self._checkpoint_paths(path)
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise TrainingError(f"The checkpoint file '{meta_path}' is missing.") from None
        except (OSError, ValueError) as e:
            raise TrainingError(f"The checkpoint file '{meta_path}' cannot be read: {e}.") from None
        if not isinstance(meta, dict) or meta.get("format") != "layerlab-checkpoint":
            raise TrainingError(f"'{meta_path}' is not a LayerLab checkpoint.")
        if meta.get("version") != CHECKPOINT_VERSION:
            raise TrainingError(f"The checkpoint '{meta_path}' has version {meta.get('version')!r}; "
                                f"this LayerLab reads version {CHECKPOINT_VERSION}.")
        try:
            state = load_file(str(weights), device=str(self.device))
        except Exception as e:
            raise TrainingError(f"The checkpoint weights '{weights}' cannot be read: {e}") from None
        result = self.model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise TrainingError(
                "The checkpoint does not fit this model "
                f"(missing: {', '.join(result.missing_keys) or 'none'}; "
                f"unexpected: {', '.join(result.unexpected_keys) or 'none'}).")
        if optim_path.exists():
            try:
                extra = join_state(meta.get("optimizer_doc"), load_file(str(optim_path), device=str(self.device)))
            except Exception as e:
                raise TrainingError(f"The checkpoint's optimiser state '{optim_path}' cannot be read: {e}") from None
            self.optimizer.load_state_dict(extra["optimizer"])
            if self.scheduler is not None and extra.get("scheduler") is not None:
                self.scheduler.load_state_dict(extra["scheduler"])
            if self.scaler is not None and extra.get("scaler") is not None:
                self.scaler.load_state_dict(extra["scaler"])
        self.epoch = int(meta.get("epoch", 0))
        self.global_step = int(meta.get("global_step", 0))
        self.history = list(meta.get("history", []))
        policies = self._policies()
        for name, state in (meta.get("policies") or {}).items():
            if name in policies and isinstance(state, dict):
                policies[name].load_state_dict(state)
        return meta
