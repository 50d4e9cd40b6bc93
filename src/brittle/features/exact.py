"""Exact full-parameter anchor scores with batched "ghost" inner products.

The reference code of He, Xia & Henderson (2024) scores a candidate z against an anchor
set S by the exact full-parameter cosine

    score_S(z) = ⟨ g(z)/‖g(z)‖ , V_S ⟩,   V_S = mean_{a∈S} g(a)/‖g(a)‖,

where g = ∇_θ (mean response-token CE). Anchors use only their first ``anchor_tokens``
(10) response tokens; candidates the full response. Here V_S is materialised (one
model-sized tensor per anchor set: a weighted backward ``∇ Σ_a L_a / (|S| ‖g(a)‖)``),
and per-example quantities of candidates are computed for a whole batch from hooks,
never materialising a full per-example gradient:

* linear weight W (input X_b: T×d_in, output grad G_b: T×d_out), grad G_bᵀX_b:
  ``⟨G_bᵀX_b, V⟩ = Σ_t g_tᵀ V x_t``;  ``‖G_bᵀX_b‖² = Σ_{t,t'} (g_t·g_t')(x_t·x_t')``
  — or, when cheaper (cost model below), materialise G_bᵀX_b for a few examples at a
  time: ghost ≈ n·T·d_in·d_out + T²(d_in+d_out), materialise ≈ (T+n+1)·d_in·d_out.
* linear bias: Σ_t g_t (materialised, d_out per example).
* embedding E (ids i_t, output grad e_t): grad = Σ_t onehot(i_t) e_tᵀ, so
  ``⟨·, V⟩ = Σ_t e_t·V[i_t]``, ``‖·‖² = Σ_{t,t'} [i_t = i_t'] e_t·e_t'``.
* 1-D scale/shift parameters (RMSNorm weights): computed exactly per example by
  giving each example its own copy of the weight (a B×d leaf broadcast in the forward).
* a parameter used by several modules (tied embedding / lm_head): its gradient is the
  sum of the per-use gradients; dot products add up and
  ``‖Σ_u M_u‖² = Σ_u ‖M_u‖² + 2 Σ_{u<w} ⟨M_u, M_w⟩`` with ghost cross terms
  (linear·linear ``Σ_{t,t'} (g_t·g'_t')(x_t·x'_t')``, embedding·embedding
  ``Σ_{t,t'} [i_t = i'_t'] e_t·e'_t'``, lm_head·embedding
  ``⟨G_bᵀX_b, scatter(E_b)⟩ = Σ_{t'} Σ_t G[t, i_t'] (x_t·e_t')``) — no vocab×d
  per-example tensor is built. Other combinations (e.g. a shared bias) are materialised.

Precision: GEMMs run in the model's dtype (float64 for a float64 model — the exactness
tests — float32, or bf16 on a GPU); the per-example sums are accumulated in
``promote(model dtype, float32)``. dL/dlogits (B×T×V) is never copied to a wider dtype.

All parameters must be covered, else :class:`BrittleError` lists the missing ones.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from brittle.errors import BrittleError
from brittle.features.exact_cost import choose_linear_mode
from brittle.features.hooks import (
    Capture,
    capture_linears,
    embedding_output_requires_grad,
    encode_examples,
    frozen,
    layer_checkpointing,
    make_batch,
    model_inputs,
    per_example_loss,
)
from brittle.models.chat import length_sorted_batches

log = logging.getLogger(__name__)


class ExactAnchorConfig(BaseModel):
    """Settings of the paper's default ``exact-anchor`` gradient scores."""

    model_config = ConfigDict(extra="forbid")

    anchor_tokens: int | None = Field(10, description="Anchor gradients use the first n response tokens.")
    candidate_tokens: int | None = Field(None, description="Candidate cut-off (None = full response).")
    batch_size: int = Field(8, ge=1)
    max_length: int | None = None
    mode: Literal["auto", "ghost", "materialize"] = Field(
        "auto", description="Per linear layer: ghost inner products, materialised G^T X, or the cheaper "
        "by FLOPs + bytes (brittle.features.exact_cost).")
    materialize_mb: float = Field(
        512.0, description="Memory budget (MB) for materialised per-example gradient blocks; a layer whose "
        "single-example block does not fit is always done by ghost sums.")
    flops_per_byte: float = Field(
        100.0, ge=0, description="Machine balance used by the auto mode chooser: cost = FLOPs + this × bytes "
        "(H100 bf16 ~300, CPU ~10).")
    padding_side: Literal["right", "left"] = "right"
    gradient_checkpointing: bool = Field(
        False, description="Recompute each decoder layer in backward (reentrant checkpointing): activations "
        "of only one layer are alive at a time; for long candidates at 7B+.")
    params: Literal["all", "trainable"] = Field(
        "all", description="all: full-parameter gradients (reference code); trainable: only the weight "
        "matrices of the linear layers the attack's LoRA targets (see brittle.features.trainable).")
    trainable_targets: list[str] | str = Field(
        "all-linear", description="LoRA target modules of the attack ('all-linear' = every nn.Linear except "
        "the output layer, as PEFT) — the parameters counted as trainable.")
    shard_size: int = Field(256, ge=1, description="Candidates per score shard (unit of resume).")


