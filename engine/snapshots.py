"""What the live views draw, collected headless as numpy arrays.

Vocabulary (used everywhere): a **snapshot** is the live views' payload for one moment of a
run (this module); a **checkpoint** is a per-epoch copy of the weights (the timeline, and the
resumable files of ``Trainer.save_checkpoint``); a **frame** is one update of the rendered views
in the GUI.  A **raw snapshot** is a snapshot before its forward passes: the weights and the
gradient norms only, which a training process ships so that another process can finish it.

A ``SnapshotCollector`` is built once per run around the model and the data.  Each
``collect()`` reads the model *as it is now* and returns a ``Snapshot``, composed from the probes
(``engine.probes``):

- per layer with weights: the main weight (shrunk for display), a histogram of it on a range
  fixed at the start of the run (so histograms over time line up), its mean magnitude and the
  gradient norm of all its parameters;
- per graph node: its output on a fixed *probe batch* (the first validation samples), and for
  ReLU nodes the fraction of units that are zero for every probe sample ("dead");
- for 2-feature classification data, the class probabilities on a grid over the input plane
  (the decision boundary); for 1-feature regression, the prediction along a line.

Everything is computed on the model's device and copied to the host in one go per kind, so a
snapshot costs one forward pass over [probe batch; grid or curve] and a handful of transfers.
The trainer calls its snapshot hook only when one is due, so nothing is copied off the device
between snapshots.  Where the forward pass would take the training core's own time (a CPU run),
the training process sends ``raw()`` snapshots instead, and another process calls
``from_raw`` on a replica of the model that has ``adopt``-ed the trainer's ``ProbeInfo``.

``ProbeInfo`` holds what does not change during a run (layer list, grid extent, the data points
to draw), sent once.  Nothing here imports Qt.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from engine.probes import activations as act_probe
from engine.probes import dead_relu, decision_grid, fitted_curve
from engine.probes import weights as weight_probe
from engine.probes.weights import HIST_BINS, MAX_FILTERS

# Display caps: what a view can show usefully, and what crosses a process boundary 30 times a second.
MAX_PROBE_ROWS = 64  # probe samples kept for vector activations
MAX_PROBE_IMAGES = 4  # probe samples kept for feature-map activations
MAX_PROBE_IMAGE_BATCH = 32  # probe batch for image / sequence inputs (dead units are judged on these)
MAX_UNITS = 256  # units of a vector activation kept
MAX_POINTS = 2000  # train / val points drawn under a decision boundary
ACTIVATION_DTYPE = torch.float16  # activations are only drawn: float16 halves what crosses to the GUI


#: ops that pass the input's values on unchanged in number (shape changes, dropout)
_PASS_THROUGH_MODULES = (nn.Flatten, nn.Unflatten, nn.Dropout, nn.Identity)
_PASS_THROUGH_CALLS = {"flatten", "reshape", "view", "contiguous", "squeeze", "unsqueeze", "dropout"}


def reads_the_input(model: nn.Module, name: str, first: bool) -> bool:
    """Whether layer ``name`` reads the model's input directly (through reshapes only).  For a
    model that is not a torch.fx graph: whether it is the first layer with weights (``first``)."""
    if not isinstance(model, fx.GraphModule):
        return first
    node = next((n for n in model.graph.nodes if n.op == "call_module" and n.target == name), None)
    modules = dict(model.named_modules())
    while node is not None and node.args and isinstance(node.args[0], fx.Node):
        node = node.args[0]
        if node.op == "placeholder":
            return True
        passes = (isinstance(modules.get(node.target), _PASS_THROUGH_MODULES) if node.op == "call_module"
                  else getattr(node.target, "__name__", str(node.target)) in _PASS_THROUGH_CALLS)
        if not passes:
            return False
    return False


@dataclass(frozen=True)
class LayerInfo:
    name: str  # fx / submodule name == the graph node's name
    kind: str  # "linear" | "conv" | "other"
    weight_shape: tuple[int, ...]
    n_params: int
    hist_range: tuple[float, float]
    #: (C, H, W) when this Linear reads a flattened image: its units are drawn as image templates
    image_shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ProbeInfo:
    """The parts of a run's views that stay fixed: sent once at the start."""

    task: str
    input_shape: tuple[int, ...]
    n_outputs: int
    class_names: tuple[str, ...]
    layers: tuple[LayerInfo, ...]
    nodes: tuple[str, ...]  # fx node names whose activations snapshots carry, in graph order
    relu_nodes: tuple[str, ...]
    node_ids: dict[str, str]  # fx name -> graph node id (empty when unknown)
    hist_bins: int
    probe_x: np.ndarray  # the probe inputs actually shown (first rows)
    probe_y: np.ndarray
    grid_extent: tuple[float, float, float, float] | None = None  # x0, x1, y0, y1 of the boundary grid
    grid_size: int = 0
    curve_x: np.ndarray | None = None  # 1-D regression: the x positions of the fitted curve
    train_xy: tuple[np.ndarray, np.ndarray] | None = None  # points drawn under the boundary / curve
    val_xy: tuple[np.ndarray, np.ndarray] | None = None
    #: per input feature (offset, scale): the data's own units are x * scale + offset.  The model
    #: sees standardised inputs; the boundary and the fitted curve are drawn in the data's units
    #: (the sine's x runs over [-2pi, 2pi], not +-1.7).  None: the inputs are the data's as they are.
    input_units: tuple[tuple[float, float], ...] | None = None

    def in_data_units(self, x: np.ndarray) -> np.ndarray:
        """Model inputs ``x`` (standardised; its last axis the features) in the data's units."""
        if self.input_units is None:
            return x
        offset, scale = np.asarray(self.input_units, dtype=np.float64).T
        return np.asarray(x, dtype=np.float64) * scale + offset

    def layer(self, name: str) -> LayerInfo | None:
        return next((lay for lay in self.layers if lay.name == name), None)


