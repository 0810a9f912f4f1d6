"""Peak training memory of one process, estimated from shapes alone (part of preflight).

Pure Python: shapes come from config.json and safetensors headers
(:mod:`studio.core.modelshape`), so ``studio train --dry-run`` and the window's method page
answer in milliseconds without importing torch.

The estimate adds, for one device, the weights (in the dtype the worker loads them), the
gradients and AdamW states of the trainable parameters, the activations kept for the
backward pass, and the logits with their float32 loss copies. It is checked against measured
peak memory in ``benchmarks/preflight_memory.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from math import prod

from studio.core.config import RunConfig
from studio.core.modelshape import ModelShape

GIB = 1024**3

#: LoRA-family methods: a low-rank pair per adapted linear layer.
LORA_FAMILY = ("lora", "dora", "qlora")
#: PEFT's IA3 targets for Llama-style decoders when the config says ``all-linear``.
IA3_TARGETS = ("k_proj", "v_proj", "down_proj")
IA3_FEEDFORWARD = ("down_proj",)
#: Logit bytes one chunk of the SFT recipe's loss may hold (studio.worker.loss.CHUNK_BYTES).
SFT_LOSS_CHUNK_BYTES = 64 * 1024 * 1024
#: Working memory a training process needs beyond tensors: on a CPU the data, tokenizer and
#: allocator caches (measured ~150 MiB on the demo runs of benchmarks/preflight_memory.py);
#: on a GPU the CUDA context and kernels.
CPU_OVERHEAD = 150 * 1024**2
CUDA_OVERHEAD = 600 * 1024**2
#: Bytes per element of a dtype name.
_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass
class MemoryEstimate:
    """Peak memory of one training process, split into the parts a person can act on.

    All sizes are bytes. ``notes`` explains the assumptions (precision, sequence length...).
    """

    params_total: int
    params_trainable: int
    weights: int
    gradients: int
    optimizer: int
    activations: int
    logits: int
    overhead: int
    seq_len: int
    batch_size: int
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.logits + self.overhead

    def to_dict(self) -> dict:
        out = asdict(self)
        out["total"] = self.total
        return out

    def text(self) -> str:
        """A few lines for the terminal, e.g. ``weights 1.20 GiB``."""
        parts = ("weights", "gradients", "optimizer", "activations", "logits", "overhead")
        lines = [f"  {name:<12}{_gib(getattr(self, name))}" for name in parts]
        head = (f"Memory estimate per device: {_gib(self.total)} (batch {self.batch_size} x {self.seq_len} tokens; "
                f"{trainable_text(self.params_trainable, self.params_total)})")
        return "\n".join([head, *lines, *[f"  note: {n}" for n in self.notes]])


def memory_advice(cfg: RunConfig) -> str:
    """What to lower first when a run needs more memory than the device has, most effective first."""
    t = cfg.train
    steps = []
    if t.batch_size > 1:
        half = t.batch_size // 2
        accum = -(-t.grad_accum * t.batch_size // half)
        steps.append(f"lower train.batch_size first ({t.batch_size} -> {half}; train.grad_accum {t.grad_accum} -> "
                     f"{accum} keeps the effective batch)")
    steps.append(f"lower data.max_length ({cfg.data.max_length})")
    if not t.gradient_checkpointing:
        steps.append("turn on train.gradient_checkpointing")
    if cfg.method.name in ("full", "freeze"):
        steps.append("use a lighter method (lora; qlora on a GPU)")
    return "; then ".join(steps)


def trainable_text(trainable: int, total: int) -> str:
    """``149,504 of 1,281,152 parameters train (11.67 %)``: one wording wherever the share is shown."""
    return f"{trainable:,} of {total:,} parameters train ({100 * trainable / max(total, 1):.2f} %)"


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB / 10 else f"{n / 1024**2:.1f} MiB"


# -- trainable parameters per method ------------------------------------------------------


def _matches(module: str, targets: list[str] | tuple[str, ...]) -> bool:
    """PEFT's rule: a target names the module itself or its last dotted part(s)."""
    return any(module == t or module.endswith("." + t) for t in targets)


def adapted_linears(shape: ModelShape, targets: list[str]) -> dict[str, tuple[int, int]]:
    """The linear layers a LoRA-family method adapts: ``all-linear`` or named modules."""
    linears = shape.linear_weights()
    if list(targets) == ["all-linear"]:
        return linears
    return {name: dims for name, dims in linears.items() if _matches(name, targets)}


