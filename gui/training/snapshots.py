"""The GUI side of snapshots: an inbox any thread can post to, and the run's history.

The runner (a worker thread, or the bridge thread of a training subprocess) calls
``SnapshotInbox.post`` for every snapshot.  The GUI timer calls ``drain`` once per frame:
every pending snapshot's scalars go into the ``RunHistory`` (so the curves miss nothing),
but only the newest one is handed to the views.  So the views never work through a backlog,
however far behind the GUI falls.

History series are ``SeriesBuffer``s: bounded, decimating buffers, so a long run costs
neither unbounded memory nor ever slower ``setData`` calls.  ``RunHistory.series_arrays`` /
``load_series_arrays`` turn them into named arrays and back: a saved project keeps them
(``Project.series``), so a re-opened run draws what the run drew.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.snapshots import ProbeInfo, Snapshot


class SeriesBuffer:
    """(x, y) samples in arrival order, at most ``capacity`` of them.

    When full, every other sample is dropped and from then on only every ``stride``-th new
    sample is kept, so the buffer always spans the whole run at an even density.  The newest
    sample is always available as ``last`` (curves end exactly at "now").
    """

    def __init__(self, capacity: int = 2000, width: int = 0):
        self.capacity = max(4, int(capacity))
        self.width = width  # 0: scalar y; >0: a row of that many values per sample (e.g. a histogram)
        self._x = np.empty(self.capacity, np.float64)
        self._y = np.empty((self.capacity, width) if width else self.capacity, np.float32)
        self._n = 0
        self._stride = 1
        self._count = 0
        self.last: tuple[float, Any] | None = None

    def __len__(self) -> int:
        return self._n

    def append(self, x: float, y: Any) -> None:
        self.last = (x, y)
        keep = self._count % self._stride == 0
        self._count += 1
        if not keep:
            return
        if self._n == self.capacity:
            half = self.capacity // 2
            self._x[:half] = self._x[0:self.capacity:2]
            self._y[:half] = self._y[0:self.capacity:2]
            self._n = half
            self._stride *= 2
            self._count = 1
        self._x[self._n] = x
        self._y[self._n] = y
        self._n += 1

    def arrays(self, with_last: bool = True) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._x[:self._n], self._y[:self._n]
        if with_last and self.last is not None and (self._n == 0 or self._x[self._n - 1] != self.last[0]):
            x = np.append(x, self.last[0])
            y = np.concatenate([y, np.asarray(self.last[1], np.float32).reshape((1,) + y.shape[1:])])
        return x, y

    def truncate(self, x_max: float) -> None:
        """Drop the samples after ``x_max`` (x must be increasing: one run, or runs that continue)."""
        n = int(np.searchsorted(self._x[:self._n], x_max, side="right"))
        self._n = n
        if self.last is not None and self.last[0] > x_max:
            self.last = (float(self._x[n - 1]), self._y[n - 1].copy()) if n else None

    def clear(self) -> None:
        self._n = 0
        self._stride = 1
        self._count = 0
        self.last = None

    def load(self, x: np.ndarray, y: np.ndarray) -> None:
        """Replace the contents with saved samples (as ``arrays()`` gave them)."""
        self.clear()
        for xi, yi in zip(np.asarray(x, np.float64), np.asarray(y, np.float32)):
            self.append(float(xi), yi)


@dataclass
class TimelineCheckpoint:
    """The model at the end of an epoch (epoch 0: before training): CPU weights and what the views showed."""

    epoch: int
    weights: dict  # name -> CPU tensor
    snapshot: Snapshot | None
    metrics: dict = field(default_factory=dict)


class RunHistory:
    """Everything the views plot over time; lives in the GUI thread.

    One run, or several where each continued from where the one before left off: ``x_offset``
    (whole epochs) is added to the current run's own epoch numbers, so its curves go on from there.
    """

    def __init__(self, capacity: int = 2000):
        self.capacity = capacity
        self.clear()

    def clear(self) -> None:
        self.x_offset = 0
        self.running = False  # a run is adding to this history now
        self.steps_per_epoch = 1  # of the current (or restored) run: the loss curve's points are x * this steps
        self.info: ProbeInfo | None = None
        self.loss = SeriesBuffer(self.capacity)
        self.lr = SeriesBuffer(self.capacity)
        self.grad_norms: dict[str, SeriesBuffer] = {}
        self.dead_relu: dict[str, SeriesBuffer] = {}
        self.weight_hist: dict[str, SeriesBuffer] = {}
        self.epochs: list[dict] = []  # one dict of metrics per finished epoch
        self._epoch_cols: dict[str, tuple[list, list]] = {}  # metric -> (epochs, values), numeric only
        self.checkpoints: list[TimelineCheckpoint] = []
        self.latest: Snapshot | None = None
        self.n_snapshots = 0

    def add(self, snap: Snapshot) -> None:
        x = snap.epoch + self.x_offset
        self.n_snapshots += 1
        if snap.train_loss is not None:
            self.loss.append(x, snap.train_loss)
        if snap.lr is not None:
            self.lr.append(x, snap.lr)
        for name, v in snap.grad_norms.items():
            self.grad_norms.setdefault(name, SeriesBuffer(self.capacity)).append(x, v)
        for name, v in snap.dead_relu.items():
            self.dead_relu.setdefault(name, SeriesBuffer(self.capacity)).append(x, v)
        for name, h in snap.weight_hist.items():
            buf = self.weight_hist.get(name)
            if buf is None:
                buf = self.weight_hist[name] = SeriesBuffer(min(self.capacity, 600), width=len(h))
            buf.append(x, h)
        self.latest = snap

    def add_epoch(self, epoch: int, metrics: dict) -> None:
        """Metrics of epoch ``epoch``, counted over the whole history (not the run's own count)."""
        row = {**metrics, "epoch": epoch}
        self.epochs.append(row)
        self._index(row)

    def _index(self, row: dict) -> None:
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool):
                xs, ys = self._epoch_cols.setdefault(k, ([], []))
                xs.append(float(row["epoch"]))
                ys.append(float(v))

    def truncate(self, epoch: int) -> None:
        """Keep everything up to the end of ``epoch``: a run that continues from there follows."""
        for buf in (self.loss, self.lr, *self.grad_norms.values(), *self.dead_relu.values(),
                    *self.weight_hist.values()):
            buf.truncate(float(epoch))
        self.epochs = [row for row in self.epochs if row["epoch"] <= epoch]
        self.checkpoints = [cp for cp in self.checkpoints if cp.epoch <= epoch]
        self._epoch_cols = {}
        for row in self.epochs:
            self._index(row)

    def epoch_series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = self._epoch_cols.get(key, ((), ()))
        return np.asarray(xs, np.float64), np.asarray(ys, np.float64)

    def metric_keys(self) -> list[str]:
        return list(self._epoch_cols)

    @property
    def last_epoch(self) -> int:
        return int(self.epochs[-1]["epoch"]) if self.epochs else 0

    def is_empty(self) -> bool:
        return not self.epochs and not self.checkpoints and not len(self.loss)

    # ------------------------------------------------------------------ saved with the project
    def _named_series(self) -> dict[str, SeriesBuffer]:
        out = {"loss": self.loss, "lr": self.lr}
        for group, bufs in (("grad_norms", self.grad_norms), ("dead_relu", self.dead_relu),
                            ("weight_hist", self.weight_hist)):
            out.update({f"{group}/{name}": buf for name, buf in bufs.items()})
        return out

    def series_arrays(self) -> dict[str, np.ndarray]:
        """Every series as ``<name>.x`` / ``<name>.y`` arrays (what ``Project.series`` saves)."""
        out: dict[str, np.ndarray] = {}
        for name, buf in self._named_series().items():
            x, y = buf.arrays()
            if len(x):
                out[f"{name}.x"], out[f"{name}.y"] = x.astype(np.float64), y.astype(np.float32)
        return out

    def load_series_arrays(self, arrays: dict) -> None:
        """Restore the series ``series_arrays`` gave (unknown or malformed entries are skipped)."""
        groups = {"grad_norms": self.grad_norms, "dead_relu": self.dead_relu, "weight_hist": self.weight_hist}
        for key, x in arrays.items():
            if not key.endswith(".x") or key[:-2] + ".y" not in arrays:
                continue
            name, x, y = key[:-2], np.asarray(x), np.asarray(arrays[key[:-2] + ".y"])
            if len(x) != len(y) or x.ndim != 1:
                continue
            if name in ("loss", "lr"):
                getattr(self, name).load(x, y)
                continue
            group, _, series = name.partition("/")
            bufs = groups.get(group)
            if bufs is None or not series:
                continue
            if group == "weight_hist":
                if y.ndim != 2:
                    continue
                buf = SeriesBuffer(min(self.capacity, 600), width=y.shape[1])
            else:
                buf = SeriesBuffer(self.capacity)
            buf.load(x, y)
            bufs[series] = buf

    def load_epochs(self, rows: list[dict]) -> None:
        """Restore the epoch records of a saved run."""
        for row in rows:
            if isinstance(row, dict) and isinstance(row.get("epoch"), (int, float)):
                self.add_epoch(int(row["epoch"]), {k: v for k, v in row.items() if k != "epoch"})


class SnapshotInbox:
    """Thread-safe hand-over of snapshots from the runner to the GUI timer."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending: list[Snapshot] = []
        self.received = 0
        self.on_drained = None  # called with the number of snapshots each drain took (backlog accounting)

    def post(self, snap: Snapshot) -> None:
        with self._lock:
            self._pending.append(snap)
            self.received += 1

    def drain(self, history: RunHistory) -> Snapshot | None:
        """Move every pending snapshot into ``history``; return the newest (None if nothing came)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for snap in pending:
            history.add(snap)
        if pending and self.on_drained is not None:
            self.on_drained(len(pending))
        return pending[-1] if pending else None

    def dropped(self, n: int) -> None:
        """``n`` snapshots were announced (counted against the backlog) but never posted."""
        if n and self.on_drained is not None:
            self.on_drained(n)

    def clear(self) -> None:
        with self._lock:
            n, self._pending = len(self._pending), []
        if n and self.on_drained is not None:
            self.on_drained(n)
