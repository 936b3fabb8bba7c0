"""The PyTorch operations a Custom node may name (engine/layers/custom.py), and the one function
that turns such a name into the callable: no other name is ever resolved.  A leaf module: the
Custom spec and the TorchCall module both read it."""
from __future__ import annotations

_FUNCTIONS = {
    "torch": ("abs", "exp", "log", "log1p", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "relu", "clamp",
              "clip", "pow", "neg", "square", "sign", "floor", "ceil", "round", "erf", "flatten", "reshape",
              "permute", "transpose", "squeeze", "unsqueeze", "mean", "sum", "amax", "amin", "prod", "std", "var",
              "logsumexp", "softmax", "log_softmax", "matmul", "bmm", "add", "sub", "mul", "div", "maximum",
              "minimum", "cumsum", "flip", "roll", "narrow", "stack", "cat", "movedim", "diff", "norm"),
    "F": ("relu", "relu6", "elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "softsign", "hardtanh",
          "hardswish", "hardsigmoid", "leaky_relu", "logsigmoid", "tanhshrink", "softmax", "log_softmax",
          "normalize", "dropout", "avg_pool1d", "avg_pool2d", "max_pool1d", "max_pool2d", "adaptive_avg_pool1d",
          "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d", "pad", "interpolate", "glu"),
    "Tensor": ("view", "reshape", "permute", "transpose", "contiguous", "flatten", "squeeze", "unsqueeze", "mean",
               "sum", "amax", "amin", "float", "abs", "exp", "log", "relu", "sigmoid", "tanh", "softmax",
               "log_softmax", "pow", "clamp", "neg", "sqrt", "t", "repeat", "flip", "add", "sub", "mul", "div",
               "matmul", "unflatten", "movedim"),
    "operator": ("add", "sub", "mul", "truediv", "neg", "pow", "matmul", "getitem"),
}
#: torch.nn module classes built from literal constructor arguments alone (no submodules)
_MODULES = ("Identity", "Linear", "Bilinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
            "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
            "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm",
            "InstanceNorm1d", "InstanceNorm2d", "Dropout", "Dropout1d", "Dropout2d", "AlphaDropout", "Flatten",
            "Unflatten", "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish",
            "Softplus", "Softsign", "Hardtanh", "Hardswish", "Hardsigmoid", "Sigmoid", "Tanh", "Softmax",
            "LogSoftmax", "Softmin", "LogSigmoid", "Tanhshrink", "Threshold", "Upsample", "PixelShuffle",
            "ZeroPad2d", "ConstantPad1d", "ConstantPad2d", "ReflectionPad2d")

FUNCTION_OPS: tuple[str, ...] = tuple(f"{ns}.{n}" for ns, names in _FUNCTIONS.items() for n in names)
MODULE_OPS: tuple[str, ...] = tuple(f"nn.{n}" for n in _MODULES)
OPS: tuple[str, ...] = FUNCTION_OPS + MODULE_OPS

def is_module_op(op: str) -> bool:
    return op in MODULE_OPS


def resolve(op: str):
    """The callable (function) or class (module) an allow-listed name stands for; KeyError otherwise."""
    if op not in OPS:
        raise KeyError(op)
    import operator

    import torch
    import torch.nn.functional as F
    from torch import nn

    ns, name = op.split(".", 1)
    return getattr({"torch": torch, "F": F, "Tensor": torch.Tensor, "operator": operator, "nn": nn}[ns], name)