@dataclass
class Snapshot:
    """The model at one moment, as numpy arrays (see the module docstring)."""

    step: int
    epoch: float  # fractional: 2.5 = half-way through the third epoch
    samples: int
    elapsed_s: float
    train_loss: float | None = None
    lr: float | None = None
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    weight_hist: dict[str, np.ndarray] = field(default_factory=dict)
    weight_mag: dict[str, float] = field(default_factory=dict)
    grad_norms: dict[str, float] = field(default_factory=dict)
    activations: dict[str, np.ndarray] = field(default_factory=dict)
    dead_relu: dict[str, float] = field(default_factory=dict)
    boundary: np.ndarray | None = None  # (G, G, C) class probabilities, row = y, column = x
    curve: np.ndarray | None = None  # (n, T) predictions at ProbeInfo.curve_x
    collect_ms: float = 0.0
    pinned: bool = False  # taken at a pause or a Step: a busy GUI may drop others, never this one

    def nbytes(self) -> int:
        arrays = [*self.weights.values(), *self.weight_hist.values(), *self.activations.values()]
        arrays += [a for a in (self.boundary, self.curve) if a is not None]
        return int(sum(a.nbytes for a in arrays))


@dataclass
class RawSnapshot:
    """A snapshot before its forward passes, as a training process ships it: the scalars, the
    floating-point state as one flat float32 array (``pack_state``) and the gradient norms per
    layer (which only the training process can see).  A few kilobytes for the models people
    train live on a CPU, and a copy of microseconds instead of the snapshot's forward passes."""

    step: int
    epoch: float
    samples: int
    elapsed_s: float
    train_loss: float | None
    lr: float | None
    state: np.ndarray
    grad_norms: dict[str, float] = field(default_factory=dict)
    pinned: bool = False


def pack_state(tensors: list[torch.Tensor]) -> np.ndarray:
    """One flat float32 host copy of ``tensors`` (one kernel and one transfer)."""
    if not tensors:
        return np.zeros(0, np.float32)
    return torch.cat([t.detach().reshape(-1).float() for t in tensors]).cpu().numpy()


