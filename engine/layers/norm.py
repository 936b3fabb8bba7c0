"""Normalisation layers."""
from __future__ import annotations

from torch import nn

from engine.errors import ShapeError
from engine.spec import LayerSpec, Param, fmt_shape


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


_MOMENTUM = Param("momentum", "float", 0.1, min=0.0, max=1.0, help="How fast the running statistics follow each batch.")

BATCHNORM1D = LayerSpec(
    type="BatchNorm1d", category="Normalization", name_prefix="bn",
    description="Normalises each feature over the batch, then scales and shifts it; steadies training.",
    params=(_MOMENTUM,), infer=_infer_bn1d,
    build=lambda p, i, ctx: nn.BatchNorm1d(i[0][0], momentum=p["momentum"]),
    count_params=lambda p, i, o: 2 * i[0][0],
)

BATCHNORM2D = LayerSpec(
    type="BatchNorm2d", category="Normalization", name_prefix="bn",
    description="Normalises each channel of an image over the batch, then scales and shifts it.",
    params=(_MOMENTUM,), infer=_infer_bn2d,
    build=lambda p, i, ctx: nn.BatchNorm2d(i[0][0], momentum=p["momentum"]),
    count_params=lambda p, i, o: 2 * i[0][0],
)

LAYERNORM = LayerSpec(
    type="LayerNorm", category="Normalization", name_prefix="ln",
    description="Normalises each sample over its last dimension, then scales and shifts it.",
    params=(Param("affine", "bool", True, help="Learn a scale and shift."),),
    infer=lambda p, i, ctx: tuple(i[0]),
    build=lambda p, i, ctx: nn.LayerNorm(i[0][-1], elementwise_affine=p["affine"]),
    count_params=lambda p, i, o: 2 * i[0][-1] if p["affine"] else 0,
)

SPECS = (BATCHNORM1D, BATCHNORM2D, LAYERNORM)
