"""Exact-anchor scores at 7B+: one combined anchor direction, scored in resumable shards.

The bidirectional score of He, Xia & Henderson (2024) is linear in the anchor directions:

    score(z) = Σ_S w_S ⟨g(z)/‖g(z)‖, V_S⟩ = ⟨g(z)/‖g(z)‖, V⟩,
    V = Σ_S w_S V_S = Σ_S Σ_{a∈S} (w_S / (|S|·‖g(a)‖)) g(a)

(w = +1 harmful, −1 safe1, −1 safe2; V_S = mean_a g(a)/‖g(a)‖, not re-normalised, as
in the reference code and :func:`brittle.select.scores.combine`). So instead of one
float32 model-sized tensor per anchor set (3 × 27 GB at 7B), V is built by ONE weighted
backward over all anchors, accumulated in the parameters' ``.grad`` in the model dtype
(13.5 GB in bf16 at 7B), and candidates need one dot per parameter instead of three.

Candidates are scored in shards of ``cfg.shard_size`` (length-sorted); each finished shard
is written to ``cache_dir/<fingerprint>/shard-NNNNN.json`` at once, and a rerun with the
same fingerprint (model identity + candidates + anchors + weights + the settings that
change the numbers) skips finished shards — batch size, mode and checkpointing are not
part of it, so a run that ran out of memory resumes with a smaller batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brittle.errors import BrittleError
from brittle.features.exact import ExactAnchorConfig, per_example_stats
from brittle.features.hooks import (
    encode_examples,
    frozen,
    make_batch,
    model_inputs,
    per_example_loss,
)
from brittle.features.trainable import direction_share, trainable_param_names
from brittle.fingerprint import fingerprint
from brittle.models.chat import length_sorted_batches

log = logging.getLogger(__name__)

# ExactAnchorConfig fields that change the numbers (the rest only change speed / memory)
SCORE_FIELDS = {"anchor_tokens", "candidate_tokens", "max_length", "params", "trainable_targets", "shard_size"}


@dataclass
class CombinedScores:
    score: Any  # Tensor[N]: ⟨g(z)/‖g(z)‖, V⟩, in candidate order
    norms: Any  # Tensor[N]: ‖g(z)‖ (in the scored parameter space)
    info: dict[str, Any] = field(default_factory=dict)  # shares, shards, fingerprint


def included_params(model: Any, cfg: ExactAnchorConfig) -> set[str] | None:
    """None (all parameters) or the trainable weight names (``cfg.params == 'trainable'``)."""
    if cfg.params == "all":
        return None
    return trainable_param_names(model, cfg.trainable_targets)


def anchor_sq_norms(
    model: Any, tok: Any, anchors: Mapping[str, Sequence[Any]], cfg: ExactAnchorConfig,
    include: set[str] | None = None,
) -> dict[str, Any]:
    """``{set: Tensor[|S|]}`` of ‖g(a)‖² (or ‖P g(a)‖² with ``include``), batched ghost sums."""
    return {s: per_example_stats(model, tok, list(exs), cfg, max_response_tokens=cfg.anchor_tokens,
                                 include=include)[0]
            for s, exs in anchors.items()}


def combined_direction(
    model: Any, tok: Any, anchors: Mapping[str, Sequence[Any]], weights: Mapping[str, float],
    cfg: ExactAnchorConfig, *, include: set[str] | None = None,
    sq_norms: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``V = Σ_S w_S mean_{a∈S} g(a)/‖g(a)‖`` as ``{param name: tensor}`` in the model dtype.

    One backward of ``Σ_S Σ_a w_S L_a / (|S|·‖g(a)‖)`` per anchor batch; the gradients are
    taken over ``include`` only (all parameters when None) and accumulate in ``.grad``,
    whose tensors are returned (no copy). The model's own ``.grad`` are restored.
    """
    import torch

    missing = [s for s in weights if s not in anchors]
    if missing:
        raise BrittleError(f"no anchor examples for weighted set(s) {missing}")
    sq = dict(sq_norms) if sq_norms is not None else anchor_sq_norms(
        model, tok, {s: anchors[s] for s in weights}, cfg, include)
    device = next(model.parameters()).device
    params = dict(model.named_parameters())
    wanted = set(params) if include is None else set(include)
    saved_grads = {n: p.grad for n, p in params.items()}
    for p in params.values():
        p.grad = None
    try:
        with frozen(model):
            for n in wanted:
                params[n].requires_grad_(True)
            for s, w in weights.items():
                exs = list(anchors[s])
                coef = w / (len(exs) * sq[s].sqrt().clamp_min(1e-30))
                encs = encode_examples(tok, exs, max_length=cfg.max_length, max_response_tokens=cfg.anchor_tokens)
                for idx in length_sorted_batches([len(e.input_ids) for e in encs], cfg.batch_size):
                    batch = make_batch([encs[i] for i in idx], tok.pad_token_id, device, cfg.padding_side)
                    losses = per_example_loss(model(**model_inputs(batch), use_cache=False).logits, batch["labels"])
                    (losses * coef[idx].to(device, losses.dtype)).sum().backward()
        # dict(named_parameters) lists a tied parameter once, under its first name
        return {n: (params[n].grad.detach() if params[n].grad is not None else torch.zeros_like(params[n]))
                for n in wanted}
    finally:
        for n, p in params.items():
            p.grad = saved_grads[n]


