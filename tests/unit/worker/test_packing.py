"""A packed, padding-free row gives every token the same loss as the rows run separately.

transformers 5 builds a block-diagonal attention mask from ``position_ids`` that restart at 0
when no attention mask is passed and no cache is used; the SFT recipe relies on that.
"""

from __future__ import annotations

import pytest
import torch

from studio.core import config as configmod
from studio.core.conversation import Example, Message
from studio.worker.context import RunContext
from studio.worker.loss import per_token_losses
from studio.worker.recipes.sft import hidden_states_only, stack_packs, to_tensors

from worker_runs import make_run_dir

CHATS = [
    [("user", "Best time to visit Lisbon?"), ("assistant", "Spring: mild weather and fewer crowds.")],
    [("system", "Be brief."), ("user", "Pack for Oslo in winter?"), ("assistant", "Layers, a warm coat and boots.")],
    [("user", "Is Rome walkable?"), ("assistant", "Yes, the centre is compact."), ("user", "And at night?"),
     ("assistant", "Mostly, but take a taxi back late.")],
]


@pytest.fixture()
def setup(tmp_path, tiny_model):
    run_dir = make_run_dir(tmp_path, tiny_model, {"method.name": "full"})
    ctx = RunContext(configmod.load(run_dir / "config.yaml"), run_dir)
    model = ctx.load_model().eval()
    examples = [Example(i + 1, [Message(r, c) for r, c in chat]) for i, chat in enumerate(CHATS)]
    return ctx, model, ctx.encoder().encode_many(examples)


def _token_losses(model, batch: dict, pass_positions: bool = True) -> torch.Tensor:
    with torch.no_grad(), hidden_states_only(model.get_output_embeddings()):
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=batch["position_ids"] if pass_positions else None, use_cache=False).logits
    return per_token_losses(hidden, model.get_output_embeddings().weight, batch["labels"])


def _collate(ctx, rows, strategy):
    from studio.core.encoding import PadOptions, collate

    return to_tensors(collate(rows, PadOptions(strategy=strategy, pad_id=ctx.pad.id)), "cpu")


def _losses_per_row(ctx, model, rows, strategy, **kw) -> list[torch.Tensor]:
    batch = _collate(ctx, rows, strategy)
    losses = _token_losses(model, batch, **kw)
    keep = batch["labels"][:, 1:] != -100
    if strategy == "packing":
        flat, mask = losses[0], keep[0]
        bounds = torch.tensor([0] + [len(r.input_ids) for r in rows]).cumsum(0)
        # Prediction t-1 -> token t: row i owns predictions bounds[i]..bounds[i+1]-2.
        return [flat[bounds[i]:bounds[i + 1] - 1][mask[bounds[i]:bounds[i + 1] - 1]] for i in range(len(rows))]
    return [losses[i][keep[i]] for i in range(len(rows))]


def test_packed_row_equals_rows_run_separately(setup):
    ctx, model, rows = setup
    packed = _losses_per_row(ctx, model, rows, "packing")
    alone = [_losses_per_row(ctx, model, [r], "longest")[0] for r in rows]
    padded = _losses_per_row(ctx, model, rows, "longest")
    for p, a, b in zip(packed, alone, padded):
        assert p.numel() == a.numel() > 0
        torch.testing.assert_close(p, a, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_without_restarting_positions_the_rows_would_contaminate_each_other(setup):
    ctx, model, rows = setup
    batch = _collate(ctx, rows, "packing")
    contaminated = _token_losses(model, batch, pass_positions=False)
    separate = _token_losses(model, batch)
    assert not torch.allclose(contaminated, separate, atol=1e-4), "the test must be able to see cross-row attention"


def test_stacked_packs_equal_rows_run_separately(setup):
    """The recipe trains ``batch_size`` packs as batch rows; padding between them must not leak."""
    from studio.core.encoding import PadOptions, collate

    ctx, model, rows = setup
    opts = PadOptions(strategy="packing", pad_id=ctx.pad.id)
    batch = to_tensors(stack_packs([collate([rows[2]], opts), collate([rows[0], rows[1]], opts)], ctx.pad.id), "cpu")
    assert batch["attention_mask"] is None and batch["input_ids"].shape[0] == 2
    losses = _token_losses(model, batch)
    keep = batch["labels"][:, 1:] != -100
    alone = [_losses_per_row(ctx, model, [r], "longest")[0] for r in rows]
    torch.testing.assert_close(losses[0][keep[0]], alone[2], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(losses[1][keep[1]], torch.cat([alone[0], alone[1]]), atol=1e-5, rtol=1e-4)
