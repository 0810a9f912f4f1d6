"""The new dataset shapes in the window: the Data page maps a label column and reads raw text, the
Method page's preflight says when the objective does not fit the data, and the Inspect page colours
tool definitions, calls and results and shows raw text as blocks."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QComboBox, QLayout, QVBoxLayout, QWidget

from studio.core.encoding import EncodeOptions, Encoder
from studio.core.data import load_examples
from studio.core.tokenizer import load_tokenizer
from studio.gui import tasks
from studio.gui.app import initial_config
from studio.gui.pages.data_page import DataPage
from studio.gui.pages.inspect_page import InspectPage
from studio.gui.pages.method_page import MethodPage
from studio.gui.state import StudioState
from studio.gui.widgets.token_view import chip_colour

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "data"


def _state(**data) -> StudioState:
    cfg = initial_config()
    for name, value in data.items():
        section, field = name.split("__")
        setattr(getattr(cfg, section), field, value)
    return StudioState(cfg)


def _page(qtbot, cls, state):
    host = QWidget()
    layout = QVBoxLayout(host)
    layout.setSizeConstraint(QLayout.SetNoConstraint)  # offscreen Qt warns when a top-level minimum size changes
    page = cls(state)
    layout.addWidget(page)
    qtbot.addWidget(host)
    page.host = host
    host.resize(1200, 800)
    host.show()
    tasks.wait_idle(60)
    return page


def test_data_page_hints_at_a_label_column_and_maps_it(qtbot):
    state = _state(data__train=str(FIXTURES / "kto_tag.jsonl"))
    page = _page(qtbot, DataPage, state)
    qtbot.waitUntil(lambda: page.report is not None, timeout=30_000)
    assert "data.columns={label: kto_tag}" in page.summary.text()
    combo = page.findChild(QComboBox, "columnLabelCombo")
    assert combo is not None and combo.isVisibleTo(page)
    combo.setCurrentText("kto_tag")
    assert state.config.data.columns == {"label": "kto_tag"}
    qtbot.waitUntil(lambda: page.report.mapping.get("label") == "kto_tag", timeout=30_000)
    assert [e.label for e in page.report.examples] == [True, False]


def test_data_page_reads_a_txt_file_as_documents(qtbot):
    state = _state(data__train=str(FIXTURES / "long.txt"))
    page = _page(qtbot, DataPage, state)
    qtbot.waitUntil(lambda: page.report is not None, timeout=30_000)
    assert page.report.format == "text" and page.report.usable_rows == 4
    split = page.findChild(QComboBox, "dataTextSplitCombo")
    split.setCurrentIndex(split.findText("paragraph"))
    assert state.config.data.text_split == "paragraph"
    qtbot.waitUntil(lambda: page.report.usable_rows == 3, timeout=30_000)
    assert page.rows_model.rowCount() == 3


def test_method_page_preflight_names_the_objective_data_mismatch(qtbot):
    state = _state(train__objective="dpo")  # on the travel chat rows
    page = _page(qtbot, MethodPage, state)
    page.run_preflight()
    qtbot.waitUntil(lambda: page.preflight is not None, timeout=60_000)
    lint = next(x for x in page.preflight["lints"] if x["code"] == "objective_data")
    assert lint["severity"] == "error" and "train.objective=dpo trains on preference pairs" in lint["message"]
    texts = [page.lint_list.item(i).text() for i in range(page.lint_list.count())]
    assert any(t.startswith("Must fix: train.objective=dpo") for t in texts)


@pytest.fixture
def tool_page(qtbot):
    state = _state(data__train=str(FIXTURES / "tool_calls.jsonl"), model__template="llama3.1",
                   data__max_length=1024)
    page = _page(qtbot, InspectPage, state)
    qtbot.waitUntil(lambda: page.row_result is not None and not page._tasks.busy, timeout=60_000)
    return page, state


def test_inspect_colours_tool_definitions_calls_and_results(tool_page):
    page, state = tool_page
    cfg = state.config
    example = load_examples(cfg.data.train).examples[0]
    encoded = Encoder(load_tokenizer(cfg.model.path), EncodeOptions(template="llama3.1", max_length=1024)).encode(example)
    chips = [c for c in page.token_view.tokens if not c.pad]
    assert [c.token_id for c in chips] == encoded.input_ids and [c.role for c in chips] == encoded.roles
    colours = {}
    for chip in chips:
        if not chip.special:
            colours.setdefault(chip.role, chip_colour(chip).name())
    assert {"tools", "tool_call", "tool"} <= set(colours)
    assert len({colours["tools"], colours["tool_call"], colours["tool"], colours["user"]}) == 4
    assert all(c.loss for c in chips if c.role == "tool_call") and not any(c.loss for c in chips
                                                                             if c.role in ("tools", "tool"))


def test_inspect_shows_raw_text_as_blocks(qtbot):
    state = _state(data__train=str(FIXTURES / "long.txt"), data__text_split="paragraph", data__max_length=16)
    page = _page(qtbot, InspectPage, state)
    qtbot.waitUntil(lambda: page.row_result is not None and not page._tasks.busy, timeout=60_000)
    tok = load_tokenizer(state.config.model.path)
    docs = load_examples(state.config.data.train, text_split="paragraph").examples
    first = Encoder(tok, EncodeOptions(max_length=16)).encode_blocks(docs).blocks[0]
    chips = [c for c in page.token_view.tokens if not c.pad]
    assert [c.token_id for c in chips] == first.input_ids and all(c.loss for c in chips[1:])
    assert "Continued pre-training: block 1 of" in page.row_result.view.note
    assert "document 1 at token 0" in page.row_result.view.note


@pytest.mark.parametrize("attention", ["block", "document"])
def test_inspect_shows_where_positions_restart_with_document_attention(qtbot, attention):
    state = _state(data__train=str(FIXTURES / "long.txt"), data__text_split="paragraph", data__max_length=64,
                   data__text_attention=attention)
    page = _page(qtbot, InspectPage, state)
    qtbot.waitUntil(lambda: page.row_result is not None and not page._tasks.busy, timeout=60_000)
    chips = [c for c in page.token_view.tokens if not c.pad]
    second = next(pos for pos, row in page.row_result.view.encoded.documents if row == 2)
    assert len(chips) == 64 and 0 < second < 64
    positions = [c.position_id for c in chips]
    note = page.row_result.view.note
    if attention == "document":
        assert positions == list(range(second)) + list(range(64 - second)) and chips[second].label == -100
        assert "documents do not attend to each other" in note
    else:
        assert positions == list(range(64)) and chips[second].label != -100
        assert "every token attends to its whole block" in note


def test_inspect_shows_a_switched_off_turn_without_loss(qtbot):
    state = _state(data__train=str(FIXTURES / "switches.jsonl"), data__max_skipped=0.5)
    page = _page(qtbot, InspectPage, state)
    qtbot.waitUntil(lambda: page.row_result is not None and not page._tasks.busy, timeout=60_000)
    tok = load_tokenizer(state.config.model.path)
    chips = [c for c in page.token_view.tokens if not c.pad]
    trained = tok.decode([c.token_id for c in chips if c.loss])
    assert trained == "Late March, for the blossoms.<|eot_id|>"  # the first answer has weight 0
    assert "August." in tok.decode([c.token_id for c in chips])


def test_inspect_says_a_raw_text_document_is_held_out_when_the_file_is_read_whole(qtbot, tmp_path):
    """A raw-text .json file is read whole (not as a stream); a document that data.eval_fraction
    holds out is in no training block, and the Inspect page says so, as it does for a stream."""
    import json

    words = "the river walk before the old market opens is the quietest hour in town".split()
    docs = [{"text": " ".join(words[i % 5:] + words[:i % 5])} for i in range(12)]
    path = tmp_path / "notes.json"
    path.write_text(json.dumps(docs), encoding="utf-8")
    state = _state(data__train=str(path), data__format="text", data__max_length=16, data__eval_fraction=0.25)
    page = _page(qtbot, InspectPage, state)
    qtbot.waitUntil(lambda: page.row_result is not None and not page._tasks.busy, timeout=60_000)
    assert page.sources.scan is None  # read whole
    examples = page.sources.report.examples
    held = page.sources.held_rows()
    assert len(held) == 3
    index = next(i for i, ex in enumerate(examples) if ex.row in held)
    page.row_spin.setValue(index + 1)
    qtbot.waitUntil(lambda: not page._tasks.busy, timeout=60_000)
    note = page.row_result.view.note
    assert f"Document {examples[index].row} is held out for evaluation" in note
    blocks = page.sources.blocks_for(Encoder(page.sources.tokenizer, EncodeOptions(max_length=16)))
    assert not any(row in held for b in blocks.blocks for _, row in b.documents)
