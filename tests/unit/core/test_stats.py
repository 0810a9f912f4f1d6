"""Dataset statistics: exact numbers on synthetic lengths, then the cache on a real dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.core import stats

# Five sequences in dataset order; with batch_size=2 and max_length=16 the batches are
# [10, 3], [7, 16 (cut from 20)], [5].
LENGTHS = [10, 3, 7, 20, 5]


def test_percentiles_are_nearest_rank():
    lengths = list(range(1, 101))  # 1..100
    assert stats.percentiles(lengths) == {"p50": 50, "p90": 90, "p95": 95, "p99": 99, "max": 100}
    assert stats.percentiles([7]) == {"p50": 7, "p90": 7, "p95": 7, "p99": 7, "max": 7}
    assert stats.percentiles([]) == {"p50": 0, "p90": 0, "p95": 0, "p99": 0, "max": 0}


def test_histogram_counts_every_sequence_in_equal_bins():
    bins = stats.histogram([0, 1, 9, 10, 19, 39], bins=4)
    assert [(b.lo, b.hi, b.count) for b in bins] == [(0, 10, 3), (10, 20, 2), (20, 30, 0), (30, 40, 1)]
    assert sum(b.count for b in stats.histogram(LENGTHS, bins=20)) == len(LENGTHS)
    assert stats.histogram([]) == []
    # widths are rounded to 1, 2, 5 x 10^k: 461 / 16 = 28.8 -> 50, so 10 bars cover 0..499
    bins = stats.histogram([0, 460], bins=16)
    assert [(b.lo, b.hi) for b in (bins[0], bins[-1])] == [(0, 50), (450, 461)] and len(bins) == 10


def test_histogram_puts_lengths_past_upper_in_one_overflow_bar():
    bins = stats.histogram([5, 50, 99, 100, 101, 1578], bins=2, upper=100)
    # width 101 / 2 -> 100: [0, 100) and [100, 101); 101 and 1578 are past the cut
    assert [(b.lo, b.hi, b.count, b.overflow) for b in bins] == [
        (0, 100, 3, False), (100, 101, 1, False), (101, 1579, 2, True)]
    assert not any(b.overflow for b in stats.histogram([5, 50], bins=2, upper=100))


def test_recommended_max_length_covers_99_percent_in_steps_of_64():
    lengths = [100] * 99 + [5000]  # the one outlier is the 1 % allowed to be cut
    assert stats.recommend_max_length(lengths) == 128
    assert stats.recommend_max_length([129] * 100) == 192
    assert stats.recommend_max_length([64] * 100) == 64
    assert stats.recommend_max_length([3] * 10) == 64
    assert stats.recommend_max_length([1000] * 100, context=512) == 512


def test_padding_waste_longest():
    w = stats.padding_waste(LENGTHS, "longest", batch_size=2, max_length=16)
    # widths 10, 16, 5 -> totals 20 + 32 + 5; real tokens 10+3+7+16+5 = 41
    assert (w.pad_tokens, w.total_tokens, w.batches, w.peak_batch_tokens) == (16, 57, 3, 32)
    assert w.share == pytest.approx(16 / 57)


def test_padding_waste_multiple_of_8():
    w = stats.padding_waste(LENGTHS, "multiple", batch_size=2, max_length=16, multiple_of=8)
    # widths 16, 16, 8 -> totals 32 + 32 + 8
    assert (w.pad_tokens, w.total_tokens) == (31, 72)


def test_padding_waste_multiple_rounds_up_past_max_length_as_collate_does():
    w = stats.padding_waste([10, 12], "multiple", batch_size=2, max_length=12, multiple_of=8)
    assert (w.pad_tokens, w.total_tokens) == (10, 32)


def test_padding_waste_max_length():
    w = stats.padding_waste(LENGTHS, "max_length", batch_size=2, max_length=16)
    assert (w.pad_tokens, w.total_tokens) == (80 - 41, 80)
    # without a max_length every row is padded to the longest sequence
    w = stats.padding_waste(LENGTHS, "max_length", batch_size=2)
    assert (w.pad_tokens, w.total_tokens) == (100 - 45, 100)


def test_padding_waste_packing_is_the_unused_tail_of_packed_rows():
    w = stats.padding_waste(LENGTHS, "packing", batch_size=2, max_length=16)
    # 41 tokens need at least 3 rows of 16; best fit decreasing finds exactly 3: 48 - 41
    assert (w.pad_tokens, w.total_tokens, w.batches) == (7, 48, 2)
    w = stats.padding_waste([8, 8, 8, 8], "packing", batch_size=4, max_length=16)
    assert (w.pad_tokens, w.total_tokens) == (0, 32)


def test_padding_waste_rejects_unknown_strategy():
    with pytest.raises(ValueError, match="longest"):
        stats.padding_waste(LENGTHS, "zigzag", batch_size=2)


def test_waste_table_has_every_strategy_in_order():
    table = stats.waste_table(LENGTHS, batch_size=2, max_length=16)
    assert [w.strategy for w in table] == list(stats.STRATEGIES)


def test_truncation_counts_rows_and_lost_loss_tokens():
    lengths = [10, 30, 40]
    spans = [[5, 10], [4, 8, 20, 30], [25, 40]]  # loss tokens: 5, 4 + 10, 15
    t = stats.truncation(lengths, spans, max_length=24)
    assert (t.truncated, t.loss_tokens, t.lost_loss_tokens, t.emptied) == (2, 34, 6 + 15, 1)
    assert t.share == pytest.approx(2 / 3)
    assert t.lost_share == pytest.approx(21 / 34)


def test_truncation_on_the_left_drops_the_start():
    # cutting 40 -> 24 from the left drops tokens 0..15: loss span 4..8 is lost, 20..30 kept
    assert stats.lost_loss(40, [4, 8, 20, 30], 24, side="left") == 4
    assert stats.lost_loss(40, [4, 8, 20, 30], 24, side="right") == 6
    assert stats.lost_loss(10, [0, 10], 24) == 0


def test_compute_counts_preference_rows_as_two_sequences():
    from studio.core.lengths import Measured

    measured = Measured(rows=[1, 1, 2, 2], lengths=[10, 12, 7, 9],
                              loss_spans=[[5, 10], [5, 12], [3, 7], [3, 9]], sequences_per_row=2)
    result = stats.compute(measured, batch_size=1, max_length=16)
    longest = result.waste[0]
    # one row per batch = its chosen and rejected padded together: widths 12 and 9
    assert (longest.pad_tokens, longest.total_tokens, longest.batches) == (2 + 2, 24 + 18, 2)
    assert result.to_dict()["truncation"]["share"] == 0.0
    assert result.recommended_max_length == 64


ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "resources" / "demo-model"
CHAT = ROOT / "resources" / "datasets" / "travel_chat.jsonl"


def test_padding_waste_counts_exactly_the_pads_collate_adds():
    from studio.core.data import load_examples
    from studio.core.encoding import EncodeOptions, Encoder, PadOptions, collate, pack_groups
    from studio.core.tokenizer import load_tokenizer

    encoded = Encoder(load_tokenizer(DEMO), EncodeOptions(max_length=128)).encode_many(load_examples(CHAT).examples)
    lengths = [len(e.input_ids) for e in encoded]
    for strategy in ("longest", "multiple", "max_length"):
        options = PadOptions(strategy=strategy, pad_id=0, multiple_of=8, max_length=128)
        batches = [collate(encoded[i:i + 8], options) for i in range(0, len(encoded), 8)]
        pads = sum(row.count(0) for b in batches for row in b["attention_mask"])
        total = sum(len(row) for b in batches for row in b["input_ids"])
        w = stats.padding_waste(lengths, strategy, batch_size=8, max_length=128, multiple_of=8)
        assert (w.pad_tokens, w.total_tokens, w.batches) == (pads, total, len(batches)), strategy
    groups = pack_groups(lengths, 128)
    packed = sum(len(collate([encoded[i] for i in g], PadOptions(strategy="packing"))["input_ids"][0]) for g in groups)
    w = stats.padding_waste(lengths, "packing", batch_size=8, max_length=128)
    assert (w.pad_tokens, w.total_tokens) == (len(groups) * 128 - packed, len(groups) * 128)


def test_context_length_is_the_smaller_known_limit(tmp_path):
    import json as _json
    import shutil

    from studio.core.tokenizer import load_tokenizer

    assert stats.context_length(DEMO, load_tokenizer(DEMO)) == 2048
    folder = tmp_path / "model"
    shutil.copytree(DEMO, folder)
    config = _json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = 512  # the model knows less than its tokenizer claims
    (folder / "config.json").write_text(_json.dumps(config))
    assert stats.context_length(folder, load_tokenizer(folder)) == 512
    assert stats.context_length(tmp_path / "nowhere") is None


@pytest.mark.parametrize("side", ["right", "left"])
def test_truncation_agrees_with_the_encoders_own_cut(side):
    from studio.core.data import load_examples
    from studio.core.encoding import EncodeOptions, Encoder
    from studio.core.lengths import measure
    from studio.core.tokenizer import load_tokenizer

    tokenizer, examples = load_tokenizer(DEMO), load_examples(CHAT).examples
    measured = measure(examples, Encoder(tokenizer, EncodeOptions()))
    cut = Encoder(tokenizer, EncodeOptions(max_length=128, truncation_side=side)).encode_many(examples)
    t = stats.truncation(measured.lengths, measured.loss_spans, 128, side)
    assert t.truncated == sum(e.truncated for e in cut) > 0
    assert t.lost_loss_tokens == sum(e.lost_loss_tokens for e in cut) > 0
    assert t.emptied == sum(1 for e in cut if e.lost_loss_tokens and e.loss_tokens == 0)
