"""Build the tiny demo Llama model and its own Llama-3-style tokenizer.

Called by ``build_demo.py`` after the datasets are written. The tokenizer is a byte-level
BPE trained on the demo datasets, with the real Llama 3 special tokens, pre-tokenizer
regex, BOS post-processor and chat template, so the classic Llama 3 pitfalls (no pad
token, ``<|eot_id|>`` as end of turn, a second BOS when text that already holds the
template is tokenized with special tokens) are real on it. The model is a 4-layer
LlamaForCausalLM, briefly pre-trained on the plain text of the datasets (no chat
template), so it writes travel words but still has to learn the chat format: a LoRA
fine-tune on the chat data shows a clearly falling loss.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

VOCAB_SIZE = 3072
# Same order as Meta's Llama 3.2 tokenizer; the ids of <|eom_id|>, <|step_id|> and
# <|python_tag|> are reserved tokens here, which the demo never needs.
SPECIAL_TOKENS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_3|>", "<|eot_id|>",
] + [f"<|reserved_special_token_{i}|>" for i in range(4, 10)]
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
# Meta's Llama-3-8B-Instruct chat template, verbatim.
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
MODEL_SHAPE = dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                   intermediate_size=352, max_position_embeddings=2048, rope_theta=500000.0,
                   tie_word_embeddings=True, rms_norm_eps=1e-5)
PRETRAIN = dict(block=256, batch=8, steps=200, lr=3e-3, warmup=10)
# The evaluation set stays out of pre-training so evaluation measures fine-tuning, not recall.
HELD_OUT = ("travel_eval.jsonl",)


def dataset_texts(datasets: Path, skip: tuple[str, ...] = ()) -> list[str]:
    """Every document in the demo datasets (except files named in ``skip``) as plain text."""
    texts = []
    for path in sorted(p for p in datasets.iterdir() if p.name not in skip):
        rows = (json.loads(path.read_text(encoding="utf-8")) if path.suffix == ".json"
                else [json.loads(line) for line in path.open(encoding="utf-8")])
        texts += ["\n\n".join(_strings(row)) for row in rows]
    return texts


def _strings(value) -> list[str]:
    """All string leaves of a JSON value except role names, in order."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() if k not in ("role", "from", "task") for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def train_tokenizer(texts: list[str]):
    """A byte-level BPE ``tokenizers.Tokenizer`` laid out like Meta's Llama 3 one."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE - len(SPECIAL_TOKENS), min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    # Added after training so the special tokens take the last ids, as in Llama 3.
    tok.add_special_tokens(SPECIAL_TOKENS)
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos}:1 $B:1",
                                      special_tokens=[(bos, tok.token_to_id(bos))]),
    ])
    return tok


def save_tokenizer(tok, out: Path):
    """Save through transformers so the files look like any Hub Llama 3 tokenizer."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   model_max_length=MODEL_SHAPE["max_position_embeddings"],
                                   clean_up_tokenization_spaces=False)
    fast.chat_template = LLAMA3_CHAT_TEMPLATE
    fast.save_pretrained(out)
    return fast


def make_model(tok):
    """An untrained tiny LlamaForCausalLM whose config matches the tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=tok.get_vocab_size(), bos_token_id=tok.token_to_id("<|begin_of_text|>"),
                         eos_token_id=tok.token_to_id("<|eot_id|>"), pad_token_id=None, **MODEL_SHAPE)
    return LlamaForCausalLM(config)


def token_blocks(tok, texts: list[str], block: int, seed: int):
    """Documents joined by ``<|end_of_text|>`` and cut into equal blocks, shuffled."""
    import torch

    eot = tok.token_to_id("<|end_of_text|>")
    ids: list[int] = []
    for enc in tok.encode_batch(texts, add_special_tokens=False):
        ids += enc.ids + [eot]
    n = len(ids) // block
    blocks = torch.tensor(ids[: n * block]).view(n, block)
    return blocks[torch.randperm(n, generator=torch.Generator().manual_seed(seed))]


def pretrain(model, blocks, seed: int, log=print) -> list[float]:
    """A short causal-LM pre-training with warmup and cosine decay; returns the losses."""
    import torch

    p = PRETRAIN
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=p["lr"], weight_decay=0.01, betas=(0.9, 0.95))
    schedule = lambda s: min(1.0, (s + 1) / p["warmup"]) * 0.5 * (1 + math.cos(math.pi * s / p["steps"]))  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    model.train()
    losses, start = [], time.monotonic()
    for step in range(p["steps"]):
        idx = torch.randint(len(blocks), (p["batch"],))
        loss = model(input_ids=blocks[idx], labels=blocks[idx]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 25 == 0 or step == p["steps"] - 1:
            log(f"pretrain step {step}: loss {loss.item():.3f} ({time.monotonic() - start:.0f} s)")
    model.eval()
    return losses


def save_model(model, tok, out: Path) -> None:
    """Weights (float32 safetensors), config and a Llama 3 style generation config."""
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(
        bos_token_id=tok.token_to_id("<|begin_of_text|>"),
        eos_token_id=[tok.token_to_id("<|eot_id|>"), tok.token_to_id("<|end_of_text|>")],
        max_new_tokens=128)
    model.save_pretrained(out, safe_serialization=True)


def build(datasets: Path, out: Path, seed: int = 1234, log=print) -> None:
    """Train the tokenizer, pre-train the model and save both into ``out``."""
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    started = time.monotonic()
    texts = dataset_texts(datasets)
    tok = train_tokenizer(texts)
    out.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tok, out)
    log(f"tokenizer: {tok.get_vocab_size()} tokens ({time.monotonic() - started:.0f} s)")
    model = make_model(tok)
    blocks = token_blocks(tok, dataset_texts(datasets, skip=HELD_OUT), PRETRAIN["block"], seed)
    pretrain(model, blocks, seed, log)
    save_model(model, tok, out)
    log(f"demo model written to {out} in {time.monotonic() - started:.0f} s")
