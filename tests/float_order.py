"""Tolerances for comparing float32 results that differ only in the order of their sums.

Two mathematically equal computations (one batch of 4 rows against two accumulated batches of
2; a recomputed forward pass; a CPU whose matmul kernels block a reduction differently) add the
same float32 terms in different orders. Summing ``n`` terms in any order leaves the result
within ``(n - 1) * u * sum(|x_i|)`` of the exact sum, ``u = 2**-24`` being float32's unit
roundoff (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., eq. 4.4), so two
orders differ by at most ``2 (n - 1) u sum(|x_i|)``. The tolerance is that bound; it does not
depend on which CPU ran the test, only on how many terms were summed.
"""

from __future__ import annotations

import math

#: float32 unit roundoff.
UNIT_ROUNDOFF = 2.0 ** -24


def order_tolerance(n_terms: int) -> float:
    """Relative difference two summation orders of ``n_terms`` same-sign terms can leave."""
    return 2 * max(n_terms - 1, 1) * UNIT_ROUNDOFF


def adam_weight_tolerance(n_terms: int, steps: int, lr: float, numel: int) -> float:
    """Bound on ``||w_a - w_b||`` for one weight tensor trained ``steps`` AdamW steps from the same start,
    where the gradients differ only in the order of summing ``n_terms`` per-token terms.

    AdamW divides each gradient element by its own running RMS, so it moves every weight by at
    most about ``lr`` a step, whatever the gradient's scale: ``lr * steps * sqrt(numel)`` is the
    norm of the largest possible change of the tensor. A gradient error that is ``order_tolerance``
    of the gradient's size changes that update by the same fraction. The comparison is on the
    whole tensor's norm, not element by element: an element whose gradient is a near-cancelling
    sum (the terms' absolute sum far above the result) has an unbounded relative error that
    Adam's per-element normalisation turns into a visible step, while the tensor as a whole keeps
    the bound.
    """
    return order_tolerance(n_terms) * lr * steps * math.sqrt(numel)
