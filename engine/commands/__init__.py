"""The headless commands, one module each: ``python main.py NAME ...``.

A command module defines ``HELP`` (one line for ``--help``), ``add_arguments(parser)`` and
``run(args) -> int`` (an exit status).  Adding a command = one module here and its name in
``COMMAND_NAMES``.  This package imports nothing heavy: ``main.py`` reads ``COMMAND_NAMES`` to
decide between the CLI and the GUI before torch is loaded.
"""
from __future__ import annotations

import importlib
from types import ModuleType

#: every headless command, in ``--help`` order (module ``engine.commands.<name>``)
COMMAND_NAMES: tuple[str, ...] = ("train", "evaluate", "explain", "export", "import", "lab", "grade", "labs")
#: commands whose module name differs from the command (``import`` is a Python keyword)
_MODULE_NAMES = {"import": "import_"}


def command_module(name: str) -> ModuleType:
    return importlib.import_module(f"engine.commands.{_MODULE_NAMES.get(name, name)}")
