"""Choosing the refusal direction as the reference code does (Arditi et al. 2024,
andyrdt/refusal_direction, ``pipeline/submodules/select_direction.py``).

Every candidate r_{p,l} (post-instruction position p, layer l; see
:mod:`brittle.diagnose.refusal_direction`), computed on *train* prompts, is scored on
held-out *validation* prompts with three forward-only numbers:

* **bypass** = mean refusal score on harmful prompts with r̂ ablated from every layer
  (lower = ablating it removes refusal better);
* **induce** = mean refusal score on harmless prompts with r added at layer l's input
  (higher = adding it induces refusal);
* **KL** = mean over harmless prompts of KL(P_model ‖ P_ablated) of the next-token
  distribution at the last prompt position (how much ablation disturbs harmless use).

Refusal score s = log(p_R + ε) − log(1 − p_R + ε), p_R = Σ_{t∈R} softmax(z)_t at the last
prompt position (the first reply token), ε = 1e-8 — the reference's ``refusal_score``.
R = the reference's ``refusal_toks`` (e.g. "I", "As" for Qwen); brittle derives R from its
refusal-judge phrases (``resources/evaluate/refusal_prefixes.yaml``, default lists): the
first token of each phrase that can open a reply (starts with an upper-case letter; the
lower-case entries of Zou et al.'s list — "illegal", "but I cannot" … — are mid-reply
fragments), deduplicated.

Filter (the reference's ``filter_fn``, defaults kl_threshold = 0.1,
induce_refusal_threshold = 0, prune_layer_percentage = 0.2): discard a candidate whose
score is NaN, whose layer is ≥ int(L·(1 − 0.2)), whose KL > 0.1 or whose induce < 0.
Choice: the remaining candidate with the lowest bypass score (ties: first in
(position, layer) order).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from brittle.data.schema import Example
from brittle.diagnose.refusal_direction import (
    RefusalDirection,
    activation_addition,
    decoder_layers,
    directional_ablation,
    mean_difference,
    model_device,
    post_instruction_activations,
    post_instruction_length,
    prompt_batches,
)
from brittle.errors import BrittleError
from brittle.models.forward import forward_keep

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SelectionRules:
    """The reference's filter: ``None`` switches a rule off."""

    kl_threshold: float | None = 0.1
    induce_threshold: float | None = 0.0
    prune_layer_fraction: float | None = 0.2


# ----------------------------------------------------------------------------- pure scores


def refusal_score(logits: Any, refusal_ids: Sequence[int], eps: float = 1e-8) -> Any:
    """s = log(p_R + ε) − log(1 − p_R + ε) per row, p_R = Σ_{t∈R} softmax(z)_t (float64);
    ``logits[N, V]`` at the scored position."""
    import torch

    probs = torch.softmax(logits.double(), dim=-1)
    p = probs[:, list(refusal_ids)].sum(-1)
    return torch.log(p + eps) - torch.log(1 - p + eps)


def kl_divergence(logits_p: Any, logits_q: Any, eps: float = 1e-6) -> Any:
    """KL(P‖Q) = Σ_v p_v (log(p_v + ε) − log(q_v + ε)) per row (float64; the reference's
    ``kl_div_fn``); P = softmax(logits_p), Q = softmax(logits_q)."""
    import torch

    p = torch.softmax(logits_p.double(), dim=-1)
    q = torch.softmax(logits_q.double(), dim=-1)
    return (p * (torch.log(p + eps) - torch.log(q + eps))).sum(-1)


def first_layer_pruned(n_layers: int, prune_layer_fraction: float | None) -> int:
    """Layers ≥ int(L·(1 − f)) are pruned (reference); L when f is None."""
    return n_layers if prune_layer_fraction is None else int(n_layers * (1.0 - prune_layer_fraction))


def discard_reason(row: dict[str, Any], n_layers: int, rules: SelectionRules = SelectionRules()) -> str | None:
    """Why the reference's ``filter_fn`` drops a candidate (``None`` = kept), checked in its
    order: a NaN score → "nan"; layer ≥ int(L·(1 − f)) → "pruned"; KL > threshold → "kl";
    induce < threshold → "induce"."""
    if row.get("scored") is False:  # skipped: a layer stride, or a pruned layer's forwards
        return "pruned" if row["layer"] >= first_layer_pruned(n_layers, rules.prune_layer_fraction) else "not scored"
    vals = (row.get("bypass"), row.get("induce"), row.get("kl"))
    if any(v is None or math.isnan(float(v)) for v in vals):
        return "nan"
    if row["layer"] >= first_layer_pruned(n_layers, rules.prune_layer_fraction):
        return "pruned"
    if rules.kl_threshold is not None and row["kl"] > rules.kl_threshold:
        return "kl"
    if rules.induce_threshold is not None and row["induce"] < rules.induce_threshold:
        return "induce"
    return None


