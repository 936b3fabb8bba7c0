"""The open project's lab: which lab it is, its live check, and the student's progress in it.

``LabSession`` follows the document.  When a project opens it finds the project's lab - the one
just opened with File > Open lab…, a bundled lab, or a lab file opened before on this machine - and
puts its locks in force (``Document.set_lab``).  A project that names a lab this app cannot find
gets ``missingLab`` (the panel offers to locate the file).

Checks run on a worker thread, on a copy of the project (``Document.snapshot``), so an edit made
meanwhile never races the check and a metric goal's forward pass never freezes the window.  One
check runs at a time; edits made during it ask for one more.  Checks are debounced (an edit burst
costs one), and the engine's ``LabChecker`` memoises the metrics of recent (graph, weights) pairs,
so a check after an edit that does not touch the model costs no forward pass.

The student's actions (``record``, ``reveal_hint``, ``answer``) write the project's lab record
through ``engine.labs`` and mark the document modified: progress is saved with the project.
"""
from __future__ import annotations

import os
import threading

from PySide6.QtCore import QObject, QTimer, Signal

from engine.errors import LayerLabError
from engine.labs import (LabChecker, LabFileError, load_bundled_lab, load_lab, make_submission, record_event,
                         record_ticks, reveal_hint, set_answer)
from engine.labs.goals import parse_number
from engine.labs.progress import lab_id_of, ticked
from gui.recent import app_settings

DEBOUNCE_MS = 250  # an edit burst (typing a number, a drag) costs one check
CHECKING_SHOWN_MS = 150  # a check that takes longer than this shows "checking…"
_FILES_KEY = "labs/file/"  # + lab id: the lab file last opened for that id
_FOLDER_KEY = "labs/last_folder"  # the folder of the lab file opened or saved last


def remember_lab_file(lab_id: str, path: str) -> None:
    """Where lab ``lab_id``'s file is, and the folder the lab dialogs start in next time."""
    s = app_settings()
    s.setValue(_FILES_KEY + lab_id, path)
    s.setValue(_FOLDER_KEY, os.path.dirname(os.path.abspath(path)))
    s.sync()


def last_lab_folder() -> str | None:
    """The folder of the lab file opened or saved last (the lab dialogs had started in the home
    folder, away from the lab the instructor had just saved)."""
    value = app_settings().value(_FOLDER_KEY)
    return str(value) if value and os.path.isdir(str(value)) else None


def lab_dialog_folder(window, lab_path: str | None = None) -> str:
    """Where a lab's file dialogs start: the lab's own folder, else the last lab file's folder, else
    where Open starts."""
    if lab_path:
        return os.path.dirname(lab_path)
    return last_lab_folder() or window.start_folder()


def remembered_lab_file(lab_id: str) -> str | None:
    value = app_settings().value(_FILES_KEY + lab_id)
    return str(value) if value else None


class _CheckDone(QObject):
    """Carries a finished check from its thread to the GUI thread (a queued signal)."""

    done = Signal(int, object, object)  # (generation, report or None, error or None)


