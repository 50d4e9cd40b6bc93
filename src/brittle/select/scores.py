"""Scores for "which benign data breaks safety" — pure functions, visible math.

Notation: ``F`` is an (N, d) matrix of candidate features (one row f_i per pool example:
a projected gradient, an exact gradient, or a last-token representation); an *anchor set*
is an (m, d) matrix A of features of anchor examples (harmful answers, refusals).

He, Xia & Henderson (COLM 2024, arXiv 2404.01099) and their reference code
(princeton-nlp/benign-data-breaks-safety) score a candidate against the **mean of the
L2-normalised anchor features** and subtract the same score against safe anchors
("bidirectional anchoring"). Every function takes numpy arrays or torch tensors and returns
a float64 numpy array.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

EPS = 1e-12


def _np(x: Any) -> np.ndarray:
    """numpy float64 copy of a numpy array / torch tensor / nested list."""
    if hasattr(x, "detach"):  # torch.Tensor without importing torch
        x = x.detach().to("cpu").double().numpy()
    return np.asarray(x, dtype=np.float64)


def l2_normalise(F: Any, eps: float = EPS) -> np.ndarray:
    """Row-wise f_i / max(‖f_i‖₂, eps) (a zero row stays zero)."""
    F = _np(F)
    if F.ndim == 1:
        return F / max(float(np.linalg.norm(F)), eps)
    return F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), eps)


def anchor_mean(F_anchor: Any, normalise_each: bool = True) -> np.ndarray:
    """Anchor feature ā = (1/m) Σ_i a_i/‖a_i‖ (reference code), or (1/m) Σ_i a_i when
    ``normalise_each`` is False. The mean itself is *not* re-normalised (as in the reference:
    scores against different anchor sets then share one scale only through the data)."""
    A = _np(F_anchor)
    if A.ndim != 2 or A.shape[0] == 0:
        raise ValueError(f"anchor features must be a non-empty (m, d) matrix, got {A.shape}")
    if normalise_each:
        A = l2_normalise(A)
    return A.mean(axis=0)


def single_anchor(F: Any, a: Any) -> np.ndarray:
    """s_i = ⟨f_i, ā⟩ for every candidate row f_i (features are normalised upstream)."""
    F, a = _np(F), _np(a)
    if F.ndim != 2 or a.shape != (F.shape[1],):
        raise ValueError(f"shape mismatch: F {F.shape}, anchor {a.shape}")
    return F @ a


def bidirectional(
    F: Any,
    harm: Any,
    safe_list: Sequence[Any],
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """s_i = w_0·⟨f_i, ḡ_harm⟩ − Σ_j w_j·⟨f_i, ḡ_safe_j⟩.

    Default weights are all 1: the reference code's +1 harmful −1 safe1 −1 safe2 (two
    refusal styles). ``harm`` and each ``safe_list[j]`` are anchor means (see
    :func:`anchor_mean`)."""
    w = list(weights) if weights is not None else [1.0] * (1 + len(safe_list))
    if len(w) != 1 + len(safe_list):
        raise ValueError(f"need {1 + len(safe_list)} weights (harm + each safe), got {len(w)}")
    s = w[0] * single_anchor(F, harm)
    for wj, safe in zip(w[1:], safe_list):
        s = s - wj * single_anchor(F, safe)
    return s


def combine(
    per_anchor: Mapping[str, Any],
    weights: Mapping[str, float],
) -> np.ndarray:
    """s_i = Σ_name weights[name]·score[name]_i — combines per-anchor-set scores that were
    computed elsewhere (e.g. the exact "ghost" inner products of ``brittle.features``).
    Bidirectional = {"harmful": +1, "safe1": -1, "safe2": -1}."""
    missing = [k for k in weights if k not in per_anchor]
    if missing:
        raise KeyError(f"scores for anchor set(s) {missing} were not computed")
    out: np.ndarray | None = None
    for name, w in weights.items():
        part = w * _np(per_anchor[name])
        out = part if out is None else out + part
    if out is None:
        raise ValueError("no weights given")
    return out


def cosine_matrix(F: Any, A: Any) -> np.ndarray:
    """C_ij = cos(f_i, a_j) = ⟨f_i, a_j⟩ / (‖f_i‖‖a_j‖), shape (N, m)."""
    return l2_normalise(F) @ l2_normalise(A).T


def max_cosine(F: Any, anchors: Any) -> np.ndarray:
    """Reference representation score: s_i = max_j cos(f_i, h_j) over the harmful anchor
    examples h_j (100 in the reference; no safe term there)."""
    A = _np(anchors)
    if A.ndim != 2 or A.shape[0] == 0:
        raise ValueError("need at least one anchor row")
    return cosine_matrix(F, A).max(axis=1)


def max_cosine_bidirectional(F: Any, harm: Any, safe_list: Sequence[Any]) -> np.ndarray:
    """Our extension for representations (not in the reference code):
    s_i = max_j cos(f_i, h_j) − Σ_k max_j cos(f_i, s^k_j), one term per safe anchor set."""
    s = max_cosine(F, harm)
    for safe in safe_list:
        s = s - max_cosine(F, safe)
    return s


def self_influence_n(grad_sq_norm: Any, n_response_tokens: Any) -> np.ndarray:
    """Guan et al. 2025 (arXiv 2505.06843) Self-Inf-N outlier score, anchor-free:

        Self-Inf(z) = ⟨∇θ ℓ(z), ∇θ ℓ(z)⟩ = ‖g(z)‖²
        Self-Inf-N(z) = log(Self-Inf(z) + 1) + log(len(a) + 1)

    with a = the response tokens of z. The log-length term corrects Self-Inf's bias towards
    short answers (the token-mean loss of a short answer has a larger gradient)."""
    g2, n = _np(grad_sq_norm), _np(n_response_tokens)
    if np.any(g2 < 0) or np.any(n < 0):
        raise ValueError("squared norms and token counts must be non-negative")
    return np.log1p(g2) + np.log1p(n)


def length_normalised_sq_norm(grad_sq_norm: Any, n_response_tokens: Any) -> np.ndarray:
    """Cheaper alternative normalisation: s = ‖g(z)‖² / max(len(a), 1) (not the paper's)."""
    return _np(grad_sq_norm) / np.maximum(_np(n_response_tokens), 1.0)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), 1-based."""
    from scipy.stats import rankdata

    return rankdata(x, method="average")


def top_indices(scores: Any, k: int) -> np.ndarray:
    """Indices of the k largest scores, ties broken by lower index (NaN never selected first)."""
    s = _np(scores)
    key = np.where(np.isnan(s), -np.inf, s)
    order = np.lexsort((np.arange(s.size), -key))
    return order[: max(0, min(k, s.size))]


def agreement(scores_a: Any, scores_b: Any, k: int | None = None) -> dict[str, float]:
    """How well two scorings of the same pool agree:

    - spearman ρ = Pearson correlation of the ranks,
    - kendall τ_b,
    - topk_overlap = |top_k(a) ∩ top_k(b)| / k (1 = same top-K, ≈ k/N for unrelated scores),
    - pearson r of the raw scores.
    """
    from scipy.stats import kendalltau, pearsonr, spearmanr

    a, b = _np(scores_a), _np(scores_b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"score vectors must have the same 1-d shape, got {a.shape} and {b.shape}")
    n = a.size
    out: dict[str, float] = {"n": float(n)}
    if n >= 2 and np.ptp(a) > 0 and np.ptp(b) > 0:
        out["spearman"] = float(spearmanr(a, b).statistic)
        out["kendall"] = float(kendalltau(a, b).statistic)
        out["pearson"] = float(pearsonr(a, b).statistic)
    else:
        out["spearman"] = out["kendall"] = out["pearson"] = math.nan
    k = n if k is None else max(1, min(k, n))
    ta, tb = set(top_indices(a, k).tolist()), set(top_indices(b, k).tolist())
    out["k"] = float(k)
    out["topk_overlap"] = len(ta & tb) / k
    out["topk_overlap_random"] = k / n if n else math.nan
    return out
