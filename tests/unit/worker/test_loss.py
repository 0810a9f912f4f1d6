"""The chunked causal-LM loss matches the plain full-logits loss, value and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from studio.worker import loss as loss_module
from studio.worker.loss import CHUNK_BYTES, auto_chunk_rows, chunked_causal_lm_loss, per_token_losses


@pytest.fixture(params=["eager", "fused"])
def softmax_path(request, monkeypatch):
    """Each test of the loss runs with the eager softmax passes and with the compiled one (which is
    otherwise used only for vocabularies of FUSED_MIN_VOCAB tokens and more)."""
    if request.param == "fused":
        monkeypatch.setattr(loss_module, "FUSED_MIN_VOCAB", 0)
        monkeypatch.delenv("STUDIO_FUSED_LOSS", raising=False)
    else:
        monkeypatch.setenv("STUDIO_FUSED_LOSS", "0")
    yield request.param
    if request.param == "fused":  # it must really have run compiled, not fallen back to eager
        assert loss_module._FUSED.get("fn") is not None


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
def test_value_and_gradients_match_full_logits(chunk, reduction, softmax_path):
    hidden, weight, labels = _case()
    ref = _reference(hidden, weight, labels, reduction)
    ref_gh, ref_gw = torch.autograd.grad(ref, (hidden, weight))
    loss = chunked_causal_lm_loss(hidden, weight, labels, chunk_size=chunk, reduction=reduction)
    gh, gw = torch.autograd.grad(loss, (hidden, weight))
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(gh, ref_gh)
    torch.testing.assert_close(gw, ref_gw)


def test_frozen_head_gets_no_gradient_and_hidden_still_does(softmax_path):
    hidden, weight, labels = _case()
    weight.requires_grad_(False)
    loss = chunked_causal_lm_loss(hidden, weight, labels, chunk_size=5)
    loss.backward()
    assert weight.grad is None and hidden.grad is not None and hidden.grad.abs().sum() > 0


def test_all_ignored_gives_zero_and_no_error(softmax_path):
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


def test_bf16_autocast_is_close_to_fp32(softmax_path):
    hidden, weight, labels = _case(vocab=300, dim=32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = chunked_causal_lm_loss(hidden, weight, labels, chunk_size=4)
    assert loss.dtype == torch.float32
    assert abs(loss.item() - _reference(hidden, weight, labels).item()) < 0.1


def test_output_bias_value_and_gradients_match(softmax_path):
    hidden, weight, labels = _case(vocab=40)
    bias = torch.randn(40, requires_grad=True)
    logits = (hidden @ weight.t() + bias)[:, :-1]
    ref = F.cross_entropy(logits.reshape(-1, 40), labels[:, 1:].reshape(-1), ignore_index=-100)
    ref_grads = torch.autograd.grad(ref, (hidden, weight, bias))
    loss = chunked_causal_lm_loss(hidden, weight, labels, chunk_size=3, bias=bias)
    grads = torch.autograd.grad(loss, (hidden, weight, bias))
    torch.testing.assert_close(loss, ref)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)


def test_large_logits_stay_finite_and_exact(softmax_path):
    """Logit gaps of hundreds (a confident model) must not overflow the in-place softmax."""
    hidden, weight, labels = _case(vocab=64, dim=8)
    with torch.no_grad():
        hidden.mul_(40.0)
    ref = _reference(hidden, weight, labels)
    ref_gh, = torch.autograd.grad(ref, (hidden,))
    loss = chunked_causal_lm_loss(hidden, weight, labels, chunk_size=2)
    gh, = torch.autograd.grad(loss, (hidden,))
    assert torch.isfinite(loss) and ref.item() > 50
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(gh, ref_gh)


def test_default_chunk_is_sized_by_bytes_for_a_llama3_vocabulary():
    rows = auto_chunk_rows(128256)
    assert 128 <= rows <= 512 and rows * 128256 * 4 <= CHUNK_BYTES
    assert auto_chunk_rows(10) == 4096 and auto_chunk_rows(10**9) == 16


def test_llama3_sized_vocabulary_matches_plain_cross_entropy():
    """A batch shaped like real training (vocab 128,256, two rows, prompt tokens unlabelled), fp32."""
    g = torch.Generator().manual_seed(1)
    hidden = (torch.randn(2, 300, 16, generator=g) * 0.5).requires_grad_()
    weight = (torch.randn(128256, 16, generator=g) * 0.5).requires_grad_()
    labels = torch.randint(0, 128256, (2, 300), generator=g)
    labels[:, :120] = -100
    ref = _reference(hidden, weight, labels)
    ref_gh, ref_gw = torch.autograd.grad(ref, (hidden, weight))
    loss = chunked_causal_lm_loss(hidden, weight, labels)
    gh, gw = torch.autograd.grad(loss, (hidden, weight))
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(gh, ref_gh)
    torch.testing.assert_close(gw, ref_gw)


def test_bf16_autocast_gradients_point_the_same_way_as_fp32(softmax_path):
    hidden, weight, labels = _case(vocab=300, dim=32)
    ref_gh, = torch.autograd.grad(_reference(hidden, weight, labels), (hidden,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = chunked_causal_lm_loss(hidden, weight, labels, chunk_size=4)
    gh, = torch.autograd.grad(loss, (hidden,))
    assert gh.dtype == torch.float32
    cosine = F.cosine_similarity(gh.flatten(), ref_gh.flatten(), dim=0)
    assert cosine > 0.999 and (gh.norm() / ref_gh.norm() - 1).abs() < 0.02


def test_the_loss_sees_few_matrix_shapes_however_many_tokens_carry_loss():
    """Every new matmul shape costs oneDNN a cached kernel (and the allocator a new block size):
    a run whose loss-token count changed every step grew by ~1 MiB a step. Counts from 1 to 64
    must reach the head's products as two row counts only (rounded up to 32 rows)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Shapes(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.rows = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten.mm.default and 300 in (args[0].shape[-1], args[1].shape[-1]):
                self.rows.add(args[0].shape[0])  # the head's products: logits, and their gradient @ W
            return func(*args, **(kwargs or {}))

    g = torch.Generator().manual_seed(3)
    weight = torch.randn(300, 8, generator=g)
    seen = Shapes()
    for n in range(1, 65):
        hidden = torch.randn(1, n + 1, 8, generator=g, requires_grad=True)
        labels = torch.randint(0, 300, (1, n + 1), generator=g)
        with seen:
            chunked_causal_lm_loss(hidden, weight, labels).backward()
    assert seen.rows == {32, 64}, seen.rows