class LabSession(QObject):
    labChanged = Signal(object)  # the open project's Lab, or None
    missingLab = Signal(str, str)  # (lab id, title): the project follows a lab this app cannot find
    reportReady = Signal(object)  # engine.labs.LabReport of the open project
    checkingChanged = Signal(bool)  # True when a check has been running for a moment
    progressChanged = Signal()  # a hint, an answer or an inspection event was recorded

    def __init__(self, document, parent: QObject | None = None):
        super().__init__(parent)
        self.document = document
        self.lab = None
        self.checker: LabChecker | None = None
        self.report = None  # the last check of the open project (None: not checked yet)
        self.missing: tuple[str, str] | None = None  # (id, title) of a lab that could not be found
        self.checking = False
        self._expected = None  # a lab whose new project is about to open
        self._generation = 0  # counts projects: a check of a project that went away is dropped
        self._running = False
        self._pending = False
        self._checker_lock = threading.Lock()  # one check at a time uses a checker (its memo is a dict)
        self._carrier = _CheckDone(self)
        self._carrier.done.connect(self._on_done)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._start_check)
        self._shown_timer = QTimer(self)
        self._shown_timer.setSingleShot(True)
        self._shown_timer.setInterval(CHECKING_SHOWN_MS)
        self._shown_timer.timeout.connect(lambda: self._set_checking(True))
        document.projectReplaced.connect(self._on_project_replaced)
        for signal in (document.graphChanged, document.trainingConfigChanged, document.weightsChanged):
            signal.connect(lambda *_a: self.request_check())
        self._on_project_replaced()

    # ------------------------------------------------------------------ which lab
    def expect(self, lab) -> None:
        """The next project to open was made from ``lab`` (File > Open lab…, Try as a student)."""
        self._expected = lab

    def _find_lab(self, lab_id: str, lab_hash: str | None, expected=None):
        """The lab a project names: just opened, already open, a lab file used before, or bundled."""
        candidates = [c for c in (expected, self.lab) if c is not None and c.id == lab_id]
        if candidates:
            return candidates[0]
        found = []
        path = remembered_lab_file(lab_id)
        if path:
            try:
                lab = load_lab(path)
                if lab.id == lab_id:
                    found.append(lab)
            except LabFileError:
                pass
        try:
            found.append(load_bundled_lab(lab_id))
        except LabFileError:
            pass
        # the very version the project was made from, else any (the report notes the difference)
        return next((lab for lab in found if lab.content_hash == lab_hash), found[0] if found else None)

    def _on_project_replaced(self) -> None:
        self._generation += 1
        self.report = None
        project = self.document.project
        lab_id = lab_id_of(project)
        expected, self._expected = self._expected, None
        lab = None
        self.missing = None
        if lab_id is not None:
            rec = project.lab
            lab = self._find_lab(lab_id, rec.get("hash"), expected)
            if lab is None:
                self.missing = (lab_id, str(rec.get("title") or lab_id))
        self._use(lab)
        if self.missing:
            self.missingLab.emit(*self.missing)

    def _use(self, lab) -> None:
        if lab is not self.lab:
            self.checker = LabChecker(lab) if lab is not None else None
        self.lab = lab
        self.document.set_lab(lab)
        self.labChanged.emit(lab)
        self.request_check(0)

    def attach(self, path: str) -> None:
        """Use the lab file at ``path`` for the open project (it names that lab but it could not be
        found).  Raises LabFileError for a bad file or a lab other than the project's."""
        lab = load_lab(path)
        wanted = lab_id_of(self.document.project)
        if wanted is not None and lab.id != wanted:
            raise LabFileError(f"{path}: this is the lab '{lab.id}', but the project was made from the lab "
                               f"'{wanted}'.")
        remember_lab_file(lab.id, path)
        self.missing = None
        self._use(lab)

    # ------------------------------------------------------------------ checking
    def request_check(self, delay_ms: int = DEBOUNCE_MS) -> None:
        """Check the open project again soon (edits within ``delay_ms`` share one check)."""
        if self.lab is not None:
            self._timer.start(delay_ms)

    def _start_check(self) -> None:
        if self.lab is None:
            return
        if self._running:
            self._pending = True
            return
        self._running = True
        self._pending = False
        snapshot = self.document.snapshot()  # the check reads a copy: edits go on meanwhile
        generation, checker = self._generation, self.checker
        self._shown_timer.start()
        threading.Thread(target=self._run, args=(checker, snapshot, generation), name="layerlab-lab-check",
                         daemon=True).start()

    def _run(self, checker: LabChecker, project, generation: int) -> None:
        try:
            with self._checker_lock:
                report, error = checker.check(project), None
        except Exception as exc:  # noqa: BLE001 - a checker bug must not kill the thread silently
            report, error = None, exc
        try:
            self._carrier.done.emit(generation, report, error)
        except RuntimeError:  # the window closed while checking
            pass

    def _on_done(self, generation: int, report, error) -> None:
        self._running = False
        self._shown_timer.stop()
        if generation == self._generation and self.lab is not None:
            if error is not None:
                import traceback
                traceback.print_exception(type(error), error, error.__traceback__)
            elif report is not None and report.lab_id == self.lab.id:
                self.report = report
                project = self.document.project
                before = ticked(project)
                record_ticks(project, report)
                if ticked(project) != before:
                    self.document.lab_progress_changed()
                self.reportReady.emit(report)
        if self._pending or generation != self._generation:
            self._start_check()
        if not self._running:
            self._set_checking(False)

    def _set_checking(self, on: bool) -> None:
        if on != self.checking:
            self.checking = on
            self.checkingChanged.emit(on)

    @property
    def busy(self) -> bool:
        """A check is queued or running (tests wait for this to end)."""
        return self._running or self._timer.isActive()

    # ------------------------------------------------------------------ the student's actions
    def _follows_lab(self) -> bool:
        return self.lab is not None and lab_id_of(self.document.project) == self.lab.id

    def _progress(self) -> None:
        self.document.lab_progress_changed()
        self.progressChanged.emit()
        self.request_check(0)

    def record(self, kind: str, **fields: str) -> bool:
        """Record an inspection event (a view opened, the timeline scrubbed, an attribution...)."""
        if not self._follows_lab():
            return False
        new = record_event(self.document.project, kind, **fields)
        if new:
            self._progress()
        return new

    def reveal_hint(self, step_id: str) -> str | None:
        """Reveal the step's next hint (kept in the project); None when all are shown."""
        if not self._follows_lab():
            return None
        hint = reveal_hint(self.document.project, self.lab, step_id)
        if hint is not None:
            self._progress()
        return hint

    def answer(self, question_id: str, value) -> None:
        """Keep the student's answer (a number answer is stored as a number when it reads as one)."""
        if not self._follows_lab():
            return
        if isinstance(value, str):
            value = value.strip()
            number = parse_number(value)
            if number is not None and getattr(self._question(question_id), "kind", "") == "number":
                value = number
        set_answer(self.document.project, self.lab, question_id, value)
        self._progress()

    def _question(self, question_id: str):
        from engine.labs.goals import questions

        return next((q for s in self.lab.steps for q in questions(s.goal) if q.id == question_id), None)

    # ------------------------------------------------------------------ submitting
    def submission_job(self, student: dict):
        """A function that makes the submission bundle of the project as it is now and returns
        ``(bytes, the check it records)``: run it off the GUI thread (gui/busy.py).  It raises
        LayerLabError for a bad name; this raises it for a project made from no lab."""
        if not self._follows_lab():
            raise LayerLabError("This project was not made from a lab, so it cannot be submitted as one.")
        project, lab, checker = self.document.snapshot(), self.lab, self.checker

        def work():
            with self._checker_lock:
                report = checker.check(project)
            return make_submission(project, student, lab, report), report
        return work

    def shutdown(self) -> None:
        self._timer.stop()
        self._shown_timer.stop()
        self._generation += 1
