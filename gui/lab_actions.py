"""The File menu's lab entries: open a lab (a file, or a bundled one), submit it, author one.

    File > Labs ▸ 1 · The first neuron …   a new project from a bundled lab
    File > Open lab…                       a new project from a lab file (.json / .layerlab-lab)
    File > Submit lab…                     the submission bundle, for the instructor
    File > New lab from this project…      instructor mode (gui/lab_author.py)
    File > Edit a lab file…                instructor mode on an existing lab

Opening a lab makes a new, unsaved project from it (``engine.labs.new_project_from_lab``) and
opens it through the window, which asks first (unsaved changes, a run in progress).
"""
from __future__ import annotations

import os

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

from engine.errors import LayerLabError
from engine.labs import LabFileError, list_labs, load_bundled_lab, load_lab, new_project_from_lab, save_submission
from engine.labs.submission import SUFFIX as SUBMISSION_SUFFIX
from engine.project import file_stem
from gui import busy, dialogs
from gui.lab_session import remember_lab_file
from gui.recent import app_settings

LAB_FILTERS = "LayerLab labs (*.json *.layerlab-lab);;All files (*)"
SUBMISSION_FILTERS = f"LayerLab submissions (*{SUBMISSION_SUFFIX});;All files (*)"
STATUS_MS = 10000


def file_menu(window) -> QMenu | None:
    for action in window.menuBar().actions():
        if action.menu() is not None and action.text().replace("&", "") == "File":
            return action.menu()
    return None


