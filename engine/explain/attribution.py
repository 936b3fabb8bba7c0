"""Attribution maps through Captum: a thin adapter that picks sensible settings for LayerLab's data.

    result = attribute(ready, x, target=3, method="integrated_gradients", baseline="mean")
    result.values          # numpy, the shape of x: how much each input value pushed the target up
    result.delta           # completeness delta (IG, Gradient SHAP), relative_delta beside it

Every method in ``METHODS`` has an options schema (``Method.schema()``, for a form), a
``supports(model, dataset)`` check that says in a sentence why not, and runs with a ``cancel``
callable and a ``progress`` callback (the long ones report per batch of model calls).  Captum is
imported inside the functions: ``import captum.attr`` costs most of a second.

What the adapter decides, and why:
- SmoothGrad's noise is a fraction of the data's range (default 0.15), not Captum's sigma = 1,
  which drowns a [0, 1] image.
- Integrated Gradients uses Gauss-Legendre steps (the trapezoid rule is not exact) and returns the
  completeness delta; baselines: zeros, the mean training input, or the input blurred.
- Grad-CAM on a merge node (a ``call_function``) hooks a tap (``engine.explain.taps``).
- DeepLift is not offered: Captum's rule is wrong on MaxPool (captum issue #1276).
- Stochastic methods take a ``seed`` and leave the global RNG as it was.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from engine.explain.base import NO_JOB, Job, NotApplicable, Subject, as_numpy, class_probabilities, eval_mode, subject
from engine.explain.taps import layer_names, spatial_layer, spatial_layers


# ----------------------------------------------------------------------------- options
@dataclass(frozen=True)
class Option:
    """One setting of a method: what the GUI builds a field from and the CLI parses."""

    name: str
    kind: str  # "int" | "float" | "bool" | "choice"
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple = ()

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "default": self.default, "help": self.help,
                "min": self.min, "max": self.max, "choices": list(self.choices)}

    def coerce(self, value: Any, method: str) -> Any:
        where = f"The option '{self.name}' of {method}"  # not "Integrated Gradients's option"
        try:
            if self.kind == "bool":
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                        raise ValueError
                    return low in ("true", "1", "yes", "on")
                return bool(value)
            if self.kind == "choice":
                if value not in self.choices:
                    raise ValueError
                return value
            if isinstance(value, bool):  # True is an int to Python, not to a person
                raise ValueError
            if self.kind == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                v: float = int(value) if not isinstance(value, str) else int(value.strip())
            else:
                v = float(value)
                if not math.isfinite(v):
                    raise ValueError
        except (TypeError, ValueError):
            allowed = (f"one of {', '.join(map(str, self.choices))}" if self.kind == "choice"
                       else {"bool": "true or false", "int": "a whole number", "float": "a number"}[self.kind])
            raise NotApplicable(f"{where} must be {allowed}, got {value!r}.") from None
        if (self.min is not None and v < self.min) or (self.max is not None and v > self.max):
            raise NotApplicable(f"{where} must lie in {self.min:g}..{self.max:g}, got {v:g}.")
        return v


@dataclass(frozen=True)
class Support:
    """Whether a method fits a model; ``reason`` is the sentence shown when it does not."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


YES = Support(True)


