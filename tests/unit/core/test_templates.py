"""Chat templates: built-ins are Meta's, rendering is byte-identical to transformers, resolution rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.core.errors import TemplateError
from studio.core.templates import BUILTIN_TEMPLATES, render, resolve_template
from studio.core.tokenizer import load_tokenizer

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "  Be brief.\n"}, {"role": "user", "content": "What to pack?"},
     {"role": "assistant", "content": " Light layers. "}],
    [{"role": "user", "content": "Rome?"}, {"role": "assistant", "content": "Yes."},
     {"role": "user", "content": "Ünïcode → ok"}, {"role": "assistant", "content": "Sí 👍"}],
]


def with_template(llama_dir, folder: Path, template: str):
    """A tokenizer folder like Llama's whose chat_template.jinja is ``template``."""
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).symlink_to(Path(llama_dir) / name)
    (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    return load_tokenizer(folder)


def test_builtins_are_the_upstream_templates(trl_template):
    assert BUILTIN_TEMPLATES["llama3"] == trl_template("llama3.jinja")
    assert BUILTIN_TEMPLATES["llama3.1"] == trl_template("llama3_1.jinja")


@pytest.mark.parametrize("name", sorted(BUILTIN_TEMPLATES) + ["qwen2_5.jinja", "gemma.jinja", "phi3.jinja"])
def test_rendering_is_byte_identical_to_transformers(llama_dir, llama, trl_template, name):
    """Built-ins, and a few other families' templates as TRL ships them."""
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(llama_dir)
    source = BUILTIN_TEMPLATES.get(name) or trl_template(name)
    for messages in CONVERSATIONS:
        for generation in (False, True):
            try:
                theirs = hf.apply_chat_template(messages, chat_template=source, tokenize=False,
                                                add_generation_prompt=generation)
            except Exception:  # e.g. Gemma refuses a system turn: ours must refuse it too
                with pytest.raises(TemplateError):
                    render(source, messages, generation, llama.specials)
                continue
            assert render(source, messages, generation, llama.specials) == theirs


def test_llama31_date_is_fixed():
    text = render(BUILTIN_TEMPLATES["llama3.1"], CONVERSATIONS[0], False, {"bos_token": "<|begin_of_text|>"})
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                           "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>")


def test_generation_tags_render_their_body(trl_template):
    training = trl_template("llama3_training.jinja")
    specials = {"bos_token": "<|begin_of_text|>"}
    for messages in CONVERSATIONS:
        assert render(training, messages, True, specials) == \
            render(BUILTIN_TEMPLATES["llama3"], messages, True, specials)


def test_auto_without_a_model_template_says_what_to_do(llama):
    with pytest.raises(TemplateError) as err:
        resolve_template(llama, "auto")
    assert "no chat template" in err.value.message and "llama3" in err.value.hint


def test_unknown_name_lists_the_choices(llama):
    with pytest.raises(TemplateError) as err:
        resolve_template(llama, "vicuna")
    assert "chatml" in err.value.hint


def test_model_template_is_used_and_recognised(llama_dir, tmp_path):
    tok = with_template(llama_dir, tmp_path, BUILTIN_TEMPLATES["llama3.1"])
    resolved = resolve_template(tok, "auto")
    assert (resolved.name, resolved.origin, resolved.warnings) == ("llama3.1", "model", [])
    other = resolve_template(tok, "llama3")
    assert other.origin == "builtin" and "differs from the model's own" in other.warnings[0]


