"""Conversation -> training tensors: the one function the preview, the statistics and the trainer share.

Rendering and the character spans of turns and loss come from :mod:`studio.core.layout`. The
whole text is then tokenized once, without special tokens (the template writes BOS), exactly as
transformers' ``apply_chat_template(tokenize=True)`` and TRL do, and character spans become token
spans through the token offsets. Where a token straddles a span edge (the template's pieces would
not tokenize on their own as they do together) the row gets a warning and the token carries loss
if it overlaps a loss span (transformers' rule for assistant masks).

Loss options:
    assistant: every assistant turn (content and closing token); headers, system and user turns
        and BOS carry none.
    last_assistant: only the final assistant turn.
    all: every token, as TRL's language-modelling loss (labels = input_ids; the label at
        position 0, BOS, is never predicted by a causal model, so in effect every token but BOS).
    completion: prompt/completion rows: everything after the prompt rendered with the generation
        prompt (TRL >= 0.24). For a plain chat row, the trailing assistant turns are the completion.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from studio.core.errors import ConfigError, TemplateError
from studio.core.padding import PadChoice, PadOptions, choose_pad_token, collate, pack_groups
from studio.core.families import training_notes
from studio.core.layout import Layout, Layouter
from studio.core.templates import ResolvedTemplate, resolve_template

__all__ = ["IGNORE", "LOSS_OPTIONS", "EncodeOptions", "Encoded", "EncodedPair", "Encoder", "options_for", "rows_without_loss",
           "PadChoice", "PadOptions", "choose_pad_token", "collate", "pack_groups"]

IGNORE = -100
CHUNK = 2048  # rows per tokenizer batch in encode_many
LOSS_OPTIONS = ("assistant", "last_assistant", "all", "completion")
SYSTEM_OPTIONS = ("merge", "skip")


@dataclass
class EncodeOptions:
    """How conversations become tokens.

    Attributes:
        template: ``"auto"`` (the model's own) or a built-in name (llama3, qwen3, gemma3...).
        loss: which tokens carry loss (see the module docstring).
        max_length: longest sequence in tokens; ``None`` keeps rows whole.
        truncation_side: ``"right"`` cuts the end of an over-long row, ``"left"`` its start.
        system_message: for a template that refuses system messages (Gemma): ``"merge"`` writes
            them at the start of the first user turn, ``"skip"`` makes each row that has one a
            bad row (see :meth:`Encoder.screen`).
        reasoning_history: for a template that drops the reasoning of earlier turns (Qwen3):
            ``"keep"`` it (TRL's prefix-preserving variant, every turn trained) or ``"drop"`` it (the
            model's own template; only the final assistant turn carries loss).
    """

    template: str = "auto"
    loss: str = "assistant"
    max_length: int | None = None
    truncation_side: str = "right"
    system_message: str = "merge"
    reasoning_history: str = "keep"


@dataclass
class Encoded:
    """One encoded sequence.

    Attributes:
        row: source row number.
        input_ids: token ids.
        labels: ``input_ids`` where the token carries loss, else -100.
        roles: per token: bos, header, system, user, assistant, eot (closing text of a turn)...
        truncated: tokens were cut to ``max_length``.
        original_length: tokens before truncation.
        lost_loss_tokens: loss-carrying tokens removed by truncation.
        warnings: sentences about this row.
        documents: for raw text (:mod:`studio.core.pretrain`), (token position, source row) of each
            document that starts in this sequence.
    """

    row: int
    input_ids: list[int]
    labels: list[int]
    roles: list[str]
    truncated: bool = False
    original_length: int = 0
    lost_loss_tokens: int = 0
    warnings: list[str] = field(default_factory=list)
    documents: list = field(default_factory=list)

    @property
    def attention_mask(self) -> list[int]:
        """All ones: padding (and its zeros) is added by :func:`collate`."""
        return [1] * len(self.input_ids)

    @property
    def loss_tokens(self) -> int:
        """How many tokens carry loss."""
        return sum(1 for label in self.labels if label != IGNORE)


@dataclass
class EncodedPair:
    """A preference row: chosen and rejected share the very same prompt ids.

    Attributes:
        prompt_len: tokens of the shared prompt (rendered with the generation prompt).
    """

    row: int
    prompt_len: int
    chosen: Encoded
    rejected: Encoded


def options_for(cfg, **changes) -> EncodeOptions:
    """The :class:`EncodeOptions` a run config gives (``changes`` override fields)."""
    d = cfg.data
    opts = dict(template=cfg.model.template, loss=d.loss, max_length=d.max_length,
                truncation_side=d.truncation_side, system_message=d.system_message,
                reasoning_history=d.reasoning_history)
    return EncodeOptions(**{**opts, **changes})


def rows_without_loss(encoded: list[Encoded]) -> list[int]:
    """Row numbers of sequences in which no token carries loss (callers usually drop them)."""
    return [e.row for e in encoded if all(label == IGNORE for label in e.labels)]


class Encoder:
    """Encodes examples with one tokenizer, template and set of options.

    Attributes:
        template: the resolved chat template.
        warnings: sentences about the template/tokenizer pair (template differs from the
            model's, double BOS...), shown once rather than per row.
    """

    def __init__(self, tokenizer, options: EncodeOptions | None = None, template: ResolvedTemplate | None = None) -> None:
        """``template`` replaces the one ``options.template`` names (preflight checks a template text)."""
        self.tokenizer = tokenizer
        self.options = options or EncodeOptions()
        _check(self.options)
        self.template: ResolvedTemplate = template or resolve_template(tokenizer, self.options.template,
                                                                       self.options.reasoning_history)
        self.layouter = Layouter(self.template, self.options.loss)
        self.bos_id = tokenizer.bos_id
        self.warnings = list(self.template.warnings) + self._bos_warnings() + self._stop_warnings()
        self.notes = list(self.template.notes) + training_notes(self.template, self.options)

    # -- public -------------------------------------------------------------------------------

    def encode(self, example) -> Encoded:
        """Encode one chat or prompt/completion row (a preference row trains on its chosen turns)."""
        return self.encode_many([example])[0]

    def encode_many(self, examples: list, refused: list | None = None) -> list[Encoded]:
        """Encode many rows, batched; the same result as :meth:`encode` row by row.

        Rows go in chunks: while ``tokenizers`` encodes one chunk on its own threads (it
        releases the GIL), Python renders the next one, so both kinds of work overlap. Text rows
        (documents) are encoded without a template, each a whole document
        (:func:`studio.core.pretrain.encode_documents`); :meth:`encode_blocks` cuts them into blocks.

        Args:
            refused: when given, a row the template cannot render (Llama 3.1 takes one tool call
                per turn, for instance) is left out and its :class:`TemplateError` appended here
                (its message names the row), instead of stopping the whole encoding.
        """
        if any(ex.kind == "text" for ex in examples):
            return self._encode_mixed(examples)
        if len(examples) <= CHUNK:
            layouts = self._layouts(examples, refused)
            return self._finish_all(layouts, self._tokenize(layouts))
        from concurrent.futures import ThreadPoolExecutor

        out: list[Encoded] = []
        with ThreadPoolExecutor(1, thread_name_prefix="studio-tokenize") as pool:
            pending = None
            for at in range(0, len(examples), CHUNK):
                layouts = self._layouts(examples[at: at + CHUNK], refused)
                if pending:
                    out += self._finish_all(pending[0], pending[1].result())
                pending = layouts, pool.submit(self._tokenize, layouts)
            out += self._finish_all(pending[0], pending[1].result())
        return out

    def _layouts(self, examples: list, refused: list | None) -> list[Layout]:
        if refused is None:
            return [self.layouter.layout(self.fit(ex)) for ex in examples]
        out = []
        for ex in examples:
            try:
                out.append(self.layouter.layout(self.fit(ex)))
            except TemplateError as exc:
                refused.append(exc)
        return out

    def _encode_mixed(self, examples: list) -> list[Encoded]:
        from studio.core.pretrain import encode_documents

        texts = [ex for ex in examples if ex.kind == "text"]
        done = iter(encode_documents(self.tokenizer, texts))
        chats = iter(self.encode_many([ex for ex in examples if ex.kind != "text"]))
        out = [next(done) if ex.kind == "text" else next(chats) for ex in examples]
        for enc in out:
            if enc.documents:
                _truncate(enc, self.options.max_length, self.options.truncation_side)
        return out

    def encode_blocks(self, examples):
        """Text rows as continued pre-training blocks of ``max_length`` tokens
        (:func:`studio.core.pretrain.pack_blocks`)."""
        from studio.core.pretrain import block_size, pack_blocks

        return pack_blocks(self.tokenizer, examples, block_size(self.options.max_length))

    def _finish_all(self, layouts: list[Layout], tokens: list) -> list[Encoded]:
        return [self._finish(lay, ids, offsets) for lay, (ids, offsets) in zip(layouts, tokens)]

    def encode_pair(self, example) -> EncodedPair:
        """Encode a preference row as chosen and rejected sequences sharing the prompt ids.

        The prompt is rendered with the generation prompt and tokenized on its own, each
        completion after it (as TRL's DPO does), so the two prompts are identical by construction.
        """
        if example.chosen is None:
            raise TemplateError(f"row {example.row} is not a preference row", "encode it with encode()")
        example = self.fit(example)
        prompt = self.layouter.render(example.row, example.messages, True, example.tools)
        sides = (example.chosen, example.rejected or [])
        layouts = [self.layouter.pair_layout(example, prompt, side) for side in sides]
        (c_ids, c_off), (r_ids, r_off) = self._tokenize(layouts)
        prompt_len = bisect_left([start for start, _ in c_off], layouts[0].splits[0])
        chosen, rejected = self._finish(layouts[0], c_ids, c_off, False), self._finish(layouts[1], r_ids, r_off, False)
        prompt_len -= _truncate_pair(chosen, rejected, prompt_len, self.options.max_length, self.options.truncation_side)
        prompt_len = min(prompt_len, len(chosen.input_ids), len(rejected.input_ids))
        return EncodedPair(example.row, prompt_len, chosen, rejected)

    def encode_prompt(self, example, turns: list | None = None) -> Encoded:
        """The turns a model answers, rendered with the generation prompt, as it sees them before
        it samples an answer (GRPO's input). No token carries loss; nothing is truncated.

        Args:
            turns: the turns to render; default the example's own prompt
                (:meth:`~studio.core.conversation.Example.prompt_and_answer`).
        """
        from studio.core.conversation import Example

        turns = self.fit(Example(example.row, example.prompt_and_answer()[0] if turns is None else list(turns))).messages
        if not turns:
            raise TemplateError(f"row {example.row} has no turns before its answer to use as a prompt",
                                "RL objectives need rows with a user turn")
        # Laid out as "loss on everything" (a prompt has no assistant turn to look for, and no
        # remark is due about that), then no token is trained on.
        lay = Layouter(self.template, "all").layout(Example(example.row, turns))
        generation = self.layouter.render(example.row, turns, True)
        if generation.startswith(lay.text) and len(generation) > len(lay.text):
            lay.roles.append((len(lay.text), "assistant"))  # the header the answer will follow
            lay.text = generation
        lay.loss = []
        ((ids, offsets),) = self._tokenize([lay])
        return self._finish(lay, ids, offsets, False)

    # -- roles the template refuses ---------------------------------------------------------------

    def fit(self, example):
        """``example`` as this template can render it: a system message the template refuses is
        merged into the first user turn (``system_message: merge``).

        Raises:
            TemplateError: with ``system_message: skip``, a row with a system message that was
                not taken out by :meth:`screen`.
        """
        if not self.template.refuses_system or not _has_system(example):
            return example
        if self.options.system_message == "skip":
            raise TemplateError(f"row {example.row}: {self._refusal()}", "screen the rows first (Encoder.screen) "
                                "or set data.system_message to merge")
        from studio.core.families import merge_system

        return merge_system(example)

    def screen(self, examples: list) -> tuple[list, list]:
        """The rows this template can encode, and the others as bad rows with the reason.

        Only ``system_message: skip`` with a template that refuses system messages sets rows
        aside; the other rows encode as usual, so one such row never costs the whole file.
        """
        from studio.core.data_files import BadRow

        if self.options.system_message != "skip" or not self.template.refuses_system:
            return list(examples), []
        bad = [BadRow(ex.row, self._refusal() + " (data.system_message is skip)", ex.to_dict())
               for ex in examples if _has_system(ex)]
        skipped = {b.row for b in bad}
        return [ex for ex in examples if ex.row not in skipped], bad

    def screen_report(self, report):
        """:meth:`screen` a loaded :class:`~studio.core.data.DataReport` in place: its rows this
        template cannot encode join its bad rows (in row order). Returns the report."""
        report.examples, bad = self.screen(report.examples)
        if bad:
            report.bad_rows = sorted([*report.bad_rows, *bad], key=lambda b: b.row)
        return report

    def _refusal(self) -> str:
        return f"the chat template ({self.template.name}) does not accept a system message"

    # -- tokens -----------------------------------------------------------------------------------

    def _tokenize(self, layouts: list[Layout]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Ids and offsets of every layout, all pieces tokenized in one batch."""
        pieces, owners = [], []
        for n, lay in enumerate(layouts):
            cuts = [0] + lay.splits + [len(lay.text)]
            for a, b in zip(cuts, cuts[1:]):
                pieces.append((a, lay.text[a:b]))
                owners.append(n)
        out: list[tuple[list[int], list]] = [([], []) for _ in layouts]
        encoded = self.tokenizer.encode_offsets([text for _, text in pieces])
        for n, (shift, _), (ids, offsets) in zip(owners, pieces, encoded):
            out[n][0].extend(ids)
            out[n][1].extend(offsets if not shift else [(s + shift, e + shift) for s, e in offsets])
        return out

    def _finish(self, lay: Layout, ids: list[int], offsets: list, cut: bool = True) -> Encoded:
        starts = [s for s, _ in offsets]
        labels = self._labels(lay, ids, offsets, starts)  # may add warnings to the layout
        enc = Encoded(lay.row, ids, labels, self._roles(lay, starts, ids), original_length=len(ids),
                      warnings=list(lay.warnings))
        if ids[:2] == [self.bos_id, self.bos_id] and self.bos_id is not None:
            enc.warnings.append(f"row {lay.row} starts with two BOS tokens; remove the BOS from the data "
                                "or use a template that writes it once")
        if lay.loss and all(label == IGNORE for label in enc.labels):
            enc.warnings.append(f"row {lay.row}: no token carries loss")
        if cut:
            _truncate(enc, self.options.max_length, self.options.truncation_side)
        return enc

    def _labels(self, lay: Layout, ids: list[int], offsets: list, starts: list[int]) -> list[int]:
        labels = [IGNORE] * len(ids)
        for a, b in lay.loss:
            first, stop = bisect_left(starts, a), bisect_left(starts, b)
            if first > 0 and offsets[first - 1][1] > a:
                first -= 1  # a token straddling the edge overlaps the loss span: it is trained
                self._straddle(lay, ids, first)
            if 0 < stop < len(ids) and offsets[stop - 1][1] > b:
                self._straddle(lay, ids, stop - 1)
            labels[first:stop] = ids[first:stop]
        return labels

    def _straddle(self, lay: Layout, ids: list[int], k: int) -> None:
        piece = self.tokenizer.decode([ids[k]])
        lay.warnings.append(f"row {lay.row}: token {k} ({piece!r}) crosses the edge of a loss span, so the "
                            "template's pieces do not tokenize on their own as they do together; it counts as loss")

    def _roles(self, lay: Layout, starts: list[int], ids: list[int]) -> list[str]:
        roles: list[str] = []
        edges = [bisect_left(starts, s) for s, _ in lay.roles] + [len(ids)]
        for (_, role), a, b in zip(lay.roles, edges, edges[1:]):
            roles += [role] * (b - a)
        roles += ["header"] * (len(ids) - len(roles))
        for k, token in enumerate(ids[:2]):  # the template writes BOS first (twice only when broken)
            if token == self.bos_id:
                roles[k] = "bos"
        return roles

    def stop_token(self) -> str | None:
        """The end-of-turn token an assistant turn's loss ends on, or ``None`` if there is none.

        TRL's check (``is_chat_template_stop_token_trained``) on core encoding: user, assistant,
        user are encoded with loss on the assistant turn; ignoring whitespace, the last trained
        token must be one of the tokenizer's added tokens (``<|eot_id|>``, ``<|im_end|>``,
        GLM's ``<|user|>``...). If it is plain text, the model is never taught to stop.
        """
        from studio.core.conversation import Example, Message

        probe = Example(0, [Message("user", "dummy"), Message("assistant", "dummy"), Message("user", "dummy")])
        try:
            lay = Layouter(self.template, "assistant").layout(self.fit(probe))
        except TemplateError:
            return None
        ((ids, offsets),) = self._tokenize([lay])
        labels = self._labels(lay, ids, offsets, [s for s, _ in offsets])
        added = set(self.tokenizer.added_tokens.values())
        for token, label in zip(reversed(ids), reversed(labels)):
            if label == IGNORE or not self.tokenizer.decode([token]).strip():
                continue
            return self.tokenizer.decode([token]) if token in added else None
        return None

    def _stop_warnings(self) -> list[str]:
        """Whether an assistant turn's loss ends on a token the model can learn to stop on."""
        if self.stop_token() is not None:
            return []
        return [f"no end-of-turn token carries loss with the chat template ({self.template.name}): the last trained "
                "token of an answer is plain text, so the model is never taught a token to stop on; use a template "
                "that closes turns with a special token"]

    def _bos_warnings(self) -> list[str]:
        """Template-level BOS facts, from one probe conversation."""
        bos = self.tokenizer.bos_token
        if not bos:
            return []
        try:
            text = self.template.render([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}])
        except TemplateError:
            return []
        ids = self.tokenizer.encode(text)
        count = ids.count(self.bos_id)
        if count > 1:
            return [f"the template writes BOS {bos} {count} times per conversation; the model expects it once"]
        if count == 0 and self.tokenizer.adds_bos_by_default:
            return [f"the template writes no BOS ({bos}) although this tokenizer normally starts text with it"]
        return []


def _has_system(example) -> bool:
    turns = list(example.messages) + list(example.chosen or []) + list(example.rejected or [])
    return any(m.role == "system" for m in turns)


def _check(options: EncodeOptions) -> None:
    """Raise one ConfigError naming every bad encoding option."""
    errors = []
    if options.loss not in LOSS_OPTIONS:
        errors.append(("data.loss", f"{options.loss!r} is not one of {', '.join(LOSS_OPTIONS)}"))
    if options.truncation_side not in ("right", "left"):
        errors.append(("data.truncation_side", f"{options.truncation_side!r} is not right or left"))
    if options.system_message not in SYSTEM_OPTIONS:
        errors.append(("data.system_message", f"{options.system_message!r} is not merge or skip"))
    if options.reasoning_history not in ("keep", "drop"):
        errors.append(("data.reasoning_history", f"{options.reasoning_history!r} is not keep or drop"))
    if options.max_length is not None and options.max_length < 1:
        errors.append(("data.max_length", f"{options.max_length} must be at least 1"))
    if errors:
        raise ConfigError(errors)


def _truncate_pair(chosen: Encoded, rejected: Encoded, prompt_len: int, max_length: int | None, side: str) -> int:
    """Cut a preference pair so both sides keep identical prompt ids; returns the prompt tokens removed.

    Left truncation removes the same prompt tokens from both sides (as many as the longer side
    needs, at most the whole prompt); whatever is still too long is then cut at the right end.
    """
    if max_length is None:
        return 0
    drop = 0
    if side == "left":
        drop = min(prompt_len, max(len(chosen.input_ids), len(rejected.input_ids)) - max_length)
        drop = max(drop, 0)
    for enc in (chosen, rejected):
        if drop:
            enc.input_ids, enc.labels, enc.roles = enc.input_ids[drop:], enc.labels[drop:], enc.roles[drop:]
            enc.truncated = True
        _truncate(enc, max_length, "right")
    return drop


def _truncate(enc: Encoded, max_length: int | None, side: str) -> None:
    """Cut ``enc`` to ``max_length`` tokens in place, recording what was lost."""
    n = len(enc.input_ids)
    if max_length is None or n <= max_length:
        return
    keep = slice(0, max_length) if side == "right" else slice(n - max_length, n)
    removed = enc.labels[max_length:] if side == "right" else enc.labels[: n - max_length]
    enc.lost_loss_tokens = sum(1 for label in removed if label != IGNORE)
    enc.input_ids, enc.labels, enc.roles = enc.input_ids[keep], enc.labels[keep], enc.roles[keep]
    enc.truncated = True
    if enc.lost_loss_tokens and all(label == IGNORE for label in enc.labels):
        enc.warnings.append(f"row {enc.row}: after truncation to {max_length} tokens (from {n}) no token carries "
                            "loss; raise data.max_length or change data.truncation_side")