@dataclass
class ExactScores:
    scores: dict[str, Any]  # anchor set -> Tensor[N] of cosines
    norms: Any  # Tensor[N]: full-parameter gradient norm of each candidate


# ---------------------------------------------------------------- per-block formulas


def linear_ghost_dots(g: Any, x: Any, v: Any) -> Any:
    """``dots[b, a] = Σ_t g_tᵀ V_a x_t`` for g (B,T,o), x (B,T,i), v (n,o,i) -> (B,n).

    Computed through the smaller side (``(g V_a)·x`` when o ≥ i, else ``g·(x V_aᵀ)``), so
    the temporary is B×T×min(o, i) per anchor.
    """
    import torch

    cols = []
    for a in range(v.shape[0]):
        if v.shape[1] >= v.shape[2]:
            cols.append(torch.einsum("bti,bti->b", g @ v[a], x))
        else:
            cols.append(torch.einsum("bto,bto->b", x @ v[a].T, g))
    return torch.stack(cols, dim=1)


def linear_ghost_cross(g1: Any, x1: Any, g2: Any, x2: Any) -> Any:
    """``⟨G1_bᵀX1_b, G2_bᵀX2_b⟩ = Σ_{t,t'} (g1_t·g2_t')(x1_t·x2_t')`` -> (B,)."""
    import torch

    acc = torch.promote_types(g1.dtype, torch.float32)
    gg = (g1 @ g2.transpose(1, 2)).to(acc)
    xx = (x1 @ x2.transpose(1, 2)).to(acc)
    return (gg * xx).sum(dim=(1, 2))


def linear_ghost_sqnorm(g: Any, x: Any) -> Any:
    """``‖Gᵀ X‖²_F = Σ_{t,t'} (g_t·g_t')(x_t·x_t')`` -> (B,)."""
    return linear_ghost_cross(g, x, g, x)


def embedding_dots(ids: Any, e: Any, v: Any) -> Any:
    """``dots[b, a] = Σ_t e_t · V_a[i_t]`` for ids (B,T), e (B,T,d), v (n,V,d) -> (B,n)."""
    import torch

    return torch.stack([torch.einsum("btd,btd->b", v[a][ids], e) for a in range(v.shape[0])], dim=1)


def embedding_cross(ids1: Any, e1: Any, ids2: Any, e2: Any) -> Any:
    """``⟨scatter(E1_b), scatter(E2_b)⟩ = Σ_{t,t'} [i1_t = i2_t'] e1_t·e2_t'`` -> (B,)."""
    import torch

    acc = torch.promote_types(e1.dtype, torch.float32)
    same = (ids1.unsqueeze(2) == ids2.unsqueeze(1)).to(acc)
    return (same * (e1 @ e2.transpose(1, 2)).to(acc)).sum(dim=(1, 2))


def embedding_sqnorm(ids: Any, e: Any) -> Any:
    """``Σ_{t,t'} [i_t = i_t'] e_t·e_t'`` -> (B,)."""
    return embedding_cross(ids, e, ids, e)


