"""The Llama 3 templates laid out without Jinja give what Jinja gives: text, roles, loss, ids and labels."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from varied_rows import fixture_rows, varied_rows

from studio.core.builtin_templates import LLAMA3
from studio.core.direct_templates import LLAMA3_TRAINING, direct_layout_for
from studio.core.encoding import EncodeOptions, Encoder
from studio.core.errors import StudioError, TemplateError
from studio.core.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "resources" / "demo-model"


def pair(tokenizer, **options) -> tuple[Encoder, Encoder]:
    """(the encoder laying out llama3 directly, the same encoder rendering through Jinja)."""
    fast = Encoder(tokenizer, EncodeOptions(**{"template": "llama3", **options}))
    slow = Encoder(tokenizer, fast.options)
    slow.layouter.direct = None
    assert fast.layouter.direct is not None
    return fast, slow


def same_encoding(fast: Encoder, slow: Encoder, examples: list) -> int:
    """Assert both encoders give the same sequences; return how many rows were laid out directly."""
    direct = 0
    for ex in examples:
        if ex.kind == "text":
            continue
        if ex.kind == "preference":
            encode = lambda enc: (lambda p: (p.prompt_len, p.chosen, p.rejected))(enc.encode_pair(ex))  # noqa: E731
        else:
            encode = lambda enc: enc.layouter.layout(enc.fit(ex))  # noqa: E731
        try:
            expected = encode(slow)
        except StudioError as exc:  # a row Jinja refuses (tool calls with llama3) is refused the same way
            with pytest.raises(type(exc)):
                encode(fast)
            continue
        assert encode(fast) == expected, ex.row
        if ex.kind == "preference":
            continue
        direct += fast.layouter.direct(ex.messages + (ex.chosen or [])) is not None
    plain = [ex for ex in examples if ex.kind in ("chat", "completion") and not ex.tools
             and not any(m.tool_calls or m.role == "tool" for m in ex.messages)]
    assert fast.encode_many(plain) == slow.encode_many(plain)
    return direct


@pytest.mark.parametrize("loss", ["assistant", "last_assistant", "all", "completion"])
def test_every_dataset_fixture_encodes_the_same_without_jinja(loss):
    fast, slow = pair(load_tokenizer(DEMO), loss=loss)
    assert same_encoding(fast, slow, fixture_rows()) > 1000


@pytest.mark.parametrize("options", [{"loss": "assistant"}, {"loss": "last_assistant"}, {"loss": "all"},
                                     {"loss": "completion"}, {"max_length": 40}, {"max_length": 40,
                                                                                  "truncation_side": "left"}])
def test_varied_rows_encode_the_same_without_jinja_on_the_demo_and_the_real_llama_tokenizer(options, llama):
    rows = varied_rows()
    for tokenizer in (load_tokenizer(DEMO), llama):
        fast, slow = pair(tokenizer, **options)
        assert same_encoding(fast, slow, rows) == len(rows)


def test_both_llama3_texts_and_only_they_are_laid_out_directly(trl_template):
    tokenizer = load_tokenizer(DEMO)
    template = Encoder(tokenizer, EncodeOptions(template="llama3")).template
    assert trl_template("llama3_training.jinja") == LLAMA3_TRAINING  # the variant TRL ships now
    assert direct_layout_for(replace(template, training=None)) is not None  # Meta's text, TRL absent
    assert direct_layout_for(replace(template, training=LLAMA3_TRAINING)) is not None
    assert direct_layout_for(replace(template, training=LLAMA3_TRAINING + " ")) is None  # any edit: Jinja
    assert direct_layout_for(replace(template, training=None, specials={})) is None  # no BOS to write
    assert direct_layout_for(Encoder(tokenizer, EncodeOptions(template="chatml")).template) is None
    assert template.text in (LLAMA3, LLAMA3_TRAINING)


def test_tool_turns_and_other_roles_go_through_jinja():
    from studio.core.conversation import Example, Message

    fast, _ = pair(load_tokenizer(DEMO))
    call = ({"type": "function", "function": {"name": "f", "arguments": {}}},)
    for turns in ([Message("user", "hi"), Message("assistant", "", None, call)],
                  [Message("user", "hi"), Message("tool", "{}")], [Message("developer", "hi")]):
        assert fast.layouter.direct(turns) is None
    assert fast.layouter.direct([Message("user", "hi"), Message("assistant", "ok")]) is not None
    with pytest.raises(TemplateError, match="tool definitions"):  # refused as before, not dropped silently
        fast.layouter.layout(Example(1, [Message("user", "hi"), Message("assistant", "ok")], tools=[{"name": "f"}]))
