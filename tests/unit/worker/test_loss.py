"""The chunked causal-LM loss matches the plain full-logits loss, value and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from studio.worker.loss import chunked_causal_lm_loss, per_token_losses


def _reference(hidden, weight, labels, reduction="mean"):
    logits = (hidden @ weight.t()).float()[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                           ignore_index=-100, reduction=reduction)


def _case(seed=0, vocab=50, dim=8):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(3, 7, dim, generator=g, requires_grad=True)
    weight = torch.randn(vocab, dim, generator=g, requires_grad=True)
    labels = torch.randint(0, vocab, (3, 7), generator=g)
    labels[0, :4] = -100
    labels[2, 5:] = -100
    return hidden, weight, labels


@pytest.mark.parametrize("chunk", [1, 4, 1000])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_value_and_gradients_match_full_logits(chunk, reduction):
    hidden, weight, labels = _case()
    ref = _reference(hidden, weight, labels, reduction)
    ref_gh, ref_gw = torch.autograd.grad(ref, (hidden, weight))
    loss = chunked_causal_lm_loss(hidden, weight, labels, chunk_size=chunk, reduction=reduction)
    gh, gw = torch.autograd.grad(loss, (hidden, weight))
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(gh, ref_gh)
    torch.testing.assert_close(gw, ref_gw)


def test_frozen_head_gets_no_gradient_and_hidden_still_does():
    hidden, weight, labels = _case()
    weight.requires_grad_(False)
    loss = chunked_causal_lm_loss(hidden, weight, labels, chunk_size=5)
    loss.backward()
    assert weight.grad is None and hidden.grad is not None and hidden.grad.abs().sum() > 0


def test_all_ignored_gives_zero_and_no_error():
    hidden, weight, labels = _case()
    labels[:] = -100
    loss = chunked_causal_lm_loss(hidden, weight, labels)
    loss.backward()
    assert loss.item() == 0.0


def test_per_token_losses_sum_to_the_loss_without_grad():
    hidden, weight, labels = _case()
    per = per_token_losses(hidden, weight, labels, chunk_size=3)
    assert per.shape == (3, 6) and not per.requires_grad
    torch.testing.assert_close(per.sum(), _reference(hidden, weight, labels, "sum").detach())


def test_bf16_autocast_is_close_to_fp32():
    hidden, weight, labels = _case(vocab=300, dim=32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = chunked_causal_lm_loss(hidden, weight, labels, chunk_size=4)
    assert loss.dtype == torch.float32
    assert abs(loss.item() - _reference(hidden, weight, labels).item()) < 0.1
