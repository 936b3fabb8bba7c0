"""Declarative layer specs.

A layer type is ONE `LayerSpec`: typed params with defaults and ranges, ports, a
shape rule, a parameter/FLOP counter and a builder.  The GUI palette and
inspector are generated from these, and the compiler builds modules from them,
so adding a layer type never needs GUI code.

Shapes are per-sample tuples without the batch dimension: (2,) for a 2-feature
table, (1, 8, 8) for an 8×8 grey image, (T, F) for a sequence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from engine.errors import ParamError, quote

Shape = tuple  # tuple[int, ...]

AUTO = "auto"
PARAM_KINDS = ("int", "float", "bool", "choice", "ints", "units")


@dataclass(frozen=True)
class Param:
    """One typed layer parameter.

    kinds: ``int``, ``float``, ``bool``, ``choice`` (one of ``choices``),
    ``ints`` (a tuple of ints, e.g. a target shape) and ``units`` (an int, or
    ``"auto"`` = the number of classes / targets of the dataset).
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
    function: Callable | None = None
    function_kwargs: Callable[[Mapping], dict] | None = None
    count_params: Callable[[Mapping, Sequence[Shape], Shape], int] = _zero
    flops: Callable[[Mapping, Sequence[Shape], Shape], int] = _elementwise_flops
    name_prefix: str = ""

    @property
    def prefix(self) -> str:
        return self.name_prefix or self.type.lower()

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ParamError(f"{self.type} has no parameter '{name}'; it has {', '.join(p.name for p in self.params) or 'none'}.")

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

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
