"""Measuring chat rows straight from the tokenizer's encodings gives what the trainer's encoding gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from varied_rows import fixture_rows, varied_rows

from studio.core import lengths, measuring
from studio.core.conversation import Example, Message
from studio.core.encoding import EncodeOptions, Encoder
from studio.core.errors import TemplateError
from studio.core.templates import template_from_source
from studio.core.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "resources" / "demo-model"
#: a template whose headers run into the content ("assistant" + "s" is one word), so a token can
#: cross the edge of a loss region: the case the lookups cannot settle and hand to the row's offsets
RUN_ON = ("{% for m in messages %}{{ m['role'] }}{{ m['content'] }}{% if not loop.last %} {% endif %}"
          "{% endfor %}{% if add_generation_prompt %} assistant{% endif %}")


def both(encoder: Encoder, examples: list) -> tuple[dict, dict]:
    fast = measuring.measure_plain(encoder, examples)
    return lengths._to_entry(fast), lengths._to_entry(lengths.measure_reference(examples, encoder))


@pytest.mark.parametrize("loss", ["assistant", "last_assistant", "all", "completion"])
@pytest.mark.parametrize("template", ["auto", "llama3", "llama3.1", "chatml", "run-on"])
def test_fast_measure_equals_the_trainers_encoding(template, loss, llama):
    rows = varied_rows()
    for tokenizer in (load_tokenizer(DEMO), llama):
        if template == "auto" and tokenizer is llama:
            continue  # the Llama 3.2 tokenizer folder has no template of its own
        options = EncodeOptions(template="llama3" if template == "run-on" else template, loss=loss)
        chosen = template_from_source(tokenizer, RUN_ON) if template == "run-on" else None
        fast, reference = both(Encoder(tokenizer, options, chosen), rows)
        assert fast == reference
        assert sum(map(len, fast["loss_spans"])) > 0


def test_the_run_on_template_takes_both_ways_to_a_token():
    """The lookups settle most edges; the others (straddling tokens, with their warning) go to the offsets."""
    tokenizer = load_tokenizer(DEMO)
    encoder = Encoder(tokenizer, EncodeOptions(), template_from_source(tokenizer, RUN_ON))
    rows = [Example(1, [Message("user", "hi"), Message("assistant", "s")]),  # "Ġassistants" or "ts"
            Example(2, [Message("user", "hi"), Message("assistant", " spaced answer")]),
            Example(3, [Message("user", "hi"), Message("assistant", "ing")])]
    recorder = measuring._Recorder(encoder, lengths.Measured())
    calls = []
    recorder._spans_from_offsets = lambda lay, ids, offsets: calls.append(lay.row) or \
        measuring._Recorder._spans_from_offsets(recorder, lay, ids, offsets)
    layouts = encoder._layouts(rows, None)
    recorder.record_all(layouts, _Done(recorder.tokenize(layouts)))
    assert calls == [1]
    fast, reference = both(encoder, rows)
    assert fast == reference and any("crosses the edge of a loss span" in w for _, w in fast["warnings"])


class _Done:
    def __init__(self, value) -> None:
        self.value = value

    def result(self):
        return self.value


def test_progress_is_reported_in_chunks_and_cancel_stops_between_them(monkeypatch):
    monkeypatch.setattr(measuring, "CHUNK", 50)
    rows = varied_rows(230)
    encoder = Encoder(load_tokenizer(DEMO), EncodeOptions())
    seen = []
    measuring.measure_plain(encoder, rows, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(50, 230), (100, 230), (150, 230), (200, 230), (230, 230)]
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(measuring.Cancelled):
        measuring.measure_plain(encoder, rows, cancelled=cancelled)
    assert len(asked) == 3


def test_chat_rows_are_measured_here_without_a_worker_process(monkeypatch):
    import subprocess

    def refuse(*args, **kwargs):
        raise AssertionError("a worker process was started")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    rows = varied_rows(60) * 200  # 12,000 rows: the size at which other rows would go to workers
    encoder = Encoder(load_tokenizer(DEMO), EncodeOptions())
    assert len(lengths.measure(rows, encoder).lengths) == len(rows)


def test_token_ranges_join_as_runs_of_labels_do():
    import random

    rng = random.Random(5)
    for _ in range(300):
        ranges = [tuple(sorted(rng.sample(range(12), 2))) for _ in range(rng.randint(1, 4))]
        labels = [-100] * 12
        for first, stop in ranges:
            labels[first:stop] = [1] * (stop - first)
        assert measuring._merge(ranges) == lengths.loss_spans(labels), ranges


@pytest.mark.parametrize("template", ["auto", "llama3.1", "chatml"])
def test_every_dataset_fixture_measures_as_the_trainer_encodes_it(template):
    """Tool calls and definitions (llama3.1 writes them), ShareGPT, Alpaca, completions, switches..."""
    encoder = Encoder(load_tokenizer(DEMO), EncodeOptions(template=template))
    rows = []
    for ex in fixture_rows():
        if ex.kind in ("chat", "completion"):
            try:
                encoder.layouter.layout(encoder.fit(ex))
            except TemplateError:
                continue  # a row this template cannot render (parallel tool calls with llama3.1)
            rows.append(ex)
    fast, reference = both(encoder, rows)
    assert fast == reference and len(fast["rows"]) > 1000
    assert template != "llama3.1" or any(ex.tools for ex in rows)
