"""Exporting a run: its adapter, or a merged full model, via ``studio export`` in a child process."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QProcess
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QWidget

from studio.gui.runner import PACKAGE_PARENT
from studio.gui.widgets.common import button, named

KINDS = {"adapter": "--adapter", "merged": "--merged"}
#: What each export is called in sentences ("Exporting the merged model to ...").
WORDS = {"adapter": "adapter", "merged": "merged model"}


class ExportBar(QWidget):
    """Two export buttons and a line saying where the export went (or why it failed)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_dir: str | None = None
        self.out_dir = ""
        self.adapter_button = button("Export adapter…", "exportAdapterButton", "Export the run's adapter",
                                     "Copy the trained adapter, tokenizer and chat template to a folder.")
        self.merged_button = button("Export merged…", "exportMergedButton", "Export a merged model",
                                    "Merge the adapter into the base weights: a model folder transformers loads.")
        self.result = named(QLabel(""), "exportResultLabel", "Export result")
        self.result.setWordWrap(True)
        self.proc = QProcess(self)
        env = self.proc.processEnvironment()
        env.insert("PYTHONPATH", PACKAGE_PARENT)
        self.proc.setProcessEnvironment(env)
        self.proc.finished.connect(self._on_finished)
        self.adapter_button.clicked.connect(lambda: self.ask_and_export("adapter"))
        self.merged_button.clicked.connect(lambda: self.ask_and_export("merged"))
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.adapter_button)
        row.addWidget(self.merged_button)
        row.addWidget(self.result, 1)
        self.set_run(None)

    def set_run(self, run_dir: str | None) -> None:
        self.run_dir = run_dir
        busy = self.proc.state() != QProcess.ProcessState.NotRunning
        for b in (self.adapter_button, self.merged_button):
            b.setEnabled(bool(run_dir) and not busy)

    def folder_dialog(self, kind: str) -> QFileDialog:
        """A dialog for the folder the export creates: a new name may be typed (a folder
        picker accepts only folders that exist already)."""
        dialog = QFileDialog(self, f"Export the {WORDS[kind]} to a new folder")
        dialog.setObjectName("exportFolderDialog")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        # Qt's own dialog on every system: the native ones differ in whether a new folder name
        # may be typed, and tests can drive this one.
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog)
        dialog.setOption(QFileDialog.Option.DontConfirmOverwrite)
        dialog.setLabelText(QFileDialog.DialogLabel.Accept, "Export")
        dialog.setLabelText(QFileDialog.DialogLabel.FileName, "New folder:")
        dialog.setDirectory(str(Path.home()))
        dialog.selectFile(f"{Path(self.run_dir or 'run').name}-{kind}")
        return dialog

    def ask_and_export(self, kind: str) -> None:
        dialog = self.folder_dialog(kind)
        if dialog.exec() and dialog.selectedFiles() and self.run_dir:
            self.export(kind, dialog.selectedFiles()[0])

    def export(self, kind: str, out_dir: str) -> None:
        """Run ``python -m studio export RUN_DIR --adapter|--merged OUT``."""
        if not self.run_dir:
            return
        self.out_dir = out_dir
        self.result.setText(f"Exporting the {WORDS[kind]} to {out_dir}…")
        self.result.setProperty("level", "info")
        self.proc.start(sys.executable, ["-m", "studio", "export", self.run_dir, KINDS[kind], out_dir])
        self.set_run(self.run_dir)

    def _on_finished(self, code: int, _status) -> None:
        if code == 0:
            self.result.setText(f"Exported to {self.out_dir}")
        else:
            err = bytes(self.proc.readAllStandardError()).decode("utf-8", errors="replace").strip()
            self.result.setText("Export failed: " + ("\n".join(err.splitlines()[-4:]) or f"exit code {code}"))
        self.set_run(self.run_dir)

    def shutdown(self) -> None:
        if self.proc.state() != QProcess.ProcessState.NotRunning:
            self.proc.kill()
            self.proc.waitForFinished(2000)
