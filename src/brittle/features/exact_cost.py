"""Byte-aware choice between "ghost" and "materialised" per-example linear-weight gradients.

For a linear layer with weight W (o×i), a batch of B examples of T tokens, per-example
inputs X_b (T×i), output gradients G_b (T×o) and ``n`` anchor directions V_a (o×i):

* **ghost** (never builds G_bᵀX_b):
  ``‖G_bᵀX_b‖² = Σ_{t,t'} (g_t·g_t')(x_t·x_t')`` and ``⟨G_bᵀX_b, V_a⟩ = Σ_t g_tᵀ V_a x_t``
  flops ≈ 2·B·T²·(i+o) + 2·n·B·T·i·o;
  bytes ≈ B·T·(i+o)·e (read X, G) + 2·B·T²·4 (two T×T float32 Gram matrices)
  + n·B·T·min(i,o)·e (the ``G V_a`` / ``X V_aᵀ`` temporary);
* **materialise** (``M_b = G_bᵀX_b``, c examples at a time):
  flops ≈ 2·B·T·i·o + 2·(n+1)·B·i·o;
  bytes ≈ B·i·o·(e + 4 + 4) (write M in the model dtype, a float32 copy for ‖M‖², read
  once more for the dots) + B·T·(i+o)·e.

``e`` = bytes per element of the model dtype. Cost = flops + ``flops_per_byte``·bytes
(``flops_per_byte`` ≈ the machine's balance point: peak FLOP/s ÷ memory bandwidth, ~300 on
an H100 in bf16, ~10 on a laptop CPU). Materialising is allowed only when one example's
block fits ``budget_bytes``; then ``chunk`` examples are materialised together.

At T = 512 with Llama-2-7B shapes (i = o = 4096, n = 1, bf16, 300 FLOP/byte) ghost wins by
~3× once bytes are counted, although it needs ~25 % more FLOPs (a FLOP-only rule would
materialise every layer there). With one combined direction ghost nearly always wins;
materialising pays with several directions (the three-set path) on compute-bound machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class LinearCost:
    mode: Literal["ghost", "materialize"]
    chunk: int  # examples materialised at once (B for ghost)
    ghost: float  # cost of ghost (flops + flops_per_byte·bytes)
    materialize: float  # cost of materialising (inf when one block exceeds the budget)


def ghost_cost(B: int, T: int, o: int, i: int, n: int, elem: int) -> tuple[float, float]:
    """(flops, bytes) of the ghost sums for one linear layer (see module docstring)."""
    flops = 2.0 * B * T * T * (i + o) + 2.0 * n * B * T * i * o
    nbytes = float(B * T * (i + o) * elem + 2 * B * T * T * 4 + n * B * T * min(i, o) * elem)
    return flops, nbytes


def materialize_cost(B: int, T: int, o: int, i: int, n: int, elem: int) -> tuple[float, float]:
    """(flops, bytes) of materialising G_bᵀX_b for every example of the batch."""
    flops = 2.0 * B * T * i * o + 2.0 * (n + 1) * B * i * o
    nbytes = float(B * i * o * (elem + 8) + B * T * (i + o) * elem)
    return flops, nbytes


def choose_linear_mode(
    B: int, T: int, o: int, i: int, n: int, *, elem: int, budget_bytes: float,
    flops_per_byte: float,
) -> LinearCost:
    """The cheaper of ghost / materialise for one linear layer, within ``budget_bytes``."""
    gf, gb = ghost_cost(B, T, o, i, n, elem)
    g = gf + flops_per_byte * gb
    block = o * i * (elem + 4)  # one example's block + its float32 copy
    chunk = int(budget_bytes // block) if block > 0 else B
    if chunk < 1:
        return LinearCost("ghost", B, g, float("inf"))
    mf, mb = materialize_cost(B, T, o, i, n, elem)
    m = mf + flops_per_byte * mb
    return LinearCost("ghost" if g <= m else "materialize", min(chunk, B), g, m)