def choose_candidate(rows: Sequence[dict[str, Any]], n_layers: int, rules: SelectionRules = SelectionRules()) -> dict[str, Any]:
    """argmin bypass over the candidates :func:`discard_reason` keeps (first on ties);
    BrittleError when every candidate is filtered out."""
    kept = [r for r in rows if discard_reason(r, n_layers, rules) is None]
    if not kept:
        reasons: dict[str, int] = {}
        for r in rows:
            why = discard_reason(r, n_layers, rules) or "?"
            reasons[why] = reasons.get(why, 0) + 1
        raise BrittleError(f"every refusal-direction candidate was filtered out ({reasons}); "
                           "relax kl_threshold / induce_threshold")
    return min(kept, key=lambda r: float(r["bypass"]))


def refusal_token_ids(tokenizer: Any, phrases: Sequence[str] | None = None) -> list[int]:
    """R: the first token (under ``tokenizer``) of every refusal phrase that starts with an
    upper-case letter, deduplicated in phrase order. Default phrases: the refusal judge's
    default lists (``brittle.evaluate.refusal.load_phrases``)."""
    if phrases is None:
        from brittle.evaluate.refusal import load_phrases

        phrases = load_phrases()[0]
    out: list[int] = []
    for p in phrases:
        p = p.strip()
        if not p or not p[0].isupper():
            continue
        ids = tokenizer(p, add_special_tokens=False)["input_ids"]
        if ids and ids[0] not in out:
            out.append(int(ids[0]))
    if not out:
        raise BrittleError("no refusal tokens: no refusal phrase starts with an upper-case letter")
    return out


# ----------------------------------------------------------------------------- forwards


def _last_logits(model: Any, batches: list[tuple[list[int], dict[str, Any]]]) -> Iterator[tuple[list[int], Any]]:
    """(indices, logits[B, V] at the last position) per left-padded batch; only the last
    position goes through the LM head where the model supports ``logits_to_keep``."""
    import torch

    for idx, inputs in batches:
        with torch.no_grad():
            logits = forward_keep(model, 1, **inputs, use_cache=False).logits
        yield idx, logits[:, -1].float()


def _scores(model: Any, batches: list[Any], refusal_ids: Sequence[int], n: int) -> Any:
    import torch

    out = torch.full((n,), float("nan"), dtype=torch.float64)
    for idx, logits in _last_logits(model, batches):
        out[torch.tensor(idx)] = refusal_score(logits, refusal_ids).cpu()
    return out


def mean_refusal_score(model: Any, tokenizer: Any, examples: Sequence[Example], refusal_ids: Sequence[int],
                       *, batch_size: int = 16) -> float:
    """Mean refusal score of ``examples`` under whatever hooks are active (none: the baseline)."""
    batches = prompt_batches(tokenizer, examples, batch_size, model_device(model))
    return float(_scores(model, batches, refusal_ids, len(examples)).mean())


