"""Ollama's TEMPLATE: the Go template renderer, and equality with the Jinja templates on real conversation shapes."""

from __future__ import annotations

import pytest

from studio.core.gotemplate import GoTemplateError, render_go
from studio.core.ollama import (modelfile, modelfile_system, modelfile_template, model_name, ollama_template,
                                render_ollama, stop_tokens, template_differences)
from studio.core.templates import resolve_template

SYSTEM_MULTI = [{"role": "system", "content": "You are a terse travel guide."},
                {"role": "user", "content": "Lisbon in two days?"}, {"role": "assistant", "content": "Alfama, then Belém."},
                {"role": "user", "content": "And food?"}, {"role": "assistant", "content": "Pastéis de nata.\nAnd bifanas."}]
MULTI = SYSTEM_MULTI[1:]
ONE = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! {{not a template}}"}]


def test_go_subset_renders_like_go():
    data = {"Messages": [{"Role": "user", "Content": "a"}, {"Role": "assistant", "Content": "b"}], "System": ""}
    src = ('{{- range $i, $m := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}'
           '[{{ $i }}:{{ .Role }}={{ $m.Content }}{{ if $last }} last{{ else if eq $i 0 }} first{{ end }}]'
           '{{ end }}{{ if .System }}S{{ else }}no system{{ end }}\n  {{- "!" }} {{ print "x" 1 }}')
    assert render_go(src, data) == "[0:user=a first][1:assistant=b last]no system! x1"
    assert render_go("{{ index .Messages 1 \"Role\" }} {{ not true }} {{ and 1 0 }} {{ or 0 \"y\" }}", data) \
        == "assistant false 0 y"
    assert render_go('{{ range .Messages }}{{ .Content }}{{ else }}none{{ end }}', {"Messages": []}) == "none"


@pytest.mark.parametrize("source", ["{{ if .X }}open", "{{ end }}", "{{ template \"x\" }}", "{{ $y }}"])
def test_go_errors_are_named(source):
    with pytest.raises(GoTemplateError):
        render_go(source, {"X": 1})


@pytest.mark.parametrize("name", ["llama3", "llama3.1", "chatml"])
def test_generated_template_renders_the_jinja_text(llama, name):
    template = resolve_template(llama, name)
    bos = llama.bos_token if template.render(ONE).startswith(llama.bos_token) else ""
    go = ollama_template(template, strip_bos=bos or None)
    assert template_differences(template, go, [SYSTEM_MULTI, MULTI, ONE], bos_text=bos) == []
    prompt = render_ollama(go, MULTI[:3])
    assert bos + prompt == template.render(MULTI[:3], add_generation_prompt=True)


def test_a_wrong_template_is_caught(llama):
    template = resolve_template(llama, "llama3")
    go = ollama_template(template, strip_bos=llama.bos_token).replace("<|eot_id|>", "", 1)  # system turns lose theirs
    diffs = template_differences(template, go, [MULTI, SYSTEM_MULTI], bos_text=llama.bos_token)
    assert [d["conversation"] for d in diffs] == [1, 1] and {d["form"] for d in diffs} == {"conversation", "prompt"}


def test_modelfile_holds_stops_and_the_shared_system_prompt(llama):
    template = resolve_template(llama, "llama3")
    stops = stop_tokens(template, llama.special_tokens, llama.eos_token)
    assert stops == ["<|eot_id|>", "<|end_of_text|>"]
    go = ollama_template(template, strip_bos=llama.bos_token)
    text = modelfile("m-f16.gguf", go, stops, system="Be brief.")
    assert text.splitlines()[0] == "FROM ./m-f16.gguf"
    assert modelfile_template(text) == go and modelfile_system(text) == "Be brief."
    assert 'PARAMETER stop "<|eot_id|>"\nPARAMETER stop "<|end_of_text|>"' in text
    with_system = render_ollama(go, MULTI, system=modelfile_system(text))
    assert with_system.startswith("<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>")
    assert model_name("My Run: v2!") == "my-run-v2"


def test_edge_spaces_the_training_template_trims_are_counted_not_failed(llama):
    from studio.core.ollama import untrimmed_messages

    template = resolve_template(llama, "llama3")
    go = ollama_template(template, strip_bos=llama.bos_token)
    spaced = [{"role": "user", "content": "  Lisbon?\n"}, {"role": "assistant", "content": "Go.\n\n"}]
    assert template_differences(template, go, [spaced], bos_text=llama.bos_token) == []
    assert untrimmed_messages(template, [spaced, MULTI]) == 2
