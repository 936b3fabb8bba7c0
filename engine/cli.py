"""The headless command line: ``layerlab COMMAND ...`` (the commands live in ``engine/commands``).

The error contract, the same for every command:
- bad input (a missing, corrupt or oversized file, a bad setting in a project or a flag, data it
  cannot encode, a graph with errors, a device that is not there) exits 2 with ONE line on stderr
  that names the file and the field, and writes nothing;
- a run that fails while training (e.g. the loss goes NaN) exits 1 with one line;
- a file the system will not write or read (a read-only folder, a full disk) exits 2 with one line;
- an internal error (a LayerLab bug) exits 1 with one line that says where its traceback was
  written (``engine.cli_support.log_dir()``); the traceback never reaches the terminal;
- Ctrl-C exits 130.
"""
from __future__ import annotations

import argparse
import sys

from engine.cli_support import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, BadInput, PipeSafeStdout,
                                os_error_sentence, unknown_command_message, write_crash_log)
from engine.commands import COMMAND_NAMES, command_module
from engine.errors import LayerLabError

__all__ = ["run_cli", "build_parser", "BadInput"]


class _Parser(argparse.ArgumentParser):
    """argparse prints usage plus an error over several lines and exits; we want one line and exit 2."""

    def error(self, message):
        if "invalid choice" in message and self.prog == "layerlab":  # a mistyped command
            word = message.split("'")[1] if message.count("'") >= 2 else ""
            raise BadInput(unknown_command_message(word))
        raise BadInput(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="layerlab", description="LayerLab: build, train and understand neural networks.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for name in COMMAND_NAMES:
        module = command_module(name)
        module.add_arguments(sub.add_parser(name, help=module.HELP))
    return parser


def _say(line: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()


def run_cli(argv: list[str]) -> int:
    """Run a CLI command; returns the exit code.  Never lets a traceback reach the user."""
    stdout = sys.stdout
    sys.stdout = PipeSafeStdout(stdout)
    try:
        return _run(argv)
    finally:
        sys.stdout = stdout


def _run(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise BadInput(f"layerlab: name a command: {', '.join(COMMAND_NAMES)} "
                           "(or run without arguments for the app).")
        return command_module(args.command).run(args)
    except LayerLabError as err:
        from engine.errors import TrainingError

        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        _say(text if len(text) <= 600 else text[:600] + "…")
        return EXIT_FAILED if isinstance(err, TrainingError) else EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except OSError as exc:  # the system refused a file (read-only folder, full disk): the user's to fix
        _say(os_error_sentence(exc))
        return EXIT_BAD_INPUT
    except Exception as exc:  # a LayerLab bug: one line here, the traceback in a log file
        log = write_crash_log(exc, argv)
        where = f"the details are in {log}" if log else "no log could be written"
        _say(f"internal error ({type(exc).__name__}); this is a bug in LayerLab, not in your input -- "
             f"{where}. Please report it.")
        return EXIT_FAILED
