"""Probes: small units that each compute one kind of thing a person looks at inside a model.

- ``nonfinite``: which node's output went NaN/inf first; whether a state dict is finite.
- ``weights``: "the weights" of a layer, shrunk for display; their histogram and magnitude.
- ``activations``: every node's output in one forward pass (``tap_module``).
- ``dead_relu``: the share of a ReLU's units that are zero for every probe sample.
- ``decision_grid``: class probabilities over a grid of the input plane (2-feature data).
- ``fitted_curve``: the prediction along a line (1-feature regression).

``engine.snapshots.SnapshotCollector`` composes them into the live views' snapshots; the explain
and lab code use them on their own.  Nothing here imports Qt.
"""
from engine.probes.nonfinite import NonFiniteFinding, find_first_nonfinite, state_is_finite

__all__ = ["NonFiniteFinding", "find_first_nonfinite", "state_is_finite"]