def trainable_params(shape: ModelShape, cfg: RunConfig) -> int:
    """Exact count of parameters the method trains (matches PEFT's count for Llama-style models)."""
    m = cfg.method
    if m.name == "full":
        return shape.params_total
    if m.name == "freeze":
        return _freeze_params(shape, m.freeze_trainable_layers)
    if m.name in LORA_FAMILY:
        linears = adapted_linears(shape, m.target_modules)
        count = sum(m.rank * (fan_in + fan_out) for fan_in, fan_out in linears.values())
        # DoRA adds a magnitude vector of out_features per adapted layer.
        return count + (sum(out for _, out in linears.values()) if m.name == "dora" else 0)
    if m.name == "ia3":
        return _ia3_params(shape, m.target_modules)
    return _virtual_token_params(shape, m.name, m.num_virtual_tokens)


def _freeze_params(shape: ModelShape, layers: int) -> int:
    """The last ``layers`` decoder layers, the final norm and an untied output head (as the worker does)."""
    first = shape.num_layers - min(layers, shape.num_layers)
    total = 0
    for name, dims in shape.tensors.items():
        index = shape.layer_index(name)
        if (index is not None and index >= first) or (index is None and ("norm" in name or "lm_head" in name)):
            total += prod(dims)
    return total


def _ia3_params(shape: ModelShape, targets: list[str]) -> int:
    targets = IA3_TARGETS if list(targets) == ["all-linear"] else tuple(targets)
    total = 0
    for name, (fan_in, fan_out) in adapted_linears(shape, list(targets)).items():
        # IA3 scales the input of feed-forward layers and the output of the others.
        total += fan_in if _matches(name, IA3_FEEDFORWARD) else fan_out
    return total


def _virtual_token_params(shape: ModelShape, method: str, tokens: int) -> int:
    h = shape.hidden_size
    if method == "prompt":
        return tokens * h
    if method == "prefix":
        # A key and a value vector per layer and virtual token, sized for grouped-query attention.
        return tokens * shape.num_layers * 2 * shape.head_dim * shape.num_kv_heads
    # P-tuning: a virtual-token embedding reparameterised by a three-layer MLP of width h.
    return tokens * h + 3 * (h * h + h)


# -- memory -------------------------------------------------------------------------------


def _precision(cfg: RunConfig, device: str) -> str:
    p = cfg.train.precision
    if p != "auto":
        return p
    return "bf16" if device in ("cuda", "auto") else "fp32"


def _weight_bytes(shape: ModelShape, cfg: RunConfig, precision: str, device: str) -> int:
    """Bytes of the (frozen and trainable) base weights as the worker holds them."""
    if cfg.method.name != "qlora":
        # Mixed precision keeps float32 weights when the weights themselves train (autocast does
        # the half-precision maths); on a GPU adapter methods load the frozen base in the compute type.
        half_base = device != "cpu" and cfg.method.name not in ("full", "freeze") and precision != "fp32"
        return shape.params_total * (_BYTES[precision] if half_base else 4)
    linear = sum(fi * fo for fi, fo in shape.linear_weights().values())
    # NF4/FP4: half a byte per weight plus one absmax per 64 weights (a byte with double quantisation).
    scale = 1 / 64 + 4 / (64 * 256) if cfg.method.double_quant else 4 / 64
    compute = 2 if precision in ("bf16", "fp16") else 4
    return int(linear * (0.5 + scale) + (shape.params_total - linear) * compute)


def _layer_activation_elements(shape: ModelShape, cfg: RunConfig) -> int:
    """Elements per token that one decoder layer keeps for the backward pass."""
    h, i = shape.hidden_size, shape.intermediate_size
    kv = shape.num_kv_heads * shape.head_dim
    q = shape.num_heads * shape.head_dim
    # norms (in, out) x2, q/k/v and their rotated copies, attention out, o_proj out, residuals,
    # and the SwiGLU MLP: gate, up, activation and product (each of width i).
    base = 6 * h + 2 * q + 4 * kv + 2 * h + 4 * i
    if cfg.method.name in LORA_FAMILY and cfg.method.dropout > 0:
        # each adapted layer keeps its dropped-out input (shared inputs are not shared after dropout)
        per_layer = [d for n, d in adapted_linears(shape, cfg.method.target_modules).items()
                     if shape.layer_index(n) == 0]
        base += sum(fan_in for fan_in, _ in per_layer)
    return base


