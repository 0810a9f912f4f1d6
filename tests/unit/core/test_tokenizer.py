"""The core tokenizer: tokenizers + JSON, loaded as transformers loads it, never adding special tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.core.errors import ModelError
from studio.core.tokenizer import load_tokenizer


def copy_with(llama_dir, folder: Path, config: dict | None = None, special_map: dict | None = None):
    """A Llama tokenizer folder with its tokenizer_config.json replaced by ``config``."""
    (folder / "tokenizer.json").symlink_to(Path(llama_dir) / "tokenizer.json")
    if config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    if special_map is not None:
        (folder / "special_tokens_map.json").write_text(json.dumps(special_map))
    return load_tokenizer(folder)


def test_llama_specials(llama):
    assert (llama.bos_token, llama.bos_id) == ("<|begin_of_text|>", 128000)
    assert (llama.eos_token, llama.eos_id) == ("<|end_of_text|>", 128001)
    assert (llama.pad_token, llama.pad_id) == ("<|finetune_right_pad_id|>", 128004)
    assert llama.token_to_id("<|eot_id|>") == 128009 and llama.id_to_token(128006) == "<|start_header_id|>"
    assert {"<|begin_of_text|>", "<|eot_id|>", "<|reserved_special_token_0|>"} <= set(llama.special_tokens)
    assert llama.chat_template is None and llama.model_max_length == 131072
    assert llama.vocab_size >= 128256 and llama.token_to_id("not a token") is None


def test_encode_never_adds_special_tokens(llama):
    assert llama.encode("Hello there!") == [9906, 1070, 0]
    assert llama.encode("<|begin_of_text|>Hi") == [128000, 13347]  # written BOS is kept, none added
    assert llama.encode_batch(["Hi", "Hello"]) == [[13347], [9906]]
    assert llama.adds_bos_by_default  # so a pipeline that re-tokenizes rendered text would double it
    assert llama.decode([128000, 9906, 1070]) == "<|begin_of_text|>Hello there"


def test_same_specials_and_ids_as_transformers(llama_dir, llama):
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(llama_dir)
    assert (hf.bos_token, hf.eos_token, hf.pad_token) == (llama.bos_token, llama.eos_token, llama.pad_token)
    text = "<|start_header_id|>user<|end_header_id|>\n\nWhere in Lisbon?  Ünïcode 👍<|eot_id|>"
    assert hf(text, add_special_tokens=False)["input_ids"] == llama.encode(text)


def test_specials_as_dicts_and_from_special_tokens_map(llama_dir, tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    as_dict = copy_with(llama_dir, tmp_path / "a", {"bos_token": {"content": "<|begin_of_text|>", "special": True},
                                                    "eos_token": {"content": "<|eot_id|>"}})
    assert (as_dict.bos_token, as_dict.eos_token, as_dict.pad_token) == ("<|begin_of_text|>", "<|eot_id|>", None)
    legacy = copy_with(llama_dir, tmp_path / "b", {}, {"eos_token": "<|eot_id|>", "pad_token": "<|eot_id|>"})
    assert legacy.eos_token == legacy.pad_token == "<|eot_id|>"
    assert any("also the EOS" in w for w in legacy.warnings)
    assert any("no pad token" in w for w in as_dict.warnings)


def test_added_tokens_decoder_entries_missing_from_tokenizer_json_are_added(llama_dir, tmp_path):
    extra = {"999999": {"content": "<|tool_call|>", "special": True}}
    tok = copy_with(llama_dir, tmp_path, {"added_tokens_decoder": extra})
    assert tok.token_to_id("<|tool_call|>") is not None
    assert tok.encode("a<|tool_call|>b")[1] == tok.token_to_id("<|tool_call|>")


def test_missing_or_broken_files_say_what_to_do(tmp_path):
    with pytest.raises(ModelError) as err:
        load_tokenizer(tmp_path / "nowhere")
    assert "does not exist" in err.value.message
    with pytest.raises(ModelError) as err:
        load_tokenizer(tmp_path)
    assert "tokenizer.json" in err.value.message and "save_pretrained" in err.value.hint
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelError) as err:
        load_tokenizer(tmp_path)
    assert "cannot be read" in err.value.message


def test_core_tokenizer_imports_no_transformers():
    import subprocess
    import sys

    code = ("import sys, studio.core.encoding, studio.core.tokenizer, studio.core.templates;"
            "print([m for m in ('torch', 'transformers', 'trl', 'PySide6') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