# ----------------------------------------------------------------------------- the result
@dataclass
class Attribution:
    """An attribution map for one sample (``values`` has the sample's shape) or a batch."""

    method: str
    target: int | list[int]
    options: dict
    layer: str | None = None  # Grad-CAM's node
    delta: np.ndarray | float | None = None  # completeness: sum(values) - (F(x) - F(baseline))
    relative_delta: np.ndarray | float | None = None  # |delta| / |F(x) - F(baseline)|
    feature_names: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    # the maps as the method returned them; numpy on first use (a conversion costs as much as the
    # adapter's whole bookkeeping, so a map nobody reads is never converted)
    raw_values: Any = field(default=None, repr=False)
    raw_layer_map: Any = field(default=None, repr=False)

    @property
    def values(self) -> np.ndarray:
        """The map, the shape of the input: per input value, its share of the target's output."""
        if not isinstance(self.raw_values, np.ndarray):
            self.raw_values = as_numpy(self.raw_values)
        return self.raw_values

    @property
    def layer_map(self) -> np.ndarray | None:
        """Grad-CAM at the layer's own resolution, (h, w) per sample; None for other methods."""
        if self.raw_layer_map is not None and not isinstance(self.raw_layer_map, np.ndarray):
            self.raw_layer_map = np.squeeze(as_numpy(self.raw_layer_map), axis=-3)  # Captum's channel axis of 1
        return self.raw_layer_map

    def to_json(self, include_arrays: bool = True) -> dict:
        def num(v):
            if v is None:
                return None
            a = np.asarray(v, dtype=np.float64)
            return a.tolist() if a.ndim else float(a)

        out = {"method": self.method, "target": self.target, "options": self.options, "layer": self.layer,
               "shape": list(self.values.shape), "delta": num(self.delta), "relative_delta": num(self.relative_delta),
               "feature_names": self.feature_names, "class_names": self.class_names}
        if include_arrays:
            out["values"] = self.values.astype(np.float64).tolist()
            if self.layer_map is not None:
                out["layer_map"] = self.layer_map.astype(np.float64).tolist()
        return out

    def by_feature(self) -> list[dict]:
        """Tabular data: one signed value per named feature, in input order (a single sample)."""
        v = self.values.reshape(-1)
        names = self.feature_names or [f"x{i}" for i in range(v.size)]
        return [{"name": n, "value": float(a)} for n, a in zip(names, v)]


