"""Custom: a PyTorch operation the catalog has no layer for, described as data.

Imported models use it for what no catalog layer covers (``torch.flatten(x, 2)``, ``x.permute(0, 2, 1)``,
an ``nn.GroupNorm``...).  A project file must never run code, so a Custom node is declarative: the
*name* of an operation from the fixed allow-list below plus its literal JSON arguments.  Nothing is
pickled and no name outside the list is ever resolved, so opening a project with Custom nodes can
only call these PyTorch operations, with numbers, text and lists as arguments.

Operation names:
    ``torch.X`` / ``F.X`` (torch.nn.functional) / ``operator.X``   functions: ``X(*inputs, *args, **kwargs)``
    ``Tensor.X``                                                   methods:   ``inputs[0].X(*inputs[1:], *args, **kwargs)``
    ``nn.X``                                                       modules:   ``nn.X(*args, **kwargs)``, then called on the inputs
The node's inputs come first; ``args`` are what follows them.  In ``operator.getitem``'s index,
``{"slice": [start, stop, step]}`` is a slice, ``{"ellipsis": true}`` is ``...`` and a list is a tuple.
"""
from __future__ import annotations

import inspect
from typing import Any

from engine.errors import ShapeError
from engine.layers.allowlist import MODULE_OPS, OPS, is_module_op, resolve
from engine.spec import LayerSpec, Param, Port, coerce_json, fmt_shape, py_call, py_literal

_INFIX = {"operator.add": "+", "operator.sub": "-", "operator.mul": "*", "operator.truediv": "/",
          "operator.pow": "**", "operator.matmul": "@"}


def decode_arg(value: Any, index: bool = False) -> Any:
    """A JSON argument as the Python value the operation takes (slices only inside getitem's index)."""
    if index and isinstance(value, dict) and set(value) == {"slice"}:
        return slice(*value["slice"])
    if index and value == {"ellipsis": True}:
        return Ellipsis
    if index and isinstance(value, list):
        return tuple(decode_arg(v, index=True) for v in value)
    return value


