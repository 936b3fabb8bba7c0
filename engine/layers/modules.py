"""Small nn.Modules for layers torch has no single module for.

They exist so that every graph node compiles to one named submodule: the
generated code reads ``lstm1 = self.lstm1(embed1)`` and hooks can probe each node.
"""
from __future__ import annotations

import torch
from torch import nn


class Reshape(nn.Module):
    """Reshape each sample to ``shape`` (the batch dimension is kept)."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class TokenEmbedding(nn.Embedding):
    """An Embedding that accepts float token ids (datasets hold float tensors)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.long())


class Recurrent(nn.Module):
    """RNN / LSTM / GRU, batch-first, returning the whole sequence or the last step only."""

    CELLS = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, last_step: bool = True):
        super().__init__()
        self.rnn = self.CELLS[cell](input_size, hidden_size, num_layers=num_layers,
                                    batch_first=True, bidirectional=bidirectional)
        self.last_step = last_step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return out[:, -1] if self.last_step else out

    def extra_repr(self) -> str:
        return f"last_step={self.last_step}"


class SelfAttention(nn.Module):
    """Multi-head self-attention over a (T, E) sequence: query = key = value = x."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False)[0]


class TorchCall(nn.Module):
    """One allow-listed PyTorch function with literal arguments: a Custom node (engine/layers/custom.py)."""

    def __init__(self, op: str, args=(), kwargs=None):
        super().__init__()
        from engine.layers.allowlist import resolve

        self.op = op
        self.fn = resolve(op)  # only names from the allow-list resolve
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.fn(*inputs, *self.args, **self.kwargs)

    def extra_repr(self) -> str:
        return f"{self.op!r}, args={self.args}, kwargs={self.kwargs}"
