"""PyTorch loads in the background while the editor is already on screen.

Importing torch takes seconds; the editor (graph, shapes, parameter counts, the canvas) needs none
of it.  ``start()`` imports torch and the engine modules built on it in a thread; ``loaded`` fires
in the GUI thread when they are in.  What needs torch - compiling (the code view), the data's
tensors, training - asks ``torch_ready()`` and shows a "loading…" state until then, or runs
``when_loaded(fn)``.  Without a started loader (tests, scripts, the CLI) torch simply imports on
first use and ``torch_ready()`` is true.
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import Callable

from PySide6.QtCore import QObject, Signal

#: what the loader imports: torch, and the engine modules whose first import is slow because of it
MODULES = ("torch", "safetensors.torch", "engine.compile", "engine.train", "engine.runner", "engine.snapshots")


class TorchLoader(QObject):
    loaded = Signal()
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._done = threading.Event()
        self.error: str | None = None
        self.seconds = 0.0
        self._thread: threading.Thread | None = None
        self._waiting: list[Callable[[], None]] = []
        self.loaded.connect(self._run_waiting)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._load, name="layerlab-torch-loader", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        import importlib

        t0 = time.perf_counter()
        try:
            for name in MODULES:
                importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - a broken install: say so, the editor goes on
            self.error = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        self.seconds = time.perf_counter() - t0
        self._done.set()
        if self.error is None:
            self.loaded.emit()  # queued to the GUI thread (this object lives there)
        else:
            self.failed.emit(self.error)

    def is_loaded(self) -> bool:
        return self._done.is_set() and self.error is None

    def when_loaded(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the GUI thread once torch is in (now, if it is)."""
        if self.is_loaded() and not self._waiting:
            fn()
        else:
            self._waiting.append(fn)

    def _run_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        for fn in waiting:
            fn()


_LOADER: TorchLoader | None = None


def set_loader(loader: TorchLoader | None) -> None:
    """Make ``loader`` the app's: from now on torch_ready() waits for it (it may start later)."""
    global _LOADER
    _LOADER = loader


def loader() -> TorchLoader | None:
    return _LOADER


def torch_ready() -> bool:
    """Whether code may use torch now without waiting for the background import."""
    return _LOADER is None or _LOADER.is_loaded()


def when_torch_ready(fn: Callable[[], None]) -> None:
    if _LOADER is None:
        fn()
    else:
        _LOADER.when_loaded(fn)
