"""The headless command line: ``layerlab COMMAND ...`` (the commands live in ``engine/commands``).

Bad input (a missing or corrupt file, an unknown column, data it cannot encode, a graph with
errors, a bad flag value) exits with code 2 and ONE line on stderr, and writes nothing.  A run
that fails while training (e.g. the loss goes NaN) exits with code 1 and one line.
"""
from __future__ import annotations

import argparse
import sys

from engine.cli_support import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, BadInput
from engine.commands import COMMAND_NAMES, command_module
from engine.errors import LayerLabError

__all__ = ["run_cli", "build_parser", "BadInput"]


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus an error over several lines and exits; we want one line and exit 2."""

    def error(self, message):
        raise BadInput(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="layerlab", description="LayerLab: build, train and understand neural networks.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for name in COMMAND_NAMES:
        module = command_module(name)
        module.add_arguments(sub.add_parser(name, help=module.HELP))
    return parser


def run_cli(argv: list[str]) -> int:
    """Run a CLI command; returns the exit code. Never lets a traceback reach the user for bad input."""
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise BadInput(f"layerlab: name a command: {', '.join(COMMAND_NAMES)} "
                           "(or run without arguments for the app).")
        return command_module(args.command).run(args)
    except LayerLabError as err:
        from engine.errors import TrainingError

        sys.stdout.flush()
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        sys.stderr.write(f"error: {first_line}\n")
        return EXIT_FAILED if isinstance(err, TrainingError) else EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
