"""Method scores: features from :mod:`brittle.features` + the pure math of :mod:`.scores`.

Methods (all scored under the *aligned* model = model + adapter):

- ``exact-anchor`` (default; reference code): exact full-parameter gradient inner products
  ⟨g(z)/‖g(z)‖, ḡ_A⟩ with ḡ_A = mean_i g(a_i)/‖g(a_i)‖ for each anchor set A, anchors on
  their first ``anchor_response_tokens`` response tokens;
  score = +1·harmful − 1·safe1 − 1·safe2 = ⟨g(z)/‖g(z)‖, Σ_A w_A ḡ_A⟩, computed with ONE
  combined direction in the model dtype (``exact_directions='combined'``, the default; it
  fits 7B models) or per set (``'per-set'``: three fp32 copies, also reports the
  components). ``params='trainable'`` restricts the gradients to the attack's LoRA target
  weights (:mod:`brittle.features.trainable`).
- ``grad``: the same with LESS-style projected LoRA gradients (:func:`projected_grads`).
- ``repr``: last-token final-layer hidden states; score = max cosine to the harmful anchors
  (reference, no safe term); ``repr-bidirectional`` component subtracts max cosine to each
  safe set.
- ``outlier``: anchor-free Self-Inf-N (Guan et al. 2025).

The adapters below (``last_token_reprs`` …) import :mod:`brittle.features` lazily and are
looked up by name at call time, so tests replace them with fakes.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brittle.data.schema import Example
from brittle.errors import BrittleError
from brittle.select import scores as S

log = logging.getLogger(__name__)

METHODS = ("exact-anchor", "grad", "repr", "outlier")
ANCHOR_METHODS = ("exact-anchor", "grad", "repr")


@dataclass
class ScoreOptions:
    """Knobs shared by every method (a subset of SelectConfig / AuditConfig)."""

    batch_size: int = 8
    max_length: int | None = 512
    anchor_response_tokens: int | None = 10  # reference: first 10 response tokens of anchors
    candidate_response_tokens: int | None = None  # reference: the full response
    bidirectional: bool = True
    weights: tuple[float, ...] | None = None  # (harmful, safe1, safe2); default (1, 1, 1)
    grad_dim: int = 8192
    seed: int = 0
    exact_directions: str = "combined"  # combined (one direction, model dtype) | per-set (components)
    params: str = "all"  # exact-anchor gradient space: all | trainable (attack's LoRA target weights)
    trainable_targets: tuple[str, ...] | str = "all-linear"  # the attack's LoRA targets
    gradient_checkpointing: bool = False  # exact-anchor: recompute layers in backward (long candidates)
    repr_safe: bool = True  # repr: also the safe sets' components (the reference: harmful anchors only)


def make_config(cls: type, **kw: Any) -> Any:
    """Instantiate another stage's config with only the keyword arguments it declares
    (pydantic ``model_fields`` or dataclass fields); unknown ones are logged and dropped."""
    fields = getattr(cls, "model_fields", None) or getattr(cls, "__dataclass_fields__", None)
    if fields is None:
        return cls(**kw)
    dropped = sorted(k for k in kw if k not in fields)
    if dropped:
        log.debug("%s has no field(s) %s; not passed", cls.__name__, dropped)
    return cls(**{k: v for k, v in kw.items() if k in fields and v is not None})


def _features() -> Any:
    try:
        return importlib.import_module("brittle.features")
    except ImportError as e:  # pragma: no cover - depends on the install
        raise BrittleError(f"brittle.features is not available: {e}") from None


# ---- feature adapters (monkeypatched in tests) -------------------------------------------


def last_token_reprs(model: Any, tok: Any, examples: Sequence[Example], opts: ScoreOptions) -> np.ndarray:
    """Final-layer hidden state of the last token of prompt + response, (N, d)."""
    F = _features()
    return S._np(F.last_token_reprs(model, tok, list(examples), opts.batch_size, max_length=opts.max_length,
                                         progress=True))


def projected_grads(
    model: Any, tok: Any, examples: Sequence[Example], opts: ScoreOptions, *, response_tokens: int | None
) -> np.ndarray:
    """LESS-style projected LoRA gradients (L2-normalised rows), (N, k)."""
    F = _features()
    cfg = make_config(F.GradFeatureConfig, batch_size=opts.batch_size, max_length=opts.max_length,
                      max_response_tokens=response_tokens, k=opts.grad_dim, seed=opts.seed)
    return S._np(F.projected_grads(model, tok, list(examples), cfg, progress=True))


def _exact_cfg(opts: ScoreOptions) -> Any:
    F = _features()
    targets = opts.trainable_targets if isinstance(opts.trainable_targets, str) else list(opts.trainable_targets)
    return make_config(F.ExactAnchorConfig, batch_size=opts.batch_size, max_length=opts.max_length,
                       anchor_tokens=opts.anchor_response_tokens,
                       candidate_tokens=opts.candidate_response_tokens, params=opts.params,
                       trainable_targets=targets, gradient_checkpointing=opts.gradient_checkpointing)


def exact_anchor_scores(
    model: Any, tok: Any, candidates: Sequence[Example], anchors: Mapping[str, list[Example]],
    opts: ScoreOptions,
) -> dict[str, np.ndarray]:
    """{anchor set: ⟨g(z)/‖g(z)‖, mean_a g(a)/‖g(a)‖⟩} with exact full-parameter gradients."""
    F = _features()
    out = F.exact_anchor_scores(model, tok, list(candidates), {k: list(v) for k, v in anchors.items()},
                                _exact_cfg(opts), progress=True)
    return {k: S._np(v) for k, v in out.items()}


def exact_combined_scores(
    model: Any, tok: Any, candidates: Sequence[Example], anchors: Mapping[str, list[Example]],
    weights: Mapping[str, float], opts: ScoreOptions, *, cache_dir: Path | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """({"score": ⟨g(z)/‖g(z)‖, Σ_A w_A ḡ_A⟩, "grad_norm": ‖g(z)‖}, info) with one combined
    direction; candidate shards cached (resumable) under ``cache_dir`` when given."""
    from brittle.features.exact_combined import exact_combined_scores as combined

    res = combined(model, tok, list(candidates), {k: list(v) for k, v in anchors.items() if k in weights},
                   weights, _exact_cfg(opts), cache_dir=cache_dir, progress=True)
    return {"score": S._np(res.score), "grad_norm": S._np(res.norms)}, res.info


def grad_sq_norms(
    model: Any, tok: Any, examples: Sequence[Example], opts: ScoreOptions
) -> tuple[np.ndarray, np.ndarray]:
    """(‖∇θ ℓ(z)‖², n_response_tokens) per example: ℓ = token-mean response loss, all
    parameters, batched ghost norms (``brittle.features.exact.per_example_stats``)."""
    from brittle.features.exact import per_example_stats
    from brittle.features.hooks import encode_examples
    from brittle.models.chat import IGNORE

    cfg = _exact_cfg(opts)
    sq, _ = per_example_stats(model, tok, list(examples), cfg, max_response_tokens=opts.candidate_response_tokens,
                              progress=True)
    encs = encode_examples(tok, list(examples), max_length=opts.max_length,
                           max_response_tokens=opts.candidate_response_tokens)
    n = np.array([sum(lab != IGNORE for lab in e.labels) for e in encs], dtype=np.float64)
    return S._np(sq), n


# ---- method scores -------------------------------------------------------------------------


def _weights(opts: ScoreOptions, anchors: Mapping[str, Any]) -> dict[str, float]:
    safe = sorted(k for k in anchors if k.startswith("safe"))
    w = list(opts.weights) if opts.weights else [1.0] * (1 + len(safe))
    if not opts.bidirectional:
        return {"harmful": w[0]}
    return {"harmful": w[0], **{s: -wj for s, wj in zip(safe, w[1:])}}


def repr_anchor_names(names: Sequence[str] | Mapping[str, Any], repr_safe: bool) -> list[str]:
    """The anchor sets the repr method reads: "harmful", then the safe sets ("safe1", …) unless
    ``repr_safe`` is off (the reference's repr score reads the harmful anchors only)."""
    return ["harmful", *(sorted(k for k in names if k.startswith("safe")) if repr_safe else [])]


def method_scores(
    method: str,
    model: Any,
    tok: Any,
    pool: Sequence[Example],
    anchors: Mapping[str, list[Example]],
    opts: ScoreOptions,
    *,
    cache_dir: Path | None = None,
) -> dict[str, np.ndarray]:
    """{"score": final score, plus components: "harmful", "safe1", …} for every pool row.

    ``cache_dir``: where exact-anchor writes its finished candidate shards (a rerun skips
    them) and ``info.json`` (share of the anchor gradients in trainable parameters)."""
    if method not in METHODS:
        raise BrittleError(f"unknown method {method!r}; choose from {list(METHODS)}")
    if method == "exact-anchor" and opts.exact_directions == "combined":
        out, info = exact_combined_scores(model, tok, pool, anchors, _weights(opts, anchors), opts,
                                          cache_dir=cache_dir)
        if "anchor_trainable_share" in info:
            log.info("exact-anchor: %.1f%% of the anchor gradients' squared norm lies in the attack's "
                     "trainable weights (%s)", 100 * info["anchor_trainable_share"], info.get("trainable_targets"))
        return out
    if method == "exact-anchor":
        if opts.params != "all":
            raise BrittleError("params='trainable' needs exact_directions='combined'")
        parts = exact_anchor_scores(model, tok, pool, anchors, opts)
        return {"score": S.combine(parts, _weights(opts, anchors)), **parts}
    if method == "grad":
        F = projected_grads(model, tok, pool, opts, response_tokens=opts.candidate_response_tokens)
        means = {
            name: S.anchor_mean(projected_grads(model, tok, exs, opts, response_tokens=opts.anchor_response_tokens))
            for name, exs in anchors.items()
        }
        parts = {name: S.single_anchor(S.l2_normalise(F), m) for name, m in means.items()}
        return {"score": S.combine(parts, _weights(opts, anchors)), **parts}
    if method == "repr":
        names = repr_anchor_names(anchors, opts.repr_safe)
        safe_names = names[1:]
        F = last_token_reprs(model, tok, pool, opts)
        A = {name: last_token_reprs(model, tok, anchors[name], opts) for name in names}
        out = {"score": S.max_cosine(F, A["harmful"]), "harmful": S.max_cosine(F, A["harmful"])}
        for s in safe_names:
            out[s] = S.max_cosine(F, A[s])
        if safe_names:
            out["bidirectional"] = S.max_cosine_bidirectional(F, A["harmful"], [A[s] for s in safe_names])
        return out
    g2, n = grad_sq_norms(model, tok, pool, opts)
    return {"score": S.self_influence_n(g2, n), "grad_sq_norm": g2, "n_response_tokens": n}
