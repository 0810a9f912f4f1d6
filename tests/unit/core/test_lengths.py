"""Measuring a dataset through the encoder, and the statistics cache keyed by file content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.core import lengths
from studio.core.errors import DataError

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "resources" / "demo-model"
CHAT = ROOT / "resources" / "datasets" / "travel_chat.jsonl"
PREFS = ROOT / "resources" / "datasets" / "travel_prefs.jsonl"


def encoder(**options):
    from studio.core.encoding import EncodeOptions, Encoder
    from studio.core.tokenizer import load_tokenizer

    return Encoder(load_tokenizer(DEMO), EncodeOptions(**options))


def copy_of(path: Path, tmp_path: Path) -> Path:
    target = tmp_path / path.name
    target.write_bytes(path.read_bytes())
    return target


def cache_entries(home: Path) -> list[Path]:
    return list((home / "cache" / "stats").glob("*.json"))


def test_loss_spans_are_runs_of_labels_that_are_not_ignored():
    assert lengths.loss_spans([-100, -100, 5, 6, -100, 7]) == [2, 4, 5, 6]
    assert lengths.loss_spans([1, 2]) == [0, 2]
    assert lengths.loss_spans([-100]) == [] and lengths.loss_spans([]) == []


def test_measured_lengths_and_loss_are_the_encoders():
    from studio.core.data import load_examples

    examples = load_examples(CHAT).examples
    measured = lengths.measure_dataset(load_examples(CHAT), encoder(max_length=32))
    encoded = encoder().encode_many(examples)
    assert measured.lengths == [len(e.input_ids) for e in encoded]  # untruncated despite max_length=32
    assert measured.rows == [e.row for e in encoded]
    assert [sum(s[1::2]) - sum(s[::2]) for s in measured.loss_spans] == [e.loss_tokens for e in encoded]


def test_preference_rows_are_measured_as_chosen_then_rejected():
    from studio.core.data import load_examples

    report = load_examples(PREFS)
    measured = lengths.measure(report.examples[:3], encoder())
    pairs = [encoder().encode_pair(e) for e in report.examples[:3]]
    assert measured.sequences_per_row == 2
    assert measured.lengths == [len(s.input_ids) for p in pairs for s in (p.chosen, p.rejected)]
    assert measured.rows == [p.row for p in pairs for _ in range(2)]


def test_second_measure_is_a_cache_hit_and_a_changed_file_a_miss(tmp_path, studio_home):
    data = copy_of(CHAT, tmp_path)
    first_summary, first = lengths.measure_file(data, encoder())
    assert not first.cache_hit and len(cache_entries(studio_home)) == 1
    summary, second = lengths.measure_file(data, encoder(max_length=64))  # the cut is not part of the key
    assert second.cache_hit and summary == first_summary
    assert (second.lengths, second.loss_spans, second.rows) == (first.lengths, first.loss_spans, first.rows)
    lines = CHAT.read_text(encoding="utf-8").splitlines()
    data.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # drop the last row
    summary, third = lengths.measure_file(data, encoder())
    assert not third.cache_hit and third.lengths == first.lengths[:-1] and summary.usable_rows == 299


def test_other_options_or_template_are_a_miss(tmp_path):
    data = copy_of(CHAT, tmp_path)
    lengths.measure_file(data, encoder())
    _, other_loss = lengths.measure_file(data, encoder(loss="all"))
    _, other_template = lengths.measure_file(data, encoder(template="chatml"))
    assert not other_loss.cache_hit and not other_template.cache_hit


def test_a_hit_does_not_load_the_file_again(tmp_path, monkeypatch):
    import studio.core.data

    data = copy_of(CHAT, tmp_path)
    summary, _ = lengths.measure_file(data, encoder())

    def refuse(*args, **kwargs):
        raise AssertionError("the data file was loaded again")

    monkeypatch.setattr(studio.core.data, "load_examples", refuse)
    again, measured = lengths.measure_file(data, encoder())
    assert measured.cache_hit and again.text == summary.text and again.total_rows == 300


def test_bad_rows_are_kept_in_the_cached_summary(tmp_path):
    good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    data = tmp_path / "mixed.jsonl"
    data.write_text(json.dumps(good) + "\n{oops\n" + json.dumps(good) + "\n", encoding="utf-8")
    first, _ = lengths.measure_file(data, encoder())
    again, measured = lengths.measure_file(data, encoder())
    assert measured.cache_hit and again.bad_rows == first.bad_rows and [r for r, _ in again.bad_rows] == [2]


def test_a_damaged_cache_entry_is_a_miss_not_an_error(tmp_path, studio_home):
    data = copy_of(CHAT, tmp_path)
    _, first = lengths.measure_file(data, encoder())
    for entry in cache_entries(studio_home):
        entry.write_text("{truncated", encoding="utf-8")
    _, again = lengths.measure_file(data, encoder())
    assert not again.cache_hit and again.lengths == first.lengths


def test_cache_lives_under_studio_home(studio_home):
    assert lengths.cache_dir() == studio_home / "cache" / "stats"


def test_an_unreadable_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="missing.jsonl"):
        lengths.measure_file(tmp_path / "missing.jsonl", encoder())


def test_many_loss_spans_equals_one_by_one_and_never_crosses_rows():
    import random

    rng = random.Random(7)
    rows = [[rng.choice([-100, 3, 9]) for _ in range(rng.randint(0, 15))] for _ in range(400)]
    assert lengths.many_loss_spans(rows) == [lengths.loss_spans(r) for r in rows]
    # two rows that both carry loss at the seam stay two spans
    assert lengths.many_loss_spans([[-100, 1], [2, -100], []]) == [[1, 2], [0, 1], []]
    assert lengths.many_loss_spans([]) == []


def test_the_cache_keeps_only_the_newest_entries(studio_home, monkeypatch):
    import os

    monkeypatch.setattr(lengths, "MAX_ENTRIES", 3)
    for i in range(5):
        path = lengths.store(f"key{i}", {"rows": [], "lengths": [], "loss_spans": [], "sequences_per_row": 1,
                                         "warnings": [], "warning_count": 0})
        os.utime(path, (1000 + i, 1000 + i))  # distinct ages, oldest first
    assert sorted(p.stem for p in cache_entries(studio_home)) == ["key2", "key3", "key4"]
    assert lengths.load("key4") is not None and lengths.load("key0") is None


def test_measuring_in_worker_processes_gives_the_very_same_result():
    """Parts measured by other processes join in order, with the warnings of a single pass."""
    from studio.core.data import load_examples

    from studio.core.conversation import Example, Message

    chat, prefs = load_examples(CHAT).examples, load_examples(PREFS).examples
    examples = (chat * (1200 // len(chat) + 1))[:1200] + prefs[:6]
    for at in range(0, 1200, 15):  # 80 rows that warn, in every part: only the first 50 are kept
        examples[at] = Example(at + 1, [Message("user", "no answer")])
    enc = encoder(loss="last_assistant")
    alone = lengths.measure(examples, enc, workers=1)
    together = lengths.measure(examples, enc, workers=3)
    assert lengths._to_entry(together) == lengths._to_entry(alone)
    assert together.sequences_per_row == 2 and len(together.lengths) == 1200 + 12
    assert together.warning_count > lengths.MAX_WARNINGS == len(together.warnings)


def test_a_failing_worker_part_is_measured_here(monkeypatch):
    from studio.core.data import load_examples

    examples = load_examples(CHAT).examples * 4 + load_examples(PREFS).examples[:2]  # pairs: not the chat-only path
    monkeypatch.setattr(lengths._Worker, "result", lambda self: None)
    assert lengths._to_entry(lengths.measure(examples, encoder(), workers=2)) == \
        lengths._to_entry(lengths.measure(examples, encoder(), workers=1))


def test_small_datasets_and_unloadable_tokenizers_stay_in_this_process():
    assert lengths._workers(lengths.PARALLEL_ROWS - 1) == 1
    fake = type("Enc", (), {"tokenizer": object()})()
    assert lengths._origin(fake) is None


def test_no_worker_process_means_measuring_here(monkeypatch):
    import subprocess

    from studio.core.data import load_examples

    def refuse(*args, **kwargs):
        raise OSError("no more processes")

    examples = load_examples(CHAT).examples * 4 + load_examples(PREFS).examples[:2]  # pairs: not the chat-only path
    alone = lengths._to_entry(lengths.measure(examples, encoder(), workers=1))
    monkeypatch.setattr(subprocess, "Popen", refuse)
    assert lengths._to_entry(lengths.measure(examples, encoder(), workers=3)) == alone
