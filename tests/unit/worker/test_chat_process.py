"""python -m studio.worker.chat: JSON lines in, answers of the run's model and its base out."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from studio.core.errors import ModelError
from studio.worker.chat import final_folder, handle

ROOT = Path(__file__).resolve().parents[3]


def test_final_folder_accepts_a_run_or_its_final_and_explains_otherwise(tmp_path):
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "studio.json").write_text("{}")
    assert final_folder(tmp_path) == tmp_path / "final"
    assert final_folder(tmp_path / "final") == tmp_path / "final"
    with pytest.raises(ModelError) as err:
        final_folder(tmp_path / "elsewhere")
    assert "no trained model" in err.value.message and "completed" in err.value.hint


def test_a_reward_model_is_refused_with_the_reason(tmp_path):
    from studio.worker.chat import ChatModel

    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "studio.json").write_text('{"kind": "adapter", "task": "reward", "base_model": "x"}')
    with pytest.raises(ModelError) as err:
        ChatModel(tmp_path)
    assert "reward model" in err.value.message and "SFT" in err.value.hint


def test_bad_requests_get_error_replies_not_a_crash():
    class Broken:
        def answer(self, messages, which, limit):
            raise RuntimeError("boom")

    out = io.StringIO()
    for line in ('not json', '{"id": 4, "which": "other", "messages": []}', '{"id": 5, "messages": []}'):
        handle(Broken(), line, out)
    replies = [json.loads(r) for r in out.getvalue().splitlines()]
    assert [r["type"] for r in replies] == ["error", "error", "error"]
    assert replies[1]["id"] == 4 and "unknown model" in replies[1]["error"]
    assert replies[2]["id"] == 5 and "generation failed: boom" in replies[2]["error"]
    assert all(r["v"] == 1 and r["hint"] for r in replies)


@pytest.mark.slow
def test_full_model_run_answers_as_itself_and_as_its_base(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "tests" / "fixtures" / "make_chat_run.py"), str(tmp_path), "--full"],
                   check=True, capture_output=True, timeout=300)
    ask = [{"id": i, "which": which, "max_new_tokens": 5, "messages": [{"role": "user", "content": "Lisbon?"}]}
           for i, which in enumerate(("tuned", "base"), start=1)]
    done = subprocess.run([sys.executable, "-m", "studio.worker.chat", str(tmp_path / "run")], cwd=ROOT,
                          input="\n".join(json.dumps(a) for a in ask) + "\n", capture_output=True, text=True,
                          timeout=300)
    replies = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, done.stderr[-2000:]
    assert replies[0]["type"] == "ready" and replies[0]["kind"] == "model"
    answers = {r["which"]: r for r in replies if r["type"] == "answer"}
    assert answers["tuned"]["tokens"] == answers["base"]["tokens"] == 5
    assert answers["tuned"]["text"] != answers["base"]["text"]  # two different weight sets answered
