"""GGUF tensor layout pieces checked against transformers' own implementations."""

from __future__ import annotations

import numpy as np
import torch

from studio.worker.gguf_export import _rope_factor_tensor, deinterleave_rope_rows, interleave_rope_rows


def test_llama3_rope_factors_match_transformers_frequencies():
    """llama.cpp divides each rotary frequency by rope_freqs; transformers computes the scaled frequencies itself."""
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import _compute_llama3_parameters

    config = LlamaConfig(hidden_size=256, num_attention_heads=4, max_position_embeddings=131072,
                         rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                          "original_max_position_embeddings": 8192})
    scaled, _ = _compute_llama3_parameters(config, "cpu")
    head_dim = 64
    plain = 1.0 / (500000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    [(name, factors)] = _rope_factor_tensor(config)
    assert name == "rope_freqs.weight" and factors.shape == (head_dim // 2,)
    np.testing.assert_allclose(plain.numpy() / factors, scaled.double().numpy(), rtol=1e-5)
    assert factors.min() == 1.0 and factors.max() == 32.0  # short wavelengths kept, long ones stretched


def test_rope_row_interleave_pairs_the_two_halves_of_each_head():
    heads, head_dim = 2, 4
    w = np.arange(heads * head_dim, dtype=np.float32).reshape(heads * head_dim, 1)
    out = interleave_rope_rows(w, heads)[:, 0].tolist()
    assert out == [0, 2, 1, 3, 4, 6, 5, 7]  # rows i and i + head_dim/2 of each head become neighbours
    np.testing.assert_array_equal(deinterleave_rope_rows(interleave_rope_rows(w, heads), heads), w)
