"""Ollama's view of an exported model: a TEMPLATE equivalent to the run's chat template, a Modelfile, a README.

The TEMPLATE is built from the turn pieces Studio learns from the Jinja template (each role's
header and closing, the generation prompt), so both templates describe the same structure; the
GGUF check then renders both on the run's own conversations and compares the text
(:func:`template_differences`).
"""

from __future__ import annotations

import re

from studio.core.gotemplate import render_go
from studio.core.templates import ResolvedTemplate, as_dicts

ROLES = ("system", "user", "assistant")


def go_literal(text: str) -> str:
    """``text`` as literal template text (a ``{{`` in it is written through a string action)."""
    return text.replace("{{", '{{"{{"}}')


def ollama_template(template: ResolvedTemplate, strip_bos: str | None = None) -> str:
    """An Ollama TEMPLATE (Go template over ``.Messages``) writing what ``template`` writes.

    Args:
        template: the run's resolved Jinja template.
        strip_bos: the BOS text to leave out of the first turn, because the runner adds the BOS
            token itself (llama.cpp's ``add_bos_token``); ``None`` keeps the text as the template has it.
    """
    pieces = template.pieces
    branches = []
    for role in ROLES:
        first, rest = pieces.heads.get((True, role)), pieces.heads.get((False, role))
        if first is None and rest is None:
            continue
        if first is not None and strip_bos and first.startswith(strip_bos):
            first = first[len(strip_bos):]
        if first is None or rest is None or first == rest:
            head = go_literal(first if rest is None else rest)
        else:
            head = f"{{{{if eq $i 0}}}}{go_literal(first)}{{{{else}}}}{go_literal(rest)}{{{{end}}}}"
        close = go_literal(pieces.closes.get(role, ""))
        branches.append((role, f"{head}{{{{$m.Content}}}}{close}"))
    body = "".join(f"{{{{{'if' if n == 0 else 'else if'} eq $m.Role \"{role}\"}}}}{text}"
                   for n, (role, text) in enumerate(branches)) + "{{end}}"
    after = ""
    if pieces.gen:
        after += f"{{{{if and $last (ne $m.Role \"assistant\")}}}}{go_literal(pieces.gen)}{{{{end}}}}"
    if pieces.tail:
        after += f"{{{{if and $last (eq $m.Role \"assistant\")}}}}{go_literal(pieces.tail)}{{{{end}}}}"
    return ("{{range $i, $m := .Messages}}{{$last := eq (len (slice $.Messages $i)) 1}}"
            f"{body}{after}{{{{end}}}}")


def render_ollama(go_template: str, messages: list, system: str | None = None) -> str:
    """The text Ollama renders for ``messages`` (a Modelfile SYSTEM is sent first when none is given)."""
    msgs = as_dicts(messages)
    if system and not any(m["role"] == "system" for m in msgs):
        msgs = [{"role": "system", "content": system}] + msgs
    return render_go(go_template, {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in msgs]})


def template_differences(template: ResolvedTemplate, go_template: str, conversations: list[list],
                         bos_text: str = "") -> list[dict]:
    """Where the Go TEMPLATE and the Jinja template write different text, per conversation and form.

    Each conversation is compared whole and as the prompt before its last assistant turn (with the
    generation prompt); ``bos_text`` is what the runner puts before the rendered text (its BOS).
    Messages of roles the Jinja template trims are compared trimmed (see :func:`untrimmed_messages`).
    """
    problems = []
    strips = template.pieces.strips
    for n, messages in enumerate(conversations):
        # The training template trims these roles' text; Go templates cannot (Ollama has no trim
        # function), so the comparison is made on text as a person types it: without edge spaces.
        msgs = [{**m, "content": m["content"].strip() if strips.get(m["role"]) else m["content"]}
                for m in as_dicts(messages)]
        last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
        forms = [("conversation", msgs, False)]
        if last is not None and last > 0:
            forms.append(("prompt", msgs[:last], True))
        for form, part, gen in forms:
            jinja = template.render(part, add_generation_prompt=gen)
            go = bos_text + render_ollama(go_template, part)
            if go != jinja:
                at = next((i for i, (a, b) in enumerate(zip(go, jinja)) if a != b), min(len(go), len(jinja)))
                problems.append({"conversation": n, "form": form, "at": at, "jinja": jinja[max(0, at - 40):at + 40],
                                 "ollama": go[max(0, at - 40):at + 40]})
    return problems


