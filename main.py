"""LayerLab entry point.

    python main.py                 open the app on the default starter lab
    python main.py PROJECT         open a project in the app
    python main.py COMMAND ...     the headless command line (see --help)
"""
from __future__ import annotations

import sys

from engine.commands import COMMAND_NAMES

CLI_COMMANDS = (*COMMAND_NAMES, "-h", "--help")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in CLI_COMMANDS:
        from engine.cli import run_cli

        return run_cli(argv)
    from gui.app import run_app

    return run_app(sys.argv[:1] + argv, argv[0] if argv else None)


if __name__ == "__main__":
    sys.exit(main())
