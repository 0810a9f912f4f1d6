"""The Model page: pick a model and see what it is before spending time on it.

A model comes from a local folder, the Hugging Face cache, or a hub id (downloaded with a
progress bar). The page describes it from its files alone (:mod:`studio.core.models`:
architecture, parameters, vocabulary, context, chat template, special tokens, pad token)
and says which pad token Studio will train with (core encoding's ``choose_pad_token``).
"Trust remote code" is off for every model until the person ticks it for that model.
"""

from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QVBoxLayout, QWidget)

from studio.core import models
from studio.gui.state import StudioState
from studio.gui.tasks import TaskRunner
from studio.gui.widgets.banner import ErrorBanner
from studio.gui.widgets.busy import BusyIndicator
from studio.gui.widgets.common import named, page_layout, role_label
from studio.gui.widgets.config_form import mark_invalid
from studio.gui.widgets.path_picker import PathPicker

#: (objectName, label, accessible name) of each fact shown about the model
FACTS = (
    ("modelArchitectureLabel", "Architecture", "Model architecture"),
    ("modelParametersLabel", "Parameters", "Parameter count"),
    ("modelVocabLabel", "Vocabulary", "Vocabulary size"),
    ("modelContextLabel", "Context length", "Context length"),
    ("modelWeightsLabel", "Weights", "Weight files"),
    ("chatTemplateLabel", "Chat template", "Chat template present"),
    ("specialTokensLabel", "Special tokens", "Special tokens"),
    ("padTokenLabel", "Pad token", "The model's pad token"),
    ("padChoiceLabel", "Studio pads with", "Pad token Studio will use"),
)
CACHE_PROMPT = "Choose a model from the Hugging Face cache…"
REMOTE_CODE_WARNING = ("Trusting remote code runs Python files that came with this model on your machine, with "
                       "your permissions. Tick it only for models from people you trust.")


def pad_plan(path: str, requested: str) -> str:
    """Background: the pad token core encoding will use for this tokenizer, in words."""
    from studio.core.encoding import choose_pad_token
    from studio.core.tokenizer import load_tokenizer

    choice = choose_pad_token(load_tokenizer(path), requested)
    return choice.message or f"{choice.token} (id {choice.id})"