def encode_arg(value: Any) -> Any:
    """The inverse of ``decode_arg`` (for the importer): slices, ``...`` and tuples as JSON data."""
    if isinstance(value, slice):
        return {"slice": [value.start, value.stop, value.step]}
    if value is Ellipsis:
        return {"ellipsis": True}
    if isinstance(value, (tuple, list)):
        return [encode_arg(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode_arg(v) for k, v in value.items()}
    return value


def call_args(p) -> tuple[list, dict]:
    getitem = p["op"] == "operator.getitem"
    return [decode_arg(a, index=getitem) for a in p["args"]], dict(p["kwargs"])


def _build(p, in_shapes=(), ctx=None):
    from engine.layers.modules import TorchCall

    args, kwargs = call_args(p)
    if is_module_op(p["op"]):
        return resolve(p["op"])(*args, **kwargs)
    return TorchCall(p["op"], args, kwargs)


def _problem(p) -> str:
    return f"Custom op {p['op']}({', '.join(map(py_literal, p['args']))})"


def _on_meta(p):
    import torch

    with torch.device("meta"):
        try:
            return _build(p)
        except Exception as exc:  # a constructor refusing its arguments
            raise ShapeError(f"{_problem(p)}: its arguments are refused ({_first_line(exc)}).",
                             "fix the op's args / kwargs") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _infer(p, in_shapes, ctx):
    import torch

    module = _on_meta(p)
    # batch 2 on the meta device: nothing is computed, and the batch axis stays visible
    xs = [torch.empty((2, *s), device="meta") for s in in_shapes]
    try:
        out = module(*xs)
    except Exception as exc:
        listed = " and ".join(fmt_shape(s) for s in in_shapes)
        raise ShapeError(f"{_problem(p)} cannot take inputs of shape {listed}: {_first_line(exc)}.",
                         "change the op's args or its inputs") from None
    if not isinstance(out, torch.Tensor):
        raise ShapeError(f"{_problem(p)} returns a {type(out).__name__}, not one tensor.")
    if out.dim() == 0 or out.shape[0] != 2:
        raise ShapeError(f"{_problem(p)} changes the batch dimension; a layer must keep one result per sample.")
    return tuple(int(s) for s in out.shape[1:])


def _count_params(p, in_shapes, out_shape) -> int:
    if not is_module_op(p["op"]):
        return 0
    return sum(int(t.numel()) for t in _on_meta(p).parameters())


def _ctor_arguments(module) -> tuple[list, dict] | None:
    """Constructor arguments that rebuild ``module`` (a torch.nn class), read from its attributes:
    required ones positional, others as keywords where they differ from the default; None when
    some argument is not stored on the module.  The importer checks the rebuilt module."""
    try:
        sig = inspect.signature(type(module).__init__)
    except (TypeError, ValueError):
        return None
    args, kwargs = [], {}
    for name, par in list(sig.parameters.items())[1:]:
        if name in ("device", "dtype") or par.kind in (par.VAR_POSITIONAL, par.VAR_KEYWORD):
            continue
        required = par.default is inspect.Parameter.empty
        if not hasattr(module, name):
            if required:
                return None
            continue
        value = getattr(module, name)
        if name == "bias" and (value is None or hasattr(value, "shape")):
            value = value is not None  # the constructor's flag, stored as the bias tensor or None
        if hasattr(value, "shape"):
            return None
        if isinstance(value, tuple):
            value = list(value)
        if required and not kwargs:
            args.append(value)
        elif required or not _same(value, par.default):
            kwargs[name] = value
    return args, kwargs


def _same(a, b) -> bool:
    """Is the stored value the default?  (torch stores ``padding=0`` of a Conv2d as (0, 0).)"""
    if isinstance(b, tuple):
        b = list(b)
    if isinstance(a, list) and not isinstance(b, list) and a:
        return all(_same(x, b) for x in a)
    return type(a) is type(b) and a == b


def _from_module(m) -> dict | None:
    name = type(m).__name__
    from torch import nn

    if getattr(nn, name, None) is not type(m) or f"nn.{name}" not in MODULE_OPS:
        return None
    found = _ctor_arguments(m)
    if found is None:
        return None
    args, kwargs = found
    try:
        return {"op": f"nn.{name}", "args": coerce_json(args), "kwargs": coerce_json(kwargs)}
    except Exception:
        return None


def _module_source(m) -> str:
    p = _from_module(m)
    if p is None:
        raise ValueError(f"{type(m).__name__} is not a module a Custom node describes")
    return py_call(p["op"], p["args"], p["kwargs"])


def call_source(p, inputs: list[str]) -> str | None:
    """The operation as a Python expression over the input variables (None for modules, which are
    declared in ``__init__`` and called as ``self.name(x)``)."""
    op = p["op"]
    if is_module_op(op):
        return None
    args, kwargs = call_args(p)
    if op == "operator.getitem":
        index = args[0] if args else ()
        items = index if isinstance(index, tuple) else (index,)
        return f"{inputs[0]}[{', '.join(_index_source(i) for i in items)}]"
    if op == "operator.neg":
        return f"-{inputs[0]}"
    operands = list(inputs) + [py_literal(a) for a in args]
    if op in _INFIX and len(operands) == 2 and not kwargs:
        return f"{operands[0]} {_INFIX[op]} {operands[1]}"
    rest = [py_literal(a) for a in args] + [f"{k}={py_literal(v)}" for k, v in kwargs.items()]
    ns, name = op.split(".", 1)
    if ns == "Tensor":
        return f"{inputs[0]}.{name}({', '.join(list(inputs[1:]) + rest)})"
    return f"{op}({', '.join(list(inputs) + rest)})"


def _index_source(item) -> str:
    if isinstance(item, slice):
        parts = ["" if v is None else py_literal(v) for v in (item.start, item.stop, item.step)]
        return ":".join(parts[:2]) if item.step is None else ":".join(parts)
    if item is Ellipsis:
        return "..."
    if item is None:
        return "None"
    return py_literal(item)


CUSTOM = LayerSpec(
    type="Custom", category="Advanced", name_prefix="op",
    description="A PyTorch operation LayerLab has no layer for (imported models use it): a function or module "
                "from a fixed list of safe ones, with literal arguments.",
    params=(Param("op", "choice", "nn.Identity", choices=OPS,
                  help="The PyTorch operation: torch.X / F.X / Tensor.X / operator.X functions, nn.X modules."),
            Param("args", "json", [], help="Arguments after the input(s), as JSON, e.g. [1] for torch.flatten(x, 1)."),
            Param("kwargs", "json", {}, help='Keyword arguments as a JSON object, e.g. {"dim": -1}.')),
    inputs=(Port("in", multi=True, min_edges=1),),
    infer=_infer, build=_build, count_params=_count_params,
    module_types=tuple(MODULE_OPS), params_from_module=_from_module, module_source=_module_source,
    call_source=call_source,
)

SPECS = (CUSTOM,)
