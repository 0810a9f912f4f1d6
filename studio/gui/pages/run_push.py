"""The dialog that asks where to push a run on the Hugging Face Hub, what to push, and the token."""

from __future__ import annotations

import os

from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLineEdit, QWidget

from studio.gui.widgets.common import named

WHAT = {"Adapter": "adapter", "Merged model": "merged", "GGUF (checked, with Modelfile)": "gguf"}


class PushDialog(QDialog):
    """Repository, what to push and the token (hidden; left empty to use ``HF_TOKEN`` from the environment).

    The token is only read back by the caller to hand to the push process; it is not stored.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pushDialog")
        self.setWindowTitle("Push to the Hugging Face Hub")
        self.repo = named(QLineEdit(), "pushRepoEdit", "Hub repository", "OWNER/NAME; created if it does not exist")
        self.repo.setPlaceholderText("alice/travel-lora")
        self.what = named(QComboBox(), "pushWhatCombo", "What to push")
        self.what.addItems(list(WHAT))
        self.token = named(QLineEdit(), "pushTokenEdit", "Hugging Face token",
                           "A token with write access. It is passed to the upload and not saved anywhere.")
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        has_env = bool(os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"))
        self.token.setPlaceholderText("from HF_TOKEN" if has_env else "hf_…")
        form = QFormLayout(self)
        form.addRow("Repository", self.repo)
        form.addRow("Push", self.what)
        form.addRow("Token", self.token)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        buttons.button(QDialogButtonBox.Ok).setText("Push")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def choice(self) -> tuple[str, str, str]:
        """(repository, adapter|merged|gguf, token or "")."""
        return self.repo.text().strip(), WHAT[self.what.currentText()], self.token.text().strip()