def test_chat_template_jinja_wins_over_config(llama_dir, tmp_path):
    config = json.loads((Path(llama_dir) / "tokenizer_config.json").read_text())
    config["chat_template"] = [{"name": "default", "template": "CONFIG"}, {"name": "tool_use", "template": "TOOLS"}]
    (tmp_path / "tokenizer.json").symlink_to(Path(llama_dir) / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    tok = load_tokenizer(tmp_path)
    assert tok.chat_template == "CONFIG" and tok.chat_templates["tool_use"] == "TOOLS"
    (tmp_path / "chat_template.jinja").write_text("FILE")
    assert load_tokenizer(tmp_path).chat_template == "FILE"


def test_markers_missing_from_the_vocabulary_warn(llama):
    warnings = resolve_template(llama, "chatml").warnings
    assert any("<|im_start|>" in w and "not have as tokens" in w for w in warnings)
    assert resolve_template(llama, "llama3").warnings == []


def test_a_template_that_writes_todays_date_warns(llama_dir, tmp_path, trl_template):
    tok = with_template(llama_dir, tmp_path, trl_template("llama3_2.jinja"))
    assert any("today's date" in w for w in resolve_template(tok).warnings)


def test_template_errors_name_the_problem(llama_dir, tmp_path):
    tok = with_template(llama_dir, tmp_path, "{{ raise_exception('roles must alternate') }}")
    with pytest.raises(TemplateError) as err:
        resolve_template(tok).render(CONVERSATIONS[0])
    assert "roles must alternate" in err.value.message
    with pytest.raises(TemplateError):
        render("{% for %}", CONVERSATIONS[0])


def test_turn_pieces_of_llama3(llama):
    pieces = resolve_template(llama, "llama3").pieces
    assert pieces.heads[(True, "user")] == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
    assert pieces.closes["assistant"] == "<|eot_id|>" and pieces.strips["assistant"] is True
    assert pieces.gen == pieces.heads[(False, "assistant")]
    assert resolve_template(llama, "chatml").pieces.strips["user"] is False


def test_demo_model_carries_the_llama3_template():
    demo = Path(__file__).resolve().parents[3] / "resources" / "demo-model"
    if not (demo / "tokenizer.json").exists():
        pytest.skip("the demo model is not built yet")
    resolved = resolve_template(load_tokenizer(demo), "auto")
    assert (resolved.name, resolved.origin, resolved.warnings) == ("llama3", "model", [])


@pytest.mark.parametrize("name", sorted(BUILTIN_TEMPLATES))
def test_builtins_render_without_the_sandbox_exactly_as_within_it(name):
    """Studio's own templates skip the sandbox (it only costs time); the text must not change."""
    from studio.core.templates import _environment, compile_template

    source = BUILTIN_TEMPLATES[name]
    assert not hasattr(compile_template(source).environment, "is_safe_attribute")
    sandboxed = _environment(True).from_string(source)
    specials = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    for messages in CONVERSATIONS:
        for generation in (False, True):
            context = {"messages": messages, "add_generation_prompt": generation, "tools": None,
                       "documents": None, **specials}
            try:
                theirs = sandboxed.render(context)
            except Exception:  # noqa: BLE001 - e.g. Gemma refuses a system turn: so must the unsandboxed one
                with pytest.raises(TemplateError):
                    render(source, messages, generation, specials)
                continue
            assert render(source, messages, generation, specials) == theirs


def test_other_templates_stay_in_the_sandbox():
    """A template that is not byte-equal to a built-in (here: one that mutates its input) is refused."""
    source = BUILTIN_TEMPLATES["chatml"] + "{% set _ = messages.append({'role': 'user', 'content': 'x'}) %}"
    with pytest.raises(TemplateError):
        render(source, CONVERSATIONS[0])


def test_config_offers_every_builtin_template():
    from studio.core.config import TEMPLATES

    assert set(TEMPLATES) == {"auto", *BUILTIN_TEMPLATES}


@pytest.mark.parametrize(("name", "family"), [("qwen2.5", "qwen2_5"), ("qwen3", "qwen3"), ("gemma", "gemma"),
                                               ("gemma3", "gemma3"), ("phi3", "phi3"), ("deepseek", "deepseekv3"),
                                               ("deepseek-r1", "deepseek_r1_distill")])
def test_family_builtins_are_the_templates_trl_ships_and_train_with_its_variant(llama, trl_template, name, family):
    assert BUILTIN_TEMPLATES[name] == trl_template(f"{family}.jinja")
    resolved = resolve_template(llama, name)  # the Llama tokenizer has no template of its own: no warning about it
    assert (resolved.name, resolved.family, resolved.training) == (name, family, trl_template(f"{family}_training.jinja"))
    assert not any("differs from the model's own" in w for w in resolved.warnings)


def test_a_builtin_other_than_the_models_own_template_warns(llama_dir, tmp_path, trl_template):
    tok = with_template(llama_dir, tmp_path, trl_template("llama3.jinja"))
    assert "differs from the model's own chat template" in resolve_template(tok, "qwen3").warnings[0]


def test_mistral_builtin_writes_inst_turns_and_merges_a_system_message(llama):
    from studio.core.conversation import Example, Message
    from studio.core.encoding import EncodeOptions, Encoder

    specials = {"bos_token": "<s>", "eos_token": "</s>"}
    text = render(BUILTIN_TEMPLATES["mistral"], CONVERSATIONS[2], False, specials)
    assert text == "<s>[INST] Rome? [/INST]Yes.</s> [INST] Ünïcode → ok [/INST]Sí 👍</s> "
    encoder = Encoder(llama, EncodeOptions(template="mistral"))
    assert encoder.template.refuses_system
    row = Example(1, [Message("system", "Be brief."), Message("user", "Hi"), Message("assistant", "Hello")])
    assert llama.decode(encoder.encode(row).input_ids) == "<|begin_of_text|>[INST] Be brief.\n\nHi [/INST]Hello<|end_of_text|> "
