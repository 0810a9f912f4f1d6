"""What a run leaves behind: ``final/`` and exports (adapter, merged full model).

``final/`` is written at the end of training: the adapter in PEFT format for adapter
methods, the full model for full and freeze, always with the tokenizer and chat template.
An export copies the adapter or merges it into the base weights, giving a model folder that
``transformers`` loads with ``from_pretrained`` and that generates with the trained template
and stop tokens.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from studio.core import config as configmod
from studio.core.errors import RunError, StudioError
from studio.worker.methods import PROMPT_METHODS

log = logging.getLogger("studio.worker")

MANIFEST = "studio.json"


def save_final(ctx, model) -> Path:
    """Write ``ctx.final_dir``: weights (adapter or full), tokenizer, template and a manifest."""
    out = ctx.final_dir
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    adapter = hasattr(model, "peft_config")
    if not adapter:
        _set_generation_stops(ctx, model)
    model.save_pretrained(str(out))
    ctx.hf_tokenizer().save_pretrained(str(out))
    manifest = {"kind": "adapter" if adapter else "model", "method": ctx.cfg.method.name,
                "base_model": str(ctx.model_path), "template": ctx.template.name}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    ctx.events.log(f"saved the final {manifest['kind']} to {out}")
    return out


def _set_generation_stops(ctx, model) -> None:
    """Generation stops at the template's end-of-turn token, not only the tokenizer's EOS."""
    from studio.worker.evaluate import stop_ids

    stops = stop_ids(ctx.tokenizer)
    gen = getattr(model, "generation_config", None)
    if gen is not None and stops:
        gen.eos_token_id = stops if len(stops) > 1 else stops[0]
        if ctx.pad.id is not None:
            gen.pad_token_id = ctx.pad.id


def _context(run_dir: str | Path):
    from studio.worker.context import RunContext

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise RunError(f"{run_dir} is not a run folder (no config.yaml)", "pass the folder `studio train` created")
    return RunContext(configmod.load(cfg_path), run_dir)


def _source(ctx, checkpoint: str | Path | None) -> Path:
    """The folder holding the weights to export: ``final/`` or a checkpoint's adapter."""
    if checkpoint:
        folder = Path(checkpoint)
        return folder / "adapter" if (folder / "adapter").is_dir() else folder
    if not (ctx.final_dir / MANIFEST).exists():
        raise RunError(f"{ctx.run_dir} has no final/ folder: the run did not complete",
                       "export from a checkpoint with --checkpoint RUN_DIR/checkpoints/step-N, "
                       "or resume the run to finish it")
    return ctx.final_dir


def export_adapter(run_dir: str | Path, out: str | Path, checkpoint: str | Path | None = None) -> Path:
    """Copy a run's adapter (PEFT format) with its tokenizer and chat template to ``out``."""
    ctx = _context(run_dir)
    if ctx.cfg.method.name in ("full", "freeze"):
        raise StudioError(f"the run trained with method {ctx.cfg.method.name}: there is no adapter to export",
                          "use --merged OUT to export the full model")
    source = _source(ctx, checkpoint)
    if not (source / "adapter_config.json").exists():
        raise RunError(f"{source} holds no adapter (adapter_config.json missing)",
                       "pick a checkpoint folder under checkpoints/ or the run's final/ folder")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file():
            shutil.copy2(item, out / item.name)
    if not (out / "tokenizer.json").exists():
        ctx.hf_tokenizer().save_pretrained(str(out))
    return out


def export_merged(run_dir: str | Path, out: str | Path, checkpoint: str | Path | None = None) -> Path:
    """A standalone model folder: the adapter merged into the base weights (or the full model).

    Raises:
        StudioError: for prefix, prompt and P-tuning, whose virtual tokens cannot be merged
            into weights.
    """
    ctx = _context(run_dir)
    method = ctx.cfg.method.name
    if method in PROMPT_METHODS:
        raise StudioError(f"a {method}-tuning run cannot be exported as a merged model: its virtual tokens are "
                          "extra inputs, not changes to the weights",
                          "export the adapter with --adapter OUT and load it with PEFT on top of the base model")
    source = _source(ctx, checkpoint)
    model = _merged_model(ctx, source, method)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _set_generation_stops(ctx, model)
    model.save_pretrained(str(out))
    ctx.hf_tokenizer().save_pretrained(str(out))
    return out


def _merged_model(ctx, source: Path, method: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    # A reward run's model is a one-output sequence classifier (its score head trained too).
    reward = ctx.cfg.train.objective == "reward"
    auto, extra = (AutoModelForSequenceClassification, {"num_labels": 1}) if reward else (AutoModelForCausalLM, {})
    if method in ("full", "freeze"):
        if (source / "config.json").exists():
            return auto.from_pretrained(str(source), dtype=torch.float32)
        raise RunError(f"{source} holds no full model", "export from the run's final/ folder")
    from peft import PeftModel

    # QLoRA adapters are merged into the unquantised base, so the export is a normal model.
    base = auto.from_pretrained(str(ctx.model_path), dtype=torch.float32,
                                trust_remote_code=ctx.cfg.model.trust_remote_code, **extra)
    if reward:
        base.config.pad_token_id = ctx.pad.id  # the score is read at the last non-pad token
    return PeftModel.from_pretrained(base, str(source)).merge_and_unload()
