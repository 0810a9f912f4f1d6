"""Every family TRL ships a training template for: core encoding gives TRL's ids and labels.

For each family, the model's own template (TRL's ``NAME.jinja``) is the chat template of a
tokenizer folder made from Meta's real Llama 3.2 tokenizer (and from the demo model's tokenizer)
in which the control tokens of TRL's templates are special tokens. TRL's side is what its
assistant-only loss trains on: ``get_training_chat_template`` then ``apply_chat_template(...,
return_assistant_tokens_mask=True)``; labels are the ids where the mask is set.

The tokenizer folder is built once per base tokenizer with the control tokens of every family
(each family's own tokens never appear in another's conversations, so the ids are those of a
folder with that family's tokens only); per family only the template and BOS/EOS change.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from studio.core.conversation import Example, Message
from studio.core.encoding import EncodeOptions, Encoder
from studio.core.families import trl_variants
from studio.core.tokenizer import Tokenizer, load_tokenizer

pytestmark = pytest.mark.slow  # builds two tokenizers and loads transformers and TRL

DEMO = Path(__file__).resolve().parents[3] / "resources" / "demo-model"
FAMILIES = sorted(v.family for v in trl_variants().values())
#: Control-token literals in TRL's templates: <|x|>, <｜x｜>, Gemma 4's <|x> and <x|>, and the rest.
CONTROL = re.compile(r"<\|[^<>|\s]{1,40}\|>|<｜[^<>｜]{1,40}｜>|<\|[a-z_\"]{1,20}>|<[a-z_]{1,20}\|>"
                     r"|<(?:start|end)_of_turn>|<end_of_utterance>|\[/?INST\]|\[gMASK\]|<sop>|<image>")
#: Tokens added to the vocabulary but not special in the real models (Qwen3's and DeepSeek-R1's).
PLAIN = ("<think>", "</think>")
#: BOS and EOS of each family's models (ChatML-style families: no BOS, EOS <|im_end|>).
BOS_EOS = {
    "cohere": ("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"), "cohere2": ("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    "deepseek_r1_distill": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "deepseekv3": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "diffusion_gemma": ("<bos>", "<eos>"), "gemma": ("<bos>", "<eos>"), "gemma3": ("<bos>", "<eos>"),
    "glm4moe": (None, "<|endoftext|>"), "gptoss": ("<|startoftext|>", "<|return|>"),
    "idefics3": ("<|begin_of_text|>", "<end_of_utterance>"), "lfm2": ("<|startoftext|>", "<|im_end|>"),
    "lfm2_v2": ("<|startoftext|>", "<|im_end|>"), "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "llava_next": ("<s>", "</s>"), "muse_glimmer": ("<|startoftext|>", "<|eot|>"),
    "phi3": ("<s>", "<|endoftext|>"), "phi3_5": ("<s>", "<|endoftext|>"),
    "smolvlm": ("<|im_start|>", "<end_of_utterance>"),
}

S, U, A = "system", "user", "assistant"


def chat(*turns: tuple[str, str]) -> list[dict]:
    return [{"role": r, "content": c} for r, c in turns]


CONVERSATIONS = [
    chat((U, "What is the capital of France?"), (A, "Paris.")),
    chat((S, "You are a terse travel agent."), (U, "Find me a train to Lyon."), (A, "The 9:04 TGV leaves from Gare de Lyon.")),
    chat((U, "  leading and trailing spaces  "), (A, "  an answer with spaces  \n")),
    chat((S, "Answer in Japanese."), (U, "東京で一番高い建物は？"), (A, "東京スカイツリーです。"), (U, "高さは？"), (A, "634メートルです。")),
    chat((U, "Multi\nline\n\nquestion"), (A, "Line one.\n\nLine two.\n"), (U, "And a third?"), (A, "Line three.")),
    chat((U, "مرحبا، كيف حالك؟"), (A, "أنا بخير، شكرا!"), (U, "Привет!"), (A, "Здравствуйте! 👋")),
    chat((S, "Think step by step."), (U, "What is 17 * 3?"), (A, "<think>\n17 * 3 = 51\n</think>\n\n51"),
         (U, "And 51 + 9?"), (A, "<think>\n51 + 9 = 60\n</think>\n\n60")),
    chat((U, "Say hi."), (A, "<think>\nA greeting.\n</think>\n\nHi!")),
    chat((S, "  You speak like a pirate.  "), (U, "Where is the treasure?"), (A, "Arr, under the palm tree!"),
         (U, "Which one?"), (A, "The tallest, matey."), (U, "Thanks"), (A, "Fair winds.")),
    chat((U, "Tabs\tand\ttabs"), (A, "\tIndented answer")),
]


def control_tokens() -> list[str]:
    found = set()
    for v in trl_variants().values():
        found |= set(CONTROL.findall(v.original)) | set(CONTROL.findall(v.training))
    found |= {t for pair in BOS_EOS.values() for t in pair if t} | {"<|im_end|>"}
    return sorted(found)


def base_folder(base: Path, out: Path) -> Path:
    """``base``'s tokenizer with every family's control tokens added as special tokens."""
    from tokenizers import AddedToken
    from tokenizers import Tokenizer as Backend

    backend = Backend.from_file(str(base / "tokenizer.json"))
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control_tokens()])
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in PLAIN])
    out.mkdir(parents=True)
    backend.save(str(out / "tokenizer.json"))
    config = json.loads((base / "tokenizer_config.json").read_text(encoding="utf-8"))
    for key in ("added_tokens_decoder", "chat_template", "bos_token", "eos_token", "pad_token"):
        config.pop(key, None)
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (out / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return out


class Side:
    """One base tokenizer, as TRL (transformers) and core encoding each load it."""

    def __init__(self, folder: Path) -> None:
        from transformers import AutoTokenizer

        self.hf = AutoTokenizer.from_pretrained(str(folder))
        self.core = load_tokenizer(folder)
        self.folder = folder

    def family(self, family: str) -> None:
        """Make ``family``'s template (and its BOS/EOS) the model's own on both sides."""
        variant = next(v for v in trl_variants().values() if v.family == family)
        bos, eos = BOS_EOS.get(family, (None, "<|im_end|>"))
        self.hf.chat_template, self.hf.bos_token, self.hf.eos_token = variant.original, bos, eos
        config = {**self.core.config, "chat_template": variant.original, "bos_token": bos, "eos_token": eos}
        self.core = Tokenizer(self.core._tk, self.folder, config, {})

    def trl(self, messages: list[dict]) -> dict:
        """What TRL's assistant-only loss trains on: ids and labels."""
        from trl.chat_template_utils import get_training_chat_template

        out = self.hf.apply_chat_template(messages, chat_template=get_training_chat_template(self.hf), tokenize=True,
                                          return_dict=True, return_assistant_tokens_mask=True)
        labels = [t if m else -100 for t, m in zip(out["input_ids"], out["assistant_masks"])]
        return {"input_ids": list(out["input_ids"]), "labels": labels}

    def encoder(self, **options) -> Encoder:
        return Encoder(self.core, EncodeOptions(**options))


