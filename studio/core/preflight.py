"""Preflight: a memory estimate and pitfall lints before a run spends GPU hours.

:func:`report` is what ``studio train --dry-run`` prints and what the window's method page
shows: the model's shape, the memory estimate (:mod:`studio.core.memory`) and the lints, each
with what to change. Everything here is pure Python (tokenizers + jinja2 at most), so it runs
in the window's process as well as in the CLI.

Lints look at what will actually be trained: the encoded rows come from the very encoder the
worker uses, so a double BOS or a truncated row reported here is one the model would see.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.core.config import RunConfig
from studio.core.errors import StudioError, TemplateError
from studio.core.memory import MemoryEstimate, estimate_memory, objective_estimate, trainable_params  # noqa: F401
from studio.core.modelshape import ModelShape, read_model_shape

#: Share of rows that may be truncated before the lint fires.
TRUNCATION_THRESHOLD = 0.05
#: Usual learning rates per method (low, high); the lint fires more than LR_SLACK times outside.
LR_RANGES = {
    "full": (5e-6, 5e-5), "freeze": (5e-6, 1e-4),
    "lora": (1e-4, 5e-4), "dora": (1e-4, 5e-4), "qlora": (1e-4, 5e-4),
    "ia3": (1e-3, 1e-2), "prompt": (1e-2, 3e-1), "prefix": (1e-3, 3e-2), "ptuning": (1e-3, 3e-2),
}
LR_SLACK = 5.0
#: Models below this many parameters may use learning rates up to 10x above the usual range.
SMALL_MODEL = 100_000_000
#: Objectives that move the policy relative to where it starts use rates about 10x lower.
LOW_LR_OBJECTIVES = ("dpo", "kto", "orpo", "grpo")
#: Tokens that end a turn in common templates; a pad equal to one of them hides the stop signal.
END_TOKENS = ("<|eot_id|>", "<|end_of_text|>", "<|im_end|>", "</s>", "<|endoftext|>", "<end_of_turn>")
PROBE_ANSWER = "Preflight probe answer"


@dataclass
class Lint:
    """One pitfall found before training.

    Attributes:
        code: stable identifier (``pad_is_eos``, ``double_bos``, ``truncation``, ``no_eval``,
            ``learning_rate``, ``context_length``, ``no_end_of_turn``, ``unreadable``, ``memory`` (the estimate
            exceeds the free memory of the training device), ``device`` (a
            ``train.device`` this machine lacks); about the data:
            ``objective_data`` (the objective cannot train on these rows), ``sft_labels``,
            ``skipped_rows``, ``bad_rows``, ``big_json`` (raw text in a .json file too large to parse
            whole comfortably); see :mod:`studio.core.data_fit`).
        message: what is wrong, naming the setting, token or rows.
        hint: what to change.
        severity: ``warning`` or ``error`` (an error means the run cannot start as configured).
    """

    code: str
    message: str
    hint: str
    severity: str = "warning"


# -- the lints ----------------------------------------------------------------------------


def lints(cfg: RunConfig, tokenizer: Any, encoded_rows: list | None = None,
          max_positions: int | None = None, template_text: str | None = None,
          params_total: int | None = None) -> list[Lint]:
    """Every pitfall found in a config, its tokenizer and (optionally) its encoded rows.

    Args:
        cfg: the run configuration.
        tokenizer: a core :class:`~studio.core.tokenizer.Tokenizer`.
        encoded_rows: :class:`~studio.core.encoding.Encoded` rows (truncation and double BOS
            are judged on them when given).
        max_positions: the model's context length; read from the model's config.json if None.
        template_text: the chat template in use; resolved from the tokenizer if None.
        params_total: the model's parameter count; read from its safetensors headers if None.
    """
    if template_text is None:
        template_text = _template_text(tokenizer, cfg.model.template)
    if max_positions is None:
        max_positions = _max_positions(cfg, tokenizer)
    if params_total is None:
        params_total = _params_total(cfg, tokenizer)
    found = [_pad_lint(cfg, tokenizer), _eval_lint(cfg), _lr_lint(cfg, params_total), _context_lint(cfg, max_positions),
             _end_of_turn_lint(cfg, tokenizer, template_text), _double_bos_lint(tokenizer, template_text, encoded_rows),
             _truncation_lint(cfg, encoded_rows)]
    return [lint for lint in found if lint]


def _pad_lint(cfg: RunConfig, tokenizer: Any) -> Lint | None:
    pad = _pad_token(cfg, tokenizer)
    ends = {tokenizer.eos_token, *END_TOKENS} - {None}
    if pad is None or pad not in ends:
        return None
    where = "data.pad_token" if cfg.data.pad_token else "the tokenizer's pad token"
    return Lint("pad_is_eos", f"the pad token ({where}) is {pad}, which also ends turns or text: tools that mask "
                "labels by matching the pad id then never teach the model to stop, and generation may not end",
                "set data.pad_token to a reserved token such as <|finetune_right_pad_id|> (Llama 3.1+) or "
                "<|reserved_special_token_0|>")


def _pad_token(cfg: RunConfig, tokenizer: Any) -> str | None:
    """The pad token core encoding will use (its own rule when available)."""
    try:
        from studio.core.encoding import choose_pad_token

        return choose_pad_token(tokenizer, cfg.data.pad_token).token
    except ImportError:
        return cfg.data.pad_token or tokenizer.pad_token


def _eval_lint(cfg: RunConfig) -> Lint | None:
    if cfg.data.eval or cfg.data.eval_fraction > 0:
        return None
    return Lint("no_eval", "no evaluation data: data.eval is empty and data.eval_fraction is 0, so over-fitting "
                "and forgetting cannot be seen", "set data.eval_fraction to 0.05-0.1 or name a file in data.eval")


def _lr_lint(cfg: RunConfig, params_total: int | None) -> Lint | None:
    low, high = LR_RANGES[cfg.method.name]
    if cfg.train.objective in LOW_LR_OBJECTIVES:
        low, high = low / 10, high / 10
    if params_total and params_total < SMALL_MODEL:
        high *= 10  # the usual ranges are for real LLMs; tiny models train well at higher rates
    lr = cfg.train.learning_rate
    if low / LR_SLACK <= lr <= high * LR_SLACK:
        return None
    side = "low" if lr < low else "high"
    return Lint("learning_rate", f"train.learning_rate {lr:g} is far too {side} for method {cfg.method.name} "
                f"with objective {cfg.train.objective} (usual range {low:g} to {high:g})",
                f"set train.learning_rate between {low:g} and {high:g} unless you have measured otherwise")


def _context_lint(cfg: RunConfig, max_positions: int | None) -> Lint | None:
    if not max_positions or cfg.data.max_length <= max_positions:
        return None
    return Lint("context_length", f"data.max_length {cfg.data.max_length} is beyond the model's context of "
                f"{max_positions} tokens (max_position_embeddings); positions past it were never trained",
                f"set data.max_length to {max_positions} or less", severity="error")


def _end_of_turn_lint(cfg: RunConfig, tokenizer: Any, template_text: str | None) -> Lint | None:
    """No end-of-turn token carries loss: the model would never learn to stop (core encoding's own check)."""
    if not template_text:
        return None
    try:
        from studio.core.encoding import Encoder, options_for
        from studio.core.templates import template_from_source

        encoder = Encoder(tokenizer, options_for(cfg), template_from_source(tokenizer, template_text))
        if encoder.stop_token() is not None:
            return None
    except (ImportError, StudioError, AttributeError):  # a stand-in tokenizer, or a template that cannot render
        return None
    return Lint("no_end_of_turn", "no end-of-turn token carries loss with this chat template: the last trained token "
                "of an answer is plain text, so the model never learns where a turn ends and generation will not "
                "stop", "choose a template that closes turns with a special token, e.g. model.template=llama3 or "
                "chatml, or the model's own (auto)")


def _double_bos_lint(tokenizer: Any, template_text: str | None, encoded_rows: list | None) -> Lint | None:
    bos = tokenizer.bos_token
    bos_id = tokenizer.token_to_id(bos) if bos else None
    if bos_id is None:
        return None
    doubled = [r.row for r in encoded_rows or [] if list(r.input_ids[:2]) == [bos_id, bos_id]]
    if not doubled and template_text and not encoded_rows:
        rendered = render_probe(tokenizer, template_text, [("user", "Hello"), ("assistant", PROBE_ANSWER)])
        if rendered and tokenizer.encode(rendered)[:2] == [bos_id, bos_id]:
            doubled = ["probe"]
    if not doubled:
        return None
    rows = ", ".join(map(str, doubled[:10])) + (" ..." if len(doubled) > 10 else "")
    return Lint("double_bos", f"{len(doubled)} row(s) start with two {bos} tokens (rows {rows}): the text "
                "already starts with BOS and another is added in front of it",
                "remove the leading BOS from the data (pre-rendered chat text should be given as messages), "
                "or use a template that writes BOS once")


def _truncation_lint(cfg: RunConfig, encoded_rows: list | None) -> Lint | None:
    if not encoded_rows:
        return None
    cut = [r for r in encoded_rows if r.truncated]
    share = len(cut) / len(encoded_rows)
    if share <= TRUNCATION_THRESHOLD:
        return None
    longest = max(r.original_length for r in cut)
    lost = sum(1 for r in cut if r.lost_loss_tokens)
    return Lint("truncation", f"{len(cut)} of {len(encoded_rows)} rows ({share:.0%}) are longer than "
                f"data.max_length {cfg.data.max_length} and get cut ({lost} of them lose trained tokens; "
                f"the longest has {longest} tokens)",
                f"raise data.max_length (to {longest} to keep every row) or shorten those rows")


# -- template rendering and model facts -----------------------------------------------------


def render_probe(tokenizer: Any, template_text: str, turns: list[tuple[str, str]]) -> str | None:
    """Render a tiny conversation with a chat template the way transformers does; None on failure."""
    try:
        from jinja2 import TemplateError as JinjaError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        return None

    def raise_exception(message):
        raise JinjaError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    env.filters["tojson"] = lambda value, **kw: json.dumps(value, ensure_ascii=False)
    try:
        return env.from_string(template_text).render(
            messages=[{"role": r, "content": c} for r, c in turns], bos_token=tokenizer.bos_token or "",
            eos_token=tokenizer.eos_token or "", add_generation_prompt=False)
    except Exception:  # a template that cannot render is reported by the template module itself
        return None


def _template_text(tokenizer: Any, name: str) -> str | None:
    try:
        from studio.core.templates import resolve_template

        resolved = resolve_template(tokenizer, name)
    except (ImportError, StudioError):
        return getattr(tokenizer, "chat_template", None)
    for attr in ("template", "text", "source"):
        value = getattr(resolved, attr, None)
        if isinstance(value, str) and "{" in value:
            return value
    return getattr(tokenizer, "chat_template", None)


def _max_positions(cfg: RunConfig, tokenizer: Any) -> int | None:
    for folder in (getattr(tokenizer, "path", None), _model_folder(cfg)):
        try:
            config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        except (OSError, TypeError, ValueError):
            continue
        config = config.get("text_config", config)
        return int(config.get("max_position_embeddings") or 0) or None
    # a tokenizer-only folder: its model_max_length, unless it is the "unbounded" sentinel
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < 10**8 else None


def _params_total(cfg: RunConfig, tokenizer: Any) -> int | None:
    for folder in (getattr(tokenizer, "path", None), _model_folder(cfg)):
        try:
            shape = read_model_shape(folder)
        except (StudioError, TypeError):
            continue
        return shape.params_total if shape.exact else None
    return None


def _model_folder(cfg: RunConfig) -> Path:
    from studio.core.models import resource_path

    return resource_path(cfg.model.path)


# -- the report ---------------------------------------------------------------------------


@dataclass
class PreflightReport:
    """Everything preflight found for one config: shown by ``--dry-run`` and the method page."""

    model: str
    objective: str
    method: str
    estimate: MemoryEstimate | None
    lints: list[Lint] = field(default_factory=list)
    rows_checked: int = 0
    data: str = ""

    @property
    def errors(self) -> list[Lint]:
        return [lint for lint in self.lints if lint.severity == "error"]

    def to_dict(self) -> dict:
        return {"model": self.model, "objective": self.objective, "method": self.method,
                "estimate": self.estimate.to_dict() if self.estimate else None,
                "lints": [asdict(lint) for lint in self.lints], "rows_checked": self.rows_checked, "data": self.data}

    def text(self) -> str:
        lines = [f"Preflight: {self.objective} with {self.method} on {self.model} ({self.rows_checked} rows checked)"]
        if self.data:
            lines.append(f"Data: {self.data}")
        if self.estimate:
            lines.append(self.estimate.text())
        if not self.lints:
            lines.append("No pitfalls found.")
        for lint in self.lints:
            lines += [f"{lint.severity.upper()} [{lint.code}] {lint.message}", f"    hint: {lint.hint}"]
        return "\n".join(lines)


def report(cfg: RunConfig, max_rows: int = 2000, device: str | None = None) -> PreflightReport:
    """Run every preflight check for a config (reads the model folder, tokenizer and data).

    A part that cannot be read (a missing model, an unreadable data file) becomes an ``error``
    lint naming the file, so the rest of the report is still shown.
    """
    out = PreflightReport(model=cfg.model.path, objective=cfg.train.objective, method=cfg.method.name,
                          estimate=None)
    shape = _guard(out, "model", lambda: read_model_shape(_model_folder(cfg)))
    tokenizer = _guard(out, "tokenizer", lambda: _load_tokenizer(cfg))
    source = _guard(out, "data", lambda: _text_source(cfg))
    if source is not None:  # raw text read as a stream: every block counted, the first max_rows kept
        rows = _guard(out, "data", lambda: _text_rows(cfg, tokenizer, source, out, max_rows)) if tokenizer else None
        out.rows_checked = source.usable if rows else 0
    else:
        examples = _guard(out, "data", lambda: _data_lints(cfg, out))
        if examples and examples[0].kind != "text":  # raw text is measured whole: its blocks span documents
            examples = examples[:max_rows]
        rows = _guard(out, "data", lambda: _encode_rows(cfg, tokenizer, examples, out)) \
            if tokenizer and examples else None
        out.rows_checked = len(examples) if rows else 0  # rows of the file: a preference pair encodes two sequences
    if shape:
        out.estimate = objective_estimate(shape, cfg, seq_len=_batch_seq_len(cfg, rows), device=device)
    out.lints += _device_lints(cfg)
    if out.estimate:
        out.lints += _free_memory_lints(cfg, out.estimate, device or cfg.train.device)
    if tokenizer:
        max_positions = shape.max_position_embeddings if shape else None
        params = shape.params_total if shape and shape.exact else None
        out.lints += lints(cfg, tokenizer, rows, max_positions=max_positions, params_total=params)
    return out


def _device_lints(cfg: RunConfig) -> list[Lint]:
    """``train.device`` against the devices this machine has."""
    from studio.core.machine import device_problem, this_machine

    problem = device_problem(cfg.train.device, this_machine())
    return [Lint("device", *problem, severity="error")] if problem else []


def _free_memory_lints(cfg: RunConfig, estimate, device: str) -> list[Lint]:
    """A warning when the estimate exceeds what the training device has free right now."""
    from studio.core.machine import free_memory
    from studio.core.memory import _gib, memory_advice

    found = free_memory(device)
    if found is None or estimate.total <= found[0]:
        return []
    free, where = found
    return [Lint("memory", f"the run needs about {_gib(estimate.total)} per device, but {where} has "
                           f"{_gib(free)} free now: it would run out of memory",
                 memory_advice(cfg), severity="warning")]


def _guard(out: PreflightReport, what: str, build):
    try:
        return build()
    except StudioError as exc:
        out.lints.append(Lint("unreadable", f"{what}: {exc.message}", exc.hint or "fix the path", severity="error"))
    return None


def _load_tokenizer(cfg: RunConfig):
    from studio.core.tokenizer import load_tokenizer

    return load_tokenizer(str(_model_folder(cfg)))


def _text_source(cfg: RunConfig):
    from studio.core.models import resource_path
    from studio.core.text_stream import open_text

    return open_text(resource_path(cfg.data.train), cfg.data.format, cfg.data.columns or None, cfg.data.text_split)


def _text_rows(cfg: RunConfig, tokenizer: Any, source, out: PreflightReport, max_rows: int) -> list:
    """Raw text read as a stream: documents, tokens and blocks counted in one pass, the first
    ``max_rows`` blocks returned for the lints; the same problems as a file loaded whole."""
    from studio.core import data_fit
    from studio.core.pretrain import block_size
    from studio.core.text_stream import split_blocks

    if cfg.train.objective != "sft":
        problem = data_fit.text_objective_problem(cfg.train.objective, f"{source.count()} text documents")
        out.data = f"{source.path.name}: {source.total_rows} rows, {source.usable} text documents"
        out.lints.append(Lint(*problem))
        return []
    # the blocks training cuts: from the documents not held out for evaluation
    blocks, held = split_blocks(source, tokenizer, block_size(cfg.data.max_length),
                                0 if cfg.data.eval else cfg.data.eval_fraction, cfg.data.seed, limit=max_rows)
    aside = f" ({held.documents} held out for evaluation)" if held is not None else ""
    out.data = f"{source.path.name}: {source.total_rows} rows, {source.usable} text documents{aside}" + \
        (f", {source.bad_count} bad" if source.bad_count else "") + f"; continued pre-training: {blocks.summary()}"
    problems = [data_fit.skipped_problem(source.bad_count, source.total_rows, cfg.data.max_skipped)]
    if source.bad_count and not cfg.data.skip_bad_rows:
        first = source.bad_rows[0]
        problems.append(data_fit.Problem("bad_rows", f"{source.bad_count} bad row(s) in {source.path.name}, e.g. "
                                         f"row {first.row}: {first.reason}",
                                         "fix those rows, or set data.skip_bad_rows=true to train without them"))
    out.lints += [Lint(*p) for p in problems if p]
    return list(blocks.blocks)


def _data_lints(cfg: RunConfig, out: PreflightReport) -> list:
    """Load the training rows; lint whether they fit the objective and how many are skipped.

    An error here stops the report's data part: rows that cannot train this objective are not
    encoded (that would only add follow-on errors).
    """
    from studio.core import data_fit
    from studio.core.data import load_examples
    from studio.core.models import resource_path
    from studio.core.text_stream import big_json_problem

    data = load_examples(str(resource_path(cfg.data.train)), format=cfg.data.format,
                         columns=cfg.data.columns or None, text_split=cfg.data.text_split)
    out.data = f"{data.path.name}: {data.total_rows} rows, {data_fit.describe(data.examples)}" + \
        (f", {len(data.bad_rows)} bad" if data.bad_rows else "")
    problems = data_fit.objective_problems(cfg.train.objective, data.examples)
    skipped = len(data.bad_rows) + (len(data_fit.sft_rows(data.examples)[1]) if cfg.train.objective == "sft" else 0)
    problems.append(data_fit.skipped_problem(skipped, data.total_rows, cfg.data.max_skipped))
    big = big_json_problem(data.path, data.format)
    if big:
        problems.append(data_fit.Problem("big_json", *big, severity="warning"))
    if data.bad_rows and not cfg.data.skip_bad_rows:
        problems.append(data_fit.Problem("bad_rows", f"{len(data.bad_rows)} bad row(s) in {data.path.name}, e.g. "
                                         f"row {data.bad_rows[0].row}: {data.bad_rows[0].reason}",
                                         "fix those rows, or set data.skip_bad_rows=true to train without them"))
    out.lints += [Lint(*p) for p in problems if p]
    if any(p and p.severity == "error" for p in problems):
        return []
    return data_fit.sft_rows(data.examples)[0] if cfg.train.objective == "sft" else data.examples


def _encode_rows(cfg: RunConfig, tokenizer: Any, examples: list, out: PreflightReport | None = None) -> list:
    """Encode training rows with the worker's own encoder (raw text as its blocks)."""
    from studio.core.encoding import Encoder, options_for

    encoder = Encoder(tokenizer, options_for(cfg))
    examples = encoder.screen(examples)[0]  # rows whose system message the template refuses (skip)
    if examples and all(ex.kind == "text" for ex in examples):
        blocks = encoder.encode_blocks(examples)
        if out is not None:
            out.data += f"; continued pre-training: {blocks.summary()}"
        return blocks.blocks
    plain = [ex for ex in examples if ex.kind != "preference"]
    refused: list = []
    rows = encoder.encode_many(plain, refused) if plain else []
    for ex in examples:
        if ex.kind == "preference":
            try:
                pair = encoder.encode_pair(ex)
            except TemplateError as exc:  # skipped by the run, as a chat row is
                refused.append(exc)
                continue
            rows += [pair.chosen, pair.rejected]
    if refused and out is not None:
        out.lints.append(Lint("template_rows", f"{len(refused)} row(s) cannot be rendered by the chat template and "
                              f"will be skipped, e.g. {refused[0].message}", refused[0].hint))
    return rows


def _batch_seq_len(cfg: RunConfig, rows: list | None) -> int:
    """Tokens per row of the largest batch: max_length when padding to it or packing, else the longest row."""
    if cfg.data.padding in ("max_length", "packing") or not rows:
        return cfg.data.max_length
    return min(cfg.data.max_length, max(len(r.input_ids) for r in rows))


def shape_for(cfg: RunConfig) -> ModelShape:
    """The model shape a config names (for callers that only want the estimate)."""
    return read_model_shape(_model_folder(cfg))