def loaded_model_identity(model: Any, tok: Any) -> str:
    """Fingerprint of a loaded model: config, tokenizer and a cheap checksum of every
    parameter (sum of its first and last 64 values, in float64)."""
    cfg = model.config.to_dict() if hasattr(model, "config") else {}
    sums = []
    for n, p in model.named_parameters():
        flat = p.detach().reshape(-1)
        sums.append((n, list(p.shape), float(flat[:64].double().sum()), float(flat[-64:].double().sum())))
    vocab = (getattr(tok, "name_or_path", None), len(tok), fingerprint(getattr(tok, "chat_template", None)))
    return fingerprint("model", {k: v for k, v in cfg.items() if k != "_name_or_path"}, vocab, sums)


def scores_fingerprint(
    key: str, candidates: Sequence[Any], anchors: Mapping[str, Sequence[Any]], weights: Mapping[str, float],
    cfg: ExactAnchorConfig,
) -> str:
    def data(exs: Sequence[Any]) -> list:
        return [(e.id, fingerprint(e.messages)) for e in exs]

    return fingerprint("exact-anchor/combined/v1", key, data(candidates),
                       {s: data(v) for s, v in anchors.items()}, dict(weights),
                       cfg.model_dump(mode="json", include=SCORE_FIELDS))


def _read_shards(folder: Path) -> dict[int, dict[str, Any]]:
    from brittle.store import read_json

    out = {}
    for f in sorted(folder.glob("shard-*.json")):
        try:
            rec = read_json(f)
        except ValueError:  # a torn file cannot happen (atomic rename) but never trust it
            log.warning("%s unreadable: recomputed", f)
            continue
        out[int(rec["index"])] = rec
    return out


