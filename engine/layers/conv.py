"""Convolutions and pooling."""
from __future__ import annotations

import math

from engine.lazy import nn

from engine.errors import ShapeError
from engine.spec import LayerSpec, Param, fmt_shape, numel, py_call


def conv_out(size: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _spatial(layer, dims, s, k, stride, pad, dilation=1):
    out = [conv_out(x, k, stride, pad, dilation) for x in dims]
    if min(out) < 1:
        raise ShapeError(f"{layer} with kernel {k} shrinks {fmt_shape(s)} to nothing.",
                         "use a smaller kernel, add padding, or remove a pooling layer before it")
    return out


def _need(layer, s, rank, what):
    if len(s) != rank:
        fix = _reshape_hint(layer, s, rank) if len(s) < rank else "insert Flatten or a pooling layer"
        raise ShapeError(f"{layer} expects {what} but receives {fmt_shape(s)}.", fix)


def _reshape_hint(layer, s, rank):
    """A Reshape the values can really take: one channel in front ((n) -> (1, n) for a sequence,
    (h, w) -> (1, h, w)); flat values as a square image (1 or 3 channels) only when their count
    is one; otherwise the advice to use Linear layers."""
    if len(s) == rank - 1:
        return f"insert Reshape to 1, {', '.join(map(str, s))}"
    n = numel(s)
    for channels in (1, 3):
        side = math.isqrt(n // channels)
        if side >= 2 and channels * side * side == n:
            return f"insert Reshape to {channels}, {side}, {side}"
    values = f"{n} values per sample do not" if n != 1 else "1 value per sample does not"
    return f"{values} form a square image, so use Linear layers (an MLP) instead of {layer}"


_CONV_PARAMS = (
    Param("out_channels", "int", 16, min=1, max=65536, help="Number of filters (output channels)."),
    Param("kernel_size", "int", 3, min=1, max=64, help="Width (and height) of each filter."),
    Param("stride", "int", 1, min=1, max=64, help="Step between filter positions."),
    Param("padding", "int", 1, min=0, max=64, help="Zeros added on each border."),
    Param("bias", "bool", True, help="Add a learnable bias per output channel."),
)


def _infer_conv1d(p, i, ctx):
    (s,) = i
    _need("Conv1d", s, 2, "(channels, length)")
    (L,) = _spatial("Conv1d", s[1:], s, p["kernel_size"], p["stride"], p["padding"])
    return (p["out_channels"], L)


def _infer_conv2d(p, i, ctx):
    (s,) = i
    _need("Conv2d", s, 3, "an image (channels, height, width)")
    h, w = _spatial("Conv2d", s[1:], s, p["kernel_size"], p["stride"], p["padding"])
    return (p["out_channels"], h, w)


def _conv_params(dims):
    return lambda p, i, o: i[0][0] * p["out_channels"] * p["kernel_size"] ** dims + (p["out_channels"] if p["bias"] else 0)


def _conv_flops(dims):
    return lambda p, i, o: 2 * numel(o) * i[0][0] * p["kernel_size"] ** dims


def _one(v):
    """A square kernel / uniform stride or padding as one int; None when the sides differ."""
    if isinstance(v, int):
        return v
    if isinstance(v, (tuple, list)) and v and all(isinstance(x, int) and x == v[0] for x in v):
        return int(v[0])
    return None


def _conv_from_module(m):
    k, s, pad, d = _one(m.kernel_size), _one(m.stride), _one(m.padding), _one(m.dilation)
    if None in (k, s, pad) or d != 1 or m.groups != 1 or m.padding_mode != "zeros":
        return None
    return {"out_channels": m.out_channels, "kernel_size": k, "stride": s, "padding": pad,
            "bias": m.bias is not None}


def _conv_source(cls):
    def source(m):
        return py_call(cls, (m.in_channels, m.out_channels),
                       {"kernel_size": _one(m.kernel_size), "stride": _one(m.stride), "padding": _one(m.padding),
                        "bias": m.bias is not None}, {"stride": 1, "padding": 0, "bias": True})
    return source


CONV1D = LayerSpec(
    type="Conv1d", category="Convolution", name_prefix="conv",
    description="Slides learned filters along a sequence (channels, length).",
    params=_CONV_PARAMS, infer=_infer_conv1d,
    build=lambda p, i, ctx: nn.Conv1d(i[0][0], p["out_channels"], p["kernel_size"], p["stride"], p["padding"], bias=p["bias"]),
    count_params=_conv_params(1), flops=_conv_flops(1),
    module_types=("nn.Conv1d",), params_from_module=_conv_from_module, module_source=_conv_source("nn.Conv1d"),
)

CONV2D = LayerSpec(
    type="Conv2d", category="Convolution", name_prefix="conv",
    description="Slides learned filters over an image (channels, height, width) to detect local patterns.",
    params=_CONV_PARAMS, infer=_infer_conv2d,
    build=lambda p, i, ctx: nn.Conv2d(i[0][0], p["out_channels"], p["kernel_size"], p["stride"], p["padding"], bias=p["bias"]),
    count_params=_conv_params(2), flops=_conv_flops(2),
    module_types=("nn.Conv2d",), params_from_module=_conv_from_module, module_source=_conv_source("nn.Conv2d"),
)

_POOL_PARAMS = (
    Param("kernel_size", "int", 2, min=1, max=64, help="Size of each pooling window."),
    Param("stride", "int", 0, min=0, max=64, help="Step between windows; 0 = the kernel size.",
          zero_text="same as kernel"),
    Param("padding", "int", 0, min=0, max=32, help="Zeros added on each border (at most half the kernel)."),
)


def _pool_from_module(m):
    k, s, pad = _one(m.kernel_size), _one(m.stride), _one(m.padding)
    if None in (k, s, pad) or m.ceil_mode or _one(getattr(m, "dilation", 1)) != 1:
        return None
    if not getattr(m, "count_include_pad", True) and pad:
        return None  # an AvgPool2d that leaves the padding out of the average is another layer
    if getattr(m, "divisor_override", None):
        return None  # so is one that divides by another number than the window's size
    return {"kernel_size": k, "stride": 0 if s == k else s, "padding": pad}


def _pool_source(cls):
    def source(m):
        k, s = _one(m.kernel_size), _one(m.stride)
        return py_call(cls, (k,), {"stride": s, "padding": _one(m.padding)}, {"stride": k, "padding": 0})
    return source


def _infer_pool(layer):
    def infer(p, i, ctx):
        (s,) = i
        _need(layer, s, 3, "an image (channels, height, width)")
        if p["padding"] * 2 > p["kernel_size"]:
            raise ShapeError(f"{layer} padding {p['padding']} is more than half its kernel {p['kernel_size']}.",
                             "lower the padding")
        h, w = _spatial(layer, s[1:], s, p["kernel_size"], p["stride"] or p["kernel_size"], p["padding"])
        return (s[0], h, w)
    return infer


MAXPOOL2D = LayerSpec(
    type="MaxPool2d", category="Pooling", name_prefix="maxpool",
    description="Keeps the largest value in each window, shrinking the image.",
    params=_POOL_PARAMS, infer=_infer_pool("MaxPool2d"),
    build=lambda p, i, ctx: nn.MaxPool2d(p["kernel_size"], p["stride"] or p["kernel_size"], p["padding"]),
    flops=lambda p, i, o: numel(o) * p["kernel_size"] ** 2,
    module_types=("nn.MaxPool2d",), params_from_module=_pool_from_module, module_source=_pool_source("nn.MaxPool2d"),
)

AVGPOOL2D = LayerSpec(
    type="AvgPool2d", category="Pooling", name_prefix="avgpool",
    description="Averages each window, shrinking the image.",
    params=_POOL_PARAMS, infer=_infer_pool("AvgPool2d"),
    build=lambda p, i, ctx: nn.AvgPool2d(p["kernel_size"], p["stride"] or p["kernel_size"], p["padding"]),
    flops=lambda p, i, o: numel(o) * p["kernel_size"] ** 2,
    module_types=("nn.AvgPool2d",), params_from_module=_pool_from_module, module_source=_pool_source("nn.AvgPool2d"),
)


def _infer_adaptive(p, i, ctx):
    (s,) = i
    _need("AdaptiveAvgPool2d", s, 3, "an image (channels, height, width)")
    return (s[0], p["output_size"], p["output_size"])


ADAPTIVEAVGPOOL2D = LayerSpec(
    type="AdaptiveAvgPool2d", category="Pooling", name_prefix="gap",
    description="Averages each channel down to a fixed output size, whatever the input size (1 = global average).",
    params=(Param("output_size", "int", 1, min=1, max=1024, help="Height and width of the output."),),
    infer=_infer_adaptive,
    build=lambda p, i, ctx: nn.AdaptiveAvgPool2d(p["output_size"]),
    flops=lambda p, i, o: numel(i[0]),
    module_types=("nn.AdaptiveAvgPool2d",),
    params_from_module=lambda m: None if _one(m.output_size) is None else {"output_size": _one(m.output_size)},
    module_source=lambda m: py_call("nn.AdaptiveAvgPool2d", (_one(m.output_size),)),
)

SPECS = (CONV1D, CONV2D, MAXPOOL2D, AVGPOOL2D, ADAPTIVEAVGPOOL2D)
