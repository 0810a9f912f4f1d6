"""Causal LM cross-entropy that never holds full-vocabulary logits for every position.

With a 128k-token vocabulary, the logits of one 4k-token row are 2 GiB in fp32; the usual
``lm_head(hidden)`` + ``cross_entropy`` keeps them (and their gradient) alive for the whole
backward pass. Here only positions that carry loss are projected, ``chunk_size`` rows at a
time, and the gradients for the hidden states and the head are computed in the same pass, so
peak memory is one chunk of logits. The chunk is sized by bytes (``CHUNK_BYTES``), not rows, so a
128k vocabulary gets ~130 rows per chunk and a 32k one ~500.

On CUDA, when the ``liger-kernel`` package is installed, Liger's fused linear cross-entropy
(Triton) does the same job faster; set ``STUDIO_LIGER=0`` to keep the chunked path.

On CPU with a large vocabulary, the passes over each chunk's logits (log-softmax, exp, the
write of the gradient in the matmul dtype, the target's -1) cost as much as the head's matrix
products; they are fused into one compiled function (:func:`softmax_cross_entropy`, inductor's
C++ backend), about six times faster on a 128k vocabulary. It needs a C++ compiler at run time
and costs a one-off compile (~10 s, 30 s with a cold cache, on two cores), so it is used only
from :data:`FUSED_MIN_VOCAB` tokens up; without a compiler, or with ``STUDIO_FUSED_LOSS=0``, the
eager passes run instead (same values).
"""

from __future__ import annotations

import logging
import os

import torch
import torch.nn.functional as F

IGNORE = -100

log = logging.getLogger("studio.worker")

#: The smallest vocabulary for which the chunk's softmax and gradient are compiled into one pass
#: (Llama 2 and Mistral have 32,000 tokens; Llama 3 128,256). Below it the passes are cheap next
#: to the compile.
FUSED_MIN_VOCAB = 32000

#: Bytes of fp32 logits one chunk may hold. The eager passes' peak working memory is about twice
#: this (the bf16 logits and gradient beside the fp32 log-probabilities); the fused function holds
#: only the bf16 logits and gradient, about this. 64 MiB measured as fast as 128 MiB on a 2-core
#: CPU and cut a training step's peak RSS by ~140 MiB; 32 MiB was ~10 % slower.
CHUNK_BYTES = 64 * 1024 * 1024


#: The rows handed to the chunked loss are padded to a multiple of this. The loss-carrying
#: positions of a step are a new count almost every step, and every new matrix shape costs the
#: CPU's matmul library (oneDNN) a compiled kernel it caches, and the allocator a new size
#: class: a demo run grew by ~1 MiB a step that way. With the count rounded up, a run sees at
#: most ``chunk rows / ROW_BUCKET`` shapes; the padding rows (at most 31 per step) have no target.
ROW_BUCKET = 32