def test_a_large_vocabulary_takes_the_compiled_softmax_and_matches_the_eager_one(monkeypatch):
    """From FUSED_MIN_VOCAB up the fused function runs (compiled here: the machines that test have a
    C++ compiler), and under bf16 autocast gives the eager passes' loss and hidden-state gradient."""
    g = torch.Generator().manual_seed(4)
    hidden = torch.randn(1, 70, 32, generator=g, requires_grad=True)
    weight = torch.randn(loss_module.FUSED_MIN_VOCAB, 32, generator=g) * 0.3
    labels = torch.randint(0, weight.shape[0], (1, 70), generator=g)
    labels[0, :10] = -100
    calls = []
    real = loss_module.fused_softmax_cross_entropy
    monkeypatch.setattr(loss_module, "fused_softmax_cross_entropy", lambda: calls.append(1) or real())
    results = []
    for fused in ("1", "0"):
        monkeypatch.setenv("STUDIO_FUSED_LOSS", fused)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = chunked_causal_lm_loss(hidden, weight, labels, chunk_size=32)
        results.append((loss, *torch.autograd.grad(loss, (hidden,))))
    assert calls and loss_module._FUSED.get("fn") is not None
    (fused_loss, fused_grad), (eager_loss, eager_grad) = results
    torch.testing.assert_close(fused_loss, eager_loss, rtol=1e-6, atol=1e-5)
    # The eager path rounds softmax to bf16 before subtracting 1 at the target; the fused one after.
    torch.testing.assert_close(fused_grad, eager_grad, rtol=0.02, atol=1e-4)


def test_without_a_compiler_the_loss_warns_once_and_falls_back_to_eager(monkeypatch, caplog):
    def broken(logits, targets):
        raise RuntimeError("InductorError: CppCompileError: C++ compile error\n(no g++)")

    monkeypatch.setattr(loss_module, "FUSED_MIN_VOCAB", 0)
    monkeypatch.delenv("STUDIO_FUSED_LOSS", raising=False)
    monkeypatch.setitem(loss_module._FUSED, "fn", broken)
    hidden, weight, labels = _case()
    ref = _reference(hidden, weight, labels)
    with caplog.at_level("WARNING", logger="studio.worker"):
        loss = chunked_causal_lm_loss(hidden, weight, labels, chunk_size=4)
        chunked_causal_lm_loss(hidden, weight, labels, chunk_size=4)
    torch.testing.assert_close(loss, ref)
    warnings = [r.getMessage() for r in caplog.records if "fused loss could not be compiled" in r.getMessage()]
    assert len(warnings) == 1 and "CppCompileError" in warnings[0]
    assert loss_module._FUSED["fn"] is None
