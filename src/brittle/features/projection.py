"""Seeded random projections of per-example gradients ``M_b = L_bᵀ R_b``.

Every gradient block handled here has the factored form ``M_b = L_bᵀ R_b`` with
``L_b: T×d_L`` and ``R_b: T×d_R`` (a linear layer's weight gradient is ``Gᵀ X``; the
LoRA gradients are ``dA = s·(G B)ᵀ X`` and ``dB = s·Gᵀ (X Aᵀ)``). A projection of the
whole gradient is the sum of independent per-block projections, ``P g = Σ_l P_l vec(M_l)``,
i.e. a dense projection of the concatenated gradient whose blocks are generated
per layer from ``(seed, block name)`` — the full matrix is never stored.

* ``dense``: ``P_l`` is a (d_L·d_R)×k matrix with i.i.d. entries (±1 Rademacher or N(0,1))
  scaled by 1/√k, so ``E[P_lᵀ P_l] = I``; ``M_b`` is materialised (LESS / TRAK style).
* ``kronecker``: ``P_l = (P_L ⊗ P_R)/√k`` with ``P_L: d_L×k_L``, ``P_R: d_R×k_R``,
  ``k_L·k_R = k``; then ``P_lᵀ vec(M_b) = vec((L_b P_L)ᵀ (R_b P_R))/√k`` — computed from
  the factors without materialising ``M_b`` (LoGra, Choe et al. 2024). Also isotropic
  (``E[P_lᵀ P_l] = I``) but with heavier tails than a dense JL map on a single block.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

DENSE_CHUNK = 4096  # rows per generated piece of a dense projection


def block_seed(seed: int, name: str) -> int:
    """Deterministic 63-bit seed for block ``name`` (independent of the block order)."""
    h = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def random_matrix(rows: int, cols: int, seed: int, dist: str = "rademacher", dtype: Any = None,
                  device: Any = "cpu") -> Any:
    """``rows×cols`` matrix of i.i.d. ±1 (rademacher) or N(0,1) (gaussian) entries, seeded."""
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)
    if dist == "rademacher":
        m = torch.randint(0, 2, (rows, cols), generator=g, dtype=torch.int8).float().mul_(2).sub_(1)
    elif dist == "gaussian":
        m = torch.randn(rows, cols, generator=g)
    else:
        raise ValueError(f"unknown projection distribution {dist!r}")
    return m.to(device=device, dtype=dtype or torch.float32)


def kron_split(k: int, d_left: int, d_right: int) -> tuple[int, int]:
    """Factor ``k = k_L·k_R`` with ``k_L/k_R`` closest to ``d_L/d_R`` (in log ratio)."""
    target = 0.5 * (math.log(k) + math.log(d_left) - math.log(d_right))
    best = min(
        (d for d in range(1, k + 1) if k % d == 0),
        key=lambda d: (abs(math.log(d) - target), d),
    )
    return best, k // best


class Projector:
    """Projects factored per-example gradient blocks into a shared k-dim space.

    Usage per batch: ``out = zeros(B, k)``; ``proj.add_factored(out, name, L, R)`` or
    ``proj.add_dense(out, name, M)`` for each block. Matrices are cached per block while
    the cache stays under ``cache_mb``; beyond that they are regenerated on each call
    (correct, slower).
    """

    def __init__(self, k: int, kind: str = "kronecker", dist: str = "rademacher",
                 seed: int = 0, cache_mb: float = 1024.0) -> None:
        if kind not in ("kronecker", "dense"):
            raise ValueError(f"unknown projection {kind!r}; use kronecker|dense")
        self.k, self.kind, self.dist, self.seed = k, kind, dist, seed
        self.cache_bytes = cache_mb * 2**20
        self._cache: dict[tuple, Any] = {}
        self._used = 0

    def _mat(self, key: tuple, rows: int, cols: int, device: Any, dtype: Any) -> Any:
        if key in self._cache:
            return self._cache[key]
        m = random_matrix(rows, cols, block_seed(self.seed, "/".join(map(str, key))), self.dist,
                          dtype, device)
        size = m.numel() * m.element_size()
        if self._used + size <= self.cache_bytes:
            self._cache[key] = m
            self._used += size
        return m

    def kron_mats(self, name: str, d_left: int, d_right: int, device: Any, dtype: Any) -> tuple:
        kl, kr = kron_split(self.k, d_left, d_right)
        pl = self._mat((name, "L", d_left, kl), d_left, kl, device, dtype)
        pr = self._mat((name, "R", d_right, kr), d_right, kr, device, dtype)
        return pl, pr

    def add_factored(self, out: Any, name: str, left: Any, right: Any) -> None:
        """``out[b] += P_nameᵀ vec(left_bᵀ right_b)`` for left (B,T,d_L), right (B,T,d_R)."""
        import torch

        B = left.shape[0]
        if self.kind == "kronecker":
            pl, pr = self.kron_mats(name, left.shape[-1], right.shape[-1], left.device, left.dtype)
            lp = left @ pl  # B,T,kL
            rp = right @ pr  # B,T,kR
            out += torch.bmm(lp.transpose(1, 2), rp).reshape(B, -1).to(out.dtype) / math.sqrt(self.k)
        else:
            self.add_dense(out, name, torch.bmm(left.transpose(1, 2), right))

    def add_dense(self, out: Any, name: str, mat: Any) -> None:
        """``out[b] += P_nameᵀ vec(mat_b)`` for a materialised block ``mat`` (B, d_L, d_R)."""
        import torch

        B, dl, dr = mat.shape
        if self.kind == "kronecker":
            pl, pr = self.kron_mats(name, dl, dr, mat.device, mat.dtype)
            out += torch.matmul(torch.matmul(pl.T, mat), pr).reshape(B, -1).to(out.dtype) / math.sqrt(self.k)
            return
        flat = mat.reshape(B, dl * dr)
        # the block's matrix is the row-concatenation of DENSE_CHUNK-row pieces, each from
        # its own sub-seed: identical whether pieces are cached or regenerated
        for c0 in range(0, dl * dr, DENSE_CHUNK):
            c1 = min(dl * dr, c0 + DENSE_CHUNK)
            p = self._mat((name, "D", dl * dr, c0), c1 - c0, self.k, mat.device, mat.dtype)
            out += (flat[:, c0:c1] @ p).to(out.dtype) / math.sqrt(self.k)