def linear_embedding_cross(g: Any, x: Any, ids: Any, e: Any) -> Any:
    """Tied lm_head · input embedding: ``⟨G_bᵀX_b, scatter(E_b)⟩`` -> (B,).

    ``G_bᵀX_b`` (V×d) is the lm_head gradient (g = dL/dlogits: B,T,V; x = final hidden:
    B,T,d); ``scatter(E_b)`` puts embedding-output grads e_t' (B,T',d) into rows ids_t'.
    ``= Σ_{t'} Σ_t G[t, i_t'] (x_t·e_t')`` — a gather of T×T' logit grads, T×T'×d work.
    """
    import torch

    acc = torch.promote_types(g.dtype, torch.float32)
    gi = torch.gather(g, 2, ids.unsqueeze(1).expand(-1, g.shape[1], -1))  # [b,t,t'] = G[b,t,i_t']
    return (gi.to(acc) * (x @ e.transpose(1, 2)).to(acc)).sum(dim=(1, 2))


def piece_cross(a: tuple, b: tuple) -> Any:
    """Ghost inner product of two per-use gradient pieces ``("linear", (g, x))`` /
    ``("embedding", (ids, e))`` of the same (tied) parameter -> (B,)."""
    (ka, da), (kb, db) = a, b
    if ka == "linear" and kb == "linear":
        return linear_ghost_cross(da[0], da[1], db[0], db[1])
    if ka == "embedding" and kb == "embedding":
        return embedding_cross(da[0], da[1], db[0], db[1])
    if ka == "linear" and kb == "embedding":
        return linear_embedding_cross(da[0], da[1], db[0], db[1])
    return linear_embedding_cross(db[0], db[1], da[0], da[1])


def piece_dots(piece: tuple, v: Any) -> Any:
    kind, data = piece
    return linear_ghost_dots(*data, v) if kind == "linear" else embedding_dots(*data, v)


def _materialize_embedding(ids: Any, e: Any, shape: tuple) -> Any:
    import torch

    out = torch.zeros(e.shape[0], *shape, dtype=e.dtype, device=e.device)
    for j in range(e.shape[0]):
        out[j].index_add_(0, ids[j], e[j])
    return out


# ---------------------------------------------------------------- parameter sites


@dataclass
class _Sites:
    linears: dict[str, Any]  # module name -> nn.Linear
    embeddings: dict[str, Any]  # module name -> nn.Embedding
    scales: dict[str, Any]  # module name -> module with 1-D weight/bias
    pname: dict[int, str]  # id(param) -> canonical parameter name
    uses: dict[str, int]  # parameter name -> number of (module, role) uses
    own: dict[str, set[str]]  # module name -> its local parameter names that are differentiated


def _sites(model: Any, include: set[str] | None = None) -> _Sites:
    """Modules whose parameters get per-example gradients; ``include`` restricts them to
    those parameter names (the others are treated as constants)."""
    from torch import nn

    for name, mod in model.named_modules():
        if hasattr(mod, "lora_A") and hasattr(mod, "base_layer"):
            raise BrittleError("exact-anchor needs a plain model: merge the LoRA adapter first "
                               "(model = model.merge_and_unload())")
    pname = {id(p): n for n, p in model.named_parameters()}
    covered: dict[str, int] = defaultdict(int)
    lin, emb, sc, owned = {}, {}, {}, {}
    for name, mod in model.named_modules():
        own = dict(mod.named_parameters(recurse=False))
        if include is not None:
            own = {k: p for k, p in own.items() if pname[id(p)] in include}
        if not own:
            continue
        if isinstance(mod, nn.Linear):
            lin[name] = mod
        elif isinstance(mod, nn.Embedding):
            emb[name] = mod
        elif set(own) <= {"weight", "bias"} and all(p.dim() == 1 for p in own.values()):
            sc[name] = mod
        else:
            continue
        owned[name] = set(own)
        for p in own.values():
            covered[pname[id(p)]] += 1
    missing = [n for n in pname.values() if n not in covered and (include is None or n in include)]
    if missing:
        raise BrittleError(f"exact-anchor cannot differentiate parameters {missing[:5]} "
                           f"(only Linear, Embedding and 1-D norm parameters are supported)")
    return _Sites(lin, emb, sc, pname, dict(covered), owned)


