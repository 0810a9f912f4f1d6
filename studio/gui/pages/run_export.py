"""Exporting a run: its adapter, a merged model or a checked GGUF, via ``studio export`` in a child process."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from studio.gui.runner import PACKAGE_PARENT
from studio.gui.widgets.common import button, named

KINDS = {"adapter": "--adapter", "merged": "--merged", "gguf": "--gguf"}
#: What each export is called in sentences ("Exporting the merged model to ...").
WORDS = {"adapter": "adapter", "merged": "merged model", "gguf": "GGUF file"}
#: GGUF types Studio writes itself, then the k-quants that need llama.cpp's llama-quantize on PATH.
QUANTS = ("f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "f32")
KQUANTS = ("q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k")


class ExportBar(QWidget):
    """Export buttons, the GGUF quantization, a progress bar and a line saying where the export went.

    For a GGUF export the line also gives the check's verdict and the ``ollama create`` command
    (or why the export failed).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_dir: str | None = None
        self.out_dir = ""
        self.kind = ""
        self.report: dict | None = None
        self.pushed: dict | None = None
        self._buffer = b""
        self.adapter_button = button("Export adapter…", "exportAdapterButton", "Export the run's adapter",
                                     "Copy the trained adapter, tokenizer and chat template to a folder.")
        self.merged_button = button("Export merged…", "exportMergedButton", "Export a merged model",
                                    "Merge the adapter into the base weights: a model folder transformers loads.")
        self.gguf_button = button("Export GGUF…", "exportGgufButton", "Export a GGUF file",
                                  "One GGUF file for llama.cpp, Ollama and LM Studio, with a Modelfile, checked "
                                  "against the run's template, stop token and weights.")
        self.push_button = button("Push to Hub…", "pushHubButton", "Push the run to the Hugging Face Hub",
                                  "Upload the adapter, the merged model or a checked GGUF (the chosen quantization) "
                                  "with a model card.")
        self.quant_combo = named(QComboBox(), "exportQuantCombo", "GGUF quantization",
                                 "f16 keeps the weights almost exact; q8_0 halves the file; 4- and 5-bit types are "
                                 "smaller still. k-quants need llama.cpp's llama-quantize on PATH.")
        self.quant_combo.addItems(QUANTS + (KQUANTS if shutil.which("llama-quantize") else ()))
        self.progress = named(QProgressBar(), "exportProgressBar", "Export progress")
        self.progress.setMaximumWidth(160)
        self.progress.hide()
        self.result = named(QLabel(""), "exportResultLabel", "Export result")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextSelectableByMouse)  # the ollama create line is copied from here
        self._make_process()
        self.adapter_button.clicked.connect(lambda: self.ask_and_export("adapter"))
        self.merged_button.clicked.connect(lambda: self.ask_and_export("merged"))
        self.gguf_button.clicked.connect(lambda: self.ask_and_export("gguf"))
        self.push_button.clicked.connect(self.ask_and_push)
        self._lay_out()
        self.set_run(None)

    def _make_process(self) -> None:
        self.proc = QProcess(self)
        self._set_environment()
        self.proc.finished.connect(self._on_finished)
        self.proc.readyReadStandardOutput.connect(self._on_output)

    def _set_environment(self, token: str = "") -> None:
        """The child's environment: this process's, with Studio importable and, for a push, the token."""
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONPATH", PACKAGE_PARENT)
        if token:
            env.insert("HF_TOKEN", token)
        self.proc.setProcessEnvironment(env)

    def _lay_out(self) -> None:
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        for w in (self.adapter_button, self.merged_button, self.gguf_button, self.quant_combo, self.push_button,
                  self.progress):
            row.addWidget(w)
        row.addStretch(1)
        box.addLayout(row)
        box.addWidget(self.result)

    def set_run(self, run_dir: str | None) -> None:
        self.run_dir = run_dir
        busy = self.proc.state() != QProcess.ProcessState.NotRunning
        for b in (self.adapter_button, self.merged_button, self.gguf_button, self.push_button):
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
        suffix = f"gguf-{self.quant_combo.currentText()}" if kind == "gguf" else kind
        dialog.selectFile(f"{Path(self.run_dir or 'run').name}-{suffix}")
        return dialog

    def ask_and_export(self, kind: str) -> None:
        dialog = self.folder_dialog(kind)
        if dialog.exec() and dialog.selectedFiles() and self.run_dir:
            self.export(kind, dialog.selectedFiles()[0])

    def export(self, kind: str, out_dir: str) -> None:
        """Run ``python -m studio export RUN_DIR --adapter|--merged|--gguf OUT``."""
        if not self.run_dir:
            return
        self.out_dir, self.kind, self.report, self._buffer = out_dir, kind, None, b""
        self.pushed = None
        args = ["-m", "studio", "export", self.run_dir, KINDS[kind], out_dir]
        if kind == "gguf":
            args += ["--quant", self.quant_combo.currentText(), "--json"]
            self.progress.setRange(0, 0)  # busy until the first tensor is written
            self.progress.show()
        self.result.setText(f"Exporting the {WORDS[kind]} to {out_dir}…")
        self.result.setProperty("level", "info")
        self.proc.start(sys.executable, args)
        self.set_run(self.run_dir)

    def ask_and_push(self) -> None:
        from studio.gui.pages.run_push import PushDialog

        dialog = PushDialog(self)
        if dialog.exec() and self.run_dir:
            self.push(*dialog.choice())

    def push(self, repo: str, what: str, token: str = "") -> None:
        """Run ``python -m studio push RUN_DIR REPO --what W --json`` with the token in its environment only."""
        if not self.run_dir:
            return
        self.out_dir, self.kind, self.report, self._buffer = repo, "push", None, b""
        self.pushed = None
        self._set_environment(token)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.result.setText(f"Pushing the {WORDS[what]} to {repo}…")
        self.proc.start(sys.executable, ["-m", "studio", "push", self.run_dir, repo, "--what", what,
                                         "--quant", self.quant_combo.currentText(), "--json"])
        self._set_environment()  # the token stays with that one child, not with later ones
        self.set_run(self.run_dir)

    def _on_output(self) -> None:
        """JSON lines from ``--json``: stages, progress per tensor, the check's report."""
        self._buffer += bytes(self.proc.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("type") == "progress":
                self.progress.setRange(0, event["total"])
                self.progress.setValue(event["done"])
            elif event.get("type") == "stage":
                doing = "Pushing to" if self.kind == "push" else "Exporting the GGUF file to"
                self.result.setText(f"{doing} {self.out_dir}: {event['text']}…")
            elif event.get("type") == "pushed":
                self.pushed = event
            elif event.get("type") == "report":
                self.report = event["report"]

    def _on_finished(self, code: int, _status) -> None:
        self._on_output()
        self.progress.hide()
        if self.kind == "push" and code == 0 and self.pushed:
            self.result.setText(f"Pushed {len(self.pushed['files'])} files to {self.out_dir}: {self.pushed['url']}")
        elif self.report is not None and self.kind != "push":
            self.result.setText(self._verdict(self.report))
        elif code == 0:
            self.result.setText(f"Exported to {self.out_dir}")
        else:
            err = bytes(self.proc.readAllStandardError()).decode("utf-8", errors="replace").strip()
            self.result.setText("Export failed: " + ("\n".join(err.splitlines()[-4:]) or f"exit code {code}"))
        self.set_run(self.run_dir)

    def _verdict(self, report: dict) -> str:
        if report["passed"]:
            return (f"Exported {Path(report['gguf']).name} to {self.out_dir}. Check passed (template, stop token, "
                    f"tokenizer, weights). For Ollama: {report['ollama_create']}")
        failed = [f"{name}: {c['detail']}" for name, c in report["checks"].items() if not c["passed"]]
        return f"Exported to {self.out_dir}, but the check FAILED, do not trust this file. " + "; ".join(failed)

    def shutdown(self) -> None:
        if self.proc.state() != QProcess.ProcessState.NotRunning:
            self.proc.kill()
            self.proc.waitForFinished(2000)
