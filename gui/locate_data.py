"""When a project's data file is not where the project says (a project folder zipped and handed to a
class, a file moved), say so and offer to locate it, instead of opening the project without data."""
from __future__ import annotations

import os

from gui import dialogs


def offer_to_locate(project, parent=None) -> bool:
    """Ask about each missing data file of ``project`` and put the chosen ones into its data spec.
    A file named like a missing one in the folder of one already located is taken without asking
    (the IDX labels next to the images).  Returns True when the spec changed."""
    from engine.data import missing_data_files

    changed = False
    found_in: str | None = None
    for key, path in missing_data_files(project.data):
        name = os.path.basename(os.path.normpath(path))
        if found_in and os.path.exists(os.path.join(found_in, name)):
            project.data = {**project.data, key: os.path.join(found_in, name)}
            changed = True
            continue
        folder = project.data.get("source") == "image_folder"
        what = "data folder" if folder else "data file"
        if not dialogs.ask_yes_no(parent, f"The {what} is missing",
                                  f"This project's {what} ‘{name}’ is not at {path}: it may have been moved, "
                                  f"or the project came without it.\n\nLocate it now?"):
            break
        start = os.path.dirname(path) if os.path.isdir(os.path.dirname(path)) else os.path.expanduser("~")
        chosen = (dialogs.get_directory(parent, f"Locate the data folder ‘{name}’", start) if folder else
                  dialogs.get_open_path(parent, f"Locate the data file ‘{name}’", "All files (*)", start))
        if not chosen:
            break
        project.data = {**project.data, key: os.path.abspath(chosen)}
        found_in, changed = os.path.dirname(os.path.abspath(chosen)), True
    return changed
