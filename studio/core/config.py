"""The run configuration: one typed source for the YAML file, the CLI overrides and the GUI form.

Every field is a dataclass field whose ``metadata`` carries ``help`` (shown as ``--help`` text
and as a tooltip), and where useful ``choices``, ``min`` and ``max``. :func:`validate` returns
every problem at once; :func:`load` raises one :class:`~studio.core.errors.ConfigError` holding
all of them.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from studio.core.errors import ConfigError

METHODS = ("full", "freeze", "lora", "dora", "qlora", "ia3", "prefix", "prompt", "ptuning")
OBJECTIVES = ("sft", "dpo", "kto", "orpo", "reward", "grpo")
LOSS_OPTIONS = ("assistant", "last_assistant", "all", "completion")
PADDING = ("packing", "longest", "multiple", "max_length")
DPO_LOSSES = ("sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair", "exo_pair",
              "aot", "aot_pair", "apo_zero", "apo_down", "discopop", "sft")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: model.template: the model's own, or a built-in (studio.core.templates.BUILTIN_TEMPLATES; a test keeps them equal)
TEMPLATES = ("auto", "llama3", "llama3.1", "chatml", "mistral", "qwen2.5", "qwen3", "gemma", "gemma3", "phi3",
             "deepseek", "deepseek-r1")
#: (section, field) of every setting that names a file or folder
PATH_FIELDS = (("model", "path"), ("data", "train"), ("data", "eval"), ("data", "general_eval"))


def _f(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with help text and optional ``choices``/``min``/``max`` metadata."""
    meta["help"] = help
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    path: str = _f("resources/demo-model", "Model folder, a model in the Hugging Face cache, or a hub id.")
    init_from: str = _f("", "Checkpoint folder (or run folder: its latest checkpoint) whose trainable weights this new "
                        "run starts from; its optimizer, schedule and data order start fresh. Empty starts from "
                        "the model's own weights.")
    trust_remote_code: bool = _f(False, "Run Python code shipped with the model. Only for models you trust.")
    template: str = _f("auto", "Chat template: 'auto' uses the model's own; or a built-in one by name (for a model "
                       "folder without a template).", choices=TEMPLATES)


@dataclass
class DataConfig:
    train: str = _f("resources/datasets/travel_chat.jsonl", "Training data file (JSONL, JSON, CSV, Parquet or a saved dataset folder).")
    eval: str = _f("", "Optional evaluation file; when empty, eval_fraction of the training rows is held out.")
    eval_fraction: float = _f(0.1, "Share of training rows held out for evaluation when no eval file is given.", min=0.0, max=0.5)
    general_eval: str = _f("", "Optional file of general text whose loss is tracked to catch forgetting.")
    format: str = _f("auto", "Dataset format; 'auto' detects it.",
                     choices=("auto", "messages", "sharegpt", "alpaca", "prompt_completion", "preference", "text"))
    columns: dict = _f({}, "Column mapping that overrides detection, e.g. {messages: dialog} or {label: kto_tag}.")
    text_split: str = _f("line", "How a .txt file is cut into documents: each non-empty line, blank-line-separated "
                                 "paragraphs, or the whole file.", choices=("line", "paragraph", "file"))
    text_attention: str = _f("block", "Raw text: 'block' lets a block's tokens attend across the documents in it (as "
                                      "transformers' run_clm); 'document' restarts positions at every document and "
                                      "masks attention between documents (as Llama 3's pre-training).",
                             choices=("block", "document"))
    loss: str = _f("assistant", "Which tokens carry loss: every assistant turn, the last one, all tokens, or the completion.",
                   choices=LOSS_OPTIONS)
    max_length: int = _f(1024, "Longest sequence in tokens; longer rows are truncated.", min=8, max=1_048_576)
    truncation_side: str = _f("right", "Which end of an over-long row is cut.", choices=("right", "left"))
    padding: str = _f("packing", "How rows of a batch are made equal length; packing concatenates them with no padding.",
                      choices=PADDING)
    pad_to_multiple_of: int = _f(8, "With padding 'multiple', pad each batch to a multiple of this.", min=1, max=4096)
    padding_side: str = _f("right", "Side on which padding is added (right for training).", choices=("right", "left"))
    pad_token: str = _f("", "Pad token; empty picks the model's own, else a reserved pad such as <|finetune_right_pad_id|>.")
    system_message: str = _f("merge", "For a chat template that refuses system messages (Gemma 1 and 2): merge writes "
                             "the system message at the start of the first user turn; skip lists each row that has "
                             "one as a bad row.", choices=("merge", "skip"))
    reasoning_history: str = _f("keep", "For a chat template that drops the reasoning of earlier turns (Qwen3): keep "
                                "renders every turn with its <think> block and trains it (TRL's variant); drop uses "
                                "the model's own template and trains only the final answer.", choices=("keep", "drop"))
    skip_bad_rows: bool = _f(True, "Skip rows that fail validation (they are listed) instead of stopping.")
    max_skipped: float = _f(0.1, "Largest share of the training rows a run may skip (bad rows, rows left without a "
                                 "loss token, undesirable rows under SFT) before it refuses to start.", min=0.0, max=1.0)
    seed: int = _f(42, "Seed for the train/eval split and shuffling.", min=0, max=2**32 - 1)