def untrimmed_messages(template: ResolvedTemplate, conversations: list[list]) -> int:
    """How many messages have edge white space that the training template trimmed and Ollama would keep."""
    strips = template.pieces.strips
    return sum(1 for msgs in conversations for m in as_dicts(msgs)
               if strips.get(m["role"]) and m["content"] != m["content"].strip())


def stop_tokens(template: ResolvedTemplate, special_tokens: list[str], eos_token: str | None) -> list[str]:
    """Every special token that ends a turn in ``template`` (closings, tail), then the tokenizer's EOS."""
    pieces = template.pieces
    texts = list(pieces.closes.values()) + [pieces.tail]
    found = []
    for text in texts:
        hits = sorted((text.find(t), t) for t in special_tokens if t and t in text)
        found += [t for _, t in hits if t not in found]
    if eos_token and eos_token not in found:
        found.append(eos_token)
    return found


def model_name(text: str) -> str:
    """A name ``ollama create`` accepts (lower case letters, digits, ``.``, ``_``, ``-``)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return name or "studio-model"


def _quoted(text: str) -> str:
    return '"""' + text.replace('"""', '\\"\\"\\"') + '"""'


def modelfile(gguf_name: str, go_template: str, stops: list[str], system: str | None = None) -> str:
    """The Modelfile text: FROM the GGUF beside it, TEMPLATE, a stop per end-of-turn token, SYSTEM."""
    lines = [f"FROM ./{gguf_name}", f"TEMPLATE {_quoted(go_template)}"]
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    if system:
        lines.append(f"SYSTEM {_quoted(system)}")
    return "\n".join(lines) + "\n"


def modelfile_template(text: str) -> str | None:
    """The TEMPLATE of a Modelfile's text, or None."""
    m = re.search(r'^TEMPLATE """(.*?)"""', text, re.S | re.M)
    return m.group(1) if m else None


def modelfile_system(text: str) -> str | None:
    m = re.search(r'^SYSTEM """(.*?)"""', text, re.S | re.M)
    return m.group(1) if m else None


def create_command(name: str, modelfile_path: str) -> str:
    """The line to copy: ``ollama create NAME -f /path/to/Modelfile``."""
    return f"ollama create {name} -f {modelfile_path}"


def readme(name: str, gguf_name: str, modelfile_path: str, stops: list[str], verdict: str) -> str:
    """The export folder's README.md: loading the model in Ollama, LM Studio and llama.cpp."""
    stop_list = ", ".join(f"`{s}`" for s in stops)
    return f"""# {name}

`{gguf_name}` is a GGUF export from Studio: the fine-tuned weights, the tokenizer, the chat template
the run trained with and its stop tokens ({stop_list}), for llama.cpp, Ollama and LM Studio.

Export check: **{verdict}** (details in `gguf-check.json`).

## Ollama

```sh
{create_command(name, modelfile_path)}
ollama run {name}
```

The `Modelfile` beside this file holds a TEMPLATE that writes the same text as the training
template and a `PARAMETER stop` for each end-of-turn token, so answers end where training taught
them to.

## LM Studio

Copy `{gguf_name}` into a folder under LM Studio's models folder (My Models, "Show in folder"),
or drag it onto the window. LM Studio reads the chat template and stop token from the file.

## llama.cpp

```sh
llama-cli -m {gguf_name} -cnv --jinja
llama-server -m {gguf_name} --jinja
```

`--jinja` makes llama.cpp use the chat template stored in the file.
"""
