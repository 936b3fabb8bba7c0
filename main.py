"""LayerLab entry point.

    python main.py                 open the app on the default starter lab
    python main.py PROJECT         open a project in the app
    python main.py COMMAND ...     the headless command line (see --help)

A word that is neither a command nor an existing file gets one sentence listing the commands
(exit 2) and never opens the app; without a display the app is not started either (Qt would
abort the process), and the sentence points to the headless commands instead.
"""
from __future__ import annotations

import os
import sys

from engine.commands import COMMAND_NAMES

CLI_COMMANDS = (*COMMAND_NAMES, "-h", "--help")
EXIT_BAD_INPUT = 2
#: Qt platforms that draw without a window system
HEADLESS_QT_PLATFORMS = ("offscreen", "minimal", "minimalegl", "vnc", "eglfs", "linuxfb", "vkkhrdisplay")


def display_problem(environ=os.environ, platform: str = sys.platform) -> str | None:
    """Why the app cannot open a window here (a sentence), or None when it can.  Only X11/Wayland
    systems are checked: Windows and macOS always have a display for a user's session."""
    if not (platform.startswith("linux") or "bsd" in platform):
        return None
    qpa = environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if qpa in HEADLESS_QT_PLATFORMS:
        return None
    if qpa in ("", "xcb") and environ.get("DISPLAY"):
        return None
    if qpa in ("", "wayland", "wayland-egl") and environ.get("WAYLAND_DISPLAY"):
        return None
    return ("layerlab: the app needs a display, and none is set (no DISPLAY or WAYLAND_DISPLAY). Use the "
            f"headless commands instead: {', '.join(COMMAND_NAMES)} (python main.py --help), or run the app "
            "under xvfb-run.")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in CLI_COMMANDS:
        from engine.cli import run_cli

        return run_cli(argv)
    if argv and not os.path.isfile(argv[0]):
        from engine.cli_support import unknown_command_message

        sys.stderr.write(f"error: {unknown_command_message(argv[0])}\n")
        return EXIT_BAD_INPUT
    problem = display_problem()
    if problem:
        sys.stderr.write(f"error: {problem}\n")
        return EXIT_BAD_INPUT
    from gui.app import run_app

    return run_app(sys.argv[:1] + argv, argv[0] if argv else None)


if __name__ == "__main__":
    sys.exit(main())
