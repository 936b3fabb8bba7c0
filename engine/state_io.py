"""Nested training state (optimiser, schedule, scaler state dicts) as safetensors + JSON: no pickle.

``split_state(obj)`` walks dicts / lists / tuples and moves every tensor into a flat
``{key: tensor}`` dict (for ``safetensors``), leaving ``{"__tensor__": key}`` in its place;
tuples become ``{"__tuple__": [...]}`` so they come back as tuples.  ``join_state`` inverts it.
Non-finite floats are written as the strings "inf", "-inf", "nan" (JSON has no such numbers).
"""
from __future__ import annotations

import math
from typing import Any

import torch

_FLOATS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def split_state(obj: Any, tensors: dict[str, torch.Tensor] | None = None, prefix: str = "s"):
    """``(json_able, tensors)`` for ``obj``."""
    tensors = {} if tensors is None else tensors
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}.{len(tensors)}"
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}, tensors
    if isinstance(obj, dict):
        if not all(isinstance(k, (str, int)) for k in obj):
            raise TypeError("state dict keys must be strings or integers")
        return {"__dict__": [[k, split_state(v, tensors, prefix)[0]] for k, v in obj.items()]}, tensors
    if isinstance(obj, tuple):
        return {"__tuple__": [split_state(v, tensors, prefix)[0] for v in obj]}, tensors
    if isinstance(obj, list):
        return [split_state(v, tensors, prefix)[0] for v in obj], tensors
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}, tensors
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj, tensors
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint")


def join_state(doc: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(doc, list):
        return [join_state(v, tensors) for v in doc]
    if isinstance(doc, dict):
        if "__tensor__" in doc:
            return tensors[doc["__tensor__"]]
        if "__tuple__" in doc:
            return tuple(join_state(v, tensors) for v in doc["__tuple__"])
        if "__float__" in doc:
            return _FLOATS[doc["__float__"]]
        if "__dict__" in doc:
            return {k: join_state(v, tensors) for k, v in doc["__dict__"]}
        raise ValueError("malformed checkpoint state")
    return doc