@dataclass
class MethodConfig:
    name: str = _f("lora", "Fine-tuning method.", choices=METHODS)
    target_modules: list = _f(["all-linear"], "Modules adapted by LoRA-family methods; 'all-linear' adapts every linear layer.")
    rank: int = _f(16, "LoRA rank r.", min=1, max=4096)
    alpha: int = _f(32, "LoRA alpha (scale = alpha / rank).", min=1, max=65536)
    dropout: float = _f(0.05, "Dropout on the adapter input.", min=0.0, max=0.9)
    freeze_trainable_layers: int = _f(2, "Freeze method: how many of the last decoder layers train.", min=1)
    quant_type: str = _f("nf4", "QLoRA 4-bit quantisation type.", choices=("nf4", "fp4"))
    double_quant: bool = _f(True, "QLoRA: also quantise the quantisation constants.")
    compute_dtype: str = _f("auto", "QLoRA compute dtype.", choices=("auto", "fp32", "bf16", "fp16"))
    num_virtual_tokens: int = _f(16, "Prefix, prompt and P-tuning: number of virtual tokens.", min=1, max=1024)


@dataclass
class TrainConfig:
    objective: str = _f("sft", "Training objective.", choices=OBJECTIVES)
    epochs: float = _f(1.0, "Passes over the training data (ignored when max_steps > 0).", min=0.0, max=10_000.0)
    max_steps: int = _f(-1, "Stop after this many optimizer steps; -1 runs the given epochs.", min=-1)
    batch_size: int = _f(4, "Rows per device per step.", min=1)
    grad_accum: int = _f(1, "Gradient accumulation steps.", min=1)
    learning_rate: float = _f(2e-4, "Peak learning rate.", min=0.0, max=1.0)
    lr_scheduler: str = _f("cosine", "Learning-rate schedule.", choices=("cosine", "linear", "constant", "constant_with_warmup"))
    warmup_ratio: float = _f(0.0, "Share of steps spent warming up the learning rate.", min=0.0, max=0.5)
    weight_decay: float = _f(0.0, "AdamW weight decay.", min=0.0, max=1.0)
    max_grad_norm: float = _f(1.0, "Gradient clipping norm; 0 disables clipping.", min=0.0)
    precision: str = _f("auto", "Number format: auto picks bf16 or fp16 on a GPU and bf16 autocast on CPUs that support it.",
                        choices=PRECISIONS)
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass to save memory.")
    seed: int = _f(42, "Seed for initialisation, dropout and data order.", min=0, max=2**32 - 1)
    logging_steps: int = _f(1, "Emit a step event every N steps.", min=1)
    device: str = _f("auto", "Where to train: auto, cpu, cuda or mps.", choices=("auto", "cpu", "cuda", "mps"))
    dpo_loss: str = _f("sigmoid", "DPO loss variant (TRL loss_type).", choices=DPO_LOSSES)
    beta: float = _f(0.1, "DPO/KTO/ORPO beta.", min=0.0)
    reward_functions: list = _f(["length", "no_repeat"], "GRPO reward functions by name (see docs/objectives.md).")
    num_generations: int = _f(4, "GRPO: completions sampled per prompt.", min=2)
    max_completion_length: int = _f(32, "GRPO: longest sampled completion in tokens.", min=1)


