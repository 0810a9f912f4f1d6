"""The Chat page: talk to a finished run beside its base model, two transcripts side by side.

Generation runs in a ``python -m studio.worker.chat`` child process (the window never loads a
model); the page writes JSON requests to its stdin and reads JSON replies from its stdout,
buffering lines split across reads.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QProcess, Qt, Signal
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QPlainTextEdit, QSpinBox, QTextBrowser,
                               QWidget)

from studio.core.protocol import LineReader
from studio.core.runs import Registry
from studio.gui.runner import PACKAGE_PARENT
from studio.gui.widgets.banner import ErrorBanner
from studio.gui.widgets.busy import BusyIndicator
from studio.gui.widgets.common import button, named, page_layout, role_label

log = logging.getLogger("studio.gui.chat")
SIDES = ("tuned", "base")


def chat_runs(registry: Registry) -> list[tuple[str, str]]:
    """(label, run folder) of every run that left a model to chat with, newest first.

    Reward models are left out: they score answers, they do not write them.
    """
    found = []
    for rec in registry.list():
        manifest = Path(rec.run_dir) / "final" / "studio.json"
        if manifest.exists() and _task(manifest) != "reward":
            found.append((f"{rec.name} · {rec.method or '?'} · {rec.status}", rec.run_dir))
    return found


def _task(manifest: Path) -> str:
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8")).get("task", ""))
    except (OSError, ValueError, AttributeError):
        return ""  # unreadable: offered, and loading it will say what is wrong



def readable_answer(text: str) -> str:
    """An answer as shown: a tool call as ``Calls get_weather(city="Lisbon")`` above the raw text."""
    from studio.core.tool_calls import describe, parse_calls

    calls = parse_calls(text)
    if not calls:
        return text or "(empty answer)"
    return "\n".join(f"Calls {describe(call)}" for call in calls) + f"\n(raw: {text.strip()})"

class ChatProcess(QProcess):
    """The ``studio.worker.chat`` child for one run, speaking JSON lines.

    Signals:
        message(dict): one reply (``ready``, ``answer``, ``error``) or a ``log`` line it printed.
    """

    message = Signal(dict)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._reader = LineReader()
        self._next_id = 0
        self.readyReadStandardOutput.connect(self._read)
        env = self.processEnvironment()
        env.insert("PYTHONPATH", PACKAGE_PARENT)
        self.setProcessEnvironment(env)
        self.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)

    def open(self, run_dir: str) -> None:
        self._reader = LineReader()
        self.start(sys.executable, ["-m", "studio.worker.chat", run_dir])

    def ask(self, messages: list[dict], which: str, max_new_tokens: int) -> int:
        self._next_id += 1
        request = {"id": self._next_id, "messages": messages, "which": which, "max_new_tokens": max_new_tokens}
        self.write((json.dumps(request) + "\n").encode("utf-8"))
        return self._next_id

    def close_gracefully(self) -> None:
        if self.state() != QProcess.ProcessState.NotRunning:
            self.closeWriteChannel()  # end of stdin: the chat process exits on its own
            if not self.waitForFinished(3000):
                self.kill()
                self.waitForFinished(1000)

    def _read(self) -> None:
        for msg in self._reader.feed(bytes(self.readAllStandardOutput())):
            self.message.emit(msg)

    def drain(self) -> None:
        """Deliver what the process wrote before it exited (finished can overtake readyRead)."""
        self._read()
        for msg in self._reader.flush():
            self.message.emit(msg)


class ChatPage(QWidget):
    """Pick a run, type a prompt, and compare the trained model's answer with the base model's."""

    def __init__(self, state, runs_controller=None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.controller = runs_controller
        self.history: dict[str, list[dict]] = {side: [] for side in SIDES}
        self._waiting: set[int] = set()
        self._ready = False
        self.proc = ChatProcess(self)
        self.proc.message.connect(self._on_message)
        self.proc.finished.connect(self._on_exit)
        self.proc.errorOccurred.connect(self._on_process_error)
        self._build()
        self.state.run_selected.connect(self.select_run)
        # The chat process is a plain child: end it with the application, before Qt destroys
        # a QProcess whose process still runs (which Qt warns about).
        QCoreApplication.instance().aboutToQuit.connect(self.shutdown)
        if runs_controller is not None:  # the list follows the registry, as the Runs page does
            runs_controller.runs_changed.connect(self.refresh_runs)
            runs_controller.run_finished.connect(lambda _outcome: self.refresh_runs())
        self.refresh_runs()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.refresh_runs()  # runs may have finished in a terminal (studio train) meanwhile
        super().showEvent(event)

    def _build(self) -> None:
        box = page_layout(self, "Chat", "Talk to a trained run and see, beside it, what the base model answers "
                                        "to the same prompt. Answers use the run's chat template.")
        self.run_combo = named(QComboBox(), "chatRunCombo", "Run to chat with")
        self.run_combo.setMinimumWidth(360)
        self.run_combo.setPlaceholderText("No finished run yet: train one first")
        self.refresh_button = button("Refresh", "chatRefreshButton", "Refresh the list of runs")
        self.load_button = button("Load model", "loadChatButton", "Load the run's model for chat", primary=True)
        row = QHBoxLayout()
        for w in (QLabel("Run:"), self.run_combo, self.refresh_button, self.load_button):
            row.addWidget(w)
        row.addStretch(1)
        box.addLayout(row)
        self.banner = ErrorBanner("chatErrorBanner")
        self.busy = BusyIndicator("chatBusy")
        box.addWidget(self.banner)
        box.addWidget(self.busy)
        box.addLayout(self._transcripts(), 1)
        box.addLayout(self._prompt_row())
        self.refresh_button.clicked.connect(self.refresh_runs)
        self.load_button.clicked.connect(self.load_model)
        self._set_ready(False)

    def _transcripts(self) -> QGridLayout:
        grid = QGridLayout()
        self.titles = {"tuned": role_label("Trained run", "subtitle"), "base": role_label("Base model", "subtitle")}
        self.views = {"tuned": named(QTextBrowser(), "tunedTranscript", "Trained model's answers"),
                      "base": named(QTextBrowser(), "baseTranscript", "Base model's answers")}
        self.views["tuned"].setPlaceholderText("Choose a run above and press Load model; then type a message "
                                               "below. The trained model's answers appear here.")
        self.views["base"].setPlaceholderText("The base model answers the same messages here, so you can see "
                                              "what training changed.")
        for col, side in enumerate(SIDES):
            grid.addWidget(self.titles[side], 0, col)
            grid.addWidget(self.views[side], 1, col)
        return grid

    def _prompt_row(self) -> QHBoxLayout:
        self.prompt_edit = named(QPlainTextEdit(), "chatPromptEdit", "Your message")
        self.prompt_edit.setPlaceholderText("Type a message, then press Send (Ctrl+Enter).")
        self.prompt_edit.setMaximumHeight(80)
        self.max_tokens = named(QSpinBox(), "maxNewTokensSpin", "Longest answer in tokens")
        self.max_tokens.setRange(1, 4096)
        self.max_tokens.setValue(128)
        self.max_tokens.setToolTip("Longest answer in tokens")
        self.send_button = button("Send", "sendButton", "Send the message to both models", primary=True)
        self.clear_button = button("New chat", "clearChatButton", "Start a new conversation")
        self.send_button.setShortcut("Ctrl+Return")
        self.send_button.clicked.connect(self.send)
        self.clear_button.clicked.connect(self.clear)
        row = QHBoxLayout()
        row.addWidget(self.prompt_edit, 1)
        for w in (QLabel("Max tokens:"), self.max_tokens, self.send_button, self.clear_button):
            row.addWidget(w, 0, Qt.AlignBottom)
        return row

    # -- runs and the chat process ----------------------------------------------------------------

    def refresh_runs(self) -> None:
        current = self.run_combo.currentData()
        self.run_combo.clear()
        try:
            runs = chat_runs(self.controller.registry if self.controller is not None else Registry())
        except Exception as exc:  # a broken registry must not break the page
            self.banner.show_error(exc)
            runs = []
        for label, run_dir in runs:
            self.run_combo.addItem(label, run_dir)
        index = self.run_combo.findData(current)
        self.run_combo.setCurrentIndex(index if index >= 0 else (0 if runs else -1))
        self.load_button.setEnabled(bool(runs))

    def select_run(self, run_dir: str) -> None:
        """Preselect a run picked elsewhere (it is loaded only when the person asks)."""
        index = self.run_combo.findData(run_dir)
        if index >= 0:
            self.run_combo.setCurrentIndex(index)

    def load_model(self) -> None:
        run_dir = self.run_combo.currentData()
        if not run_dir:
            return
        self.proc.close_gracefully()
        self.clear()
        self._set_ready(False)
        self.banner.clear()
        self.busy.start("Loading the model in the chat process…")
        self.proc.open(run_dir)

    def send(self) -> None:
        text = self.prompt_edit.toPlainText().strip()
        if not text or not self._ready or self._waiting:
            return
        self.prompt_edit.clear()
        for side in SIDES:
            self.history[side].append({"role": "user", "content": text})
            self._append(side, "You", text)
            self._waiting.add(self.proc.ask(self.history[side], side, self.max_tokens.value()))
        self.busy.start("Generating…")
        self._set_ready(True)

    def clear(self) -> None:
        for side in SIDES:
            self.history[side].clear()
            self.views[side].clear()

    def _on_message(self, msg: dict) -> None:
        kind = msg.get("type")
        if kind == "ready":
            self.busy.stop()
            self.titles["tuned"].setText(f"Trained run ({msg.get('kind', 'model')}): {Path(msg['tuned']).parent.name}")
            self.titles["base"].setText(f"Base model: {Path(msg['base']).name}")
            self._set_ready(True)
        elif kind == "answer":
            self._waiting.discard(msg.get("id"))
            side = msg.get("which", "tuned")
            self.history[side].append({"role": "assistant", "content": msg.get("text", "")})
            self._append(side, "Model", readable_answer(msg.get("text", "")),
                         f"{msg.get('tokens', 0)} tokens in {msg.get('seconds', 0):.1f} s")
        elif kind == "error":
            self._waiting.discard(msg.get("id"))
            self.busy.stop()
            self.banner.show_error(msg.get("error", "The chat process reported an error."), msg.get("hint", ""))
        elif kind == "log":
            log.info("chat process: %s", msg.get("text"))
        if not self._waiting and kind == "answer":
            self.busy.stop()
        self._set_ready(self._ready)

    def _on_exit(self, code: int, status) -> None:
        self.proc.drain()
        self._waiting.clear()
        self.busy.stop()
        if code != 0 or status != QProcess.ExitStatus.NormalExit:
            err = bytes(self.proc.readAllStandardError()).decode("utf-8", errors="replace").strip()
            tail = "\n".join(err.splitlines()[-6:])
            if not self.banner.text:
                self.banner.show_error(f"The chat process ended (exit code {code}).\n{tail}".strip(),
                                       "Check that the run's final/ folder and its base model are intact.")
        self._set_ready(False)

    def _on_process_error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.busy.stop()
            self.banner.show_error("Could not start the chat process.", "Check the Python installation.")

    def _set_ready(self, ready: bool) -> None:
        self._ready = ready
        can_send = ready and not self._waiting
        self.send_button.setEnabled(can_send)
        self.prompt_edit.setEnabled(ready)

    def _append(self, side: str, who: str, text: str, note: str = "") -> None:
        view = self.views[side]
        colour = "#0b5394" if who == "You" else "#222222"
        note_html = f" <span style='color:#888'>({_escape(note)})</span>" if note else ""
        view.append(f"<p><b style='color:{colour}'>{who}:</b>{note_html}<br>{_escape(text)}</p>")

    def shutdown(self) -> None:
        """End the chat process (the window is closing)."""
        self.proc.close_gracefully()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")