def example(messages: list[dict], row: int = 1) -> Example:
    return Example(row, [Message(m["role"], m["content"]) for m in messages])


def merged(messages: list[dict]) -> list[dict]:
    """A system message written at the start of the first user turn (Studio's merge for templates that refuse it)."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == S)
    rest = [dict(m) for m in messages if m["role"] != S]
    if system:
        first = next(m for m in rest if m["role"] == U)
        first["content"] = f"{system}\n\n{first['content']}"
    return rest


@pytest.fixture(scope="module")
def sides(llama_dir, tmp_path_factory):
    pytest.importorskip("trl")
    if not (DEMO / "tokenizer.json").exists():
        pytest.skip("the demo model is not built yet")
    root = tmp_path_factory.mktemp("families")
    return {name: Side(base_folder(Path(base), root / name)) for name, base in (("llama", llama_dir), ("demo", DEMO))}


@pytest.mark.parametrize("family", FAMILIES)
def test_ids_and_labels_equal_what_trl_trains_on(sides, family):
    for name, side in sides.items():
        side.family(family)
        encoder = side.encoder(loss="assistant")
        for n, messages in enumerate(CONVERSATIONS, 1):
            try:
                theirs = side.trl(messages)
            except Exception:  # noqa: BLE001 - TRL cannot train this row with this template
                if encoder.template.refuses_system and any(m["role"] == S for m in messages):
                    theirs = side.trl(merged(messages))  # Studio merges it (data.system_message: merge)
                else:
                    with pytest.raises(Exception):  # noqa: B017 - both sides refuse the row
                        encoder.encode(example(messages, n))
                    continue
            mine = encoder.encode(example(messages, n))
            assert mine.input_ids == theirs["input_ids"], f"{family} on {name}: conversation {n} ids differ"
            assert mine.labels == theirs["labels"], f"{family} on {name}: conversation {n} labels differ"


def gemma_folder(llama_dir, folder: Path) -> Path:
    """Meta's Llama 3.2 tokenizer with Gemma's turn markers as special tokens and Gemma's own template."""
    from tokenizers import AddedToken
    from tokenizers import Tokenizer as Backend

    backend = Backend.from_file(str(Path(llama_dir) / "tokenizer.json"))
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t in ("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>")])
    backend.save(str(folder / "tokenizer.json"))
    config = {"bos_token": "<bos>", "eos_token": "<eos>", "tokenizer_class": "PreTrainedTokenizerFast"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    gemma = next(v for v in trl_variants().values() if v.family == "gemma")
    (folder / "chat_template.jinja").write_text(gemma.original, encoding="utf-8")
    return folder


ROWS = [chat((U, "Hi"), (A, "Hello!")), chat((S, "Be brief."), (U, "Hi"), (A, "Hello!")),
        chat((U, "Rome?"), (A, "Yes.")), chat((S, "Speak French."), (U, "Bonjour"), (A, "Salut !"))]


def test_gemma_merges_a_system_message_into_the_first_user_turn(llama_dir, tmp_path):
    pytest.importorskip("trl")
    from transformers import AutoTokenizer
    from trl.chat_template_utils import get_training_chat_template

    folder = gemma_folder(llama_dir, tmp_path)
    encoder = Encoder(load_tokenizer(folder), EncodeOptions())
    hf = AutoTokenizer.from_pretrained(str(folder))
    training = get_training_chat_template(hf)
    assert encoder.template.refuses_system
    assert any("first user turn" in note for note in encoder.notes)
    for n, messages in enumerate(ROWS, 1):
        mine = encoder.encode(example(messages, n))
        theirs = hf.apply_chat_template(merged(messages), chat_template=training, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
        assert mine.input_ids == theirs["input_ids"]
        assert mine.labels == [t if m else -100 for t, m in zip(theirs["input_ids"], theirs["assistant_masks"])]
    text = load_tokenizer(folder).decode(encoder.encode(example(ROWS[1])).input_ids)
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"


def test_gemma_skip_makes_bad_rows_of_system_messages_and_encodes_the_rest(llama_dir, tmp_path):
    from studio.core.data import load_examples

    folder = gemma_folder(llama_dir, tmp_path)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"messages": m}) + "\n" for m in ROWS), encoding="utf-8")
    encoder = Encoder(load_tokenizer(folder), EncodeOptions(system_message="skip"))
    report = encoder.screen_report(load_examples(data))
    assert [ex.row for ex in report.examples] == [1, 3]
    assert [b.row for b in report.bad_rows] == [2, 4]
    assert all("does not accept a system message" in b.reason and "data.system_message" in b.reason
               for b in report.bad_rows)
    assert [len(e.input_ids) > 0 for e in encoder.encode_many(report.examples)] == [True, True]
    with pytest.raises(Exception, match="row 2: the chat template"):  # an unscreened row names itself
        encoder.encode(example(ROWS[1], 2))