@dataclass
class EvalConfig:
    every_steps: int = _f(10, "Evaluate every N steps; 0 evaluates only at the end.", min=0)
    sample_every_steps: int = _f(0, "Generate sample answers every N steps; 0 only at the end.", min=0)
    sample_prompts: list = _f(["What should I pack for a week in Lisbon?"], "Prompts for sample generations.")
    sample_max_new_tokens: int = _f(48, "Longest sample generation in tokens.", min=1)
    task_metrics: bool = _f(True, "Compute BLEU/ROUGE/exact match/F1 per task when the eval set has a task column.")
    overfit_patience: int = _f(3, "Warn when eval loss rises this many evaluations in a row while train loss falls.", min=2)
    early_stop: bool = _f(False, "SFT: stop when that warning fires, and write final/ from the weights of the best "
                                 "evaluation (its checkpoint is always kept).")


@dataclass
class OutputConfig:
    save_every_steps: int = _f(50, "Write a checkpoint every N steps (and always at the end or on stop).", min=1)
    keep_checkpoints: int = _f(3, "Keep the newest N checkpoints (SFT also keeps the one at its best "
                                  "evaluation); 0 keeps all.", min=0)
    report_to: list = _f(["tensorboard"], "Logging integrations: tensorboard, wandb, or none.")
    wandb_project: str = _f("studio", "Weights & Biases project when report_to has wandb.")


@dataclass
class DistributedConfig:
    strategy: str = _f("ddp", "How several GPUs share the work.", choices=("ddp", "fsdp", "deepspeed"))
    deepspeed_stage: int = _f(2, "DeepSpeed ZeRO stage.", min=0, max=3)
    main_process_port: int = _f(29500, "Rendezvous port on the main node.", min=1, max=65535)


@dataclass
class RunConfig:
    name: str = _f("", "Run name; empty derives one from model, method and time.")
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


def sections(cfg: RunConfig) -> list[tuple[str, Any]]:
    """The (name, section dataclass) pairs of a config, in form order."""
    return [(f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if dataclasses.is_dataclass(getattr(cfg, f.name))]


def to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)


def save(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(dump_yaml(cfg), encoding="utf-8")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


#: Integers beyond a signed 64-bit value fit neither the registry nor torch.
_LARGEST_INT = 2**63 - 1


def _coerce(value: Any, typ: Any, path: str, errors: list[tuple[str, str]]) -> Any:
    """Convert a YAML/CLI value to the field's type, recording a readable error if impossible."""
    try:
        if typ is bool:
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
                return value.lower() in ("true", "yes", "1", "on")
            if isinstance(value, bool):
                return value
            raise ValueError
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            number = int(value)
            if abs(number) > _LARGEST_INT:
                errors.append((path, f"{value!r} is too large"))
                return None
            return number
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):
                errors.append((path, f"{value!r} is not a finite number"))
                return None
            return number
        if typ is str:
            return "" if value is None else str(value)
        if typ is list:
            if isinstance(value, str):
                value = yaml.safe_load(value) if value.strip().startswith("[") else [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list):
                raise ValueError
            return value
        if typ is dict:
            if isinstance(value, str):
                value = yaml.safe_load(value) or {}
            if not isinstance(value, dict):
                raise ValueError
            return value
    except (TypeError, ValueError, OverflowError, yaml.YAMLError):
        errors.append((path, f"expected {typ.__name__}, got {value!r}"))
        return None
    return value


