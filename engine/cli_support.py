"""What every headless command shares: exit statuses, the bad-input error, argument types,
finding the project a command names, and the progress printer."""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from engine.errors import LayerLabError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class BadInput(LayerLabError):
    """A bad command-line value."""

    kind = "bad_input"


def positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def non_negative_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {v}")
    return v


def positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def resolve_project(name: str | None):
    """The project a command names: a file, a bundled starter's name, or (None) the default starter."""
    from engine.project import load_project, load_starter

    if name is None:
        return load_starter()
    p = Path(name)
    if not p.exists() and not p.suffix:
        return load_starter(name)  # a bundled starter named on the command line
    return load_project(p)


def project_base_dir(name: str | None) -> str | None:
    """The folder relative data paths in the project ``name`` are taken from (its own folder)."""
    if name is None:
        return None
    p = Path(name)
    return str(p.resolve().parent) if p.exists() else None


class ProgressPrinter:
    """A one-line progress bar on stderr plus one metrics line per epoch on stdout."""

    def __init__(self, stream_out, stream_err, total_epochs: int):
        self.out, self.err, self.total_epochs = stream_out, stream_err, total_epochs
        self.tty = stream_err.isatty()
        self._last_draw = 0.0

    def __call__(self, event) -> None:
        from engine.events import EpochEnd, Progress

        if isinstance(event, Progress) and self.tty:
            now = time.perf_counter()
            if now - self._last_draw < 0.1:
                return
            self._last_draw = now
            frac = event.step / max(event.total_steps, 1)
            bar = "#" * int(30 * frac)
            self.err.write(f"\r[{bar:<30}] {100 * frac:5.1f}%  loss {event.train_loss:.4f}  "
                           f"{event.samples_per_s:,.0f} samples/s  ETA {event.eta_s:5.1f}s ")
            self.err.flush()
        elif isinstance(event, EpochEnd):
            if self.tty:
                self.err.write("\r" + " " * 90 + "\r")
            m = event.metrics
            parts = [f"epoch {event.epoch}/{self.total_epochs}"]  # EpochEnd.epoch is 1-based
            for key in ("train_loss", "val_loss", "val_accuracy", "val_mse"):
                if key in m and m[key] is not None:
                    parts.append(f"{key} {m[key]:.4f}")
            self.out.write("  ".join(parts) + "\n")
            self.out.flush()