def unpack_state(flat: np.ndarray, tensors: list[torch.Tensor]) -> None:
    """Copy ``flat`` (from ``pack_state``) back into ``tensors``, in place."""
    total = sum(t.numel() for t in tensors)
    if flat.size != total:
        raise ValueError(f"a raw snapshot of {flat.size} values does not fit a model with {total}")
    src = torch.from_numpy(np.ascontiguousarray(flat, np.float32))
    with torch.no_grad():
        for t, part in zip(tensors, src.split([t.numel() for t in tensors])):
            t.copy_(part.view(t.shape))


def _subsample(x: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    if len(x) <= n:
        return x
    g = torch.Generator().manual_seed(seed)
    return x[torch.randperm(len(x), generator=g)[:n].to(x.device)]


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


class SnapshotCollector:
    """Collects ``Snapshot``s of ``model`` (an fx GraphModule from ``engine.compile``) on ``dataset``.

    ``node_names`` maps graph node ids to fx names (``CompiledModel.node_names``), so the GUI can
    find a clicked node's activations.  ``probe_size`` samples of the validation split (the
    training split if there is no validation data) form the fixed probe batch.
    """

    def __init__(self, model: nn.Module, dataset: Any, node_names: dict[str, str] | None = None, *,
                 probe_size: int = 64, grid_size: int = 28, curve_points: int = 200,
                 device: torch.device | str | None = None,
                 hist_ranges: dict[str, tuple[float, float]] | None = None):
        self.model = model
        self.device = torch.device(device) if device is not None else _model_device(model)
        self.task = dataset.task
        self.input_shape = tuple(dataset.input_shape)
        self.n_outputs = int(dataset.n_outputs)
        self.class_names = tuple(getattr(dataset, "class_names", ()) or ())
        self.node_ids = {v: k for k, v in (node_names or {}).items()}
        self.is_graph = isinstance(model, fx.GraphModule)

        if len(self.input_shape) >= 2:  # images / sequences: conv and recurrent forward passes cost more per sample
            probe_size = min(probe_size, MAX_PROBE_IMAGE_BATCH)
        x_src, y_src = (dataset.x_val, dataset.y_val) if len(dataset.x_val) else (dataset.x_train, dataset.y_train)
        self.probe_x = x_src[:probe_size].to(self.device)
        self.probe_y = y_src[:probe_size]

        # layers with weights, in graph order
        modules = dict(model.named_modules())
        order = act_probe.node_order(model)
        image_in = self.input_shape if len(self.input_shape) == 3 else None
        n_in = math.prod(self.input_shape)
        self._layers: list[tuple[str, nn.Module, torch.Tensor, list[torch.Tensor]]] = []
        infos = []
        for name in order:
            mod = modules.get(name)
            if mod is None:
                continue
            w = weight_probe.main_weight(mod)
            if w is None:
                continue
            params = [p for p in mod.parameters() if p.requires_grad]
            self._layers.append((name, mod, w, params))
            if hist_ranges and name in hist_ranges:  # a run that continues an earlier one's histograms
                lo, hi = (float(v) for v in hist_ranges[name])
            else:
                lo, hi = weight_probe.fixed_hist_range(w)
            kind = weight_probe.layer_kind(mod, w)
            # a Linear's units drawn as image templates: only where its inputs are the image's pixels
            # (a Linear after 64 LSTM units had its units drawn as 8x8 "images" of the digits)
            templates = (image_in if isinstance(mod, nn.Linear) and w.shape[1] == n_in
                         and reads_the_input(model, name, first=not self._layers[:-1]) else None)
            infos.append(LayerInfo(name, kind, tuple(w.shape), sum(p.numel() for p in params), (lo, hi), templates))
        self._layer_infos = tuple(infos)
        self._all_params = [p for _, _, _, ps in self._layers for p in ps]
        self._param_owner = [i for i, (_, _, _, ps) in enumerate(self._layers) for _ in ps]
        # the floating-point state (parameters, running statistics) in state_dict order: what a raw snapshot carries
        self._state_tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
        self.state_size = sum(t.numel() for t in self._state_tensors)
        # flat views of an all-float32, contiguous state stay valid: the optimiser updates in place
        self._flat_views = ([t.detach().view(-1) for t in self._state_tensors]
                            if self._state_tensors and all(t.dtype == torch.float32 and t.is_contiguous()
                                                           for t in self._state_tensors) else None)
        self._tap_handles: dict[int, Any] = {}
        self._tapped: dict[int, torch.Tensor] = {}
        #: whether the last gradient norms came from gradients still in ``p.grad`` (the trainer's
        #: snapshot hook); if not, ``arm_grad_tap`` has the next backward pass record them
        self.saw_live_grads = False
        self.grad_scaler = None  # a GradScaler whose scale divides tapped norms (fp16 AMP)

        # nodes whose activations we record (every call_module / call_function node with a tensor output)
        self._nodes = tuple(n for n in order if n in modules or act_probe.is_function_node(model, n))
        self._relu_nodes = tuple(n for n in self._nodes if dead_relu.is_relu(model, modules, n))

        grid_extent, curve_x, train_xy, val_xy = None, None, None, None
        self._grid = self._curve = None
        self.grid_size = 0
        if self.input_shape == (2,) and self.task == "classification":
            grid_extent = decision_grid.padded_extent(torch.cat([dataset.x_train, dataset.x_val]))
            self._grid = decision_grid.grid_points(grid_extent, grid_size).to(self.device)
            self.grid_size = grid_size
        elif self.input_shape == (1,) and self.task == "regression":
            cx = fitted_curve.curve_points(torch.cat([dataset.x_train, dataset.x_val]).float().cpu(), curve_points)
            self._curve = cx.to(self.device)
            curve_x = cx[:, 0].numpy()
        if self._grid is not None or self._curve is not None:
            tr = _subsample(torch.arange(len(dataset.x_train)), MAX_POINTS)
            va = _subsample(torch.arange(len(dataset.x_val)), MAX_POINTS // 2)
            train_xy = (dataset.x_train[tr].cpu().numpy(), dataset.y_train[tr].cpu().numpy())
            val_xy = (dataset.x_val[va].cpu().numpy(), dataset.y_val[va].cpu().numpy())

        # one forward pass serves the activations and the boundary / curve: [probe batch; grid or curve]
        extra = self._grid if self._grid is not None else self._curve
        self._batch = self.probe_x if extra is None else torch.cat([self.probe_x, extra.to(self.probe_x.dtype)])
        self._tap = None
        if self.is_graph and self._nodes:
            try:
                self._tap = act_probe.tap_module(model, self._nodes)
            except Exception:  # an exotic graph fx cannot copy: fall back to module hooks
                self._tap = None

        units = None
        norm = getattr(dataset, "normalization", None)
        if norm is not None and (self._grid is not None or self._curve is not None):
            units = norm.units(self.input_shape[0])
        shown = self.probe_x[:MAX_PROBE_ROWS].cpu().numpy()
        self.info = ProbeInfo(
            task=self.task, input_shape=self.input_shape, n_outputs=self.n_outputs,
            class_names=self.class_names, layers=self._layer_infos, nodes=self._nodes,
            relu_nodes=self._relu_nodes, node_ids=dict(self.node_ids), hist_bins=HIST_BINS,
            probe_x=shown, probe_y=self.probe_y[:MAX_PROBE_ROWS].cpu().numpy(),
            grid_extent=grid_extent, grid_size=self.grid_size, curve_x=curve_x,
            train_xy=train_xy, val_xy=val_xy, input_units=units)

    # ------------------------------------------------------------------ gradient tap
    def arm_grad_tap(self) -> None:
        """Record each parameter's gradient norm during the next backward pass, once.

        The trainer's snapshot hook runs while a step's gradients are still in ``p.grad``, so its
        snapshots need no tap.  Snapshots taken at other moments (the start of a run, a pause,
        after a Step) find the gradients freed: there, this tap has the *next* backward pass leave
        one norm per parameter (hooks that remove themselves: no cost on the steps after), and
        the next ``collect`` reads them.  Hooks are armed only then: armed after every snapshot
        of a run, they cost a moons MLP about 2 % of its speed.
        """
        if self._tap_handles:
            return
        self._tapped = {}
        for j, p in enumerate(self._all_params):
            def hook(t: torch.Tensor, j: int = j) -> None:
                if t.grad is not None:
                    self._tapped[j] = torch.linalg.vector_norm(t.grad.detach().float())
                h = self._tap_handles.pop(j, None)
                if h is not None:
                    h.remove()
            self._tap_handles[j] = p.register_post_accumulate_grad_hook(hook)

    # ------------------------------------------------------------------ collection
    @torch.no_grad()
    def collect(self, *, step: int = 0, epoch: float = 0.0, samples: int = 0, elapsed_s: float = 0.0,
                train_loss: float | None = None, lr: float | None = None, grads: bool = True,
                activations: bool = True) -> Snapshot:
        t0 = time.perf_counter()
        snap = Snapshot(step=int(step), epoch=float(epoch), samples=int(samples), elapsed_s=float(elapsed_s),
                        train_loss=None if train_loss is None else float(train_loss),
                        lr=None if lr is None else float(lr))
        self._collect_weights(snap, grads)
        was_training = self.model.training
        self.model.eval()
        try:
            self._forward(snap, activations)
        finally:
            self.model.train(was_training)
        snap.collect_ms = (time.perf_counter() - t0) * 1e3
        return snap

    # ------------------------------------------------------------------ raw snapshots: finish them elsewhere
    def raw(self, *, step: int = 0, epoch: float = 0.0, samples: int = 0, elapsed_s: float = 0.0,
            train_loss: float | None = None, lr: float | None = None) -> RawSnapshot:
        """The cheap half of a snapshot, for a trainer that lets another process do the rest:
        a flat float32 copy of the model's floating-point state and the gradient norms (which
        only the training process can see).  ``SnapshotCollector.from_raw`` on a replica of
        the model turns it into the full ``Snapshot``."""
        with torch.no_grad():
            grad_norms = self._grad_norms()
            if self._flat_views is not None:  # the common case: one kernel, no per-tensor conversions
                flat = torch.cat(self._flat_views).cpu().numpy()
            else:
                flat = pack_state(self._state_tensors)
        return RawSnapshot(step=int(step), epoch=float(epoch), samples=int(samples), elapsed_s=float(elapsed_s),
                           train_loss=None if train_loss is None else float(train_loss),
                           lr=None if lr is None else float(lr), state=flat, grad_norms=grad_norms)

    def adopt(self, info: ProbeInfo) -> None:
        """Draw like the collector that sent ``info``: a replica built later, from other weights,
        would otherwise fix other histogram ranges, and histograms over time must line up."""
        if [lay.name for lay in info.layers] != [lay.name for lay in self._layer_infos]:
            raise ValueError("these snapshots come from a model with other layers")
        self._layer_infos = tuple(info.layers)
        self.info = dataclasses.replace(self.info, layers=self._layer_infos)

    def from_raw(self, raw: RawSnapshot) -> Snapshot:
        """The full snapshot of ``raw``: its weights are loaded into this collector's model (a
        replica of the trainer's, built from the same graph, that has ``adopt``-ed the trainer
        collector's ``info``) and everything else computed here."""
        t0 = time.perf_counter()
        unpack_state(raw.state, self._state_tensors)
        snap = self.collect(step=raw.step, epoch=raw.epoch, samples=raw.samples, elapsed_s=raw.elapsed_s,
                            train_loss=raw.train_loss, lr=raw.lr, grads=False)
        snap.grad_norms = dict(raw.grad_norms)
        snap.pinned = raw.pinned
        snap.collect_ms = (time.perf_counter() - t0) * 1e3
        return snap

    def _collect_weights(self, snap: Snapshot, grads: bool) -> None:
        if not self._layers:
            return
        shown, hists, mags = [], [], []
        for (name, mod, w, params), info in zip(self._layers, self._layer_infos):
            shown.append(weight_probe.display_weight(w.detach(), info.kind, info.image_shape))
            hists.append(weight_probe.histogram(w, *info.hist_range))
            mags.append(weight_probe.mean_magnitude(w))
        # one transfer per kind instead of one per layer
        hist_np = torch.stack(hists).cpu().numpy()
        mag_np = torch.stack(mags).cpu().numpy()
        shown_np = [t.cpu().numpy() for t in shown]
        for i, (name, *_rest) in enumerate(self._layers):
            snap.weights[name] = shown_np[i]
            snap.weight_hist[name] = hist_np[i]
            snap.weight_mag[name] = float(mag_np[i])
        if grads:
            snap.grad_norms = self._grad_norms()

    def _grad_norms(self) -> dict[str, float]:
        """Per layer: the norm of all its parameters' gradients - present ones, else the tapped ones."""
        owners: list[int] = []
        norms: list[torch.Tensor] = []
        with_grad = [(i, p.grad) for i, p in zip(self._param_owner, self._all_params) if p.grad is not None]
        self.saw_live_grads = bool(with_grad)
        if with_grad:
            owners = [i for i, _ in with_grad]
            norms = list(torch._foreach_norm([g.float() for _, g in with_grad]))
            self._tapped = {}  # older than these: never shown by a later snapshot
        elif self._tapped:
            tapped, self._tapped = self._tapped, {}
            owners = [self._param_owner[j] for j in sorted(tapped)]
            norms = [tapped[j] for j in sorted(tapped)]
            scale = getattr(self.grad_scaler, "_scale", None)
            if scale is not None:  # fp16 AMP: gradients are multiplied by the loss scale
                norms = [n / scale.reshape(()) for n in norms]
        if not norms:
            return {}
        # one stack and one transfer; the few per-layer sums are cheaper in Python than as kernels
        sq: dict[int, float] = {}
        for i, v in zip(owners, torch.stack(norms).tolist()):
            sq[i] = sq.get(i, 0.0) + v * v
        return {self._layers[i][0]: math.sqrt(total) for i, total in sorted(sq.items())}

    def _forward(self, snap: Snapshot, activations: bool) -> None:
        """One forward pass over [probe batch; boundary grid or curve]: activations, boundary, curve."""
        n_probe = len(self.probe_x)
        extra = self._grid if self._grid is not None else self._curve
        if extra is None and not (activations and self._nodes):
            return
        batch = self._batch
        outs: dict[str, torch.Tensor] = {}
        if activations and self._nodes and self._tap is not None:
            out, outs = self._tap(batch)
        elif activations and self._nodes:
            out = act_probe.forward_with_hooks(self.model, self._nodes, batch, outs)
        else:
            out = self.model(batch[n_probe:])
            n_probe = 0
        if not isinstance(out, torch.Tensor):
            out = None
        transfers: dict[str, torch.Tensor] = {}
        if out is not None and self._grid is not None:
            probs = decision_grid.probabilities(out[n_probe:].float())
            transfers["boundary"] = probs.reshape(self.grid_size, self.grid_size, -1)
        elif out is not None and self._curve is not None:
            transfers["curve"] = out[n_probe:].float()
        dead: list[torch.Tensor] = []
        dead_names: list[str] = []
        for name in self._nodes:
            o = outs.get(name)
            if not isinstance(o, torch.Tensor) or o.dim() == 0:
                continue
            o = o.detach()[:n_probe]
            if name in self._relu_nodes and o.dim() >= 2:
                dead.append(dead_relu.dead_fraction(o))
                dead_names.append(name)
            if o.dim() <= 2:
                o = o.reshape(o.shape[0], -1)[:MAX_PROBE_ROWS, :MAX_UNITS]
            else:
                o = o[:MAX_PROBE_IMAGES, :MAX_FILTERS]
            transfers["act:" + name] = o.to(ACTIVATION_DTYPE)  # for display: half the bytes to ship
        if dead:
            transfers["dead"] = torch.stack(dead)
        host = {k: v.cpu().numpy() for k, v in transfers.items()}
        snap.boundary = host.pop("boundary", None)
        snap.curve = host.pop("curve", None)
        if "dead" in host:
            snap.dead_relu = {n: float(v) for n, v in zip(dead_names, host.pop("dead"))}
        snap.activations = {k[4:]: v for k, v in host.items()}


def state_dict_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``model``'s weights."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
