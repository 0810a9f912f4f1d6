"""A path line edit with a Browse button: the one way pages ask for a file or folder."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget

from studio.gui.widgets.common import named


class PathPicker(QWidget):
    """Edit or browse for a path; ``chosen`` fires when the person commits a different path.

    Signals:
        chosen(str): the path typed (on Enter/focus out) or picked in the dialog.
    """

    chosen = Signal(str)

    def __init__(self, object_name: str, accessible: str, *, folder: bool = False,
                 file_filter: str = "", placeholder: str = "", folder_too: str = "", parent=None) -> None:
        """``folder_too``: also offer a Folder… button (its tooltip) for things stored as folders."""
        super().__init__(parent)
        self._folder, self._filter, self._last = folder, file_filter, ""
        self.edit = named(QLineEdit(self), object_name, accessible)
        self.edit.setPlaceholderText(placeholder)
        self.edit.editingFinished.connect(lambda: self._commit(self.edit.text()))
        self.browse = named(QPushButton("Browse…", self), object_name.replace("Edit", "") + "BrowseButton",
                            f"Browse for {accessible.lower()}")
        self.browse.clicked.connect(self._browse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(self.browse)
        self.folder_button = None
        if folder_too:
            self.folder_button = named(QPushButton("Folder…", self), object_name.replace("Edit", "") + "FolderButton",
                                       f"Choose a folder for {accessible.lower()}", folder_too)
            self.folder_button.clicked.connect(lambda: self._browse(folder=True))
            row.addWidget(self.folder_button)

    def text(self) -> str:
        return self.edit.text().strip()

    def set_path(self, path: str) -> None:
        """Show a path without firing ``chosen``."""
        self._last = path
        if not self.edit.hasFocus():
            self.edit.setText(path)

    def _browse(self, folder: bool = False) -> None:
        start = self.text()
        if self._folder or folder:
            path = QFileDialog.getExistingDirectory(self, self.edit.accessibleName(), start)
        else:
            path, _ = QFileDialog.getOpenFileName(self, self.edit.accessibleName(), start, self._filter)
        if path:
            self.edit.setText(path)
            self._commit(path)

    def _commit(self, path: str) -> None:
        path = path.strip()
        if path != self._last:
            self._last = path
            self.chosen.emit(path)