class LabActions(QObject):
    def __init__(self, window, session, panel):
        super().__init__(window)
        self.window = window
        self.session = session
        self.author = None  # the instructor's LabAuthor window, once opened
        menu = file_menu(window)
        self.labs_menu = QMenu("&Labs", window)
        self.labs_menu.setToolTipsVisible(True)
        try:
            bundled = list_labs()
        except LabFileError as exc:  # a broken install: say so in the menu, keep the rest working
            bundled = []
            self.labs_menu.addAction(f"(the bundled labs cannot be read: {exc})").setEnabled(False)
        for info in bundled:
            a = self.labs_menu.addAction(info["title"], lambda i=info["id"]: self.open_bundled(i))
            a.setToolTip(info["description"])
            a.setStatusTip(info["description"])
        self.act_open_lab = QAction("Open &lab…", window)
        self.act_open_lab.setStatusTip("Start a lab from a lab file your instructor gave you (.json or .layerlab-lab).")
        self.act_open_lab.triggered.connect(self.open_lab_dialog)
        self.act_submit = QAction("S&ubmit lab…", window)
        self.act_submit.setStatusTip("Write the file you hand in: your network, weights, answers and steps done.")
        self.act_submit.triggered.connect(self.submit)
        self.act_new_lab = QAction("New lab from this project…", window)
        self.act_new_lab.setStatusTip("Instructor mode: write a lab whose starter is the network on the canvas.")
        self.act_new_lab.triggered.connect(lambda: self.open_author(None))
        self.act_edit_lab = QAction("Edit a lab file…", window)
        self.act_edit_lab.setStatusTip("Instructor mode: change the steps, goals and locks of a lab file.")
        self.act_edit_lab.triggered.connect(self.edit_lab_dialog)
        if menu is not None:
            actions = menu.actions()
            after_starters = next((a for i, a in enumerate(actions[:-1])
                                   if a.menu() is not None and "Starter" in a.text()), None)
            before = actions[actions.index(after_starters) + 1] if after_starters is not None else None
            menu.insertMenu(before, self.labs_menu)
            menu.insertAction(before, self.act_open_lab)
            quit_action = next((a for a in menu.actions() if a.text().replace("&", "") == "Quit"), None)
            group = [self.act_submit, None, self.act_new_lab, self.act_edit_lab, None]
            for a in group:
                if a is None:
                    menu.insertSeparator(quit_action) if quit_action else menu.addSeparator()
                else:
                    menu.insertAction(quit_action, a) if quit_action else menu.addAction(a)
        panel.submitRequested.connect(self.submit)
        panel.locateRequested.connect(self.locate_lab)
        session.labChanged.connect(lambda lab: self.act_submit.setEnabled(lab is not None))
        self.act_submit.setEnabled(session.lab is not None)

    # ------------------------------------------------------------------ opening
    def open_lab(self, lab) -> bool:
        """A new project from ``lab``, opened in the window (which asks about unsaved work first)."""
        project = new_project_from_lab(lab)
        self.session.expect(lab)
        if not self.window.open_project(project, "Cannot open the lab"):
            self.session.expect(None)
            return False
        # short enough for the space the status bar's permanent labels leave at 1280 px (the lab's
        # title, in the panel anyway, cut it to "Save the projec")
        self.window.statusBar().showMessage("Lab opened: follow its steps on the left; save the project to keep "
                                            "your progress.", STATUS_MS)
        return True

    def open_bundled(self, lab_id: str) -> bool:
        try:
            lab = load_bundled_lab(lab_id)
        except LayerLabError as exc:
            dialogs.show_error(self.window, "Cannot open the lab", str(exc))
            return False
        return self.open_lab(lab)

    def open_lab_file(self, path: str) -> bool:
        try:
            lab = load_lab(path)
        except LayerLabError as exc:
            dialogs.show_error(self.window, "Cannot open the lab", str(exc))
            return False
        if self.open_lab(lab):
            remember_lab_file(lab.id, os.path.abspath(path))
            return True
        return False

    def open_lab_dialog(self) -> bool:
        path = dialogs.get_open_path(self.window, "Open a lab", LAB_FILTERS, self._start_dir())
        return self.open_lab_file(path) if path else False

    def locate_lab(self) -> bool:
        """The open project names a lab LayerLab cannot find: ask for its file."""
        path = dialogs.get_open_path(self.window, "Find the lab file", LAB_FILTERS, self._start_dir())
        if not path:
            return False
        try:
            self.session.attach(os.path.abspath(path))
        except LayerLabError as exc:
            dialogs.show_error(self.window, "Cannot use this lab file", str(exc))
            return False
        return True

    def _start_dir(self) -> str:
        from gui.lab_session import lab_dialog_folder

        return lab_dialog_folder(self.window)

    # ------------------------------------------------------------------ submitting
    def submit(self) -> str | None:
        """Ask for the student's name, write the submission bundle, say where it went; returns its path."""
        session, window, doc = self.session, self.window, self.window.document
        lab = session.lab
        if lab is None:
            dialogs.show_error(window, "Submit lab",
                               "This project was not made from a lab, so there is nothing to submit. "
                               "Open a lab with File › Labs or File › Open lab….")
            return None
        training = [s for s in lab.steps if s.training]
        if training and (doc.project.weights is None or doc.weights_stale):
            why = ("is not trained yet" if doc.project.weights is None
                   else "changed since it was trained, so its weights no longer fit it")
            if not dialogs.ask_yes_no(window, "Submit lab",
                                      f"Your network {why}: the steps that need a trained network "
                                      f"({', '.join(s.title for s in training)}) will count as not done. "
                                      "Submit anyway?"):
                return None
        settings = app_settings()
        student = dialogs.get_student(window, lab.title, str(settings.value("lab/student_name") or ""),
                                      str(settings.value("lab/student_id") or ""))
        if student is None:
            return None
        settings.setValue("lab/student_name", student["name"])
        settings.setValue("lab/student_id", student["id"])
        settings.sync()
        folder = os.path.dirname(doc.path) if doc.path else os.path.expanduser("~")
        who = file_stem(student["name"] or student["id"], "student")
        default = os.path.join(folder, f"{lab.id}-{who}{SUBMISSION_SUFFIX}")
        path = dialogs.get_save_path(window, "Save your submission", SUBMISSION_FILTERS, default)
        if not path:
            return None
        if not path.endswith(SUBMISSION_SUFFIX):
            path += SUBMISSION_SUFFIX
        try:
            raw, report = busy.run_busy(window, "Preparing your submission…", session.submission_job(student))
            save_submission(path, raw)
        except busy.Cancelled:
            return None
        except LayerLabError as exc:
            dialogs.show_error(window, "Cannot submit the lab", str(exc))
            return None
        except OSError as exc:
            dialogs.show_error(window, "Cannot submit the lab", f"Cannot write {path}: {exc.strerror or exc}.")
            return None
        window.statusBar().showMessage(f"Submission saved to {path}", STATUS_MS)
        dialogs.show_info(window, "Lab submitted",
                          f"Your submission is saved as\n{path}\n\nHand this file in to your instructor. It holds "
                          f"your network, its weights and settings, and your answers: {report.summary()}.")
        return path

    # ------------------------------------------------------------------ instructor mode
    def open_author(self, lab=None):
        """The instructor's window on a new lab from the open project, or on ``lab``."""
        from gui.lab_author import LabAuthor

        if self.author is not None:
            self.author.close()
        self.author = LabAuthor(self.window, self, lab)
        self.author.show()
        self.author.raise_()
        return self.author

    def edit_lab_dialog(self):
        path = dialogs.get_open_path(self.window, "Edit a lab", LAB_FILTERS, self._start_dir())
        if not path:
            return None
        try:
            lab = load_lab(path)
        except LayerLabError as exc:
            dialogs.show_error(self.window, "Cannot open the lab", str(exc))
            return None
        remember_lab_file(lab.id, os.path.abspath(path))
        author = self.open_author(lab)
        author.path = os.path.abspath(path)
        return author
