"""Declarative layer specs.

A layer type is ONE `LayerSpec`: typed params with defaults and ranges, ports, a
shape rule, a parameter/FLOP counter and a builder.  The GUI palette and
inspector are generated from these, and the compiler builds modules from them,
so adding a layer type never needs GUI code.

Shapes are per-sample tuples without the batch dimension: (2,) for a 2-feature
table, (1, 8, 8) for an 8×8 grey image, (T, F) for a sequence.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from engine.errors import ParamError, quote

Shape = tuple  # tuple[int, ...]

AUTO = "auto"
PARAM_KINDS = ("int", "float", "bool", "choice", "ints", "units", "json")


@dataclass(frozen=True)
class Param:
    """One typed layer parameter.

    kinds: ``int``, ``float``, ``bool``, ``choice`` (one of ``choices``),
    ``ints`` (a tuple of ints, e.g. a target shape) and ``units`` (an int, or
    ``"auto"`` = the number of classes / targets of the dataset) and ``json`` (plain JSON data:
    numbers, text, true/false, null, lists and objects; the literal arguments of a Custom op).
    """

    name: str
    kind: str
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple = ()
    label: str = ""
    zero_text: str = ""  # what 0 means, shown instead of the number (pooling stride: "same as kernel")

    def __post_init__(self):
        if self.kind not in PARAM_KINDS:
            raise ValueError(f"unknown param kind {self.kind!r}")

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    def coerce(self, value: Any, where: str = "") -> Any:
        """Return ``value`` converted to this param's type, or raise ParamError with a sentence."""
        at = f" of {where}" if where else ""
        k = self.kind
        try:
            if k == "bool":
                if isinstance(value, str):
                    if value.lower() in ("true", "1", "yes", "on"):
                        return True
                    if value.lower() in ("false", "0", "no", "off"):
                        return False
                    raise ValueError
                if isinstance(value, (bool, int)):
                    return bool(value)
                raise ValueError
            if k == "choice":
                if value not in self.choices:
                    raise ParamError(
                        f"{quote(value)} is not a valid {self.title}{at}; choose one of {', '.join(map(str, self.choices))}."
                    )
                return value
            if k == "json":
                return coerce_json(value, self.title + at)
            if k == "ints":
                if isinstance(value, str):
                    value = [v for v in value.replace("(", "").replace(")", "").replace(" ", "").split(",") if v]
                out = tuple(int(v) for v in value)
                if not out:
                    raise ParamError(f"{self.title}{at} needs at least one number, e.g. 1, 8, 8.")
                if any(v == 0 or v < -1 for v in out) or out.count(-1) > 1:
                    raise ParamError(
                        f"{self.title}{at} must be positive sizes, with at most one -1 (inferred); got {out}."
                    )
                return out
            if k == "units" and (value == AUTO or (isinstance(value, str) and value.strip().lower() == AUTO)):
                return AUTO
            if k in ("int", "units"):
                if isinstance(value, bool):
                    raise ValueError
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                v = int(value)
            else:  # float
                if isinstance(value, bool):
                    raise ValueError
                v = float(value)
                if not math.isfinite(v):
                    raise ValueError
        except ParamError:
            raise
        except (TypeError, ValueError):
            kind = {"units": "a whole number or 'auto'", "int": "a whole number", "float": "a number",
                    "bool": "true or false", "ints": "a list of whole numbers like 1, 8, 8"}.get(k, k)
            raise ParamError(f"{self.title}{at} must be {kind}; got {quote(value)}.") from None
        if self.min is not None and v < self.min:
            raise ParamError(f"{self.title}{at} must be at least {self._fmt(self.min)}; got {self._fmt(v)}.")
        if self.max is not None and v > self.max:
            raise ParamError(f"{self.title}{at} must be at most {self._fmt(self.max)}; got {self._fmt(v)}.")
        return v

    @staticmethod
    def _fmt(v):
        return str(int(v)) if float(v).is_integer() else f"{v:g}"

    def to_json(self, value):
        return list(value) if self.kind == "ints" else value


@dataclass(frozen=True)
class Port:
    """An input or output port. A ``multi`` input takes several edges (Add, Concat, Multiply)."""

    name: str
    multi: bool = False
    min_edges: int = 1


@dataclass(frozen=True)
class InferContext:
    """What shape inference needs to know about the data."""

    input_shape: Shape | None = None  # per-sample shape of the dataset's x
    n_outputs: int | None = None  # classes (classification) or targets (regression)
    task: str | None = None  # "classification" | "regression"


def _zero(params, in_shapes, out_shape) -> int:
    return 0


def _elementwise_flops(params, in_shapes, out_shape) -> int:
    return numel(out_shape)