def _build(cls: type, data: Any, prefix: str, errors: list[tuple[str, str]]) -> Any:
    obj = cls()
    if data is None:
        return obj
    if not isinstance(data, dict):
        errors.append((prefix or "<top>", f"expected a mapping of fields, got {data!r}"))
        return obj
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            errors.append((path, f"unknown field; known fields: {', '.join(sorted(names))}"))
            continue
        typ = hints[key]
        if dataclasses.is_dataclass(typ):
            setattr(obj, key, _build(typ, value, path, errors))
            continue
        coerced = _coerce(value, typ, path, errors)
        if coerced is not None:
            setattr(obj, key, coerced)
    return obj


def from_dict(data: dict | None, source: str = "", check_files: bool = False,
              errors: list[tuple[str, str]] | None = None) -> RunConfig:
    """Build a config from a nested mapping; raises ConfigError listing every bad field.

    Args:
        check_files: also require the data files and a local model folder to exist.
        errors: problems found before building (e.g. malformed overrides), reported with the rest.
    """
    errors = list(errors or [])
    cfg = _build(RunConfig, data or {}, "", errors)
    errors += validate(cfg)
    if check_files:
        errors += missing_files(cfg)
    if errors:
        raise ConfigError(errors, source)
    return cfg


def load(path: str | Path, overrides: list[str] | None = None, check_files: bool = False) -> RunConfig:
    """Read a YAML config, apply ``dotted.key=value`` overrides, and validate it all at once.

    With ``check_files`` the data files and a local model folder must exist too (``studio train``).
    """
    path = Path(path)
    data = read_yaml(path)
    errors: list[tuple[str, str]] = []
    data = apply_overrides(data, overrides or [], errors)
    return from_dict(data, str(path), check_files, errors)


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a config has no use for them, and nested aliases
    ("billion laughs") expand to gigabytes once the mapping is walked."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} is not allowed in a run "
                                              "configuration: write the value out", event.start_mark)
        return super().compose_node(parent, index)