class ModelPage(QWidget):
    """Model source (folder, cache, hub id), what the model is, and trust_remote_code."""

    def __init__(self, state: StudioState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        self.info: models.ModelInfo | None = None
        self._described = None
        self._trusted_for = state.config.model.path if state.config.model.trust_remote_code else ""
        self._tasks = TaskRunner(self)
        layout = page_layout(self, "Model", "The model to fine-tune: a folder on this machine, a model already "
                             "in the Hugging Face cache, or a hub id such as meta-llama/Llama-3.2-1B-Instruct.")
        self.banner = ErrorBanner("modelBanner", self)
        layout.addWidget(self.banner)
        layout.addWidget(self._source_box())
        row = QHBoxLayout()
        row.addWidget(self._facts_box(), 3)
        row.addWidget(self._trust_box(), 2)
        layout.addLayout(row)
        layout.addStretch(1)
        state.config_changed.connect(self._on_config)
        self._on_config()
        self._tasks.submit("cache", models.list_cached_models, self._fill_cache, lambda e: None)

    def _source_box(self) -> QGroupBox:
        box = QGroupBox("Where the model comes from", self)
        form = QFormLayout(box)
        self.picker = PathPicker("modelPathEdit", "Model folder or hub id", folder=True,
                                 placeholder="a folder with config.json, or owner/name from the hub", parent=self)
        self.picker.chosen.connect(self._path_chosen)
        self.picker.edit.textChanged.connect(self._update_download_button)
        self.download = named(QPushButton("Download", self), "downloadButton", "Download from the hub",
                              "Download this hub id into the Hugging Face cache")
        self.download.clicked.connect(self._download)
        self.picker.layout().addWidget(self.download)
        self.cache_combo = named(QComboBox(self), "cachedModelsCombo", "Models in the Hugging Face cache")
        self.cache_combo.addItem("Looking in the Hugging Face cache…")
        self.cache_combo.setEnabled(False)
        self.cache_combo.activated.connect(self._cache_chosen)
        self.progress = BusyIndicator("downloadProgress", self)
        form.addRow("Folder or hub id", self.picker)
        form.addRow("Or from the cache", self.cache_combo)
        form.addRow(self.progress)
        return box

    def _facts_box(self) -> QGroupBox:
        box = QGroupBox("About this model", self)
        form = QFormLayout(box)
        self.facts: dict[str, QLabel] = {}
        for name, label, accessible in FACTS:
            value = named(role_label("—", "value", box), name, accessible)
            value.setWordWrap(True)
            self.facts[name] = value
            form.addRow(label, value)
        self.warnings = named(role_label("", "muted", box), "modelWarningsLabel", "Warnings about this model")
        form.addRow(self.warnings)
        return box

    def _trust_box(self) -> QGroupBox:
        box = QGroupBox("Safety", self)
        col = QVBoxLayout(box)
        self.trust = named(QCheckBox("Trust remote code for this model", box), "trustRemoteCodeCheck",
                           "Trust remote code for this model", REMOTE_CODE_WARNING)
        self.trust.toggled.connect(self._trust_toggled)
        col.addWidget(self.trust)
        col.addWidget(role_label(REMOTE_CODE_WARNING + " It is switched off again whenever you pick another "
                                 "model.", "muted", box))
        col.addStretch(1)
        return box

    # --- state -> view ----------------------------------------------------------------------

    def _on_config(self) -> None:
        cfg = self.state.config
        self.picker.set_path(cfg.model.path)
        self.trust.blockSignals(True)
        self.trust.setChecked(cfg.model.trust_remote_code)
        self.trust.blockSignals(False)
        key = (cfg.model.path, cfg.data.pad_token)
        if key != self._described:
            self._described = key
            self._describe(cfg.model.path, cfg.data.pad_token)

    def _describe(self, path: str, pad_request: str) -> None:
        self.banner.clear()
        if models.looks_like_hub_id(path):
            for key in ("describe", "pad"):
                self._tasks.discard(key)  # an answer about the previous path must not land here
            self._show_info(None)
            self.facts["padChoiceLabel"].setText("—")
            self.banner.show_info(f"{path} looks like a hub id: press Download to fetch it into the "
                                  "Hugging Face cache.")
            return
        self._tasks.submit("describe", lambda: models.describe_model(path), self._show_info, self._failed)
        self.facts["padChoiceLabel"].setText("working it out…")
        self._tasks.submit("pad", lambda: pad_plan(path, pad_request),
                           lambda text: self.facts["padChoiceLabel"].setText(text),
                           lambda exc: self.facts["padChoiceLabel"].setText(
                               getattr(exc, "message", None) or f"unknown ({type(exc).__name__})"))

    def _show_info(self, info: models.ModelInfo | None) -> None:
        self.info = info
        mark_invalid(self.picker.edit, "")
        for name, text in _fact_texts(info).items():
            self.facts[name].setText(text)
        self.warnings.setText("\n".join(f"• {w}" for w in info.warnings) if info else "")

    def _failed(self, exc: BaseException) -> None:
        self._show_info(None)
        self.facts["padChoiceLabel"].setText("—")
        self.banner.show_error(exc)
        mark_invalid(self.picker.edit, getattr(exc, "message", str(exc)))

    def _fill_cache(self, cached: list[models.CachedModel]) -> None:
        self.cache_combo.clear()
        if not cached:
            self.cache_combo.addItem("No models in the Hugging Face cache")
            return
        self.cache_combo.addItem(CACHE_PROMPT)
        for m in cached:
            self.cache_combo.addItem(f"{m.repo_id}  ({m.size_bytes / 2**30:.1f} GiB)", m.path)
        self.cache_combo.setEnabled(True)

    # --- person -> state --------------------------------------------------------------------

    def _path_chosen(self, path: str) -> None:
        if path != self._trusted_for:
            # trust is given to one model, never carried over to the next one picked
            self.state.set_field("model", "trust_remote_code", False)
        self.state.set_field("model", "path", path)

    def _cache_chosen(self, index: int) -> None:
        path = self.cache_combo.itemData(index)
        if path:
            self._path_chosen(path)

    def _trust_toggled(self, on: bool) -> None:
        self._trusted_for = self.state.config.model.path if on else ""
        self.state.set_field("model", "trust_remote_code", on)

    def _update_download_button(self, text: str) -> None:
        self.download.setEnabled(models.looks_like_hub_id(text))

    def _download(self) -> None:
        repo_id = self.picker.text()
        self.download.setEnabled(False)
        self.progress.start(f"Downloading {repo_id}…")
        self._tasks.submit("download", lambda report: models.download_model(repo_id, report),
                           self._downloaded, self._download_failed,
                           lambda done, total: self.progress.progress(done, total, f"Downloading {repo_id}: "
                                                                      f"{done} of {total} MiB"))

    def _downloaded(self, folder: str) -> None:
        self.progress.stop()
        self._path_chosen(folder)

    def _download_failed(self, exc: BaseException) -> None:
        self.progress.stop()
        self._update_download_button(self.picker.text())
        self.banner.show_error(exc)


def _fact_texts(info: models.ModelInfo | None) -> dict[str, str]:
    """The text of each fact label (dashes when nothing is described)."""
    if info is None:
        return {name: "—" for name, _, _ in FACTS if name != "padChoiceLabel"}
    tokens = ", ".join(f"{k}: {v}" for k, v in info.special_tokens.items()) or "none declared"
    if info.extra_special_tokens:
        tokens += f"; also {', '.join(info.extra_special_tokens[:6])}"
    weights = f"{len(info.weight_files)} file(s)" + (f", {info.dtype}" if info.dtype else "")
    return {
        "modelArchitectureLabel": info.architecture or info.model_type or "unknown",
        "modelParametersLabel": info.parameters_text(),
        "modelVocabLabel": f"{info.vocab_size:,} tokens" if info.vocab_size else "unknown",
        "modelContextLabel": f"{info.context_length:,} tokens" if info.context_length else "unknown",
        "modelWeightsLabel": weights if info.weight_files else "none (tokenizer only)",
        "chatTemplateLabel": "yes, the model's own" if info.has_chat_template else "no (choose a built-in one)",
        "specialTokensLabel": tokens,
        "padTokenLabel": info.pad_token or "none (the model has no pad token)",
    }
