"""Help > About (versions, libraries, where things are kept) and Help > Check installation.

Library versions come from the installed packages' metadata, so the window still never
imports torch to show them.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QUrl
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout

import studio
from studio.core.runs import runs_root, studio_home
from studio.gui.menus import HELP_FILE, self_test_available
from studio.gui.runner import PACKAGE_PARENT
from studio.gui.widgets.common import named

LIBRARIES = ("PySide6", "pyqtgraph", "torch", "transformers", "peft", "trl", "accelerate", "datasets")
#: What Help > Check installation runs (the installer's self-test), with this Python.
SELF_TEST = ["-m", "studio", "--self-test"]


def library_versions() -> list[tuple[str, str]]:
    """(library, installed version or "not installed"), read from package metadata (nothing imported)."""
    out = []
    for name in LIBRARIES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    return out


def about_html() -> str:
    rows = "".join(f"<tr><td>{name}</td><td>{version}</td></tr>" for name, version in library_versions())
    home = studio_home()
    docs = QUrl.fromLocalFile(str(HELP_FILE)).toString()
    return (f"<h3>Studio {studio.__version__}</h3>"
            "<p>Fine-tune language models on your own machine.</p>"
            f"<p>Python {platform.python_version()} on {platform.system()} {platform.machine()}</p>"
            f"<table cellspacing='0' cellpadding='2'>{rows}</table>"
            f"<p><b>Runs</b> are kept in {runs_root()}<br>"
            "(each run folder holds its config, events.jsonl, <b>worker.log</b> and checkpoints)<br>"
            f"<b>Run registry:</b> {home / 'runs.sqlite'}<br>"
            f"<b>Window settings:</b> {home / 'window.ini'}<br>"
            "Set STUDIO_HOME to keep all of these somewhere else.</p>"
            f"<p>Documentation: <a href='{docs}'>{HELP_FILE}</a> and the docs folder beside it.</p>")


class AboutDialog(QDialog):
    """Version, library versions, where runs and logs are kept, a link to the docs."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("aboutDialog")
        self.setWindowTitle("About Studio")
        self.text = named(QLabel(about_html(), self), "aboutText", "About Studio")
        self.text.setTextFormat(Qt.RichText)
        self.text.setOpenExternalLinks(True)
        self.text.setTextInteractionFlags(Qt.TextBrowserInteraction)
        self.text.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        buttons.rejected.connect(self.reject)
        box = QVBoxLayout(self)
        box.addWidget(self.text)
        box.addWidget(buttons)
        self.setMinimumWidth(520)


class SelfTestDialog(QDialog):
    """Runs ``studio --self-test`` in a background process and shows its lines and its verdict.

    Args:
        command: the Python arguments to run (default :data:`SELF_TEST`; tests pass another).
        available: whether this build has the self-test (default: ask :func:`self_test_available`).
    """

    def __init__(self, parent=None, command: list[str] | None = None, available: bool | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("selfTestDialog")
        self.setWindowTitle("Check installation")
        self.verdict = named(QLabel(self), "selfTestVerdict", "Verdict")
        self.verdict.setWordWrap(True)
        self.output = named(QPlainTextEdit(self), "selfTestOutput", "Self-test output")
        self.output.setReadOnly(True)
        self.output.setLineWrapMode(QPlainTextEdit.WidgetWidth)
        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        buttons.rejected.connect(self.reject)
        box = QVBoxLayout(self)
        box.addWidget(self.verdict)
        box.addWidget(self.output, 1)
        box.addWidget(buttons)
        self.resize(640, 420)
        self.proc = QProcess(self)
        self.proc.setProcessChannelMode(QProcess.MergedChannels)
        self.proc.readyReadStandardOutput.connect(self._read)
        self.proc.finished.connect(self._finished)
        self.proc.errorOccurred.connect(self._error)
        if available is None:
            available = self_test_available()
        if not available:
            self.verdict.setText("The installation self-test is not available in this build of Studio yet "
                                 "(`studio --self-test` is missing). To check this installation by hand, keep "
                                 "the demo selected and press Train: the loss should fall within a minute.")
            return
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONPATH", PACKAGE_PARENT + (":" + env.value("PYTHONPATH") if env.value("PYTHONPATH") else ""))
        self.proc.setProcessEnvironment(env)
        self.verdict.setText("Checking this installation: PyTorch, the GPU, a window and two training steps "
                             "(about a minute)…")
        self.proc.start(sys.executable, command or SELF_TEST)

    def _read(self) -> None:
        text = bytes(self.proc.readAllStandardOutput()).decode("utf-8", errors="replace")
        self.output.moveCursor(self.output.textCursor().MoveOperation.End)
        self.output.insertPlainText(text)

    def _finished(self, code: int, _status) -> None:
        self._read()
        lines = [line.strip() for line in self.output.toPlainText().splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        if code == 0:
            self.verdict.setText(f"✓ {last or 'The self-test passed.'}")
            self.verdict.setProperty("level", "ok")
        else:
            self.verdict.setText(f"✗ {last}" if last else
                                 f"✗ The self-test failed (exit code {code}) without a word; see the lines below.")
            self.verdict.setProperty("level", "error")

    def _error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.verdict.setText(f"The self-test could not be started: {self.proc.errorString()}")

    def done(self, result: int) -> None:  # noqa: D401 (Qt override)
        if self.proc.state() != QProcess.ProcessState.NotRunning:
            self.proc.kill()
            self.proc.waitForFinished(2000)
        super().done(result)