# ----------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class Method:
    name: str
    title: str
    description: str
    options: tuple[Option, ...]
    run: Callable  # (ctx: _Run) -> (values tensor, extras dict)
    check: Callable[[Subject], str | None]  # None: supported, else the sentence why not
    needs_layer: bool = False
    long: bool = False  # worth a progress bar and a Cancel button

    def __post_init__(self) -> None:
        object.__setattr__(self, "_defaults", self.defaults())

    def schema(self) -> list[dict]:
        return [o.to_json() for o in self.options]

    def defaults(self) -> dict:
        return {o.name: o.default for o in self.options}

    def unsupported_reason(self, subj: Subject) -> str | None:
        """``check``'s answer, remembered per model (a Subject's memo)."""
        key = ("check", self.name)
        memo = subj.memo
        if key not in memo:
            memo[key] = self.check(subj)
        return memo[key]

    def supports(self, model, dataset=None) -> Support:
        reason = self.check(subject(model, dataset))
        return YES if reason is None else Support(False, reason)

    def resolve(self, options: dict) -> dict:
        if not options:
            return dict(self._defaults)
        known = {o.name: o for o in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            have = ", ".join(known) or "none"
            raise NotApplicable(f"{self.title} has no option '{unknown[0]}'; its options are: {have}.")
        return {name: (opt.coerce(options[name], self.title) if name in options else opt.default)
                for name, opt in known.items()}


@dataclass(slots=True)
class _Run:
    subj: Subject
    x: torch.Tensor  # (N, *shape) on the model's device
    target: int | list[int]
    opts: dict
    layer: str | None
    job: Job

    @property
    def forward(self) -> Callable:
        return self.subj.module

    @contextlib.contextmanager
    def seeded(self, numpy_too: bool = False):
        """The method's ``seed`` for the block; the global RNGs are left as they were.

        Only the generators in use are seeded and restored: ``torch.manual_seed`` and ``fork_rng``
        visit every device type and cost ~1 ms, as much as a whole saliency map.  numpy's global
        RNG only with ``numpy_too`` (Captum draws Gradient SHAP's points on the path with it)."""
        seed = int(self.opts.get("seed", 0))
        dev = self.x.device
        cpu_state = torch.get_rng_state()
        torch.default_generator.manual_seed(seed)
        cuda = None
        if dev.type == "cuda":
            index = dev.index if dev.index is not None else torch.cuda.current_device()
            cuda = (index, torch.cuda.get_rng_state(index))
            torch.cuda.default_generators[index].manual_seed(seed)
        np_state = None
        if numpy_too:
            np_state = np.random.get_state()
            np.random.seed(seed)
        try:
            yield
        finally:
            torch.set_rng_state(cpu_state)
            if cuda is not None:
                torch.cuda.set_rng_state(cuda[1], cuda[0])
            if np_state is not None:
                np.random.set_state(np_state)

    def data_range(self) -> float:
        lo, hi = self.subj.data_range(self.x)
        return hi - lo

    def baseline(self, kind: str) -> torch.Tensor:
        if kind == "zeros":
            return torch.zeros_like(self.x)
        if kind == "mean":
            mean = self.subj.train_mean()
            if mean is None:
                raise NotApplicable("The 'mean' baseline needs the training split, and no dataset is loaded; "
                                    "use the 'zeros' baseline.")
            return mean.to(self.x.device, self.x.dtype).unsqueeze(0).expand_as(self.x).contiguous()
        if kind == "blurred":
            if self.x.dim() != 4:
                raise NotApplicable("The 'blurred' baseline is for images; use 'zeros' or 'mean' for this data.")
            return gaussian_blur(self.x, float(self.opts.get("blur_sigma", 4.0)))
        raise NotApplicable(f"Unknown baseline {kind!r}; use zeros, mean or blurred.")

    def output_forward(self) -> Callable:
        """The model, or its class probabilities when the method's ``output`` option asks for them."""
        if self.opts.get("output") == "probability" and self.subj.task == "classification":
            module = self.subj.module
            return lambda inp: class_probabilities(module(inp))
        return self.subj.module


def _relative(values: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    total = values.reshape(values.shape[0], -1).sum(1)
    change = (total - delta).abs()  # = |F(x) - F(baseline)|
    return delta.abs() / change.clamp_min(1e-12)


def _saliency(r: _Run):
    from captum.attr import Saliency

    return Saliency(r.forward).attribute(r.x, target=r.target, abs=r.opts["abs"]), {}


def _input_x_gradient(r: _Run):
    from captum.attr import InputXGradient

    return InputXGradient(r.forward).attribute(r.x, target=r.target), {}


def _integrated_gradients(r: _Run):
    from captum.attr import IntegratedGradients

    n, steps, chunk = r.x.shape[0], r.opts["n_steps"], max(r.opts["chunk"], r.x.shape[0])
    calls = math.ceil(steps / max(1, chunk // n)) + 2  # the step batches, then F(x) and F(baseline)
    ig = IntegratedGradients(r.job.counted(r.forward, calls))
    values, delta = ig.attribute(r.x, baselines=r.baseline(r.opts["baseline"]), target=r.target, n_steps=steps,
                                 method="gausslegendre", internal_batch_size=chunk, return_convergence_delta=True)
    return values, {"delta": delta, "relative_delta": _relative(values, delta)}


def _smoothgrad(r: _Run):
    from captum.attr import NoiseTunnel, Saliency

    samples, chunk = r.opts["nt_samples"], min(r.opts["chunk"], r.opts["nt_samples"])
    sal = Saliency(r.job.counted(r.forward, math.ceil(samples / chunk)))
    with r.seeded():
        values = NoiseTunnel(sal).attribute(r.x, nt_type=r.opts["nt_type"], nt_samples=samples,
                                            nt_samples_batch_size=chunk, stdevs=r.opts["noise"] * r.data_range(),
                                            target=r.target, abs=True)
    return values, {}


def _gradcam(r: _Run):
    from captum.attr import LayerAttribution, LayerGradCam

    layer = spatial_layer(r.subj, r.x, r.layer, "Grad-CAM")
    cam = LayerGradCam(layer.forward_module, layer.module).attribute(r.x, target=r.target,
                                                                     relu_attributions=r.opts["relu"])
    up = LayerAttribution.interpolate(cam, r.x.shape[2:], r.opts["interpolate"])
    if up.shape[1] != r.x.shape[1]:  # one map for all of an RGB image's channels
        up = up.expand_as(r.x).contiguous()
    return up, {"layer": layer.name, "layer_map": cam}


def _guided_gradcam(r: _Run):
    from captum.attr import GuidedGradCam

    layer = spatial_layer(r.subj, r.x, r.layer, "Guided Grad-CAM")
    ggc = GuidedGradCam(layer.forward_module, layer.module)
    with warnings.catch_warnings():  # "Setting backward hooks on ReLU activations": expected here
        warnings.simplefilter("ignore", UserWarning)
        values = ggc.attribute(r.x, target=r.target, interpolate_mode=r.opts["interpolate"])
    return values, {"layer": layer.name}


def occlusion_window(shape: tuple[int, ...], window: int = 0, stride: int = 0) -> tuple[tuple, tuple]:
    """Captum's sliding window and strides for one sample of ``shape``: images get a square of about
    1/7 of their side (4 px on 28x28) over all channels, moved by half its side; tabular data one
    feature at a time.  ``window`` / ``stride`` > 0 override the side and the step."""
    if len(shape) == 3:
        c, h, w = shape
        side = window or max(2, round(min(h, w) / 7))
        side = min(side, h, w)
        step = stride or max(1, side // 2)
        return (c, side, side), (c, step, step)
    side = window or 1
    step = stride or 1
    return tuple(min(side, s) for s in shape), tuple(step for _ in shape)


def _occlusion(r: _Run):
    from captum.attr import Occlusion

    shape = tuple(r.x.shape[1:])
    window, strides = occlusion_window(shape, r.opts["window"], r.opts["stride"])
    positions = math.prod((s - w) // st + 1 for s, w, st in zip(shape, window, strides))
    ppe = r.opts["perturbations_per_eval"]
    occ = Occlusion(r.job.counted(r.forward, 1 + math.ceil(positions / ppe)))
    values = occ.attribute(r.x, sliding_window_shapes=window, strides=strides,
                           baselines=r.baseline(r.opts["baseline"]), target=r.target, perturbations_per_eval=ppe)
    return values, {}


def _gradient_shap(r: _Run):
    from captum.attr import GradientShap

    train = r.subj.train_split()
    if train is None:
        raise NotApplicable("Gradient SHAP draws its baselines from the training split, and no dataset is loaded.")
    with r.seeded(numpy_too=True):
        pick = torch.randperm(train.shape[0])[:r.opts["n_baselines"]]
        baselines = train[pick].to(r.x.device, r.x.dtype)
        values, delta = GradientShap(r.forward).attribute(
            r.x, baselines=baselines, n_samples=r.opts["n_samples"], stdevs=r.opts["noise"] * r.data_range(),
            target=r.target, return_convergence_delta=True)
    # one delta per (sample, draw): report the mean per sample
    delta = delta.reshape(r.x.shape[0], -1).mean(1)
    return values, {"delta": delta, "relative_delta": _relative(values, delta)}


def feature_mask(shape: tuple[int, ...], patch: int) -> torch.Tensor | None:
    """KernelSHAP / LIME features: each value of tabular data, square patches of an image (all
    channels of a patch together).  None = every input value is its own feature."""
    if len(shape) != 3:
        return None
    c, h, w = shape
    rows = torch.arange(h) // patch
    cols = torch.arange(w) // patch
    per_row = math.ceil(w / patch)
    mask = rows[:, None] * per_row + cols[None, :]
    return mask.expand(c, h, w).unsqueeze(0).contiguous()


def _surrogate(r: _Run, make: Callable):
    """KernelSHAP and LIME: one surrogate fit per sample, ``make(forward)`` builds the Captum method."""
    n = r.x.shape[0]
    shape = tuple(r.x.shape[1:])
    mask = feature_mask(shape, r.opts["patch"])
    if mask is not None:
        mask = mask.to(r.x.device)
    ppe, samples = r.opts["perturbations_per_eval"], r.opts["n_samples"]
    baselines = r.baseline(r.opts["baseline"])
    forward = r.output_forward()
    targets = r.target if isinstance(r.target, list) else [r.target] * n
    out = []
    with r.seeded():
        for i in range(n):
            job = r.job.part(i / n, (i + 1) / n)
            method = make(job.counted(forward, 1 + math.ceil(samples / ppe)))
            out.append(method.attribute(r.x[i:i + 1], baselines=baselines[i:i + 1], target=targets[i],
                                        feature_mask=mask, n_samples=samples, perturbations_per_eval=ppe))
    return torch.cat(out), {}


def _kernel_shap(r: _Run):
    from captum.attr import KernelShap

    return _surrogate(r, KernelShap)


def _lime(r: _Run):
    from captum._utils.models.linear_model import SkLearnLasso, SkLearnRidge
    from captum.attr import Lime

    kind = SkLearnRidge if r.opts["surrogate"] == "ridge" else SkLearnLasso
    alpha = r.opts["alpha"]
    return _surrogate(r, lambda forward: Lime(forward, interpretable_model=kind(alpha=alpha)))


# ----------------------------------------------------------------------------- support checks
def _embedding_reason(subj: Subject) -> str | None:
    if subj.has_embedding:
        return ("Gradients do not flow through an Embedding (token ids are not continuous); "
                "use Occlusion, KernelSHAP or LIME.")
    return None


def _gradient_check(subj: Subject) -> str | None:
    return _embedding_reason(subj)


def _image_layer_check(title: str):
    def check(subj: Subject) -> str | None:
        if not subj.is_image:
            return f"{title} needs image input (channels x height x width) and a convolutional layer."
        if subj.analysis is not None and not any(len(subj.node_shape(n) or ()) == 3 for n in layer_names(subj)):
            return f"{title} needs a layer with a spatial output (a Conv2d or a pooling layer), and this model has none."
        return _embedding_reason(subj)
    return check


def _gradient_shap_check(subj: Subject) -> str | None:
    if subj.train_split() is None:
        return "Gradient SHAP draws its baselines from the training split, and no dataset is loaded."
    return _embedding_reason(subj)


def _surrogate_check(title: str):
    def check(subj: Subject) -> str | None:
        if subj.input_shape is None:
            return f"{title} needs to know the input's shape; load the model's dataset."
        if not (subj.is_tabular or subj.is_image):
            return (f"{title} explains tabular rows (one value per feature) or images (patches); this model "
                    f"takes sequences of shape {subj.input_shape}. Use Occlusion or Integrated Gradients.")
        return None
    return check


def _any_check(subj: Subject) -> str | None:
    return None


_SEED = Option("seed", "int", 0, "random seed: the same seed gives the same map", 0, 2**31 - 1)
_BASELINE = Option("baseline", "choice", "zeros", "what 'absent' means: zeros, or the mean training input",
                   choices=("zeros", "mean"))
_SURROGATE = (
    Option("n_samples", "int", 200, "perturbed copies of the input the surrogate is fitted on", 10, 100_000),
    _BASELINE,
    Option("patch", "int", 4, "images: the side of the square patches that are switched on and off", 1, 64),
    Option("output", "choice", "probability", "explain the class probability or the raw output (logit)",
           choices=("probability", "logit")),
    Option("perturbations_per_eval", "int", 50, "perturbed copies per model call (speed vs memory)", 1, 10_000),
    _SEED,
)

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("saliency", "Saliency", "The gradient of the target's score with respect to each input value.",
           (Option("abs", "bool", True, "take the absolute value of the gradient"),), _saliency, _gradient_check),
    Method("input_x_gradient", "Input × Gradient", "The input times the gradient: a first-order share of the score.",
           (), _input_x_gradient, _gradient_check),
    Method("integrated_gradients", "Integrated Gradients",
           "Gradients averaged along the straight path from a baseline to the input; they add up to the change "
           "in score (the completeness delta says how closely).",
           (Option("n_steps", "int", 50, "points on the path (Gauss-Legendre)", 2, 2000),
            Option("baseline", "choice", "zeros", "the path's start: zeros, the mean training input, or the "
                   "input blurred", choices=("zeros", "mean", "blurred")),
            Option("blur_sigma", "float", 4.0, "blurred baseline: the Gaussian's sigma in pixels", 0.5, 100.0),
            Option("chunk", "int", 64, "inputs per model call (progress and memory)", 1, 65_536)),
           _integrated_gradients, _gradient_check, long=True),
    Method("smoothgrad", "SmoothGrad", "Saliency averaged over noisy copies of the input: a steadier map.",
           (Option("nt_samples", "int", 25, "noisy copies", 1, 5000),
            Option("noise", "float", 0.15, "noise sigma as a fraction of the data's range", 0.0, 1.0),
            Option("nt_type", "choice", "smoothgrad", "how the copies are combined",
                   choices=("smoothgrad", "smoothgrad_sq", "vargrad")),
            Option("chunk", "int", 25, "copies per model call", 1, 5000),
            _SEED), _smoothgrad, _gradient_check, long=True),
    Method("gradcam", "Grad-CAM", "Where in a convolutional layer's feature maps the target's evidence lies, "
           "scaled up to the input.",
           (Option("relu", "bool", True, "keep only evidence for the target (Grad-CAM's ReLU)"),
            Option("interpolate", "choice", "bilinear", "how the layer's map is scaled up",
                   choices=("bilinear", "nearest"))),
           _gradcam, _image_layer_check("Grad-CAM"), needs_layer=True),
    Method("guided_gradcam", "Guided Grad-CAM", "Grad-CAM times guided backpropagation: sharp, class-specific.",
           (Option("interpolate", "choice", "nearest", "how the layer's map is scaled up",
                   choices=("nearest", "bilinear")),),
           _guided_gradcam, _image_layer_check("Guided Grad-CAM"), needs_layer=True),
    Method("occlusion", "Occlusion", "How much the target's score drops when a window of the input is blanked.",
           (Option("window", "int", 0, "window side (0: about 1/7 of the image, or 1 feature)", 0, 1024),
            Option("stride", "int", 0, "window step (0: half the window)", 0, 1024),
            _BASELINE,
            Option("perturbations_per_eval", "int", 64, "windows per model call", 1, 65_536)),
           _occlusion, _any_check, long=True),
    Method("gradient_shap", "Gradient SHAP", "Expected gradients from baselines drawn from the training data.",
           (Option("n_samples", "int", 20, "random points between baselines and the input", 1, 5000),
            Option("n_baselines", "int", 20, "training samples used as baselines", 1, 10_000),
            Option("noise", "float", 0.0, "noise sigma as a fraction of the data's range", 0.0, 1.0),
            _SEED), _gradient_shap, _gradient_shap_check),
    Method("kernel_shap", "KernelSHAP", "Shapley values estimated by a weighted linear fit on perturbed inputs.",
           _SURROGATE, _kernel_shap, _surrogate_check("KernelSHAP"), long=True),
    Method("lime", "LIME", "A sparse linear model fitted to the model's answers near the input.",
           _SURROGATE[:5] + (
               # ridge, as the original LIME: Captum's default Lasso (alpha 0.01) zeroes every feature
               # when the probabilities move by less than alpha, which a student would read as "nothing matters"
               Option("surrogate", "choice", "ridge", "the linear model fitted to the answers",
                      choices=("ridge", "lasso")),
               Option("alpha", "float", 1.0, "the surrogate's regularisation (lasso: larger = fewer features; "
                      "try 0.01)", 0.0, 1000.0),
               _SEED),
           _lime, _surrogate_check("LIME"), long=True),
)}

#: short names (the CLI's --method) for the methods' names
ALIASES = {"ig": "integrated_gradients", "smoothgrad": "smoothgrad", "gradshap": "gradient_shap",
           "kernelshap": "kernel_shap", "ixg": "input_x_gradient", "guided": "guided_gradcam"}


def get_method(name: str) -> Method:
    """The method called ``name`` (or one of its ``ALIASES``)."""
    key = ALIASES.get(name, name)
    if key not in METHODS:
        raise NotApplicable(f"Unknown attribution method {name!r}; use one of {', '.join(METHODS)}.")
    return METHODS[key]


def methods_for(model, dataset=None) -> list[dict]:
    """Every method with its schema and whether it fits ``model`` (for a method menu)."""
    subj = subject(model, dataset)
    out = []
    for m in METHODS.values():
        reason = m.check(subj)
        out.append({"name": m.name, "title": m.title, "description": m.description, "options": m.schema(),
                    "needs_layer": m.needs_layer, "long": m.long, "supported": reason is None,
                    "reason": reason or ""})
    return out


def layer_choices(model, x=None, dataset=None) -> list[str]:
    """The nodes Grad-CAM can use (spatial outputs), in execution order; the last one is the default."""
    subj = subject(model, dataset)
    if subj.input_shape is None and x is None:
        return []
    probe = torch.zeros((1, *subj.input_shape), device=subj.device) if x is None else subj.batch(x)[0]
    return spatial_layers(subj, probe)


# ----------------------------------------------------------------------------- entry points
def resolve_targets(subj: Subject, x: torch.Tensor, target) -> int | list[int]:
    """``target`` checked against the model's outputs; None = the predicted class (classification) or
    the first output (regression)."""
    n = x.shape[0]
    width = subj.output_width
    if n == 1 and type(target) is int and (width is None or 0 <= target < width):
        return target  # the common case, answered without building lists
    if target is None:
        if subj.task != "classification":
            return 0 if n == 1 else [0] * n
        with torch.no_grad():
            out = subj.module(x)
        # one logit (binary bce_with_logits): output 0 is the only target there is
        picked = [0] * n if out.shape[1] == 1 else [int(p) for p in out.argmax(1)]
        return picked[0] if n == 1 else picked
    targets = [target] * n if isinstance(target, (int, np.integer)) else list(target)
    if len(targets) != n:
        raise NotApplicable(f"Give one target per sample: {n} samples but {len(targets)} targets.")
    names = subj.class_names
    for t in targets:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or (width is not None and not 0 <= t < width):
            what = (f"class 0..{width - 1}" + (f" ({names[0]} .. {names[-1]})" if names and len(names) == width else "")
                    if subj.task == "classification" else
                    ("output 0 (the only one)" if (width or 1) == 1 else f"output 0..{width - 1}"))
            raise NotApplicable(f"Target {t!r} is not an output of this model; choose {what}.")
    return int(targets[0]) if n == 1 else [int(t) for t in targets]


def attribute(model, x, target=None, method: str = "saliency", *, dataset=None, layer: str | None = None,
              cancel=None, progress=None, **options) -> Attribution:
    """The attribution map of ``method`` for ``x`` (one sample, or a batch) and ``target``.

    ``model``: a ReadyModel, a compiled model or an nn.Module (with ``dataset`` for the methods that
    use the training data).  ``layer``: the graph node for Grad-CAM (default: the last spatial one).
    ``options``: the method's options (``METHODS[name].schema()``).  Raises NotApplicable with a
    sentence for a method, option, target or layer that does not fit, Cancelled when ``cancel()``
    turned true.  The model is run in eval mode; its own mode is restored afterwards."""
    m = (METHODS.get(method) or get_method(method)) if isinstance(method, str) else method
    subj = subject(model, dataset)
    reason = m.unsupported_reason(subj)
    if reason is not None:
        raise NotApplicable(reason)
    opts = m.resolve(options)
    batch, single = subj.batch(x)
    batch.requires_grad_(True)  # a fresh leaf (Captum would set it, with a warning)
    job = Job(cancel, progress) if cancel is not None or progress is not None else NO_JOB
    job.check()
    # eval mode, as in eval_mode() but inline: this path is timed against Captum alone (bench/explain.py)
    training = [mod for mod in subj.modules if mod.training]
    if training:
        subj.module.eval()
    try:
        targets = resolve_targets(subj, batch, target)
        values, extra = m.run(_Run(subj, batch, targets, opts, layer, job))
    finally:
        for mod in training:
            mod.training = True
    job.report(1.0)

    values = values.detach()
    result = Attribution(m.name, targets, opts, feature_names=list(subj.feature_names),
                         class_names=list(subj.class_names), raw_values=values[0] if single else values)
    if extra:  # Grad-CAM's layer, the completeness delta of IG and Gradient SHAP
        def out(v):  # without the batch axis for a single sample
            return None if v is None else (v.detach()[0] if single else v.detach())

        delta, rel = out(extra.get("delta")), out(extra.get("relative_delta"))
        result.layer = extra.get("layer")
        result.raw_layer_map = out(extra.get("layer_map"))
        result.delta = None if delta is None else (float(delta) if single else as_numpy(delta))
        result.relative_delta = None if rel is None else (float(rel) if single else as_numpy(rel))
    return result


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Each channel of a batch of images blurred with a Gaussian of ``sigma`` pixels (reflected edges)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    h, w = x.shape[-2:]
    radius = min(radius, h - 1, w - 1) if min(h, w) > 1 else 0
    if radius == 0:
        return x.clone()
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="reflect")
    y = torch.nn.functional.conv2d(y, k.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return torch.nn.functional.conv2d(y, k.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


# ----------------------------------------------------------------------------- 2-D toy data
@dataclass
class GradientField:
    """The target's probability (or output) on a grid over 2-D input, and its gradient there:
    arrows across the decision boundary.  Rows follow ``ys``, columns ``xs`` (as the live view)."""

    xs: np.ndarray  # (n,)
    ys: np.ndarray  # (n,)
    value: np.ndarray  # (n, n)
    gradient: np.ndarray  # (n, n, 2): d value / d (x, y)
    target: int

    def in_units(self, units) -> "GradientField":
        """The same field over axes in other units, ``units`` = ((offset, scale), (offset, scale)):
        x' = x * scale + offset per axis (e.g. the data's own units for standardised inputs); the
        gradient follows, d/dx' = d/dx / scale."""
        (ox, sx), (oy, sy) = units
        gradient = np.asarray(self.gradient, dtype=np.float64) / np.array([sx, sy])
        return GradientField(np.asarray(self.xs) * sx + ox, np.asarray(self.ys) * sy + oy, self.value,
                             gradient, self.target)

    def to_json(self) -> dict:
        return {"xs": self.xs.tolist(), "ys": self.ys.tolist(), "value": self.value.tolist(),
                "gradient": self.gradient.tolist(), "target": self.target}


def grid_extent(dataset, pad: float = 0.08) -> tuple[float, float, float, float]:
    """The decision-boundary grid's extent (x0, x1, y0, y1) over a 2-feature dataset's train and
    validation inputs, padded like the live decision-boundary view."""
    x_all = torch.cat([dataset.x_train, dataset.x_val]).float().cpu()
    lo, hi = x_all.min(0).values, x_all.max(0).values
    margin = (hi - lo) * pad + 1e-3
    lo, hi = lo - margin, hi + margin
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def gradient_field(model, extent=None, n: int = 25, target: int = 1, *, dataset=None,
                   cancel=None, progress=None) -> GradientField:
    """The gradient of ``target``'s probability (classification) or output (regression) over an
    ``n`` x ``n`` grid spanning ``extent`` = (x0, x1, y0, y1) in the model's input units (default:
    the dataset's, as the live decision-boundary view draws it)."""
    subj = subject(model, dataset)
    if subj.input_shape is not None and subj.input_shape != (2,):
        raise NotApplicable(f"The gradient field is for 2-feature data; this model takes {subj.input_shape}.")
    if extent is None:
        if subj.dataset is None:
            raise NotApplicable("Give the grid's extent (x0, x1, y0, y1), or the dataset to take it from.")
        extent = grid_extent(subj.dataset)
    if n < 2 or n > 1000:
        raise NotApplicable(f"The grid needs 2..1000 points per side, got {n}.")
    x0, x1, y0, y1 = (float(v) for v in extent)
    xs = torch.linspace(x0, x1, n)
    ys = torch.linspace(y0, y1, n)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1).to(subj.device)
    job = Job(cancel, progress)
    values, grads = [], []
    with eval_mode(subj.module):
        chunk = 4096
        for start in range(0, pts.shape[0], chunk):
            job.step(start, pts.shape[0])
            p = pts[start:start + chunk].clone().requires_grad_(True)
            out = subj.module(p)
            if subj.task == "classification":
                out = class_probabilities(out)
            if not 0 <= target < out.shape[1]:
                raise NotApplicable(f"Target {target} is not an output of this model; choose 0..{out.shape[1] - 1}.")
            v = out[:, target]
            (g,) = torch.autograd.grad(v.sum(), p)
            values.append(v.detach().cpu())
            grads.append(g.detach().cpu())
    job.report(1.0)
    return GradientField(xs.numpy(), ys.numpy(), torch.cat(values).reshape(n, n).numpy(),
                         torch.cat(grads).reshape(n, n, 2).numpy(), int(target))


__all__ = ["METHODS", "ALIASES", "Attribution", "GradientField", "Method", "Option", "Support", "attribute",
           "feature_mask", "gaussian_blur", "get_method", "gradient_field", "grid_extent", "layer_choices",
           "methods_for", "occlusion_window", "resolve_targets"]
