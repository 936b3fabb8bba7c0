"""``layerlab labs``: list the bundled labs and, separately, the bundled starter projects."""
from __future__ import annotations

import json

from engine.cli_support import EXIT_OK

HELP = "list the bundled labs and starter projects"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true",
                        help='print {"labs": [...], "starters": [...]} as JSON')


def run(args) -> int:
    from engine.labs.format import list_labs
    from engine.project import DEFAULT_STARTER, list_starters

    labs, starters = list_labs(), list_starters()
    if args.json:
        print(json.dumps({"labs": labs, "starters": starters}))
        return EXIT_OK
    print("Labs (steps with goals that check themselves; python main.py lab start ID my-project.json):")
    width = max((len(lab["id"]) for lab in labs), default=0)
    for lab in labs:
        print(f"  {lab['id']:<{width}}  {lab['title']} ({lab['steps']} steps, {lab['points']:g} points): "
              f"{lab['description']}")
    print()
    print("Starter projects (python main.py train NAME, or open them in the app):")
    width = max((len(s["name"]) for s in starters), default=0)
    for s in starters:
        mark = " (default)" if s["name"] == DEFAULT_STARTER else ""
        print(f"  {s['name']:<{width}}  {s['title']}{mark}: {s['description']}")
    return EXIT_OK
