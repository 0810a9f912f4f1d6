"""The Model, Data and Method pages, driven through their real widgets."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLayout, QPushButton, QVBoxLayout, QWidget

from studio.core import config as configmod
from studio.gui import tasks
from studio.gui.app import initial_config
from studio.gui.pages.data_page import DataPage
from studio.gui.pages.method_page import MethodPage
from studio.gui.pages.method_support import presets
from studio.gui.pages.model_page import ModelPage
from studio.gui.state import StudioState

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def state():
    return StudioState(initial_config())


def _page(qtbot, cls, state):
    """Show a page inside a host window whose layout sets no size constraints.

    Offscreen Qt warns when a top-level window's minimum size changes (it has no window
    manager to tell), and pages legitimately grow as their content arrives.
    """
    host = QWidget()
    layout = QVBoxLayout(host)
    layout.setSizeConstraint(QLayout.SetNoConstraint)
    page = cls(state)
    layout.addWidget(page)
    qtbot.addWidget(host)
    page.host = host  # keep the host window alive as long as the page
    host.resize(1100, 760)
    host.show()
    tasks.wait_idle(60)
    return page


def _type(qtbot, edit, text):
    edit.clear()
    qtbot.keyClicks(edit, text)
    qtbot.keyClick(edit, Qt.Key_Return)


# --- Model page ---------------------------------------------------------------------------------

def test_model_page_describes_the_demo_model(qtbot, state):
    page = _page(qtbot, ModelPage, state)
    assert page.picker.edit.text() == state.config.model.path
    assert page.info is not None
    assert page.facts["chatTemplateLabel"].text().startswith("yes")
    assert "<|begin_of_text|>" in page.facts["specialTokensLabel"].text()
    qtbot.waitUntil(lambda: "working" not in page.facts["padChoiceLabel"].text(), timeout=20_000)
    assert page.facts["padChoiceLabel"].text() not in ("—", "")
    if page.info.weight_files:
        assert page.info.parameters_exact and page.facts["modelParametersLabel"].text() != "unknown"


def test_model_page_names_a_missing_folder(qtbot, state, tmp_path):
    page = _page(qtbot, ModelPage, state)
    _type(qtbot, page.picker.edit, str(tmp_path / "no-such-model"))
    qtbot.waitUntil(lambda: page.banner.isVisible(), timeout=10_000)
    assert "no-such-model" in page.banner.text
    assert page.picker.edit.property("invalid") is True


def test_download_offline_says_so(qtbot, state, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    page = _page(qtbot, ModelPage, state)
    _type(qtbot, page.picker.edit, "acme/tiny-model")
    assert page.download.isEnabled()
    qtbot.mouseClick(page.download, Qt.LeftButton)
    qtbot.waitUntil(lambda: "offline" in page.banner.text, timeout=30_000)
    assert "local folder" in page.banner.text


def test_trust_remote_code_is_per_model(qtbot, state, tmp_path):
    page = _page(qtbot, ModelPage, state)
    assert not page.trust.isChecked()
    qtbot.mouseClick(page.trust, Qt.LeftButton)
    assert state.config.model.trust_remote_code
    _type(qtbot, page.picker.edit, str(tmp_path))
    assert not state.config.model.trust_remote_code
    assert not page.trust.isChecked()


# --- Data page ----------------------------------------------------------------------------------

def test_data_page_reads_the_sample_dataset(qtbot, state):
    page = _page(qtbot, DataPage, state)
    assert page.picker.edit.text().endswith("travel_chat.jsonl")
    assert page.report is not None and page.report.format == "messages"
    assert page.table.model().rowCount() == page.report.usable_rows > 0
    assert page.format_combo.currentData() == "auto"
    assert "messages" in page.column_combos
    assert "to train on" in page.split_label.text()


def test_a_saved_dataset_folder_is_picked_with_the_folder_button(qtbot, state, tmp_path, monkeypatch):
    import datasets
    from PySide6.QtWidgets import QFileDialog

    rows = [{"prompt": f"Capital number {i}?", "completion": f"City {i}."} for i in range(5)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    page = _page(qtbot, DataPage, state)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "saved"))
    qtbot.mouseClick(page.picker.folder_button, Qt.LeftButton)
    assert state.config.data.train == str(tmp_path / "saved")
    qtbot.waitUntil(lambda: page.report is not None and page.report.usable_rows == 5, timeout=10_000)
    assert page.report.format == "prompt_completion"


def test_bad_rows_are_listed_with_the_raw_row(qtbot, state, tmp_path):
    data = tmp_path / "mixed.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    data.write_text("\n".join([json.dumps(good), "{not json", json.dumps({"messages": "oops"}), json.dumps(good)]))
    page = _page(qtbot, DataPage, state)
    _type(qtbot, page.picker.edit, str(data))
    qtbot.waitUntil(lambda: page.report is not None and str(page.report.path).endswith("mixed.jsonl"), timeout=10_000)
    assert page.bad_list.count() == 2
    assert page.bad_list.item(0).text().startswith("Row 2:")
    page.tabs.setCurrentIndex(1)
    page.bad_list.setCurrentRow(1)
    detail = page.bad_detail.toPlainText()
    assert detail.startswith("Row 3") and "oops" in detail
    assert page.banner.isVisible() and "2 row(s)" in page.banner.text


def test_column_mapping_fixes_an_unknown_column(qtbot, state, tmp_path):
    data = tmp_path / "dialogs.jsonl"
    row = {"dialog": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    data.write_text("\n".join(json.dumps(row) for _ in range(3)))
    page = _page(qtbot, DataPage, state)
    _type(qtbot, page.picker.edit, str(data))
    qtbot.waitUntil(lambda: "messages" in page.column_combos
                    and page.column_combos["messages"].findText("dialog") >= 0, timeout=10_000)
    assert "dialog" in page.banner.text
    page.column_combos["messages"].setCurrentText("dialog")
    qtbot.waitUntil(lambda: page.report is not None and page.report.usable_rows == 3, timeout=10_000)
    assert state.config.data.columns == {"messages": "dialog"}


def test_eval_fraction_writes_the_config(qtbot, state):
    page = _page(qtbot, DataPage, state)
    page.fraction.setValue(0.2)
    assert state.config.data.eval_fraction == 0.2
    qtbot.waitUntil(lambda: "30 to evaluate" not in page.split_label.text(), timeout=10_000)


# --- Method page --------------------------------------------------------------------------------

def test_invalid_field_is_highlighted_and_listed(qtbot, state):
    page = _page(qtbot, MethodPage, state)
    edit = page.form.editor("train.learning_rate")
    _type(qtbot, edit, "5")
    assert state.config.train.learning_rate == 5.0
    assert edit.property("invalid") is True
    assert "maximum" in edit.toolTip()
    items = [page.problem_list.item(i).text() for i in range(page.problem_list.count())]
    assert any(t.startswith("train.learning_rate") for t in items)
    _type(qtbot, edit, "1e-4")
    assert edit.property("invalid") is False


def test_unreadable_text_is_flagged_not_written(qtbot, state):
    page = _page(qtbot, MethodPage, state)
    edit = page.form.editor("train.learning_rate")
    before = state.config.train.learning_rate
    _type(qtbot, edit, "fast")
    assert state.config.train.learning_rate == before
    assert edit.property("invalid") is True


def test_cross_field_problem_marks_the_field(qtbot, state):
    page = _page(qtbot, MethodPage, state)
    state.set_field("data", "padding", "packing")
    page.method.setCurrentText("prompt")
    assert state.config.method.name == "prompt"
    assert any(p == "data.padding" for p, _ in state.problems())
    assert page.problem_list.item(0).text().startswith("data.padding")


def test_method_choice_shows_only_its_settings(qtbot, state):
    page = _page(qtbot, MethodPage, state)
    page.method.setCurrentText("qlora")
    assert page.form.editor("method.quant_type").isVisible()
    page.method.setCurrentText("full")
    assert not page.form.editor("method.quant_type").isVisible()
    assert not page.form.editor("method.rank").isVisible()


def test_preset_loads_into_the_form(qtbot, state):
    if "demo" not in presets():
        pytest.skip("resources/presets/demo.yaml is not in the tree yet")
    page = _page(qtbot, MethodPage, state)
    state.set_field("train", "learning_rate", 0.5)
    index = page.preset.findText("demo")
    page.preset.setCurrentIndex(index)
    page.preset.activated.emit(index)
    expected = configmod.load(presets()["demo"]).train.learning_rate
    assert state.config.train.learning_rate == expected
    assert page.form.editor("train.learning_rate").text() == f"{expected:g}"


def test_copy_as_command_reproduces_the_config(qtbot, state, tmp_path):
    page = _page(qtbot, MethodPage, state)
    _type(qtbot, page.form.editor("train.learning_rate"), "3e-5")
    page.form.editor("train.batch_size").setValue(2)
    qtbot.mouseClick(page.findChild(QPushButton, "copyCommandButton"), Qt.LeftButton)
    command = QGuiApplication.clipboard().text()
    assert command == page.last_command and command.startswith("studio train ")
    args = shlex.split(command)[2:]
    path = Path(args[0]) if Path(args[0]).is_absolute() else ROOT / args[0]
    rebuilt = configmod.load(path, args[1:])
    from studio.core.models import resolve_config_paths

    assert resolve_config_paths(rebuilt) == state.config
    if page.preset_path is not None:
        assert {"train.learning_rate=3.0e-05", "train.batch_size=2"} <= set(args)


def test_save_and_load_config(qtbot, state, tmp_path):
    page = _page(qtbot, MethodPage, state)
    state.set_field("method", "rank", 8)
    path = tmp_path / "mine.yaml"
    page.save_config(path)
    state.set_field("method", "rank", 64)
    assert page.load_config(path)
    assert state.config.method.rank == 8
    assert page.form.editor("method.rank").value() == 8
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {learning_rate: lots}\n")
    assert not page.load_config(bad)
    assert "train.learning_rate" in page.banner.text


def test_preflight_panel_fills_in(qtbot, state):
    page = _page(qtbot, MethodPage, state)
    page.run_preflight()
    qtbot.waitUntil(lambda: page.preflight is not None or "not available" in page.lint_list.item(0).text()
                    if page.lint_list.count() else False, timeout=60_000)
    if page.preflight is None:
        pytest.skip("studio.core.preflight.report is not available")
    assert page.lint_list.count() >= 1
    if page.preflight["estimate"]:
        assert "GiB" in page.memory.text() and ("fits" in page.memory.text())


def test_more_data_settings_write_the_config(qtbot, state):
    page = _page(qtbot, DataPage, state)
    edit = page.findChild(QWidget, "dataPadTokenEdit")
    _type(qtbot, edit, "<|reserved_special_token_0|>")
    assert state.config.data.pad_token == "<|reserved_special_token_0|>"
    check = page.findChild(QWidget, "dataSkipBadRowsCheck")
    qtbot.mouseClick(check, Qt.LeftButton, pos=QPoint(8, check.height() // 2))  # on the box itself
    assert state.config.data.skip_bad_rows is False
