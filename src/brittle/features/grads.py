"""Per-example LoRA (or linear-weight) gradients for a whole batch, randomly projected.

For a linear layer ``y = W x`` (+ LoRA ``s·B A x``) with input ``X_b`` (T×d_in) and
output gradient ``G_b = ∂L/∂y`` (T×d_out) of example b:

* full weight:  ``dW_b = G_bᵀ X_b``
* LoRA:         ``dA_b = s·Bᵀ G_bᵀ X_b = s·(G_b B)ᵀ X_b``  (r×d_in)
                ``dB_b = s·G_bᵀ (X_b Aᵀ)``                 (d_out×r)

``X_b`` and ``G_b`` come from hooks on a single batched forward/backward with all
weights frozen (only input gradients are computed), with the loss
``L = Σ_b mean_t CE_b,t`` so each example's gradient is its own (see :mod:`hooks`).

Feature = ``normalise(Σ_blocks P_blockᵀ vec(grad block))`` (see :mod:`projection`).
With ``optimizer='adam'`` each block is first replaced by LESS's Adam update direction
``(β1 m + (1-β1) g) / sqrt(β2 v + (1-β2) g² + ε)`` using the warm-up run's moments.

LoRA parameters: if the model carries PEFT LoRA layers (a warm-up adapter loaded
unmerged), their A, B and scaling are used. Otherwise a *virtual* LoRA is placed on the
target layers with PEFT's initialisation (A ~ kaiming-uniform(a=√5) =
U(-1/√d_in, 1/√d_in), seeded per layer; B = 0), which changes no output; then dA = 0
and the feature is the projected ``dB = s·Gᵀ (X Aᵀ)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from brittle.features.hooks import (
    Capture,
    capture_linears,
    embedding_output_requires_grad,
    encode_examples,
    frozen,
    linear_modules,
    make_batch,
    model_inputs,
    per_example_loss,
)
from brittle.features.projection import Projector, block_seed
from brittle.models.chat import length_sorted_batches

log = logging.getLogger(__name__)

LESS_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


class GradFeatureConfig(BaseModel):
    """Gradient-feature settings (defaults follow LESS, Xia et al. 2024)."""

    model_config = ConfigDict(extra="forbid")

    space: Literal["lora", "linear"] = Field(
        "lora", description="lora: LoRA A/B gradients (LESS); linear: full weights of the targets (LoGra).")
    lora_rank: int = Field(128, ge=1, description="LoRA rank of the virtual LoRA (LESS: 128).")
    lora_alpha: float = Field(512.0, description="LoRA alpha; scale s = alpha / rank (LESS: 512).")
    lora_targets: list[str] = Field(default_factory=lambda: list(LESS_TARGETS),
                                    description="Linear layer names to differentiate (LESS: q,k,v,o).")
    lora_seed: int = Field(0, description="Seed of the virtual LoRA's A matrices.")
    k: int = Field(8192, ge=1, description="Projection dimension (LESS: 8192).")
    projection: Literal["kronecker", "dense", "none"] = Field(
        "kronecker", description="kronecker (factorised, fast), dense (LESS/TRAK), none (exact vector).")
    proj_dist: Literal["rademacher", "gaussian"] = "rademacher"
    seed: int = Field(0, description="Projection seed.")
    optimizer: Literal["sgd", "adam"] = Field("sgd", description="adam: LESS Adam update direction.")
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    batch_size: int = Field(16, ge=1)
    max_length: int | None = Field(None, description="Truncate sequences to this many tokens.")
    max_response_tokens: int | None = Field(None, description="Use only the first n response tokens.")
    normalize: bool = Field(True, description="L2-normalise each feature row.")
    padding_side: Literal["right", "left"] = "right"
    projection_cache_mb: float = 1024.0


@dataclass
class LoraSite:
    name: str
    module: Any
    A: Any  # r × d_in
    B: Any  # d_out × r
    scale: float
    b_is_zero: bool


def lora_sites(model: Any, cfg: GradFeatureConfig) -> list[LoraSite]:
    """PEFT LoRA layers of ``model`` if any, else a virtual LoRA on ``cfg.lora_targets``."""
    import torch

    real = []
    for name, mod in model.named_modules():
        if hasattr(mod, "lora_A") and hasattr(mod, "base_layer") and len(getattr(mod, "lora_A", {})):
            ad = mod.active_adapters[0]
            A, B = mod.lora_A[ad].weight.detach(), mod.lora_B[ad].weight.detach()
            real.append(LoraSite(name, mod, A, B, float(mod.scaling[ad]), bool((B == 0).all())))
    if real:
        return real
    mods = linear_modules(model, cfg.lora_targets)
    if not mods:
        raise ValueError(f"no linear layers named {cfg.lora_targets} in the model")
    sites = []
    for name, mod in mods.items():
        d_out, d_in = mod.weight.shape
        g = torch.Generator().manual_seed(block_seed(cfg.lora_seed, name))
        bound = 1.0 / math.sqrt(d_in)
        A = (torch.rand(cfg.lora_rank, d_in, generator=g) * 2 - 1) * bound
        A = A.to(mod.weight.device)
        B = torch.zeros(d_out, cfg.lora_rank, device=mod.weight.device)
        sites.append(LoraSite(name, mod, A, B, cfg.lora_alpha / cfg.lora_rank, True))
    return sites


def block_names(model: Any, cfg: GradFeatureConfig) -> list[str]:
    """Names of the gradient blocks in the order used by ``projection='none'``."""
    if cfg.space == "linear":
        return [f"{n}.weight" for n in linear_modules(model, cfg.lora_targets)]
    return [f"{s.name}.{ab}" for s in lora_sites(model, cfg) for ab in ("lora_A", "lora_B")]


def adam_direction(g: Any, m: Any, v: Any, beta1: float, beta2: float, eps: float) -> Any:
    """LESS (``obtain_gradients_with_adam``): ``(β1 m + (1-β1) g) / sqrt(β2 v + (1-β2) g² + ε)``."""
    return (beta1 * m + (1 - beta1) * g) / (beta2 * v + (1 - beta2) * g * g + eps).sqrt()


def adam_moments_from_optimizer(model: Any, optimizer: Any) -> dict[str, tuple[Any, Any]]:
    """``{block name: (exp_avg, exp_avg_sq)}`` from a torch Adam/AdamW over a PEFT model.

    This is how the moments of a LESS warm-up run are obtained: train LoRA briefly on
    the candidate pool (LESS: 4 epochs on 5% of it), keep the optimizer, call this.
    """
    out = {}
    for s in lora_sites(model, GradFeatureConfig()):
        mod = s.module
        ad = mod.active_adapters[0]
        for ab, p in (("lora_A", mod.lora_A[ad].weight), ("lora_B", mod.lora_B[ad].weight)):
            st = optimizer.state.get(p)
            if not st:
                raise ValueError(f"optimizer has no state for {s.name}.{ab}")
            out[f"{s.name}.{ab}"] = (st["exp_avg"].detach().clone(), st["exp_avg_sq"].detach().clone())
    return out


class _Accumulator:
    """Receives (block, L, R) factor pairs of a batch and projects / stores them."""

    def __init__(self, cfg: GradFeatureConfig, projector: Projector | None,
                 moments: dict[str, tuple[Any, Any]] | None) -> None:
        self.cfg, self.projector, self.moments = cfg, projector, moments
        self.out: Any = None
        self.blocks: dict[str, Any] = {}

    def add(self, name: str, left: Any, right: Any, skip_if_zero: bool = False) -> None:
        import torch

        cfg = self.cfg
        if cfg.optimizer == "sgd" and self.projector is not None:
            if not skip_if_zero:
                self.projector.add_factored(self.out, name, left, right)
            return
        mat = torch.bmm(left.transpose(1, 2), right)
        if cfg.optimizer == "adam":
            if self.moments is None or name not in self.moments:
                raise ValueError(f"optimizer='adam' needs moments for block {name}")
            m, v = (t.to(mat.device, mat.dtype).reshape(mat.shape[1:]) for t in self.moments[name])
            mat = adam_direction(mat, m, v, cfg.adam_beta1, cfg.adam_beta2, cfg.adam_eps)
        if self.projector is None:
            self.blocks[name] = mat.reshape(mat.shape[0], -1)
        else:
            self.projector.add_dense(self.out, name, mat)


def projected_grads(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Any],
    cfg: GradFeatureConfig | None = None,
    *,
    moments: dict[str, tuple[Any, Any]] | None = None,
    progress: bool = False,
) -> Any:
    """Tensor[N, k] of projected per-example gradient features (rows L2-normalised).

    ``projection='none'`` returns the exact concatenated gradient (N × #params, block
    order :func:`block_names`) — for tests and small models.
    """
    import torch
    from tqdm.auto import tqdm

    cfg = cfg or GradFeatureConfig()
    device = next(model.parameters()).device
    encs = encode_examples(tokenizer, examples, max_length=cfg.max_length,
                           max_response_tokens=cfg.max_response_tokens)
    if cfg.space == "linear":
        mods = linear_modules(model, cfg.lora_targets)
        sites = None
    else:
        sites = {s.name: s for s in lora_sites(model, cfg)}
        mods = {n: s.module for n, s in sites.items()}
    order = block_names(model, cfg)
    projector = None if cfg.projection == "none" else Projector(
        cfg.k, cfg.projection, cfg.proj_dist, cfg.seed, cfg.projection_cache_mb)
    acc = _Accumulator(cfg, projector, moments)
    f32 = torch.float32

    def on_grad(name: str, x: Any, g: Any) -> None:
        x, g = x.to(f32), g.to(f32)
        if sites is None:
            acc.add(f"{name}.weight", g, x)
            return
        s = sites[name]
        A, B = s.A.to(f32), s.B.to(f32)
        acc.add(f"{name}.lora_A", s.scale * (g @ B), x, skip_if_zero=s.b_is_zero)
        acc.add(f"{name}.lora_B", s.scale * g, x @ A.T)

    cap = Capture(on_grad)
    results: list[Any] = [None] * len(encs)
    batches = length_sorted_batches([len(e.input_ids) for e in encs], cfg.batch_size)
    was_training = model.training
    model.eval()
    try:
        with frozen(model), capture_linears(model, mods, cap), embedding_output_requires_grad(model):
            for idx in tqdm(batches, disable=not progress, desc="grad features"):
                batch = make_batch([encs[i] for i in idx], tokenizer.pad_token_id, device,
                                   cfg.padding_side)
                cap.mask = batch["attention_mask"]
                acc.out = torch.zeros(len(idx), cfg.k, dtype=f32, device=device)
                acc.blocks = {}
                logits = model(**model_inputs(batch), use_cache=False).logits
                per_example_loss(logits, batch["labels"]).sum().backward()
                if projector is None:
                    feats = torch.cat([acc.blocks[n] for n in order], dim=1)
                else:
                    feats = acc.out
                for j, i in enumerate(idx):
                    results[i] = feats[j].detach().cpu()
    finally:
        model.train(was_training)
    out = torch.stack(results)
    if cfg.normalize:
        out = out / out.norm(dim=1, keepdim=True).clamp_min(1e-30)
    return out
