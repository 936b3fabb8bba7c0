"""A read-only view of the PyTorch code the graph compiles to.

Two readings of the same model: the model as a class a person would write (``__init__``
declaring each layer, ``forward`` one line per node with its shape; the very ``model.py``
that Export writes), and torch.fx's code of the module that actually trains
(``compile_graph(...).code``).  Updated a moment after the graph stops changing (debounced),
and only while the view is visible.  While the graph has errors it shows the first error
sentence instead.
"""
from __future__ import annotations

import re

from PySide6.QtCore import QRegularExpression, QTimer
from PySide6.QtGui import QColor, QFont, QFontDatabase, QSyntaxHighlighter, QTextCharFormat
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from engine.errors import LayerLabError
from engine.validate import first_error_sentence
from gui import theme
from gui.torch_loader import torch_ready, when_torch_ready

KEYWORDS = ("and as assert break class continue def del elif else except False finally for from global if import "
            "in is lambda None nonlocal not or pass raise return True try while with yield").split()

DEBOUNCE_MS = 300

#: what the view can show: (label, key)
READINGS = (("Model class (readable)", "class"), ("torch.fx code (what trains)", "fx"))


def _fmt(color: str, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    f = QTextCharFormat()
    f.setForeground(QColor(color))
    if bold:
        f.setFontWeight(QFont.Bold)
    f.setFontItalic(italic)
    return f


class PythonHighlighter(QSyntaxHighlighter):
    """Keywords, self, names after def/class, numbers, strings and comments — enough for generated code."""

    def __init__(self, document):
        super().__init__(document)
        self.rules: list[tuple[QRegularExpression, QTextCharFormat, int]] = []
        self.set_theme(theme.current())

    def set_theme(self, t: theme.Theme) -> None:
        dark = t.name == "dark"
        kw = _fmt("#c678dd" if dark else "#8839ef", bold=True)
        self.rules = [
            (QRegularExpression(r"\b(" + "|".join(KEYWORDS) + r")\b"), kw, 0),
            (QRegularExpression(r"\bself\b"), _fmt("#e5c07b" if dark else "#b45309", italic=True), 0),
            (QRegularExpression(r"\b(?:def|class)\s+(\w+)"), _fmt("#61afef" if dark else "#1d4ed8", bold=True), 1),
            (QRegularExpression(r"\b(torch|nn|F)\b"), _fmt("#56b6c2" if dark else "#0e7490"), 0),
            (QRegularExpression(r"\b[0-9]+(\.[0-9]+)?\b"), _fmt("#d19a66" if dark else "#c2410c"), 0),
            (QRegularExpression(r"'[^'\n]*'|\"[^\"\n]*\""), _fmt("#98c379" if dark else "#15803d"), 0),
            (QRegularExpression(r"#[^\n]*"), _fmt("#7f848e" if dark else "#6b7280", italic=True), 0),
        ]
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:
        for rx, fmt, group in self.rules:
            it = rx.globalMatch(text)
            while it.hasNext():
                m = it.next()
                self.setFormat(m.capturedStart(group), m.capturedLength(group), fmt)


class CodeView(QWidget):
    def __init__(self, doc, parent=None):
        super().__init__(parent)
        self.doc = doc
        self.editor = QPlainTextEdit()
        self.editor.setReadOnly(True)
        self.editor.setLineWrapMode(QPlainTextEdit.NoWrap)
        mono = QFontDatabase.systemFont(QFontDatabase.FixedFont)
        mono.setPointSizeF(max(9.0, mono.pointSizeF()))
        self.editor.setFont(mono)
        self.highlighter = PythonHighlighter(self.editor.document())
        self.reading = QComboBox()
        for label, key in READINGS:
            self.reading.addItem(label, key)
        self.reading.setToolTip("The model as a class you could write by hand (Export writes it as model.py), "
                                "or torch.fx's code of the module LayerLab trains. Both compute the same thing.")
        self.reading.currentIndexChanged.connect(lambda _i: self.schedule())
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 0)
        bar.addWidget(QLabel("Show:"))
        bar.addWidget(self.reading)
        bar.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addLayout(bar)
        lay.addWidget(self.editor)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.refresh)
        self._stale = True
        doc.graphChanged.connect(self.schedule)
        doc.datasetChanged.connect(self.schedule)
        doc.projectReplaced.connect(self.schedule)
        self._unlisten = theme.add_listener(self._on_theme)
        self.schedule()

    def _on_theme(self, t) -> None:
        self.highlighter.set_theme(t)

    def schedule(self, *_args) -> None:
        self._stale = True
        if self.isVisible():
            self._timer.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self._timer.start(0)

    def text(self) -> str:
        return self.editor.toPlainText()

    def show_reading(self, key: str) -> None:
        """Show the ``"class"`` or the ``"fx"`` reading of the model."""
        self.reading.setCurrentIndex(self.reading.findData(key))

    def refresh(self) -> None:
        """Compile now and show the code (or why it cannot be compiled)."""
        self._stale = False
        analysis = self.doc.analysis
        if not torch_ready():  # compiling needs torch, which is still loading in the background
            self.editor.setPlainText("# Loading PyTorch… the generated code appears here when it is ready.\n")
            when_torch_ready(self.schedule)
            return
        if not analysis.ok:
            body = ("# The graph cannot be compiled yet:\n#\n"
                    + "\n".join("# " + line for line in _wrap(first_error_sentence(analysis), 90))
                    + "\n#\n# Fix the problems listed in the Problems panel and the code appears here.\n")
        else:
            try:
                body = self._code(analysis)
            except LayerLabError as exc:
                body = "# The graph cannot be compiled:\n" + "\n".join("# " + ln for ln in _wrap(str(exc), 90))
            except Exception as exc:  # a layer builder failing is a bug, but the editor must stay usable
                body = f"# Compiling failed unexpectedly: {type(exc).__name__}: {exc}\n"
        if body != self.editor.toPlainText():
            bar = self.editor.verticalScrollBar().value()
            self.editor.setPlainText(body)
            self.editor.verticalScrollBar().setValue(bar)

    def _code(self, analysis) -> str:
        from engine.export.codegen import class_name_for, imports, model_class  # needs torch: imported once it is ready

        compiled = self.doc.compile()
        if self.reading.currentData() == "fx":
            return (f"# torch.fx's code of the module LayerLab trains, {analysis.total_params:,} trainable "
                    "parameters (read-only).\n" + readable(compiled.code).strip() + "\n")
        cls = model_class(self.doc.graph, compiled, class_name_for(self.doc.project.name))
        # compact above the class: the dock shows a few lines at 1280x800, and the class is the point
        return (f"# Your graph as a PyTorch class, {analysis.total_params:,} trainable parameters (read-only; "
                "Export as a Python package writes it as model.py).\n"
                + "\n".join(imports(cls.uses_functional)) + "\n\n" + cls.text + "\n")


_FREE = re.compile(r";\s+(?:\w+ = )+None(?=;|$)", re.M)


def readable(code: str) -> str:
    """torch.fx ends lines with ``;  x = y = None`` to free memory early; hidden here, they only distract a reader."""
    return _FREE.sub("", code)


def _wrap(text: str, width: int) -> list[str]:
    words, lines, cur = re.split(r"\s+", text.strip()), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    if cur:
        lines.append(cur)
    return lines
