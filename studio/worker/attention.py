"""Attention over packed rows, one causal product per packed sequence instead of a masked square.

A packed batch row holds several sequences. transformers' SDPA path makes that work with a
block-diagonal mask over the whole row, so each layer's attention costs ``row_length**2``
whatever the sequences inside: eight 120-token conversations in a 1,000-token pack cost the
same as one 1,000-token conversation, 8 times what they need, and the mask is read at every
score. :func:`packed_attention` runs ``scaled_dot_product_attention(is_causal=True)`` on each
sequence of each row (no mask), which is the same arithmetic on the blocks that matter.

It is registered with transformers under :data:`NAME` (the mask function stays SDPA's, so
anything that calls the model without the packing, generation included, gets SDPA with its
usual mask) and used only when the caller passes ``studio_segments``: per batch row, the
lengths of its sequences, in order (the padding at a row's end is a run of one-token
sequences to the mask; here each pad position attends to itself).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NAME = "studio_packed_sdpa"


def packed_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                     studio_segments=None, **kwargs):
    """Attention of ``(batch, heads, seq, dim)`` tensors; returns ``(batch, seq, heads, dim)`` and no weights."""
    if studio_segments is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    gqa = query.shape[1] != key.shape[1]
    rows = []
    for r, lengths in enumerate(studio_segments):
        parts, start = [], 0
        for n in lengths:
            span = slice(start, start + n)
            parts.append(F.scaled_dot_product_attention(query[r:r + 1, :, span], key[r:r + 1, :, span],
                                                        value[r:r + 1, :, span], dropout_p=dropout, is_causal=True,
                                                        scale=scaling, enable_gqa=gqa))
            start += n
        if start < query.shape[2]:  # padding: each position alone, so its output is its own value
            pad = value[r:r + 1, :, start:]
            parts.append(pad.repeat_interleave(query.shape[1] // key.shape[1], dim=1) if gqa else pad)
        rows.append(torch.cat(parts, dim=2) if len(parts) > 1 else parts[0])
    out = torch.cat(rows, dim=0) if len(rows) > 1 else rows[0]
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Make :data:`NAME` known to transformers (attention and mask functions); returns it."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(NAME, packed_attention)
    AttentionMaskInterface.register(NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    return NAME