def test_studio_preview_of_a_gemma_file_with_system_messages_shows_every_other_row(llama_dir, tmp_path, capsys):
    from studio.cli import main

    folder = gemma_folder(llama_dir, tmp_path)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"messages": m}) + "\n" for m in ROWS), encoding="utf-8")
    assert main(["preview", "--model", str(folder), "--data", str(data), "--json", "--system-message", "skip"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["row"] for line in out.splitlines() if line.strip()] == [1, 3]
    assert "row 2" in err and "row 4" in err and "system message" in err
    assert main(["preview", "--model", str(folder), "--data", str(data), "--json"]) == 0  # merge, the default
    out, _ = capsys.readouterr()
    assert [json.loads(line)["row"] for line in out.splitlines() if line.strip()] == [1, 2, 3, 4]


def family_folder(llama_dir, folder: Path, family: str, template: str | None = None) -> Path:
    """Meta's Llama 3.2 tokenizer with ``family``'s control tokens as special tokens and its own template."""
    from tokenizers import AddedToken
    from tokenizers import Tokenizer as Backend

    variant = next(v for v in trl_variants().values() if v.family == family)
    bos, eos = BOS_EOS.get(family, (None, "<|im_end|>"))
    tokens = sorted(set(CONTROL.findall(variant.original + variant.training)) | {t for t in (bos, eos) if t})
    backend = Backend.from_file(str(Path(llama_dir) / "tokenizer.json"))
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in tokens if t not in PLAIN])
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in PLAIN])
    backend.save(str(folder / "tokenizer.json"))
    config = {"bos_token": bos, "eos_token": eos, "tokenizer_class": "PreTrainedTokenizerFast"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "chat_template.jinja").write_text(template or variant.original, encoding="utf-8")
    return folder