@contextlib.contextmanager
def _per_example_scales(
    mods: dict[str, Any], own: dict[str, set[str]] | None = None
) -> Iterator[dict[tuple[str, str], tuple[Any, Any]]]:
    """Give every example its own copy of each 1-D parameter (a (B,d) leaf, broadcast)."""
    saved = {name: {k: p for k, p in m.named_parameters(recurse=False) if own is None or k in own[name]}
             for name, m in mods.items()}
    leaves: dict[tuple[str, str], tuple[Any, Any]] = {}
    handles = []

    def make(name: str):
        def pre(mod: Any, inputs: tuple) -> None:
            x = inputs[0]
            for pn, p in saved[name].items():
                leaf = p.detach().to(x.dtype if x.is_floating_point() else p.dtype)
                leaf = leaf.unsqueeze(0).repeat(x.shape[0], 1).requires_grad_(True)
                leaves[(name, pn)] = (p, leaf)
                object.__setattr__(mod, pn, leaf.view(x.shape[0], *([1] * (x.dim() - 2)), -1))
        return pre

    for name, m in mods.items():
        for pn in saved[name]:
            del m._parameters[pn]
        handles.append(m.register_forward_pre_hook(make(name)))
    try:
        yield leaves
    finally:
        for h in handles:
            h.remove()
        for name, m in mods.items():
            for pn, p in saved[name].items():
                m.__dict__.pop(pn, None)
                m._parameters[pn] = p


