"""Input and Output nodes: where data enters and where the loss is attached."""
from __future__ import annotations

from engine.errors import ShapeError
from engine.spec import LayerSpec, Param, Port, fmt_shape

LOSSES = ("auto", "cross_entropy", "bce_with_logits", "mse", "l1", "huber")


def _infer_input(p, in_shapes, ctx):
    if ctx.input_shape is None:
        raise ShapeError("The Input's shape comes from the dataset, and no dataset is chosen.",
                         "choose a dataset")
    return tuple(ctx.input_shape)


def resolve_loss(loss: str, task: str | None) -> str:
    """The Output's 'auto' loss is cross-entropy for classification and MSE for regression."""
    if loss != "auto":
        return loss
    return "mse" if task == "regression" else "cross_entropy"


def _infer_output(p, in_shapes, ctx):
    (shape,) = in_shapes
    loss = resolve_loss(p["loss"], ctx.task)
    n = ctx.n_outputs
    if loss in ("cross_entropy", "bce_with_logits") and ctx.task == "regression":
        raise ShapeError(f"The loss {loss} is for classification, but the dataset is a regression task.",
                         "set the Output's loss to mse, l1 or huber")
    if len(shape) != 1:
        raise ShapeError(f"The Output expects one vector per sample but receives {fmt_shape(shape)}.",
                         "insert Flatten before the Output")
    if n is not None:
        want = n
        if loss == "bce_with_logits" and n == 2 and shape[0] == 1:
            want = 1  # binary BCE: one logit per sample
        if shape[0] != want:
            what = "one per class" if ctx.task == "classification" else "one per target"
            raise ShapeError(f"The Output expects {want} values per sample ({what}) but receives {shape[0]}.",
                             "set the last Linear's units to auto")
    return tuple(shape)


INPUT = LayerSpec(
    type="Input", category="Input / Output", name_prefix="input",
    description="Where a batch of samples enters the network; its shape comes from the dataset.",
    inputs=(), infer=_infer_input, flops=lambda p, i, o: 0,
)

OUTPUT = LayerSpec(
    type="Output", category="Input / Output", name_prefix="output",
    description="The network's prediction; the loss chosen here compares it with the targets.",
    params=(Param("loss", "choice", "auto", choices=LOSSES,
                  help="auto: cross-entropy for classification, MSE for regression."),),
    inputs=(Port("in"),), outputs=(), infer=_infer_output, flops=lambda p, i, o: 0,
)

SPECS = (INPUT, OUTPUT)
