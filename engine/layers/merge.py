"""Layers that merge several branches: skip connections (Add), Concat, Multiply."""
from __future__ import annotations

import operator

from engine.errors import ShapeError
from engine.spec import LayerSpec, Param, Port, fmt_shape, numel

_MULTI = (Port("in", multi=True, min_edges=2),)


def _same_shapes(layer, verb):
    def infer(p, shapes, ctx):
        first = tuple(shapes[0])
        for s in shapes[1:]:
            if tuple(s) != first:
                listed = " and ".join(fmt_shape(x) for x in shapes)
                raise ShapeError(f"{layer} needs inputs of the same shape to {verb} them, but receives {listed}.",
                                 "make the branches produce the same shape (e.g. match Linear units or conv channels)")
        return first
    return infer


def _concat_dim(p, rank):
    d = p["dim"]
    if not -rank <= d < rank:
        raise ShapeError(f"Concat along dim {d} is impossible for inputs of rank {rank}.", "use dim 0 (features / channels)")
    return d % rank


def _infer_concat(p, shapes, ctx):
    rank = len(shapes[0])
    if any(len(s) != rank for s in shapes):
        raise ShapeError("Concat needs inputs of the same rank, but receives "
                         + " and ".join(fmt_shape(s) for s in shapes) + ".", "insert Flatten on each branch")
    d = _concat_dim(p, rank)
    for s in shapes[1:]:
        if any(a != b for k, (a, b) in enumerate(zip(shapes[0], s)) if k != d):
            raise ShapeError(f"Concat along dim {d} needs the other dims to match, but receives "
                             + " and ".join(fmt_shape(x) for x in shapes) + ".", "change the dim or insert Flatten on each branch")
    out = list(shapes[0])
    out[d] = sum(s[d] for s in shapes)
    return tuple(out)


def _concat_kwargs(p):
    # +1 skips the batch dimension: the user's dim counts per-sample dims.
    d = p["dim"]
    return {"dim": d + 1 if d >= 0 else d}


ADD = LayerSpec(
    type="Add", category="Merge", name_prefix="add", inputs=_MULTI,
    description="Adds its inputs element-wise: the join of a residual (skip) connection.",
    infer=_same_shapes("Add", "add"), function=operator.add,
    flops=lambda p, i, o: numel(o) * (len(i) - 1),
    call_source=lambda p, inputs: " + ".join(inputs),
)

MULTIPLY = LayerSpec(
    type="Multiply", category="Merge", name_prefix="mul", inputs=_MULTI,
    description="Multiplies its inputs element-wise, e.g. to gate one branch by another.",
    infer=_same_shapes("Multiply", "multiply"), function=operator.mul,
    flops=lambda p, i, o: numel(o) * (len(i) - 1),
    call_source=lambda p, inputs: " * ".join(inputs),
)

CONCAT = LayerSpec(
    type="Concat", category="Merge", name_prefix="concat", inputs=_MULTI,
    description="Joins its inputs end to end along one dimension (dim 0 = features or channels).",
    params=(Param("dim", "int", 0, min=-4, max=3, help="Per-sample dimension to join along; 0 = features / channels."),),
    infer=_infer_concat, function="torch.cat", function_kwargs=_concat_kwargs,
    flops=lambda p, i, o: 0,
    call_source=lambda p, inputs: f"torch.cat([{', '.join(inputs)}], dim={_concat_kwargs(p)['dim']})",
)

SPECS = (ADD, CONCAT, MULTIPLY)
