"""Errors the engine raises for bad input.

Every error carries one human sentence (what, where, how to fix).  The CLI prints
``str(error)`` and exits 2; the GUI shows it in a dialog.  Nothing else should
reach a user as a traceback.
"""
from __future__ import annotations


class LayerLabError(Exception):
    """Base class: bad input that the user can fix.  ``str(e)`` is the sentence."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message} ({self.fix})"


class ParamError(LayerLabError):
    """A layer parameter value is out of range or of the wrong type."""


class GraphError(LayerLabError):
    """A graph edit or a graph document is invalid."""


class ShapeError(LayerLabError):
    """Shapes do not fit together at a node."""


class DataError(LayerLabError):
    """A dataset cannot be loaded or encoded."""


class ProjectFileError(LayerLabError):
    """A project / graph file is missing, corrupt, truncated, foreign or of an unknown version."""


class TrainingError(LayerLabError):
    """A training run stopped because of a problem (non-finite loss, bad config...)."""