def read_yaml(path: Path) -> dict:
    """The mapping in a config file; ConfigError naming the file for anything else."""
    def refuse(reason: str):
        return ConfigError([("<file>", reason)], str(path))

    if path.is_dir():
        raise refuse(f"{path} is a folder; give a config file such as resources/presets/demo.yaml")
    try:
        text = path.read_bytes().decode("utf-8-sig")
        data = yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader that also refuses aliases
    except FileNotFoundError:
        raise refuse(f"{path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise refuse(f"not UTF-8 text (undecodable byte at offset {exc.start}); save the file as UTF-8") from None
    except OSError as exc:
        raise refuse(f"cannot read {path}: {exc.strerror or exc}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise refuse(f"not valid YAML: {exc}" if isinstance(exc, yaml.YAMLError) else "not valid YAML: nested too "
                     "deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise refuse(f"holds a YAML {type(data).__name__}, but a run configuration is a mapping of sections "
                     "(model:, data:, method:, train:, ...)")
    return data


def missing_files(cfg: RunConfig) -> list[tuple[str, str]]:
    """Data files and a local model folder named by the config that exist neither here nor in the repository."""
    from studio.core.models import looks_like_hub_id, resource_path

    problems = []
    for section, name in PATH_FIELDS:
        value = getattr(getattr(cfg, section), name)
        if not value or (resource_path(value).exists() and not (section == "model" and
                                                                resource_path(value).is_file())):
            continue
        if section == "model" and resource_path(value).is_file():
            problems.append(("model.path", f"{value} is a file; give the model's folder (the one holding "
                                           "config.json and the weights)"))
            continue
        if section == "model" and not looks_like_hub_id(value):
            problems.append(("model.path", f"{value} is neither a folder on this machine nor a hub id like owner/name"))
        elif section == "data":
            problems.append((f"data.{name}", f"{value} does not exist; give the path of an existing file"))
    return problems


def apply_overrides(data: dict, overrides: list[str], errors: list[tuple[str, str]]) -> dict:
    """Set ``section.field=value`` pairs in a nested mapping (values parsed as YAML scalars)."""
    data = dict(data or {})
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            errors.append((item, "an override must look like section.field=value, e.g. train.learning_rate=1e-4"))
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for depth, part in enumerate(parts[:-1]):
            inner = node.get(part)
            if inner is not None and not isinstance(inner, dict):
                errors.append((key.strip(), f"{'.'.join(parts[:depth + 1])} is a setting, not a section: "
                               "write section.field=value, e.g. train.max_steps=100"))
                break
            node[part] = dict(inner or {})
            node = node[part]
        else:
            node[parts[-1]] = value
    return data


def _check_field(f: dataclasses.Field, value: Any, path: str) -> str | None:
    meta = f.metadata
    if "choices" in meta and value not in meta["choices"]:
        return f"{value!r} is not one of: {', '.join(map(str, meta['choices']))}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "min" in meta and value < meta["min"]:
            return f"{value} is below the minimum {meta['min']}"
        if "max" in meta and value > meta["max"]:
            return f"{value} is above the maximum {meta['max']}"
    return None


def validate(cfg: RunConfig) -> list[tuple[str, str]]:
    """Every problem of a config as (dotted path, reason); empty when it is valid."""
    errors: list[tuple[str, str]] = []
    for name, section in sections(cfg):
        for f in dataclasses.fields(section):
            reason = _check_field(f, getattr(section, f.name), f"{name}.{f.name}")
            if reason:
                errors.append((f"{name}.{f.name}", reason))
    errors += _cross_checks(cfg)
    return errors


def _cross_checks(cfg: RunConfig) -> list[tuple[str, str]]:
    errors = []
    if not cfg.data.train:
        errors.append(("data.train", "a training data file is required"))
    if cfg.method.name in ("prefix", "prompt", "ptuning") and cfg.data.padding == "packing":
        errors.append(("data.padding", f"method {cfg.method.name} prepends virtual tokens to each row and cannot "
                       "be packed; choose longest, multiple or max_length"))
    if cfg.train.objective == "grpo" and not cfg.train.reward_functions:
        errors.append(("train.reward_functions", "GRPO needs at least one reward function"))
    if cfg.eval.early_stop and cfg.train.objective != "sft":
        errors.append(("eval.early_stop", f"early stopping is available for SFT; {cfg.train.objective} runs "
                       "report overfitting through their eval loss only"))
    if cfg.eval.early_stop and not cfg.eval.every_steps:
        errors.append(("eval.early_stop", "early stopping needs evaluations during training: set eval.every_steps"))
    if cfg.train.precision == "fp16" and cfg.train.device == "cpu":
        errors.append(("train.precision", "fp16 is not supported on the CPU; use auto, fp32 or bf16"))
    unknown = [r for r in cfg.output.report_to if r not in ("tensorboard", "wandb", "none")]
    if unknown:
        errors.append(("output.report_to", f"unknown integration(s) {unknown}; use tensorboard, wandb or none"))
    return errors


def field_info(cfg: RunConfig) -> list[tuple[str, str, dataclasses.Field, Any]]:
    """(section, field name, Field, current value) for every leaf field; drives GUI forms and CLI help."""
    out = []
    for name, section in sections(cfg):
        for f in dataclasses.fields(section):
            out.append((name, f.name, f, getattr(section, f.name)))
    return out


def field_type(section: str, name: str) -> Any:
    """The Python type of a leaf field (bool, int, float, str, list or dict)."""
    return _hints(type(getattr(RunConfig(), section)))[name]