@dataclass(frozen=True)
class LayerSpec:
    """Everything LayerLab knows about one layer type."""

    type: str
    category: str
    description: str
    infer: Callable[[Mapping, Sequence[Shape], InferContext], Shape]
    params: tuple[Param, ...] = ()
    inputs: tuple[Port, ...] = (Port("in"),)
    outputs: tuple[Port, ...] = (Port("out"),)
    # build(params, in_shapes, ctx) -> nn.Module; None for call_function layers
    build: Callable | None = None
    # function(*inputs, **fn_kwargs(params)) for parameter-free merges compiled as call_function
    # the function itself, or its dotted name ("torch.cat") so the spec loads without torch
    function: Callable | str | None = None
    function_kwargs: Callable[[Mapping], dict] | None = None
    count_params: Callable[[Mapping, Sequence[Shape], Shape], int] = _zero
    flops: Callable[[Mapping, Sequence[Shape], Shape], int] = _elementwise_flops
    name_prefix: str = ""
    # --- import and code export (engine/importers, engine/export) ------------------------------
    #: the module classes ``params_from_module`` reads: "nn.Linear" is torch.nn.Linear, a bare name
    #: ("Reshape") is one of LayerLab's own classes (engine/layers/modules.py or its copy in an
    #: exported model.py)
    module_types: tuple[str, ...] = ()
    #: the inverse of ``build``: ``params_from_module(module)`` -> params, or None when the module
    #: is not one this layer type can describe (a Conv2d with a non-square kernel, an LSTM for RNN)
    params_from_module: Callable[[Any], dict | None] | None = None
    #: ``module_source(module)`` -> the module's constructor as Python, e.g. "nn.Linear(64, 10)"
    module_source: Callable[[Any], str] | None = None
    #: for a layer that is an expression rather than a module (Add, Concat, a Custom function):
    #: ``call_source(params, input_variables)`` -> its Python source, e.g. ``"fc3 + relu2"``;
    #: None, or a None result, means the layer is a module called as ``self.<name>(x)``
    call_source: Callable[[Mapping, Sequence[str]], str | None] | None = None

    @property
    def prefix(self) -> str:
        return self.name_prefix or self.type.lower()

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ParamError(f"{self.type} has no parameter '{name}'; it has {', '.join(p.name for p in self.params) or 'none'}.")

    def resolved_function(self) -> Callable | None:
        """``function`` as the callable (a dotted name is imported now)."""
        if isinstance(self.function, str):
            import importlib

            module, _, name = self.function.rpartition(".")
            return getattr(importlib.import_module(module), name)
        return self.function

    def defaults(self) -> dict:
        # json defaults are lists / dicts: each node gets its own copy
        return {p.name: copy.deepcopy(p.default) if p.kind == "json" else p.default for p in self.params}

    def coerce_params(self, params: Mapping | None, where: str = "") -> dict:
        """Defaults overlaid with ``params``, each value coerced; unknown names are refused."""
        out = self.defaults()
        for k, v in (params or {}).items():
            out[k] = self.param(k).coerce(v, where or self.type)
        return out

    def input_port(self, name: str) -> Port | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output_port(self, name: str) -> Port | None:
        return next((p for p in self.outputs if p.name == name), None)


def py_literal(value: Any) -> str:
    """``value`` as Python source: tuples stay tuples, floats print as short as they round-trip."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        inner = ", ".join(py_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def py_call(callee: str, args: Sequence = (), kwargs: Mapping | None = None,
            defaults: Mapping | None = None) -> str:
    """A constructor call as readable Python: ``py_call("nn.Conv2d", (1, 32), {"kernel_size": 3,
    "padding": 1, "stride": 1}, {"stride": 1})`` -> ``nn.Conv2d(1, 32, kernel_size=3, padding=1)``
    (keyword arguments equal to their ``defaults`` are left out)."""
    parts = [py_literal(a) for a in args]
    for k, v in (kwargs or {}).items():
        if defaults is not None and k in defaults and defaults[k] == v and type(defaults[k]) is type(v):
            continue
        parts.append(f"{k}={py_literal(v)}")
    return f"{callee}({', '.join(parts)})"


_JSON_SCALARS = (str, int, float, bool, type(None))


def coerce_json(value: Any, where: str = "") -> Any:
    """Plain JSON data (text is parsed); anything else, or a non-finite number, is a ParamError."""
    import json

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ParamError(f"{where} must be JSON, e.g. [1, 2] or {{\"dim\": 1}}; got {value!r}.") from None

    def check(v, depth=0):
        if depth > 8:
            raise ParamError(f"{where} is nested too deeply.")
        if isinstance(v, float) and not math.isfinite(v):
            raise ParamError(f"{where} must not contain NaN or infinity.")
        if isinstance(v, (list, tuple)):
            return [check(x, depth + 1) for x in v]
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise ParamError(f"{where} may only have text keys.")
            return {k: check(x, depth + 1) for k, x in v.items()}
        if not isinstance(v, _JSON_SCALARS):
            raise ParamError(f"{where} must be plain JSON data (numbers, text, lists); got {type(v).__name__}.")
        return v

    return check(value)


def numel(shape: Shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def fmt_shape(shape: Shape | None) -> str:
    if shape is None:
        return "?"
    return "(" + ", ".join(str(s) for s in shape) + ")" if len(shape) != 1 else f"({shape[0]})"


@dataclass
class Registry:
    """All known layer types, in palette order."""

    specs: dict[str, LayerSpec] = field(default_factory=dict)

    def register(self, spec: LayerSpec) -> LayerSpec:
        if spec.type in self.specs:
            raise ValueError(f"layer type {spec.type!r} registered twice")
        self.specs[spec.type] = spec
        return spec

    def get(self, type_name: str) -> LayerSpec:
        try:
            return self.specs[type_name]
        except KeyError:
            from engine.errors import GraphError

            raise GraphError(f"Unknown layer type '{type_name}'. Known types: {', '.join(self.specs)}.") from None

    def __contains__(self, type_name: str) -> bool:
        return type_name in self.specs

    def __iter__(self):
        return iter(self.specs.values())

    def categories(self) -> dict[str, list[LayerSpec]]:
        out: dict[str, list[LayerSpec]] = {}
        for s in self.specs.values():
            out.setdefault(s.category, []).append(s)
        return out