@contextlib.contextmanager
def _embedding_capture(mods: dict[str, Any], on_grad) -> Iterator[None]:
    handles = []

    def make(name: str):
        def hook(mod: Any, inputs: tuple, output: Any) -> Any:
            out = output.detach().requires_grad_(True)
            ids = inputs[0]
            out.register_hook(lambda g: on_grad(name, ids, g.detach()))
            return out
        return hook

    for name, m in mods.items():
        handles.append(m.register_forward_hook(make(name)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# ---------------------------------------------------------------- the batched pass


def per_example_stats(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Any],
    cfg: ExactAnchorConfig,
    *,
    anchors: dict[str, Any] | None = None,
    max_response_tokens: int | None = None,
    progress: bool = False,
    include: set[str] | None = None,
) -> tuple[Any, Any]:
    """``(sq_norms[N], dots[N, n])`` of each example's full-parameter gradient.

    ``anchors``: parameter name -> Tensor[n, *param.shape] (stacked anchor directions);
    ``dots[:, a] = ⟨g(z), V_a⟩``. All batched; per-example gradients are never stored
    whole. ``include``: restrict the gradient to these parameter names (the projection
    P g(z) onto their coordinates); None = all parameters.
    """
    import torch
    from tqdm.auto import tqdm

    sites = _sites(model, include)
    device = next(model.parameters()).device
    cdt = next(model.parameters()).dtype  # GEMMs in the model's dtype
    # per-example sums in float32 (float64 for a float64 model: exact tests)
    f32 = torch.promote_types(cdt, torch.float32)
    params = dict(model.named_parameters())
    n_anchor = 0 if anchors is None else next(iter(anchors.values())).shape[0]
    encs = encode_examples(tokenizer, examples, max_length=cfg.max_length,
                           max_response_tokens=max_response_tokens)
    sq = torch.zeros(len(encs), dtype=f32)
    dots = torch.zeros(len(encs), n_anchor, dtype=f32)
    budget = cfg.materialize_mb * 2**20 / 4  # float32 elements (shared parameters)
    elem = torch.empty((), dtype=cdt).element_size()

    state: dict[str, Any] = {}
    pending: dict[str, list] = defaultdict(list)  # tied params: (kind, data) pieces
    vcache: dict[str, Any] = {}

    def v_of(p: str) -> Any:
        if anchors is None:
            return None
        if p not in vcache:
            vcache[p] = anchors[p].to(device, cdt)
        return vcache[p]

    def sqsum(m: Any) -> Any:
        return m.to(f32).pow(2).flatten(1).sum(1)

    def add_dense(p: str, m: Any) -> None:  # m: (B, *shape) per-example gradient
        if sites.uses[p] > 1:
            pending[p].append(("dense", m))
            return
        state["sq"] += sqsum(m)
        if anchors is not None:
            state["dots"] += (m.to(cdt).flatten(1) @ v_of(p).flatten(1).T).to(f32)

    def on_linear(name: str, x: Any, g: Any) -> None:
        # x is already multiplied by the mask (Capture), so padded positions drop out of
        # every weight term without copying g (B×T×V for the lm_head)
        mod = sites.linears[name]
        x, g = x.to(cdt), g.to(cdt)
        if "bias" in sites.own[name]:
            add_dense(sites.pname[id(mod.bias)], torch.einsum("bto,bt->bo", g, state["mask"].to(cdt)))
        if "weight" not in sites.own[name]:
            return
        p = sites.pname[id(mod.weight)]
        if sites.uses[p] > 1:
            pending[p].append(("linear", (g, x)))
            return
        (B, T), (o, i) = x.shape[:2], mod.weight.shape
        choice = choose_linear_mode(B, T, o, i, n_anchor, elem=elem, budget_bytes=cfg.materialize_mb * 2**20,
                                    flops_per_byte=cfg.flops_per_byte)
        mode = choice.mode if cfg.mode == "auto" else cfg.mode
        state["modes"][mode] += 1
        if mode == "ghost":
            state["sq"] += linear_ghost_sqnorm(g, x).to(f32)
            if anchors is not None:
                state["dots"] += linear_ghost_dots(g, x, v_of(p)).to(f32)
        else:
            v = v_of(p)
            step = max(1, min(choice.chunk, int(budget // (o * i))))
            for c in range(0, x.shape[0], step):
                m = torch.bmm(g[c:c + step].transpose(1, 2), x[c:c + step])
                state["sq"][c:c + step] += sqsum(m)
                if v is not None:
                    state["dots"][c:c + step] += (m.flatten(1) @ v.flatten(1).T).to(f32)

    def on_embedding(name: str, ids: Any, e: Any) -> None:
        e = e.to(cdt) * state["mask"].to(cdt).unsqueeze(-1)
        p = sites.pname[id(sites.embeddings[name].weight)]
        if sites.uses[p] > 1:
            pending[p].append(("embedding", (ids, e)))
            return
        state["sq"] += embedding_sqnorm(ids, e).to(f32)
        if anchors is not None:
            state["dots"] += embedding_dots(ids, e, v_of(p)).to(f32)

    def finish_ghost(p: str, pieces: list) -> None:
        """Shared parameter, ghost: ‖Σ_u M_u‖² = Σ_u ‖M_u‖² + 2 Σ_{u<w} ⟨M_u, M_w⟩."""
        v = v_of(p)
        for u, a in enumerate(pieces):
            for w in range(u, len(pieces)):
                state["sq"] += (1.0 if w == u else 2.0) * piece_cross(a, pieces[w]).to(f32)
            if v is not None:
                state["dots"] += piece_dots(a, v).to(f32)

    def finish_materialized(p: str, pieces: list) -> None:
        shape = tuple(params[p].shape)
        v = v_of(p)
        B = state["sq"].shape[0]
        step = max(1, int(budget // max(1, params[p].numel())))
        for c in range(0, B, step):
            m = None
            for kind, data in pieces:
                if kind == "linear":
                    g, x = data
                    part = torch.bmm(g[c:c + step].transpose(1, 2), x[c:c + step])
                elif kind == "embedding":
                    ids, e = data
                    part = _materialize_embedding(ids[c:c + step], e[c:c + step], shape)
                else:
                    part = data[c:c + step].to(cdt)
                m = part if m is None else m + part
            state["sq"][c:c + step] += sqsum(m)
            if v is not None:
                state["dots"][c:c + step] += (m.flatten(1) @ v.flatten(1).T).to(f32)

    def finish_pending() -> None:
        for p, pieces in pending.items():
            shape = tuple(params[p].shape)
            ghostable = all(
                k == "linear" and tuple(d[0].shape[-1:] + d[1].shape[-1:]) == shape
                or k == "embedding" and len(shape) == 2 and d[1].shape[-1] == shape[1]
                for k, d in pieces)
            if ghostable and cfg.mode != "materialize":
                finish_ghost(p, pieces)
            else:
                finish_materialized(p, pieces)
        pending.clear()

    batches = length_sorted_batches([len(e.input_ids) for e in encs], cfg.batch_size)
    cap = Capture(on_linear)
    was_training = model.training
    model.eval()
    state["modes"] = defaultdict(int)
    try:
        with frozen(model), capture_linears(model, sites.linears, cap), \
                _embedding_capture(sites.embeddings, on_embedding), embedding_output_requires_grad(model), \
                _per_example_scales(sites.scales, sites.own) as leaves, \
                layer_checkpointing(model, cfg.gradient_checkpointing):
            for idx in tqdm(batches, disable=not progress, desc="exact grads"):
                batch = make_batch([encs[i] for i in idx], tokenizer.pad_token_id, device,
                                   cfg.padding_side)
                cap.mask = batch["attention_mask"]
                state.update(mask=batch["attention_mask"].to(f32),
                             sq=torch.zeros(len(idx), dtype=f32, device=device),
                             dots=torch.zeros(len(idx), n_anchor, dtype=f32, device=device))
                leaves.clear()
                logits = model(**model_inputs(batch), use_cache=False).logits
                per_example_loss(logits, batch["labels"]).sum().backward()
                for param, leaf in leaves.values():
                    gm = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
                    add_dense(sites.pname[id(param)], gm.to(f32))
                finish_pending()
                sq[idx] = state["sq"].cpu()
                dots[idx] = state["dots"].cpu()
    finally:
        model.train(was_training)
    log.debug("exact linear modes (layer x batch): %s", dict(state["modes"]))
    return sq, dots


def anchor_mean_gradient(
    model: Any, tokenizer: Any, anchors: Sequence[Any], cfg: ExactAnchorConfig
) -> dict[str, Any]:
    """``V = mean_a g(a)/‖g(a)‖`` over all parameters, as ``{param name: tensor}``.

    Two passes: batched ghost norms ‖g(a)‖, then one weighted backward of
    ``Σ_a L_a / (|S|·‖g(a)‖)`` whose parameter gradient is exactly V.
    """
    import torch

    sq, _ = per_example_stats(model, tokenizer, anchors, cfg, max_response_tokens=cfg.anchor_tokens)
    w = 1.0 / (len(anchors) * sq.sqrt().clamp_min(1e-30))
    encs = encode_examples(tokenizer, anchors, max_length=cfg.max_length,
                           max_response_tokens=cfg.anchor_tokens)
    device = next(model.parameters()).device
    params = dict(model.named_parameters())
    saved_grads = {n: p.grad for n, p in params.items()}
    with frozen(model, requires_grad=True):
        for p in params.values():
            p.grad = None
        for idx in length_sorted_batches([len(e.input_ids) for e in encs], cfg.batch_size):
            batch = make_batch([encs[i] for i in idx], tokenizer.pad_token_id, device, cfg.padding_side)
            losses = per_example_loss(model(**model_inputs(batch), use_cache=False).logits, batch["labels"])
            (losses * w[idx].to(device)).sum().backward()
        acc = torch.promote_types(next(model.parameters()).dtype, torch.float32)
        out = {n: (p.grad.detach().to(acc).clone() if p.grad is not None else torch.zeros_like(p, dtype=acc))
               for n, p in params.items()}
        for n, p in params.items():
            p.grad = saved_grads[n]
    return out


def exact_anchor_result(
    model: Any,
    tokenizer: Any,
    candidates: Sequence[Any],
    anchors: dict[str, Sequence[Any]],
    cfg: ExactAnchorConfig | None = None,
    *,
    progress: bool = False,
) -> ExactScores:
    """Scores (cosines to each anchor mean) and gradient norms of the candidates."""
    import torch

    cfg = cfg or ExactAnchorConfig()
    if not anchors:
        raise BrittleError("exact-anchor needs at least one anchor set")
    names = list(anchors)
    per = [anchor_mean_gradient(model, tokenizer, anchors[a], cfg) for a in names]
    # stack parameter by parameter, dropping the per-set copies as we go: the peak stays at
    # one set of full-parameter gradients per anchor set (a 0.5B model: 3 × 2.5 GB), not two
    stacked = {p: torch.stack([v.pop(p) for v in per]) for p in list(per[0])}
    del per
    sq, dots = per_example_stats(model, tokenizer, candidates, cfg, anchors=stacked,
                                 max_response_tokens=cfg.candidate_tokens, progress=progress)
    norms = sq.clamp_min(0).sqrt()
    scores = {a: dots[:, j] / norms.clamp_min(1e-30) for j, a in enumerate(names)}
    return ExactScores(scores, norms)


def exact_anchor_scores(
    model: Any,
    tokenizer: Any,
    candidates: Sequence[Any],
    anchors: dict[str, Sequence[Any]],
    cfg: ExactAnchorConfig | None = None,
    *,
    progress: bool = False,
) -> dict[str, Any]:
    """``{anchor set: Tensor[N]}`` with ``⟨g(z)/‖g(z)‖, mean_a g(a)/‖g(a)‖⟩`` (full parameters)."""
    return exact_anchor_result(model, tokenizer, candidates, anchors, cfg, progress=progress).scores
