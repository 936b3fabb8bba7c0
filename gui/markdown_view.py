"""Markdown with pictures, as tall as its text: lab introductions, instructions and hints.

``MarkdownView.set_markdown(text, pictures)`` hands every picture the text shows (by the URL written
in it: a lab bundle's ``pictures/…`` name or a ``data:`` URI, ``engine.labs.markdown_resources``)
to the text document before the markdown is parsed, so nothing is ever fetched: a URL the lab
does not hold shows nothing.  Links do not open (a lab never sends the student to the internet).
The view has no scroll bars: it takes the height of its text and lives in a scrolling panel.
"""
from __future__ import annotations

import math

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QImage, QTextCharFormat, QTextCursor, QTextDocument, QTextFormat
from PySide6.QtWidgets import QFrame, QSizePolicy, QTextBrowser

MAX_PICTURE_WIDTH = 280  # px: a picture wider than a lab panel is shown scaled down
# markdown's headings grow by Qt's font-size steps (h1: +3, poster-sized in a side panel): smaller here
HEADING_STEPS = {1: 1, 2: 0, 3: 0}


class MarkdownView(QTextBrowser):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFrameShape(QFrame.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)
        self.viewport().setAutoFillBackground(False)
        self.setStyleSheet("QTextBrowser { background: transparent; }")
        self.document().setDocumentMargin(1)
        self.document().documentLayout().documentSizeChanged.connect(lambda _s: self._fit())
        self.markdown = ""

    def set_markdown(self, text: str, pictures: dict[str, bytes] | None = None) -> None:
        self.markdown = text
        doc = self.document()
        for url, raw in (pictures or {}).items():
            if url in text:
                image = QImage.fromData(raw)
                if image.width() > MAX_PICTURE_WIDTH:
                    image = image.scaledToWidth(MAX_PICTURE_WIDTH)
                doc.addResource(QTextDocument.ImageResource, QUrl(url), image)
        doc.setMarkdown(text)
        self._shrink_headings()
        self._fit()

    def loadResource(self, kind: int, url: QUrl):
        """Only what ``set_markdown`` was given: never a file or a network address a text names."""
        return None

    def _shrink_headings(self) -> None:
        block = self.document().begin()
        while block.isValid():
            level = block.blockFormat().headingLevel()
            if level:
                cursor = QTextCursor(block)
                cursor.movePosition(QTextCursor.EndOfBlock, QTextCursor.KeepAnchor)
                fmt = QTextCharFormat()
                fmt.setProperty(QTextFormat.FontSizeAdjustment, HEADING_STEPS.get(level, 0))
                cursor.mergeCharFormat(fmt)
            block = block.next()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        doc = self.document()
        width = self.viewport().width()
        if width > 0 and abs(doc.textWidth() - width) > 0.5:
            doc.setTextWidth(width)
        height = int(math.ceil(doc.size().height())) + 2
        if height != self.height():
            self.setFixedHeight(height)

