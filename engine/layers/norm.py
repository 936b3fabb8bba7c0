"""Normalisation layers."""
from __future__ import annotations

from engine.lazy import nn

from engine.errors import ShapeError
from engine.spec import LayerSpec, Param, fmt_shape, py_call


def _infer_bn1d(p, i, ctx):
    (s,) = i
    if len(s) not in (1, 2):
        raise ShapeError(f"BatchNorm1d expects (features) or (channels, length) but receives {fmt_shape(s)}.",
                         "use BatchNorm2d for images")
    return tuple(s)


def _infer_bn2d(p, i, ctx):
    (s,) = i
    if len(s) != 3:
        raise ShapeError(f"BatchNorm2d expects an image (channels, height, width) but receives {fmt_shape(s)}.",
                         "use BatchNorm1d for vectors")
    return tuple(s)


def _bn_from_module(m):
    # momentum None (a cumulative average) has no place in this layer's params
    return None if m.momentum is None else {"momentum": float(m.momentum)}


def _bn_source(cls):
    return lambda m: py_call(cls, (m.num_features,), {"momentum": m.momentum}, {"momentum": 0.1})


_MOMENTUM = Param("momentum", "float", 0.1, min=0.0, max=1.0, help="How fast the running statistics follow each batch.")

BATCHNORM1D = LayerSpec(
    type="BatchNorm1d", category="Normalization", name_prefix="bn",
    description="Normalises each feature over the batch, then scales and shifts it; steadies training.",
    params=(_MOMENTUM,), infer=_infer_bn1d,
    build=lambda p, i, ctx: nn.BatchNorm1d(i[0][0], momentum=p["momentum"]),
    count_params=lambda p, i, o: 2 * i[0][0],
    module_types=("nn.BatchNorm1d",), params_from_module=_bn_from_module, module_source=_bn_source("nn.BatchNorm1d"),
)

BATCHNORM2D = LayerSpec(
    type="BatchNorm2d", category="Normalization", name_prefix="bn",
    description="Normalises each channel of an image over the batch, then scales and shifts it.",
    params=(_MOMENTUM,), infer=_infer_bn2d,
    build=lambda p, i, ctx: nn.BatchNorm2d(i[0][0], momentum=p["momentum"]),
    count_params=lambda p, i, o: 2 * i[0][0],
    module_types=("nn.BatchNorm2d",), params_from_module=_bn_from_module, module_source=_bn_source("nn.BatchNorm2d"),
)

LAYERNORM = LayerSpec(
    type="LayerNorm", category="Normalization", name_prefix="ln",
    description="Normalises each sample over its last dimension, then scales and shifts it.",
    params=(Param("affine", "bool", True, help="Learn a scale and shift."),),
    infer=lambda p, i, ctx: tuple(i[0]),
    build=lambda p, i, ctx: nn.LayerNorm(i[0][-1], elementwise_affine=p["affine"]),
    count_params=lambda p, i, o: 2 * i[0][-1] if p["affine"] else 0,
    module_types=("nn.LayerNorm",),
    params_from_module=lambda m: {"affine": m.elementwise_affine} if len(m.normalized_shape) == 1 else None,
    module_source=lambda m: py_call("nn.LayerNorm", (m.normalized_shape[0],), {"elementwise_affine": m.elementwise_affine},
                                    {"elementwise_affine": True}),
)

SPECS = (BATCHNORM1D, BATCHNORM2D, LAYERNORM)