def auto_chunk_rows(vocab_size: int, budget: int = CHUNK_BYTES) -> int:
    """Rows of fp32 logits that fit in ``budget`` bytes (at least 16, at most 4096), a multiple of
    :data:`ROW_BUCKET` where possible, so the last chunk of a step is one of few shapes too."""
    rows = min(4096, budget // (4 * max(vocab_size, 1)))
    return max(16, rows - rows % ROW_BUCKET if rows >= ROW_BUCKET else rows)


def chunked_causal_lm_loss(hidden: torch.Tensor, lm_head_weight: torch.Tensor, labels: torch.Tensor,
                           chunk_size: int | None = None, reduction: str = "mean", bias: torch.Tensor | None = None,
                           ) -> torch.Tensor:
    """Next-token cross-entropy from the last hidden states.

    Args:
        hidden: ``(batch, seq, hidden)`` final hidden states (after the last norm).
        lm_head_weight: ``(vocab, hidden)`` output projection.
        labels: ``(batch, seq)`` token ids aligned with ``hidden``'s input; ``-100`` = no loss.
            Position ``t`` is predicted from hidden state ``t - 1`` (the usual shift).
        chunk_size: rows of logits computed at once; ``None`` sizes it by :data:`CHUNK_BYTES`.
        reduction: ``"mean"`` over loss-carrying tokens, or ``"sum"`` (for gradient
            accumulation normalised by the tokens of the whole optimizer step).
        bias: optional output bias.

    Returns:
        A scalar loss (0 with no loss-carrying token, still differentiable).
    """
    h = hidden[:, :-1, :].reshape(-1, hidden.shape[-1])
    targets = labels[:, 1:].reshape(-1)
    keep = (targets != IGNORE).nonzero(as_tuple=True)[0]
    h, targets = h.index_select(0, keep), targets.index_select(0, keep)
    denom = max(int(keep.numel()), 1) if reduction == "mean" else 1
    if keep.numel() == 0:
        return hidden.sum() * 0.0
    compute_dtype = _compute_dtype(hidden)
    chunk_size = chunk_size or auto_chunk_rows(lm_head_weight.shape[0])
    if use_liger(hidden):
        return _liger_loss(h, lm_head_weight, targets, bias, compute_dtype) / denom
    h, targets = _pad_rows(h, targets, ROW_BUCKET)
    if torch.is_grad_enabled() and (h.requires_grad or lm_head_weight.requires_grad):
        return _ChunkedCrossEntropy.apply(h, lm_head_weight, targets, bias, chunk_size, denom, compute_dtype,
                                          int(keep.numel()))
    return _loss_only(h, lm_head_weight, targets, bias, chunk_size, compute_dtype) / denom


def per_token_losses(hidden: torch.Tensor, lm_head_weight: torch.Tensor, labels: torch.Tensor,
                     chunk_size: int | None = None) -> torch.Tensor:
    """``(batch, seq - 1)`` loss of every predicted position (0 where the label is -100); no gradient."""
    chunk_size = chunk_size or auto_chunk_rows(lm_head_weight.shape[0])
    with torch.no_grad():
        flat = hidden[:, :-1, :].reshape(-1, hidden.shape[-1])
        targets = labels[:, 1:].reshape(-1)
        out = torch.zeros(targets.shape, dtype=torch.float32, device=hidden.device)
        dtype = _compute_dtype(hidden)
        for start in range(0, flat.shape[0], chunk_size):
            t = targets[start:start + chunk_size]
            logits = _logits(flat[start:start + chunk_size], lm_head_weight, None, dtype)
            out[start:start + chunk_size] = F.cross_entropy(logits, t.clamp(min=0), reduction="none") * (t != IGNORE)
        return out.view(labels.shape[0], -1)


def use_liger(hidden: torch.Tensor) -> bool:
    """Whether Liger's fused linear cross-entropy takes over (CUDA, installed, not switched off)."""
    if hidden.device.type != "cuda" or os.environ.get("STUDIO_LIGER", "1") == "0":
        return False
    try:
        import liger_kernel.transformers  # noqa: F401
    except ImportError:
        return False
    return True


def _liger_loss(h, weight, targets, bias, dtype) -> torch.Tensor:
    """Summed loss by Liger's fused kernel (it also never materialises all logits)."""
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    fused = LigerFusedLinearCrossEntropyLoss(reduction="sum")
    with torch.autocast(h.device.type, enabled=False):
        return fused(weight.to(dtype), h.to(dtype), targets, None if bias is None else bias.to(dtype)).float()


def _pad_rows(h: torch.Tensor, targets: torch.Tensor, multiple: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``h`` and ``targets`` with zero rows and ``IGNORE`` targets appended up to a multiple of ``multiple``."""
    extra = -h.shape[0] % multiple
    if not extra:
        return h, targets
    return F.pad(h, (0, 0, 0, extra)), F.pad(targets, (0, extra), value=IGNORE)


def _compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    """The matmul dtype: the autocast dtype when autocast is on (bf16 on CPU), else the hidden dtype."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return hidden.dtype


def _logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """fp32 logits of a chunk, the matmul done in ``dtype``."""
    with torch.autocast(h.device.type, enabled=False):
        logits = h.to(dtype) @ weight.to(dtype).t()
        if bias is not None:
            logits = logits + bias.to(dtype)
    return logits.float()


def softmax_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy of a chunk's rows and its gradient by the logits, in one pass each.

    Computed in fp32 from ``logits`` (any float dtype); the gradient, ``softmax - one_hot``, is
    returned in ``logits.dtype``. A row whose target is ``IGNORE`` adds 0 and gets a zero
    gradient. This is the function :func:`fused_softmax_cross_entropy` compiles: inductor turns
    it into a row reduction (max, sum of exponentials) and one write of the gradient, where
    eager torch takes a conversion, a log-softmax, an exp and another conversion.
    """
    x = logits.float()
    top = x.amax(-1, keepdim=True)
    e = torch.exp(x - top)
    norm = e.sum(-1, keepdim=True)
    valid = targets != IGNORE
    t = targets.clamp(min=0)[:, None]
    loss = torch.where(valid, (top + torch.log(norm) - x.gather(1, t)).squeeze(1), 0.0).sum()
    hit = torch.arange(x.shape[1], device=x.device)[None, :] == t
    grad = torch.where(valid[:, None], e / norm - hit.to(e.dtype), 0.0)
    return loss, grad.to(logits.dtype)


_FUSED: dict = {}  # "fn": the compiled softmax_cross_entropy, or None once it could not be built


def fused_softmax_cross_entropy():
    """:func:`softmax_cross_entropy` compiled by inductor (shapes dynamic), or ``None`` when switched
    off (``STUDIO_FUSED_LOSS=0``) or when compiling failed once in this process."""
    if os.environ.get("STUDIO_FUSED_LOSS", "1") == "0":
        return None
    if "fn" not in _FUSED:
        _FUSED["fn"] = torch.compile(softmax_cross_entropy, dynamic=True, fullgraph=True)
    return _FUSED["fn"]


def _softmax_and_gradient(logits: torch.Tensor, targets: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss of the first ``rows`` rows and the logits' gradient (zero below ``rows``)."""
    fused = fused_softmax_cross_entropy() if logits.device.type == "cpu" and logits.shape[1] >= FUSED_MIN_VOCAB else None
    if fused is not None:
        try:
            return fused(logits, targets)
        except Exception as exc:  # no C++ compiler, an unsupported platform: the eager passes still work
            _FUSED["fn"] = None
            log.warning("the fused loss could not be compiled (%s: %s); the eager loss is used, which is slower",
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
    # log_softmax reads the logits once and writes fp32; the softmax is then built in place, so a
    # chunk costs a few passes and at most two buffers.
    log_probs = torch.log_softmax(logits, dim=-1, dtype=torch.float32)
    loss = -log_probs[:rows].gather(1, targets[:rows, None]).sum()
    grad = log_probs.exp_().to(logits.dtype)
    del log_probs
    grad[rows:] = 0
    grad[torch.arange(rows, device=grad.device), targets[:rows]] -= 1.0
    return loss, grad


def _loss_only(h, weight, targets, bias, chunk_size, dtype) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float32, device=h.device)
    for start in range(0, h.shape[0], chunk_size):
        logits = _logits(h[start:start + chunk_size], weight, bias, dtype)
        total = total + F.cross_entropy(logits, targets[start:start + chunk_size], reduction="sum")
    return total


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Loss and its gradients in one chunked pass (the backward only scales stored gradients).

    d loss / d logits = softmax(logits) - one_hot(target), divided by the token count; from it
    the chunk's hidden-state gradient (``g @ W``) and head gradient (``g.T @ h``) follow, so no
    chunk's logits outlive its loop iteration. ``g`` is held in the matmul dtype (bf16 under
    autocast), the precision the matmuls that consume it run in anyway.
    """

    @staticmethod
    def forward(ctx, h, weight, targets, bias, chunk_size, denom, dtype, n_real):
        need_h, need_w = h.requires_grad, weight.requires_grad
        need_b = bias is not None and bias.requires_grad
        grad_h = torch.zeros_like(h) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        grad_b = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if need_b else None
        w = weight.to(dtype)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        with torch.autocast(h.device.type, enabled=False):
            for start in range(0, max(n_real, 1), chunk_size):  # chunks of padding only are skipped
                h_c, t_c = h[start:start + chunk_size].to(dtype), targets[start:start + chunk_size]
                logits = h_c @ w.t()
                if bias is not None:
                    logits = logits + bias.to(dtype)
                # log_softmax reads the (bf16) logits once and writes fp32; the softmax is then
                # built in place, so a chunk costs a few passes and at most two buffers.
                rows = min(t_c.shape[0], n_real - start)  # padding rows are at the end (no target)
                part, g = _softmax_and_gradient(logits, t_c, rows)
                del logits
                total += part
                if need_h:
                    # 1/denom applied to the small (rows x hidden) product, not the chunk's logits.
                    grad_h[start:start + chunk_size] = ((g @ w) / denom).to(h.dtype)
                if need_w:
                    grad_w += g.t().mm(h_c).float() / denom
                if need_b:
                    grad_b += g.float().sum(0) / denom
        ctx.save_for_backward(*(t for t in (grad_h, grad_w, grad_b) if t is not None))
        ctx.flags = (need_h, need_w, need_b)
        ctx.weight_dtype = weight.dtype
        return total / denom

    @staticmethod
    def backward(ctx, grad_out):
        saved = iter(ctx.saved_tensors)
        need_h, need_w, need_b = ctx.flags
        grad_h = next(saved) * grad_out if need_h else None
        grad_w = (next(saved) * grad_out).to(ctx.weight_dtype) if need_w else None
        grad_b = next(saved) * grad_out if need_b else None
        return grad_h, grad_w, None, grad_b, None, None, None, None
