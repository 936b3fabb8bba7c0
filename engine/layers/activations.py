"""Element-wise activation functions (shape in = shape out)."""
from __future__ import annotations

from engine.lazy import nn

from engine.spec import LayerSpec, Param, py_call

_same = lambda p, i, ctx: tuple(i[0])  # noqa: E731


def _activation(type_, description, build, params=(), prefix=None, inverse=None, source=None):
    """An activation is its torch.nn class of the same name; ``inverse``/``source`` only where it
    has parameters (the default: no params, constructor ``nn.<Type>()``)."""
    return LayerSpec(type=type_, category="Activation", description=description, params=params,
                     infer=_same, build=build, name_prefix=prefix or type_.lower(),
                     module_types=(f"nn.{type_}",),
                     params_from_module=inverse or (lambda m: {}),
                     module_source=source or (lambda m: f"nn.{type_}()"))


SPECS = (
    _activation("ReLU", "Keeps positive values and sets negative ones to zero.", lambda p, i, c: nn.ReLU()),
    _activation("LeakyReLU", "Like ReLU, but negative values keep a small slope so they still learn.",
                lambda p, i, c: nn.LeakyReLU(p["negative_slope"]),
                (Param("negative_slope", "float", 0.01, min=0.0, max=1.0, help="Slope for negative inputs."),),
                prefix="lrelu", inverse=lambda m: {"negative_slope": m.negative_slope},
                source=lambda m: py_call("nn.LeakyReLU", (m.negative_slope,))),
    _activation("GELU", "A smooth ReLU used in transformers: x weighted by the chance it is positive.",
                lambda p, i, c: nn.GELU()),
    _activation("SiLU", "x times sigmoid(x) (also called Swish): smooth and non-monotonic.", lambda p, i, c: nn.SiLU()),
    _activation("Sigmoid", "Squashes each value into (0, 1).", lambda p, i, c: nn.Sigmoid()),
    _activation("Tanh", "Squashes each value into (-1, 1).", lambda p, i, c: nn.Tanh()),
    _activation("Softmax", "Turns a vector into probabilities that sum to 1 (cross-entropy already includes it).",
                lambda p, i, c: nn.Softmax(dim=-1),
                inverse=lambda m: {} if m.dim == -1 else None, source=lambda m: "nn.Softmax(dim=-1)"),
)
