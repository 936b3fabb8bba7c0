"""What the views show for a timeline checkpoint: computed once from its weights, then cached.

A checkpoint holds weights only (the run sends nothing else at epoch ends); when someone scrubs
to it - or opens a saved project - a replica of the model takes its weights and a
``SnapshotCollector`` computes the snapshot the views draw, in this process."""
from __future__ import annotations

from engine.runner import build_model, state_from_numpy
from engine.snapshots import ProbeInfo, SnapshotCollector


class CheckpointViews:
    def __init__(self):
        self._source = None  # (graph document, context, dataset, node names, probe size)
        self._replica = None  # (module, collector)
        self.info: ProbeInfo | None = None

    def configure(self, graph_doc: dict, context, dataset, node_names: dict, probe_size: int = 64,
                  info: ProbeInfo | None = None) -> None:
        """The model and data the checkpoints belong to; ``info``: the run's own ProbeInfo (its
        histogram bins), when there was a run."""
        self._source = (graph_doc, context, dataset, dict(node_names), probe_size)
        self._replica = None
        self.info = info

    def forget(self) -> None:
        self._source = self._replica = None
        self.info = None

    @property
    def configured(self) -> bool:
        return self._source is not None

    def probe_info(self) -> ProbeInfo:
        """The ProbeInfo of the configured model (the run's, or a replica's)."""
        return self.info if self.info is not None else self._collector().info

    def _collector(self) -> SnapshotCollector:
        if self._replica is None:
            graph_doc, context, dataset, node_names, probe_size = self._source
            cm = build_model(graph_doc, context, 0)
            collector = SnapshotCollector(cm.module, dataset, node_names, probe_size=probe_size)
            if self.info is not None:
                collector.adopt(self.info)  # the run's histogram bins, not this replica's
            self._replica = (cm.module, collector)
        return self._replica[1]

    def snapshot(self, cp, steps_per_epoch: int):
        """The snapshot of timeline checkpoint ``cp`` (cached on it).  Raises what building or
        loading raises: the caller shows it as a sentence."""
        if cp.snapshot is not None:
            return cp.snapshot
        collector = self._collector()
        module = self._replica[0]
        module.load_state_dict(state_from_numpy(cp.weights))
        cp.snapshot = collector.collect(step=steps_per_epoch * cp.epoch, epoch=float(cp.epoch), grads=False,
                                        train_loss=cp.metrics.get("train_loss"), lr=cp.metrics.get("lr"))
        return cp.snapshot