def _logits_bytes(shape: ModelShape, cfg: RunConfig, tokens: int, act_bytes: int) -> int:
    """Working memory of the output projection and the loss."""
    vocab = shape.vocab_size
    if cfg.train.objective == "sft":
        # Studio's chunked loss projects at most one chunk of positions at a time (logits and
        # their gradient); the rule mirrors studio.worker.loss.auto_chunk_rows.
        rows = min(tokens, max(16, min(4096, SFT_LOSS_CHUNK_BYTES // (4 * max(vocab, 1)))))
        return rows * vocab * 4 * 2
    # TRL trainers: full logits in the compute dtype, their float32 upcast, and its gradient
    return tokens * vocab * (act_bytes + 4 + 4)


def params_with_method(shape: ModelShape, cfg: RunConfig, trainable: int) -> int:
    """All parameters of the model as trained: the base model plus what an adapter method adds.

    The same count PEFT (and so the worker's ``started`` event) reports, so every page shows one
    trainable share.
    """
    return shape.params_total + (0 if cfg.method.name in ("full", "freeze") else trainable)


def estimate_memory(shape: ModelShape, cfg: RunConfig, seq_len: int | None = None,
                    device: str | None = None) -> MemoryEstimate:
    """Estimate the peak memory of one training process.

    Args:
        shape: the model's shapes (:func:`studio.core.modelshape.read_model_shape`).
        cfg: the run configuration (method, precision, batch, gradient checkpointing).
        seq_len: tokens per row of the largest batch; defaults to ``data.max_length``.
        device: ``cpu``, ``cuda`` or ``auto`` (the config's ``train.device`` by default).
    """
    device = device or cfg.train.device
    precision = _precision(cfg, device)
    seq_len = seq_len or cfg.data.max_length
    tokens = cfg.train.batch_size * seq_len
    trainable = trainable_params(shape, cfg)
    act_bytes = 4 if precision == "fp32" else 2
    layers = shape.num_layers
    if cfg.method.name == "freeze":
        layers = min(cfg.method.freeze_trainable_layers, layers)  # no grad flows below them
    per_layer = _layer_activation_elements(shape, cfg)
    if cfg.train.gradient_checkpointing:
        # only each layer's input stays, plus one layer recomputed during its backward
        act = tokens * (layers * shape.hidden_size + per_layer) * act_bytes
    else:
        act = tokens * layers * per_layer * act_bytes
    logits = _logits_bytes(shape, cfg, tokens, act_bytes)
    notes = [f"precision {precision}", f"method {cfg.method.name}",
             "gradient checkpointing on" if cfg.train.gradient_checkpointing else "gradient checkpointing off"]
    if device == "auto":
        notes.append("device auto: estimated for a GPU; on a CPU adapter methods keep fp32 weights")
    overhead = CPU_OVERHEAD
    if device == "cuda":
        overhead = CUDA_OVERHEAD
        notes.append("includes ~0.6 GiB for the CUDA context and kernels")
    return MemoryEstimate(params_total=params_with_method(shape, cfg, trainable), params_trainable=trainable,
                          weights=_weight_bytes(shape, cfg, precision, device), gradients=trainable * 4,
                          optimizer=trainable * 8, activations=int(act), logits=int(logits), overhead=overhead,
                          seq_len=seq_len, batch_size=cfg.train.batch_size, notes=notes)


def objective_estimate(shape: ModelShape, cfg: RunConfig, seq_len: int | None = None,
                       device: str | None = None) -> MemoryEstimate:
    """:func:`estimate_memory` adjusted for what each objective runs per step.

    Pairwise objectives (DPO, ORPO, reward modelling) put chosen and rejected rows through the
    model together, so a step holds twice the rows; KTO adds a mismatched batch for its KL
    term. Full DPO/KTO keeps a frozen reference copy of the model. GRPO trains on the prompt plus
    the sampled completion, ``num_generations`` rows per prompt.
    """
    objective = cfg.train.objective
    seq_len = seq_len or cfg.data.max_length
    rows = cfg.train.batch_size
    if objective in ("dpo", "orpo", "reward", "kto"):
        rows *= 2
    if objective == "grpo":
        seq_len = min(seq_len, cfg.data.max_length) + cfg.train.max_completion_length
    scaled = _with_batch(cfg, rows)
    est = estimate_memory(shape, scaled, seq_len=seq_len, device=device)
    est.batch_size = rows
    if objective in ("dpo", "kto") and cfg.method.name in ("full", "freeze"):
        # a frozen reference model in the compute dtype
        ref = shape.params_total * (4 if _precision(cfg, device or cfg.train.device) == "fp32" else 2)
        est.weights += ref
        est.notes.append("includes a frozen reference copy of the model")
    if objective != "sft":
        est.notes.append(f"objective {objective}: {rows} sequences per device per step")
    return est


def _with_batch(cfg: RunConfig, rows: int) -> RunConfig:
    import copy

    scaled = copy.deepcopy(cfg)
    scaled.train.batch_size = rows
    return scaled