def score_candidates(
    model: Any,
    tokenizer: Any,
    candidates: Any,
    harmful: Sequence[Example],
    harmless: Sequence[Example],
    refusal_ids: Sequence[int],
    *,
    skip_layers_from: int | None = None,
    layer_stride: int = 1,
    batch_size: int = 16,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """bypass / induce / KL of every candidate ``candidates[P, L, d]`` (see module doc).

    Batched: the validation prompts are tokenised once; per candidate one pass over the
    harmful and harmless batches under ablation and one over the harmless batches under
    addition. Layers ≥ ``skip_layers_from`` (pruned anyway) get no forwards; with
    ``layer_stride`` s > 1 only layers 0, s, 2s, … are scored. Skipped rows have NaN scores and
    ``scored = False`` (discarded as "pruned" or "not scored").
    Returns (rows, baseline) with baseline = mean refusal scores without intervention.
    """
    import torch
    from tqdm import tqdm

    dev = model_device(model)
    hb = prompt_batches(tokenizer, harmful, batch_size, dev)
    nb = prompt_batches(tokenizer, harmless, batch_size, dev)
    base_logits = {tuple(idx): lg.cpu() for idx, lg in _last_logits(model, nb)}
    baseline = {"harmful_refusal_score": float(_scores(model, hb, refusal_ids, len(harmful)).mean()),
                "harmless_refusal_score": float(torch.cat([refusal_score(v, refusal_ids)
                                                           for v in base_logits.values()]).mean())}
    n_pos, n_layers = int(candidates.shape[0]), int(candidates.shape[1])
    limit = n_layers if skip_layers_from is None else skip_layers_from
    rows: list[dict[str, Any]] = []
    grid = [(p, l) for p in range(-n_pos, 0) for l in range(n_layers)]
    for p, l in tqdm(grid, desc="direction candidates", disable=not progress):
        row: dict[str, Any] = {"position": p, "layer": l, "bypass": math.nan, "induce": math.nan, "kl": math.nan,
                               "norm": float(candidates[p, l].norm()), "scored": l % layer_stride == 0 and l < limit}
        if row["scored"]:
            r = candidates[p, l]
            with directional_ablation(model, r):
                row["bypass"] = float(_scores(model, hb, refusal_ids, len(harmful)).mean())
                kls = [kl_divergence(base_logits[tuple(idx)], lg.cpu()) for idx, lg in _last_logits(model, nb)]
            row["kl"] = float(torch.cat(kls).mean())
            with activation_addition(model, r, l):
                row["induce"] = float(_scores(model, nb, refusal_ids, len(harmless)).mean())
        rows.append(row)
    return rows, baseline


# ----------------------------------------------------------------------------- recipe


def select_direction(
    model: Any,
    tokenizer: Any,
    harmful_train: Sequence[Example],
    harmless_train: Sequence[Example],
    harmful_val: Sequence[Example],
    harmless_val: Sequence[Example],
    *,
    rules: SelectionRules = SelectionRules(),
    refusal_ids: Sequence[int] | None = None,
    n_positions: int | None = None,
    layer_stride: int = 1,
    score_pruned: bool = True,
    batch_size: int = 16,
    progress: bool = False,
) -> RefusalDirection:
    """Candidates from (harmful_train, harmless_train), scored and chosen on
    (harmful_val, harmless_val) — the reference's generate_directions + select_direction.

    ``n_positions``: score only the last P post-instruction positions (default: all k);
    ``layer_stride``: score every s-th layer only (a deviation from the reference, which scores
    all; for CPU budgets); ``score_pruned=False`` skips the forwards for pruned layers (they
    are discarded anyway).
    When every candidate is filtered out (the reference asserts) the result has
    ``position = layer = None`` and still carries the scored table.
    """
    if not harmful_val or not harmless_val:
        raise BrittleError("select_direction needs held-out harmful and harmless prompts")
    k = post_instruction_length(tokenizer)
    n_pos = k if n_positions is None else max(1, min(n_positions, k))
    h = post_instruction_activations(model, tokenizer, harmful_train, n_pos, batch_size=batch_size, progress=progress)
    b = post_instruction_activations(model, tokenizer, harmless_train, n_pos, batch_size=batch_size, progress=progress)
    candidates = mean_difference(h, b).float()  # [P, L, d]
    n_layers = len(decoder_layers(model))
    ids = list(refusal_ids) if refusal_ids is not None else refusal_token_ids(tokenizer)
    skip = None if score_pruned else first_layer_pruned(n_layers, rules.prune_layer_fraction)
    rows, baseline = score_candidates(model, tokenizer, candidates, harmful_val, harmless_val, ids,
                                      skip_layers_from=skip, layer_stride=layer_stride, batch_size=batch_size,
                                      progress=progress)
    for r in rows:
        why = discard_reason(r, n_layers, rules)
        r["kept"], r["discarded"] = why is None, why
    try:
        best = choose_candidate(rows, n_layers, rules)
    except BrittleError as e:
        log.warning("refusal direction: %s", e)
        return RefusalDirection(candidates, None, None, rows, baseline, ids)
    log.info("refusal direction: position %d, layer %d of %d (bypass %.3f vs %.3f, induce %.3f vs %.3f, KL %.4f)",
             best["position"], best["layer"], n_layers, best["bypass"], baseline["harmful_refusal_score"],
             best["induce"], baseline["harmless_refusal_score"], best["kl"])
    return RefusalDirection(candidates, int(best["position"]), int(best["layer"]), rows, baseline, ids)


# ----------------------------------------------------------------------------- plot


def plot_candidate_scores(direction: RefusalDirection, path: Any, n_layers: int,
                          rules: SelectionRules = SelectionRules(), token_labels: Sequence[str] | None = None) -> Any:
    """Bypass, induce and KL against the candidate's layer, one line per position, with the
    unintervened baselines (dashed black), the filter thresholds (dotted red), the pruned
    layers shaded and the chosen candidate starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = direction.scores
    positions = sorted({r["position"] for r in rows})
    panels = [("bypass", "refusal score, harmful, ablated", direction.baseline.get("harmful_refusal_score"), None),
              ("induce", "refusal score, harmless, added", direction.baseline.get("harmless_refusal_score"),
               rules.induce_threshold),
              ("kl", "KL on harmless, ablated", None, rules.kl_threshold)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    cut = first_layer_pruned(n_layers, rules.prune_layer_fraction)
    for ax, (key, title, ref, threshold) in zip(axes, panels):
        for p in positions:
            pts = sorted((r["layer"], r[key]) for r in rows if r["position"] == p and r.get("scored", True))
            lab = f"{p}" + (f" {token_labels[p]!r}" if token_labels and -len(token_labels) <= p < 0 else "")
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker=".", lw=1, label=lab)
        if ref is not None:
            ax.axhline(ref, color="black", ls="--", lw=0.8)
        if threshold is not None:
            ax.axhline(threshold, color="red", ls=":", lw=1)
        if cut < n_layers:
            ax.axvspan(cut - 0.5, n_layers - 0.5, color="grey", alpha=0.15)
        ch = direction.chosen
        if ch:
            ax.plot([ch["layer"]], [ch[key]], marker="*", ms=14, color="red", ls="none")
        ax.set_xlabel("layer of the candidate")
        ax.set_title(title, fontsize=10)
    axes[2].set_yscale("symlog", linthresh=1e-3)
    axes[0].legend(title="position", fontsize=7)
    fig.tight_layout()
    from brittle.report.plots import save_figure

    return save_figure(fig, path, dpi=110)
