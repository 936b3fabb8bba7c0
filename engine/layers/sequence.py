"""Recurrent layers and self-attention over (T, F) sequences."""
from __future__ import annotations

from engine.errors import ShapeError
from engine.lazy import layer_modules
from engine.spec import LayerSpec, Param, fmt_shape, py_call


def _need_sequence(layer, s):
    if len(s) != 2:
        fix = "insert Reshape to (steps, features) before it" if len(s) == 1 else "insert Reshape to (steps, features)"
        raise ShapeError(f"{layer} expects a sequence (steps, features) but receives {fmt_shape(s)}.", fix)


def _recurrent(cell: str, description: str) -> LayerSpec:
    gates = {"RNN": 1, "LSTM": 4, "GRU": 3}[cell]

    def infer(p, i, ctx):
        (s,) = i
        _need_sequence(cell, s)
        h = p["hidden_size"] * (2 if p["bidirectional"] else 1)
        return (h,) if p["output"] == "last step" else (s[0], h)

    def count(p, i, o):
        h, dirs, total = p["hidden_size"], 2 if p["bidirectional"] else 1, 0
        f = i[0][1]
        for layer in range(p["num_layers"]):
            f_in = f if layer == 0 else h * dirs
            total += dirs * gates * (h * f_in + h * h + 2 * h)
        return total

    def flops(p, i, o):
        return 2 * i[0][0] * count(p, i, o)

    def from_module(m):
        rnn = m.rnn
        if type(rnn).__name__ != cell or not rnn.batch_first or not rnn.bias or rnn.dropout \
                or getattr(rnn, "proj_size", 0) or getattr(rnn, "nonlinearity", "tanh") != "tanh":
            return None
        return {"hidden_size": rnn.hidden_size, "num_layers": rnn.num_layers, "bidirectional": rnn.bidirectional,
                "output": "last step" if m.last_step else "sequence"}

    def source(m):
        rnn = m.rnn
        return py_call("Recurrent", (cell, rnn.input_size, rnn.hidden_size),
                       {"num_layers": rnn.num_layers, "bidirectional": rnn.bidirectional, "last_step": m.last_step},
                       {"num_layers": 1, "bidirectional": False, "last_step": True})

    return LayerSpec(
        type=cell, category="Recurrent", name_prefix=cell.lower(), description=description,
        params=(Param("hidden_size", "int", 64, min=1, max=65536, help="Size of the hidden state."),
                Param("num_layers", "int", 1, min=1, max=16, help="Stacked recurrent layers."),
                Param("bidirectional", "bool", False, help="Also read the sequence backwards; doubles the output size."),
                Param("output", "choice", "last step", choices=("last step", "sequence"),
                      help="Return only the last step (for classifying a sequence) or every step.")),
        infer=infer, count_params=count, flops=flops,
        build=lambda p, i, ctx: layer_modules.Recurrent(cell, i[0][1], p["hidden_size"], p["num_layers"], p["bidirectional"],
                                          last_step=p["output"] == "last step"),
        module_types=("Recurrent",), params_from_module=from_module, module_source=source,
    )


def _infer_attention(p, i, ctx):
    (s,) = i
    _need_sequence("SelfAttention", s)
    if s[1] % p["num_heads"]:
        raise ShapeError(f"SelfAttention: the feature size {s[1]} must be divisible by the {p['num_heads']} heads.",
                         "choose a number of heads that divides the feature size")
    return tuple(s)


ATTENTION = LayerSpec(
    type="SelfAttention", category="Attention", name_prefix="attn",
    description="Multi-head self-attention: each step of the sequence mixes in the others, weighted by similarity.",
    params=(Param("num_heads", "int", 4, min=1, max=256, help="Parallel attention heads; must divide the feature size."),
            Param("dropout", "float", 0.0, min=0.0, max=0.99, help="Dropout on the attention weights.")),
    infer=_infer_attention,
    build=lambda p, i, ctx: layer_modules.SelfAttention(i[0][1], p["num_heads"], p["dropout"]),
    count_params=lambda p, i, o: 4 * i[0][1] * i[0][1] + 4 * i[0][1],
    flops=lambda p, i, o: 8 * i[0][0] * i[0][1] ** 2 + 4 * i[0][0] ** 2 * i[0][1],
    module_types=("SelfAttention",),
    params_from_module=lambda m: {"num_heads": m.attn.num_heads, "dropout": float(m.attn.dropout)},
    module_source=lambda m: py_call("SelfAttention", (m.attn.embed_dim, m.attn.num_heads), {"dropout": float(m.attn.dropout)},
                                    {"dropout": 0.0}),
)

SPECS = (
    _recurrent("RNN", "A simple recurrent layer: a hidden state updated at each step of the sequence."),
    _recurrent("LSTM", "A recurrent layer with gates that remember over long sequences."),
    _recurrent("GRU", "A lighter gated recurrent layer, often as good as an LSTM."),
    ATTENTION,
)
