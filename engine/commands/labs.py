"""``layerlab labs``: list the bundled starter projects."""
from __future__ import annotations

import json

from engine.cli_support import EXIT_OK

HELP = "list the bundled labs and starter projects"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON")


def run(args) -> int:
    from engine.project import DEFAULT_STARTER, list_starters

    starters = list_starters()
    if args.json:
        print(json.dumps(starters))
        return EXIT_OK
    width = max(len(s["name"]) for s in starters)
    print("Starter projects (python main.py train NAME.json, or open them in the app):")
    for s in starters:
        mark = " (default)" if s["name"] == DEFAULT_STARTER else ""
        print(f"  {s['name']:<{width}}  {s['title']}{mark}: {s['description']}")
    return EXIT_OK
