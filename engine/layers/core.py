"""Dense, regularisation, reshaping and embedding layers."""
from __future__ import annotations

from engine.lazy import nn

from engine.errors import ShapeError
from engine.lazy import layer_modules
from engine.spec import AUTO, LayerSpec, Param, fmt_shape, numel, py_call


def resolve_units(p, ctx) -> int:
    """Linear units, with 'auto' meaning the dataset's number of classes or targets."""
    if p["units"] != AUTO:
        return int(p["units"])
    if ctx.n_outputs is None:
        raise ShapeError("Units 'auto' means 'as many as the dataset has classes or targets', and no dataset is chosen.",
                         "choose a dataset or set a number of units")
    return int(ctx.n_outputs)


def _infer_linear(p, in_shapes, ctx):
    (s,) = in_shapes
    if len(s) not in (1, 2):
        raise ShapeError(f"Linear expects a vector per sample (or a sequence of vectors) but receives {fmt_shape(s)}.",
                         "insert Flatten before this Linear")
    return (*s[:-1], resolve_units(p, ctx))


def _linear_params(p, in_shapes, out):
    f_in, f_out = in_shapes[0][-1], out[-1]
    return f_in * f_out + (f_out if p["bias"] else 0)


def _linear_flops(p, in_shapes, out):
    return 2 * numel(in_shapes[0]) * out[-1]


LINEAR = LayerSpec(
    type="Linear", category="Core", name_prefix="fc",
    description="A fully connected layer: every output is a weighted sum of all inputs plus a bias.",
    params=(Param("units", "units", 64, min=1, max=1_000_000,
                  help="Number of outputs; 'auto' = the number of classes or targets (for the last layer)."),
            Param("bias", "bool", True, help="Add a learnable bias to each output.")),
    infer=_infer_linear,
    build=lambda p, i, ctx: nn.Linear(i[0][-1], resolve_units(p, ctx), bias=p["bias"]),
    count_params=_linear_params, flops=_linear_flops,
    module_types=("nn.Linear",),
    params_from_module=lambda m: {"units": m.out_features, "bias": m.bias is not None},
    module_source=lambda m: py_call("nn.Linear", (m.in_features, m.out_features), {"bias": m.bias is not None},
                                    {"bias": True}),
)

DROPOUT = LayerSpec(
    type="Dropout", category="Regularization", name_prefix="dropout",
    description="During training, zeroes a random fraction p of the values to fight overfitting.",
    params=(Param("p", "float", 0.5, min=0.0, max=0.99, help="Fraction of values set to zero while training."),),
    infer=lambda p, i, ctx: tuple(i[0]),
    build=lambda p, i, ctx: nn.Dropout(p["p"]),
    module_types=("nn.Dropout",),
    params_from_module=lambda m: {"p": m.p},
    module_source=lambda m: py_call("nn.Dropout", (m.p,)),
)

FLATTEN = LayerSpec(
    type="Flatten", category="Shape", name_prefix="flatten",
    description="Turns each sample into one long vector, e.g. (16, 4, 4) into (256).",
    infer=lambda p, i, ctx: (numel(i[0]),),
    build=lambda p, i, ctx: nn.Flatten(),
    flops=lambda p, i, o: 0,
    module_types=("nn.Flatten",),
    # only the default flattening (everything but the batch) is this layer
    params_from_module=lambda m: {} if (m.start_dim, m.end_dim) == (1, -1) else None,
    module_source=lambda m: "nn.Flatten()",
)


def _infer_reshape(p, in_shapes, ctx):
    (s,) = in_shapes
    target = list(p["shape"])
    n = numel(s)
    if -1 in target:
        known = numel([t for t in target if t != -1])
        if n % known:
            raise ShapeError(f"Reshape cannot fit {n} values into {tuple(target)}.", "change the target shape")
        target[target.index(-1)] = n // known
    if numel(target) != n:
        raise ShapeError(f"Reshape cannot turn {fmt_shape(s)} ({n} values) into {tuple(target)} ({numel(target)} values).",
                         "choose a shape with the same number of values")
    return tuple(target)


RESHAPE = LayerSpec(
    type="Reshape", category="Shape", name_prefix="reshape",
    description="Rearranges each sample into a new shape with the same number of values; -1 is inferred.",
    params=(Param("shape", "ints", (-1,), help="Target shape per sample, e.g. 1, 8, 8."),),
    infer=_infer_reshape,
    build=lambda p, i, ctx: layer_modules.Reshape(p["shape"]),
    flops=lambda p, i, o: 0,
    module_types=("Reshape",),
    params_from_module=lambda m: {"shape": tuple(int(s) for s in m.shape)},
    module_source=lambda m: py_call("Reshape", (tuple(m.shape),)),
)


def _infer_embedding(p, in_shapes, ctx):
    (s,) = in_shapes
    if len(s) != 1:
        raise ShapeError(f"Embedding expects a sequence of token ids (T) per sample but receives {fmt_shape(s)}.")
    return (s[0], p["embedding_dim"])


EMBEDDING = LayerSpec(
    type="Embedding", category="Embedding", name_prefix="embed",
    description="Looks up a learned vector for each integer token id in the sequence.",
    params=(Param("num_embeddings", "int", 100, min=1, max=10_000_000, label="vocabulary size",
                  help="How many distinct token ids there are (ids run from 0 to this minus 1)."),
            Param("embedding_dim", "int", 32, min=1, max=100_000, help="Length of each token's vector.")),
    infer=_infer_embedding,
    build=lambda p, i, ctx: layer_modules.TokenEmbedding(p["num_embeddings"], p["embedding_dim"]),
    count_params=lambda p, i, o: p["num_embeddings"] * p["embedding_dim"],
    flops=lambda p, i, o: 0,
    # a plain nn.Embedding imports as the float-tolerant TokenEmbedding (same weights, same outputs)
    module_types=("TokenEmbedding", "nn.Embedding"),
    params_from_module=lambda m: {"num_embeddings": m.num_embeddings, "embedding_dim": m.embedding_dim},
    module_source=lambda m: py_call("TokenEmbedding", (m.num_embeddings, m.embedding_dim)),
)

SPECS = (LINEAR, DROPOUT, FLATTEN, RESHAPE, EMBEDDING)