def exact_combined_scores(
    model: Any,
    tok: Any,
    candidates: Sequence[Any],
    anchors: Mapping[str, Sequence[Any]],
    weights: Mapping[str, float],
    cfg: ExactAnchorConfig | None = None,
    *,
    cache_dir: str | Path | None = None,
    key: str | None = None,
    on_shard: Callable[[int], None] | None = None,
    progress: bool = False,
) -> CombinedScores:
    """``score(z) = ⟨g(z)/‖g(z)‖, Σ_S w_S V_S⟩`` for every candidate (see module docstring).

    ``key`` identifies the model (default :func:`loaded_model_identity`); ``cache_dir`` enables
    the shard cache; ``on_shard(j)`` is called after shard j is written. ``info`` holds the
    share of the anchor gradients' squared norm in the attack's trainable weights
    (:mod:`brittle.features.trainable`), per set and overall, and ‖P V‖²/‖V‖² when V is
    full-parameter.
    """
    import torch

    from brittle.store import write_json

    cfg = cfg or ExactAnchorConfig()
    candidates = list(candidates)
    include = included_params(model, cfg)
    fp = scores_fingerprint(key or loaded_model_identity(model, tok), candidates, anchors, weights, cfg)
    encs = encode_examples(tok, candidates, max_length=cfg.max_length, max_response_tokens=cfg.candidate_tokens)
    order = sorted(range(len(candidates)), key=lambda i: (-len(encs[i].input_ids), i))
    plan = [order[j:j + cfg.shard_size] for j in range(0, len(order), cfg.shard_size)]
    folder = Path(cache_dir) / fp if cache_dir is not None else None
    done = _read_shards(folder) if folder is not None else {}
    done = {j: r for j, r in done.items()
            if j < len(plan) and r["ids"] == [candidates[i].id for i in plan[j]]}
    info_path = folder / "info.json" if folder is not None else None
    if info_path is not None and info_path.exists() and len(done) == len(plan):
        from brittle.store import read_json

        info = read_json(info_path)
    else:
        info = {}
    direction = None
    if len(done) < len(plan) or not info:
        info = anchor_shares(model, tok, anchors, weights, cfg, include)
        direction = combined_direction(model, tok, anchors, weights, cfg, include=include,
                                       sq_norms=info.pop("_sq"))
        if include is None:
            info["direction_trainable_share"] = _direction_share_all(model, direction, cfg)
        info.update(fingerprint=fp, params=cfg.params, shards=len(plan))
        if info_path is not None:
            write_json(info_path, info)
    log.info("exact-anchor %s: %d shards, %d done, trainable share of anchor grads %.3f",
             fp, len(plan), len(done), info.get("anchor_trainable_share", float("nan")))
    f32 = torch.float64
    sq = torch.zeros(len(candidates), dtype=f32)
    dot = torch.zeros(len(candidates), dtype=f32)
    for j, idx in enumerate(plan):
        if j in done:
            sq[idx] = torch.tensor(done[j]["sq"], dtype=f32)
            dot[idx] = torch.tensor(done[j]["dot"], dtype=f32)
            continue
        s, d = per_example_stats(model, tok, [candidates[i] for i in idx], cfg,
                                 anchors={p: v.unsqueeze(0) for p, v in direction.items()},
                                 max_response_tokens=cfg.candidate_tokens, progress=progress, include=include)
        sq[idx], dot[idx] = s.to(f32), d[:, 0].to(f32)
        if folder is not None:
            write_json(folder / f"shard-{j:05d}.json",
                       {"index": j, "ids": [candidates[i].id for i in idx],
                        "sq": s.double().tolist(), "dot": d[:, 0].double().tolist()})
        if on_shard is not None:
            on_shard(j)
    del direction
    norms = sq.clamp_min(0).sqrt()
    return CombinedScores(dot / norms.clamp_min(1e-30), norms, info)


def anchor_shares(
    model: Any, tok: Any, anchors: Mapping[str, Sequence[Any]], weights: Mapping[str, float],
    cfg: ExactAnchorConfig, include: set[str] | None,
) -> dict[str, Any]:
    """Per-anchor ‖P g(a)‖²/‖g(a)‖² (mean per set and over all anchors) with P = the
    attack's trainable weights; ``_sq`` carries the norms of the scored space."""
    used = {s: anchors[s] for s in weights}
    sq_all = anchor_sq_norms(model, tok, used, cfg)
    try:
        train = include if include is not None else trainable_param_names(model, cfg.trainable_targets)
    except BrittleError as e:  # e.g. no matching targets: the share is unknown, scores still work
        log.warning("trainable share not computed: %s", e)
        return {"_sq": sq_all if include is None else anchor_sq_norms(model, tok, used, cfg, include)}
    sq_tr = anchor_sq_norms(model, tok, used, cfg, train)
    per_set = {s: float((sq_tr[s] / sq_all[s].clamp_min(1e-30)).double().mean()) for s in used}
    n = sum(len(v) for v in used.values())
    overall = sum(per_set[s] * len(used[s]) for s in used) / max(n, 1)
    return {"_sq": sq_all if include is None else sq_tr, "trainable_targets": cfg.trainable_targets,
            "anchor_trainable_share": overall, "anchor_trainable_share_by_set": per_set}


def _direction_share_all(model: Any, direction: dict[str, Any], cfg: ExactAnchorConfig) -> float | None:
    try:
        return direction_share(direction, trainable_param_names(model, cfg.trainable_targets))
    except BrittleError:
        return None
