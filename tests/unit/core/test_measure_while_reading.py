"""`measure_file` tokenizes a file's first rows while the rest are still being read and checked,
with the rows, bad rows, errors and measurements of loading the whole file first."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from studio.core import data, data_files, data_reader, lengths, measuring
from studio.core.errors import DataError

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "resources" / "demo-model"
DATASETS = ROOT / "resources" / "datasets"
#: rows per chunk in these tests, so a small file spans many chunks
CHUNK = 7


def encoder():
    from studio.core.encoding import EncodeOptions, Encoder
    from studio.core.tokenizer import load_tokenizer

    return Encoder(load_tokenizer(DEMO), EncodeOptions())


def chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"Where is stop {i}?"},
                         {"role": "assistant", "content": f"Stop {i} is {'near ' * (i % 5)}the square."}], "id": i}


def with_bad_rows(path: Path, rows: int = 60) -> Path:
    """Chat rows with bad ones in the first chunk and in later chunks: broken JSON, a null field,
    a lone surrogate, a turn without a role, a row that is not an object."""
    lines = [json.dumps(chat(i)) for i in range(rows)]
    lines[2] = '{"messages": [broken'
    lines[20] = json.dumps({"messages": None, "id": 20})
    lines[33] = json.dumps({"messages": [{"role": "user", "content": "\ud800"}, {"role": "assistant", "content": "x"}]})
    lines[47] = json.dumps({"messages": [{"content": "no role"}, {"role": "assistant", "content": "x"}]})
    lines[58] = "[1, 2]"
    lines.insert(40, "")  # a blank line: not a row, but it moves the line numbers after it
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def later_column(path: Path) -> Path:
    """A column (``system``) that only rows after the first lines have: the mapping changes once all are read."""
    rows = [chat(i) for i in range(40)]
    for i in (25, 31):
        rows[i]["system"] = "Answer briefly."
    path.write_text("\n".join(map(json.dumps, rows)) + "\n", encoding="utf-8")
    return path


def later_format(path: Path) -> Path:
    """Prompt/completion rows first, then more rows of OpenAI messages: the format changes once all are read."""
    rows = [{"prompt": f"Where is stop {i}?", "completion": f"Stop {i} is near."} for i in range(6)]
    rows += [chat(i) for i in range(6, 40)]
    path.write_text("\n".join(map(json.dumps, rows)) + "\n", encoding="utf-8")
    return path


def late_start(path: Path) -> Path:
    """Blank and broken lines first: the first lines give no format to guess."""
    lines = ["", "{broken", "  ", "[3]"] + [json.dumps(chat(i)) for i in range(30)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


FILES = {"bad rows": with_bad_rows, "later column": later_column, "later format": later_format,
         "late start": late_start}


def facts(report: data.DataReport) -> dict:
    return {"examples": report.examples, "bad": [(b.row, b.reason, b.raw) for b in report.bad_rows],
            "total": report.total_rows, "columns": report.columns, "mapping": report.mapping,
            "notes": report.notes, "summary": report.summary()}


def test_rows_taken_chunk_by_chunk_are_the_rows_and_bad_rows_of_loading_at_once(tmp_path):
    path = with_bad_rows(tmp_path / "rows.jsonl")
    reader = data_reader.open_examples(path)
    chunks = list(reader.chunks(CHUNK))
    whole = data.load_examples(path)
    assert len(chunks) == -(-reader.rows // CHUNK) and [e for c in chunks for e in c] == whole.examples
    assert facts(reader.report()) == facts(whole)
    assert [b.row for b in whole.bad_rows] == [3, 21, 34, 49, 60]  # line numbers, the blank line counted
    assert "'messages[0].content' holds an unpaired UTF-16 surrogate" in whole.bad_rows[2].reason


@pytest.mark.parametrize("name", FILES)
def test_a_file_read_as_its_rows_are_taken_gives_the_report_of_reading_it_whole(name, tmp_path, monkeypatch):
    monkeypatch.setattr(data_reader, "FIRST_LINES", 5)
    path = FILES[name](tmp_path / "rows.jsonl")
    reader = data_reader.open_examples(path, stream=True)
    assert reader.table.pending is not None or name == "late start"
    taken = [e for chunk in reader.chunks(CHUNK) for e in chunk]
    whole = data.load_examples(path)
    assert facts(reader.report()) == facts(whole)
    assert reader.restarted == (name in ("later column", "later format"))
    assert taken == whole.examples or reader.restarted
    assert whole.format == "messages" and whole.examples


@pytest.mark.parametrize("name", FILES)
def test_measuring_a_file_read_as_its_rows_are_taken_gives_the_same_lengths(name, tmp_path, monkeypatch):
    monkeypatch.setattr(data_reader, "FIRST_LINES", 5)
    monkeypatch.setattr(measuring, "CHUNK", CHUNK)
    path = FILES[name](tmp_path / "rows.jsonl")
    summary, measured = lengths.measure_file(path, encoder(), use_cache=False)
    whole = data.load_examples(path)
    assert asdict(summary) == asdict(lengths.DataSummary.of(whole))
    assert lengths._to_entry(measured) == lengths._to_entry(lengths.measure_reference(whole.examples, encoder()))


def test_measuring_while_reading_gives_what_loading_then_measuring_gave(tmp_path, monkeypatch):
    monkeypatch.setattr(measuring, "CHUNK", CHUNK)
    path = with_bad_rows(tmp_path / "rows.jsonl")
    summary, measured = lengths.measure_file(path, encoder(), use_cache=False)
    whole = data.load_examples(path)
    assert asdict(summary) == asdict(lengths.DataSummary.of(whole))
    assert lengths._to_entry(measured) == lengths._to_entry(lengths.measure_reference(whole.examples, encoder()))
    assert len(measured.rows) == 55


def test_tokenizing_starts_before_the_file_is_all_read_and_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(measuring, "CHUNK", CHUNK)
    monkeypatch.setattr(data_reader, "FIRST_LINES", CHUNK)
    path = with_bad_rows(tmp_path / "rows.jsonl")
    events = []
    take, tokenize, parse = data_reader.ExampleReader.take, measuring._Recorder.tokenize, data_files.JsonLines.parse
    monkeypatch.setattr(data_reader.ExampleReader, "take", lambda self, size: events.append("check") or take(self, size))
    monkeypatch.setattr(data_files.JsonLines, "parse", lambda self, count: events.append("parse") or parse(self, count))
    monkeypatch.setattr(measuring._Recorder, "tokenize", lambda self, rows: events.append("tokenize") or
                        tokenize(self, rows))
    lengths.measure_file(path, encoder(), use_cache=False)
    last = {event: len(events) - 1 - events[::-1].index(event) for event in ("check", "parse")}
    assert events.count("check") == 9 and events.index("tokenize") < min(last.values())


@pytest.mark.parametrize("name", ["travel_prefs.jsonl", "general_text.jsonl", "travel_completion.jsonl"])
def test_other_kinds_of_rows_are_measured_as_before(name, tmp_path, monkeypatch):
    """Preference pairs and raw text are not measured chunk by chunk: the whole file is, as before."""
    monkeypatch.setattr(measuring, "CHUNK", CHUNK)
    path = tmp_path / name
    path.write_bytes((DATASETS / name).read_bytes())
    summary, measured = lengths.measure_file(path, encoder(), use_cache=False)
    whole = data.load_examples(path)
    assert asdict(summary) == asdict(lengths.DataSummary.of(whole))
    assert lengths._to_entry(measured) == lengths._to_entry(lengths.measure_reference(whole.examples, encoder()))


def test_a_file_without_a_usable_row_is_the_same_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}]}) for i in range(30)),
                    encoding="utf-8")
    with pytest.raises(DataError) as loading:
        data.load_examples(path)
    with pytest.raises(DataError) as measuring_it:
        lengths.measure_file(path, encoder(), use_cache=False)
    assert str(measuring_it.value) == str(loading.value) and "all 30 rows are bad" in str(loading.value)


def test_cancel_stops_reading_mid_file_and_stores_nothing(tmp_path, monkeypatch, studio_home):
    monkeypatch.setattr(measuring, "CHUNK", CHUNK)
    path = with_bad_rows(tmp_path / "rows.jsonl")
    taken, take = [], data_reader.ExampleReader.take
    monkeypatch.setattr(data_reader.ExampleReader, "take", lambda self, size: taken.append(size) or take(self, size))
    asked = []
    with pytest.raises(measuring.Cancelled):
        lengths.measure_file(path, encoder(), cancelled=lambda: len(asked) > 2 or asked.append(1))
    assert len(taken) == 4 and len(asked) == 3  # the fourth chunk was read when the answer came
    assert not list((studio_home / "cache" / "stats").glob("*.json"))
    seen = []
    lengths.measure_file(path, encoder(), progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (58, 58) and [d for d, _ in seen] == sorted(d for d, _ in seen)