def trained_pieces(tok, encoded) -> list[str]:
    """The text of each run of loss-carrying tokens."""
    pieces, run = [], []
    for token, label in zip(encoded.input_ids + [None], encoded.labels + [-100]):
        if label == -100 and run:
            pieces, run = pieces + [tok.decode(run)], []
        elif label != -100:
            run.append(token)
    return pieces


def test_glm_trains_the_role_token_that_ends_the_last_answer(llama_dir, tmp_path):
    """GLM-4 closes a turn with the next role's token: after the last answer, <|user|> is written and trained."""
    from studio.core import config as config_mod
    from studio.core.preflight import lints

    tok = load_tokenizer(family_folder(llama_dir, tmp_path, "glm4moe"))
    encoder = Encoder(tok, EncodeOptions())
    enc = encoder.encode(example(CONVERSATIONS[4]))
    assert trained_pieces(tok, enc) == ["\n<think></think>\nLine one.\n\nLine two.<|user|>",
                                        "\n<think></think>\nLine three.<|user|>"]
    assert tok.decode(enc.input_ids).endswith("Line three.<|user|>")
    assert encoder.stop_token() == "<|user|>"
    assert any("glm4moe_training.jinja" in note for note in encoder.notes)
    cfg = config_mod.from_dict({"model": {"path": str(tmp_path)}})
    assert "no_end_of_turn" not in [lint.code for lint in lints(cfg, tok, template_text=tok.chat_template)]


def test_a_template_without_a_trained_end_of_turn_token_is_linted(llama_dir, tmp_path):
    """GLM-4's template changed by one byte is not TRL's: rendered as it is, no answer ends on a trained token."""
    from studio.core import config as config_mod
    from studio.core.preflight import lints

    glm = next(v for v in trl_variants().values() if v.family == "glm4moe")
    tok = load_tokenizer(family_folder(llama_dir, tmp_path, "glm4moe", glm.original + "\n"))
    encoder = Encoder(tok, EncodeOptions())
    assert encoder.template.training is None and encoder.stop_token() is None
    assert any("never taught a token to stop" in w for w in encoder.warnings)
    cfg = config_mod.from_dict({"model": {"path": str(tmp_path)}})
    found = [lint for lint in lints(cfg, tok, template_text=tok.chat_template) if lint.code == "no_end_of_turn"]
    assert found and "generation will not stop" in found[0].message


