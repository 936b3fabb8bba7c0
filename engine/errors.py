"""Errors the engine raises for bad input.

Every error carries one human sentence (what, where, how to fix).  The CLI prints
``str(error)`` and exits 2; the GUI shows it in a dialog.  Nothing else should
reach a user as a traceback.
"""
from __future__ import annotations


class LayerLabError(Exception):
    """Base class: bad input that the user can fix.  ``str(e)`` is the sentence.

    ``kind`` says what went wrong in one word, for code that must act on it (the GUI offers a
    retry for ``out_of_memory``, the CLI picks its exit status): decisions are taken on the kind,
    never on the sentence, which is free to change."""

    kind = "bad_input"

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message} ({self.fix})"


#: how many characters of a file's own content a message may quote (cells, column names, keys)
QUOTE_CHARS = 24


def quote(value, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)`` of at most ``limit`` characters of it: messages name what is wrong in a file
    without echoing its content (a project may point LayerLab at any file on the machine)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:  # a 400-digit "seed"
        try:
            return f"a number of {len(str(abs(value)))} digits"
        except ValueError:  # beyond Python's digit limit for str()
            return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return repr(text) if isinstance(value, str) else text


def name_list(names: list[str], show: int = 12) -> str:
    """Names from a file (CSV columns, npz arrays) for a message: the first and the last few (a
    target is often last), each cut short."""
    short = [n if len(n) <= QUOTE_CHARS else n[:QUOTE_CHARS] + "…" for n in map(str, names)]
    if len(short) <= show:
        return ", ".join(short)
    return f"{', '.join(short[:show - 3])}, …, {', '.join(short[-2:])} ({len(short)} in all)"


class ParamError(LayerLabError):
    """A layer parameter value is out of range or of the wrong type."""

    kind = "graph"


class GraphError(LayerLabError):
    """A graph edit or a graph document is invalid."""

    kind = "graph"


class ShapeError(LayerLabError):
    """Shapes do not fit together at a node."""

    kind = "shape"


class DataError(LayerLabError):
    """A dataset cannot be loaded or encoded."""

    kind = "data"


class ProjectFileError(LayerLabError):
    """A project / graph file is missing, corrupt, truncated, foreign or of an unknown version."""

    kind = "file"


class LimitExceeded(LayerLabError):
    """A file, a dataset or a model needs more memory than LayerLab's limit allows (see engine/limits.py),
    or a compressed member inflates like a bomb; refused before the memory is spent."""

    kind = "too_large"


class TrainingError(LayerLabError):
    """A training run stopped because of a problem (non-finite loss, bad config...)."""

    kind = "training"


class ModelDataMismatch(TrainingError):
    """The model cannot take the data: a batch does not go through, or the output has the wrong size."""

    kind = "shape"


class NonFiniteLoss(TrainingError):
    """The loss became NaN or infinite; ``node`` names the first graph node whose output broke."""

    kind = "non_finite"

    def __init__(self, message: str, *, epoch: int, step: int, node: str | None = None,
                 where: str = "none", fix: str | None = None):
        super().__init__(message, fix)
        self.epoch, self.step, self.node, self.where = epoch, step, node, where


class Diverged(TrainingError):
    """The loss stayed finite but grew by orders of magnitude."""

    kind = "diverged"

    def __init__(self, message: str, *, epoch: int, step: int, fix: str | None = None):
        super().__init__(message, fix)
        self.epoch, self.step = epoch, step


class OutOfMemory(TrainingError):
    """The device ran out of memory; ``batch_size`` is the one that did not fit."""

    kind = "out_of_memory"

    def __init__(self, message: str, *, batch_size: int, fix: str | None = None):
        super().__init__(message, fix)
        self.batch_size = batch_size
