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


def save_final(ctx, model, state_dict: dict | None = None) -> Path:
    """Write ``ctx.final_dir``: weights (adapter or full), tokenizer, template and a manifest.

    ``state_dict``: the model's full weights when they were gathered from a sharded model.
    """
    out = ctx.final_dir
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    adapter = hasattr(model, "peft_config")
    if not adapter:
        _set_generation_stops(ctx, model)
    model.save_pretrained(str(out), state_dict=state_dict)
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
        folder = folder / "adapter" if (folder / "adapter").is_dir() else folder
        if not ((folder / "adapter_config.json").exists() or (folder / "config.json").exists()):
            raise RunError(f"{checkpoint} holds no adapter or model to export",
                           "pass a checkpoint folder such as RUN_DIR/checkpoints/step-000050")
        return folder
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


def export_gguf(run_dir: str | Path, out: str | Path, quant: str = "f16", checkpoint: str | Path | None = None,
                say=None, progress=None) -> dict:
    """Merge the run's weights and write ``out/NAME-QUANT.gguf``, a Modelfile, a README and the check's report.

    Args:
        say: called with one sentence per stage (shown by the CLI and the window).
        progress: called with (done, total, tensor name) as tensors are written.

    Returns:
        the check's report, with ``gguf``, ``modelfile``, ``readme`` and ``ollama_create`` added.

    Raises:
        StudioError: for reward-model and prompt-method runs, unsupported architectures or
            tokenizers, unknown quantizations, and k-quants without llama-quantize.
    """
    from studio.worker import gguf_export

    say = say or (lambda _t: None)
    ctx = _context(run_dir)
    quant = gguf_export.check_quant(quant)
    _refuse_for_gguf(ctx)
    interleave = gguf_export.gguf_architecture(_model_config(ctx))[1]
    specials = _gguf_specials(ctx)
    source = _source(ctx, checkpoint)
    if ctx.cfg.method.name == "qlora":
        say("QLoRA run: merging the adapter into the base model's unquantized weights (not the 4-bit copy it "
            "trained against), so the export keeps full precision until the chosen quantization")
    say(f"merging {source}")
    model = _merged_model(ctx, source, ctx.cfg.method.name).eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = _write_gguf_file(ctx, model, out, quant, specials, say, progress)
    files = _write_ollama_files(ctx, out, path.name)
    from studio.worker.gguf_check import CHECK_FILE, run_check

    say("checking the export")
    report = run_check(ctx, path, model, quant, interleave, files["modelfile_text"], say=say)
    report.update(gguf=str(path), modelfile=files["modelfile"], readme=files["readme"],
                  ollama_create=files["ollama_create"])
    _finish_readme(files, report)
    (out / CHECK_FILE).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


def _refuse_for_gguf(ctx) -> None:
    if ctx.cfg.train.objective == "reward":
        raise StudioError("a reward-model run cannot be exported as GGUF: its model scores a whole text with one "
                          "number (a classification head), while llama.cpp, Ollama and LM Studio run models that "
                          "generate text",
                          "export it with --merged OUT and load it with AutoModelForSequenceClassification")
    if ctx.cfg.method.name in PROMPT_METHODS:
        raise StudioError(f"a {ctx.cfg.method.name}-tuning run cannot be exported as GGUF: its virtual tokens are "
                          "extra inputs, not changes to the weights",
                          "export the adapter with --adapter OUT and load it with PEFT on top of the base model")


def _model_config(ctx):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(ctx.model_path), trust_remote_code=ctx.cfg.model.trust_remote_code)


def _gguf_specials(ctx):
    from studio.worker.gguf_special import special_ids

    ids = special_ids(ctx)
    if ids.eos is None:
        raise StudioError(f"the chat template {ctx.template.name!r} ends assistant turns with no special token and the "
                          "tokenizer has no EOS token, so llama.cpp and Ollama would not know where an answer ends",
                          "train with a template that closes each turn with a special token (model.template)")
    return ids


def _write_gguf_file(ctx, model, out: Path, quant: str, specials, say, progress) -> Path:
    from studio.core.ollama import model_name
    from studio.worker import gguf_export

    name = model_name(ctx.cfg.name or ctx.run_dir.name)
    path = out / f"{name}-{quant}.gguf"
    plan = gguf_export.GGUFPlan(quant="f16" if quant in gguf_export.KQUANTS else quant,
                                template=ctx.template.source, specials=specials, name=name)
    tokenizer_json = ctx.model_path / "tokenizer.json"
    if quant in gguf_export.KQUANTS:
        f16 = out / f"{name}-f16.gguf"
        say(f"writing {f16.name}, then quantizing it to {quant} with llama-quantize")
        gguf_export.write_gguf(f16, model, tokenizer_json, plan, progress)
        gguf_export.kquantize(f16, path, quant)
        f16.unlink()
        return path
    say(f"writing {path.name}")
    return gguf_export.write_gguf(path, model, tokenizer_json, plan, progress)


def _shared_system_prompt(examples: list) -> str | None:
    """The system message every training row starts with, if they all share one."""
    firsts = {ex.messages[0].content if ex.messages and ex.messages[0].role == "system" else None for ex in examples}
    return firsts.pop() if len(firsts) == 1 else None


def _write_ollama_files(ctx, out: Path, gguf_name: str) -> dict:
    from studio.core import ollama
    from studio.worker.gguf_special import special_ids

    tok = ctx.tokenizer
    strip = tok.bos_token if special_ids(ctx).add_bos else None
    go = ollama.ollama_template(ctx.template, strip_bos=strip)
    stops = ollama.stop_tokens(ctx.template, sorted(set(tok.special_tokens) | set(tok.added_tokens)), tok.eos_token)
    # raw text has no system message (and a corpus read as a stream is not read again here)
    system = None if ctx.text_source("data.train") is not None else _shared_system_prompt(ctx.train_examples)
    text = ollama.modelfile(gguf_name, go, stops, system)
    path = out / "Modelfile"
    path.write_text(text, encoding="utf-8")
    name = ollama.model_name(ctx.cfg.name or ctx.run_dir.name)
    return {"modelfile": str(path), "modelfile_text": text, "readme": str(out / "README.md"), "name": name,
            "ollama_create": ollama.create_command(name, str(path.resolve())), "stops": stops, "gguf_name": gguf_name}


def _finish_readme(files: dict, report: dict) -> None:
    from studio.core import ollama

    text = ollama.readme(files["name"], files["gguf_name"], str(Path(files["modelfile"]).resolve()), files["stops"],
                         report["verdict"])
    Path(files["readme"]).write_text(text, encoding="utf-8")