def test_qwen3_keeps_earlier_reasoning_and_trains_every_turn_as_trl_does(llama_dir, tmp_path):
    pytest.importorskip("trl")
    from transformers import AutoTokenizer
    from trl.chat_template_utils import get_training_chat_template

    folder = family_folder(llama_dir, tmp_path, "qwen3")
    tok, hf = load_tokenizer(folder), AutoTokenizer.from_pretrained(str(folder))
    messages = CONVERSATIONS[6]
    enc = Encoder(tok, EncodeOptions()).encode(example(messages))
    assert trained_pieces(tok, enc) == ["<think>\n17 * 3 = 51\n</think>\n\n51<|im_end|>\n",
                                        "<think>\n51 + 9 = 60\n</think>\n\n60<|im_end|>\n"]
    theirs = hf.apply_chat_template(messages, chat_template=get_training_chat_template(hf), tokenize=True,
                                    return_dict=True, return_assistant_tokens_mask=True)
    assert enc.input_ids == theirs["input_ids"]
    assert enc.labels == [t if m else -100 for t, m in zip(theirs["input_ids"], theirs["assistant_masks"])]


def test_qwen3_with_earlier_reasoning_dropped_trains_only_the_final_answer(llama_dir, tmp_path):
    """data.reasoning_history: drop renders the model's own template, as the model sees its history."""
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    folder = family_folder(llama_dir, tmp_path, "qwen3")
    tok, hf = load_tokenizer(folder), AutoTokenizer.from_pretrained(str(folder))
    messages = CONVERSATIONS[6]
    keep, drop = (Encoder(tok, EncodeOptions(reasoning_history=h)) for h in ("keep", "drop"))
    assert (keep.template.history, drop.template.history) == ("keep", "drop")
    assert any("earlier reasoning kept" in n for n in keep.notes) and any("dropped" in n for n in drop.notes)
    enc = drop.encode(example(messages))
    assert enc.input_ids == hf.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    assert "17 * 3 = 51" not in tok.decode(enc.input_ids)  # the earlier answer as the model sees it: no reasoning
    assert trained_pieces(tok, enc) == ["<think>\n51 + 9 = 60\n</think>\n\n60<|im_end|>\n"]
    llama3 = Encoder(load_tokenizer(llama_dir), EncodeOptions(template="llama3", reasoning_history="drop"))
    assert llama3.template.history is None  # a template that keeps its history has no such choice


def test_completion_loss_on_glm_keeps_the_variant_and_trains_the_end_token_trl_leaves_out(llama_dir, tmp_path):
    """A pinned, stated difference: TRL's completion-only loss renders GLM's own template, whose answer ends
    on plain text; Studio keeps the training variant, so the answer ends with a trained <|user|>."""
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    folder = family_folder(llama_dir, tmp_path, "glm4moe")
    tok, hf = load_tokenizer(folder), AutoTokenizer.from_pretrained(str(folder))
    prompt, completion = chat((U, "Capital of Peru?")), chat((A, "Lima."))
    encoder = Encoder(tok, EncodeOptions(loss="completion"))
    assert any("Studio keeps the variant" in n for n in encoder.notes)
    mine = encoder.encode(Example(1, [Message(m["role"], m["content"]) for m in prompt + completion], completion_start=1))
    # TRL (>= 0.24): the prompt with the generation prompt, then prompt + completion; the completion is trained
    prompt_ids = hf.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    ids = hf.apply_chat_template(prompt + completion, tokenize=True, return_dict=True)["input_ids"]
    user = tok.token_to_id("<|user|>")
    assert mine.input_ids == ids + [user]
    assert mine.labels == [-100] * len(prompt_ids) + ids[len(prompt_ids):] + [user]
    assert not any("Studio keeps" in n for n in Encoder(tok, EncodeOptions(loss="assistant")).notes)
