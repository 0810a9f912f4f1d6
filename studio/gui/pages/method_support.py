"""Plain-Python helpers of the Method page: words, field relevance, the command line, memory.

Kept apart from the widgets so they are easy to test and the page file stays small.
"""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from studio.core import config as configmod
from studio.core.config import RunConfig
from studio.core.models import REPO_ROOT, resolve_config_paths

OBJECTIVE_WORDS = {
    "sft": "Supervised fine-tuning: learn to write the assistant turns of your conversations.",
    "dpo": "Direct preference optimisation: prefer the chosen reply over the rejected one (needs preference pairs).",
    "kto": "KTO: learn from replies marked good or bad (preference pairs are split into both).",
    "orpo": "ORPO: supervised learning and preference in one step, no reference model (needs preference pairs).",
    "reward": "Reward model: learn to score replies, chosen above rejected (needs preference pairs).",
    "grpo": "GRPO: sample several replies per prompt and reinforce those the reward functions score higher.",
}
METHOD_WORDS = {
    "full": "Full fine-tuning: every weight trains. Best quality, most memory, a full-size copy per run.",
    "freeze": "Freeze: only the last few decoder layers train; the rest stay as they are.",
    "lora": "LoRA: small low-rank adapters train (about 1 % of the weights); the usual choice.",
    "dora": "DoRA: LoRA that also learns each weight's magnitude; a little slower, often a little better.",
    "qlora": "QLoRA: LoRA over a 4-bit copy of the model; the least memory for large models.",
    "ia3": "IA3: learns a scale per activation; tiny adapters, fast, less expressive than LoRA.",
    "prefix": "Prefix tuning: learned key/value vectors in front of every layer.",
    "prompt": "Prompt tuning: a few learned embedding vectors in front of every row.",
    "ptuning": "P-tuning: learned virtual tokens produced by a small encoder.",
}
LORA_FAMILY = ("lora", "dora", "qlora")
PREFERENCE = ("dpo", "kto", "orpo", "reward")
#: field -> (config section holding the switch, switch field, values where the field matters)
RELEVANT = {
    "method.target_modules": ("method", "name", LORA_FAMILY + ("ia3",)),
    "method.rank": ("method", "name", LORA_FAMILY),
    "method.alpha": ("method", "name", LORA_FAMILY),
    "method.dropout": ("method", "name", LORA_FAMILY),
    "method.freeze_trainable_layers": ("method", "name", ("freeze",)),
    "method.quant_type": ("method", "name", ("qlora",)),
    "method.double_quant": ("method", "name", ("qlora",)),
    "method.compute_dtype": ("method", "name", ("qlora",)),
    "method.num_virtual_tokens": ("method", "name", ("prefix", "prompt", "ptuning")),
    "train.dpo_loss": ("train", "objective", ("dpo",)),
    "train.beta": ("train", "objective", ("dpo", "kto", "orpo")),
    "train.reward_functions": ("train", "objective", ("grpo",)),
    "train.num_generations": ("train", "objective", ("grpo",)),
    "train.max_completion_length": ("train", "objective", ("grpo",)),
    "output.wandb_project": ("output", "report_to", None),
}


def is_relevant(path: str, cfg: RunConfig) -> bool:
    """Whether a field matters for the chosen method/objective (irrelevant ones are hidden)."""
    if path not in RELEVANT:
        return True
    section, name, values = RELEVANT[path]
    current = getattr(getattr(cfg, section), name)
    if values is None:  # list switch: the W&B project matters only when wandb is reported to
        return "wandb" in current
    return current in values


def presets() -> dict[str, Path]:
    """Preset name -> YAML file in resources/presets (demo first)."""
    folder = REPO_ROOT / "resources" / "presets"
    files = sorted(folder.glob("*.yaml"), key=lambda p: (p.stem != "demo", p.stem))
    return {p.stem: p for p in files}


def load_preset(path: Path) -> RunConfig:
    """A preset with its resource paths made absolute (raises ConfigError if invalid)."""
    return resolve_config_paths(configmod.load(path))


def _flat(cfg: RunConfig) -> dict[str, object]:
    return {f"{section}.{name}": value for section, name, _, value in configmod.field_info(cfg)} | {"name": cfg.name}


def changed_fields(cfg: RunConfig, base: RunConfig) -> dict[str, object]:
    """Dotted field -> new value for every field of ``cfg`` that differs from ``base``."""
    new, old = _flat(cfg), _flat(base)
    return {k: v for k, v in new.items() if old.get(k) != v}


def override_text(key: str, value: object) -> str:
    """One ``section.field=value`` argument, shell-quoted, readable back by config.load."""
    if isinstance(value, (list, dict)):
        text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    elif isinstance(value, str):
        text = value
    else:
        text = yaml.safe_dump(value).strip().removesuffix("...").strip()
    return shlex.quote(f"{key}={text}")


#: over this many changed fields the command points to a saved config instead
MAX_OVERRIDES = 8


def train_command(cfg: RunConfig, preset: Path | None, save_dir: Path) -> str:
    """The exact ``studio train`` command for ``cfg``.

    With a preset as base and few changes: ``studio train PRESET k=v ...``. Otherwise the
    config is saved under ``save_dir`` and the command names that file.
    """
    if preset is not None and preset.exists():
        changes = changed_fields(cfg, load_preset(preset))
        if len(changes) <= MAX_OVERRIDES:
            # absolute: the command works from any folder
            args = [shlex.quote(str(preset.resolve()))] + [override_text(k, v) for k, v in changes.items()]
            return "studio train " + " ".join(args)
    save_dir.mkdir(parents=True, exist_ok=True)
    path = save_dir / f"config-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
    configmod.save(cfg, path)
    return f"studio train {shlex.quote(str(path))}"


@dataclasses.dataclass
class MemoryBudget:
    """The memory a run can use: GPU memory when a GPU is present, else RAM."""

    kind: str
    total_bytes: int

    def text(self) -> str:
        return f"{self.total_bytes / 2**30:.1f} GiB of {self.kind}"


def memory_budget(device: str = "auto") -> MemoryBudget:
    """GPU memory (via nvidia-smi, never torch) unless training is on the CPU, else RAM."""
    if device in ("auto", "cuda") and shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5, check=True).stdout.split()
            return MemoryBudget("GPU memory", int(float(out[0])) * 2**20)
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            pass
    return MemoryBudget("RAM", _ram_bytes())


def _ram_bytes() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        with open("/proc/meminfo") as fh:
            return int(fh.readline().split()[1]) * 1024
