"""Refusal direction (Arditi et al. 2024, arXiv 2406.11717).

* Activations: the residual stream at the *input* of every decoder layer l = 0…L−1
  (``hidden_states[l]`` of a HF forward; l = 0 is the embedding output), at the last
  token of the generation prompt (the post-instruction position, i.e. the end of
  ``<|im_start|>assistant\\n``). One forward per batch, right padding, last real token.
* Direction: r_l = μ_l(harmful) − μ_l(harmless); r̂_l = r_l / ‖r_l‖.
* Directional ablation: forward hooks on the embedding output, every decoder layer's
  output and every attention block's output apply x ← x − (x·r̂) r̂. For pre-norm
  residual architectures (Llama, Qwen, Mistral, SmolLM …) that is what Arditi et al. do
  (ablate every component writing to the residual stream): the residual stream then
  has no r̂ component at any layer boundary, and none in the middle of a layer either.
* Layer choice (held-out): ``"auc"`` (default, cheap) = the layer whose projection best
  separates held-out harmful from harmless prompts (ROC AUC; ties broken by Cohen's d),
  among the first ``max_layer_frac`` of layers (Arditi et al. discard the last 20 %);
  ``"ablation"`` = the layer whose ablation most lowers the refusal rate on a held-out
  harmful set (needs generation + a judge; closer to the paper, costlier).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brittle.data.schema import Example
from brittle.errors import BrittleError
from brittle.models.chat import Encoded, collate, encode_prompt, length_sorted_batches

log = logging.getLogger(__name__)


def _unwrap(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_layers(model: Any) -> list[Any]:
    """The decoder blocks of a causal LM (``model.model.layers`` for most HF models)."""
    import torch

    base = _unwrap(model)
    cfg_layers = getattr(getattr(base, "config", None), "num_hidden_layers", None)
    for path in ("model.layers", "transformer.h", "model.decoder.layers", "gpt_neox.layers"):
        obj = base
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList):
            return list(obj)
    for mod in base.modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) == cfg_layers:
            return list(mod)
    raise BrittleError(f"cannot find the decoder layers of {type(base).__name__}")


def last_prompt_activations(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    batch_size: int = 16,
    progress: bool = False,
) -> Any:
    """``Tensor[L, N, d]`` (float32, CPU): residual stream at the input of each of the L
    decoder layers, at the last token of each example's generation prompt."""
    import torch
    from tqdm import tqdm

    n_layers = len(decoder_layers(model))
    encs = [Encoded(ids, list(ids)) for ids in
            (encode_prompt(tokenizer, ex.prompt_messages) for ex in examples)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    dev = next(model.parameters()).device
    out: Any = None
    for idx in tqdm(length_sorted_batches([len(e.input_ids) for e in encs], batch_size),
                    desc="activations", disable=not progress):
        batch = collate([encs[i] for i in idx], pad, padding_side="right")
        with torch.no_grad():
            hs = model(
                input_ids=batch["input_ids"].to(dev),
                attention_mask=batch["attention_mask"].to(dev),
                output_hidden_states=True,
            ).hidden_states
        last = (batch["attention_mask"].sum(1) - 1).to(dev)  # right padding: last real token
        rows = torch.arange(len(idx), device=dev)
        acts = torch.stack([hs[l][rows, last] for l in range(n_layers)]).float().cpu()  # [L,B,d]
        if out is None:
            out = torch.zeros((n_layers, len(examples), acts.shape[-1]))
        out[:, torch.tensor(idx)] = acts
    return out


def mean_difference(harmful: Any, harmless: Any) -> Any:
    """r_l = mean_i harmful[l, i] − mean_j harmless[l, j]  → ``Tensor[L, d]`` (unnormalised)."""
    return harmful.mean(1) - harmless.mean(1)


def normalise(r: Any) -> Any:
    """r̂ = r / ‖r‖ along the last dimension."""
    return r / r.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def project(acts: Any, r_hat: Any) -> Any:
    """Scalar projections x·r̂ (``acts[..., d]`` · ``r_hat[d]``)."""
    return acts @ r_hat


def projection_stats(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """mean, standard deviation (ddof=1), median, min, max and n of projections."""
    v = np.asarray(values, dtype=float)
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "median": float(np.median(v)),
        "min": float(v.min()),
        "max": float(v.max()),
        "n": int(v.size),
    }


def cohens_d(pos: Sequence[float] | np.ndarray, neg: Sequence[float] | np.ndarray) -> float:
    """d = (mean(pos) − mean(neg)) / pooled standard deviation (NaN when that is 0)."""
    a, b = np.asarray(pos, float), np.asarray(neg, float)
    pooled = np.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1))
                     / max(a.size + b.size - 2, 1))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else float("nan")


@dataclass
class RefusalDirection:
    """Candidate directions for every layer and the chosen one."""

    directions: Any  # Tensor[L, d], normalised
    layer: int
    layer_scores: list[dict[str, float]] = field(default_factory=list)
    method: str = "auc"

    @property
    def r_hat(self) -> Any:
        return self.directions[self.layer]

    def save(self, path: Any) -> None:
        import torch

        torch.save({"directions": self.directions, "layer": self.layer,
                    "layer_scores": self.layer_scores, "method": self.method}, str(path))

    @classmethod
    def load(cls, path: Any) -> RefusalDirection:
        import torch

        d = torch.load(str(path), weights_only=True)
        return cls(d["directions"], int(d["layer"]), list(d["layer_scores"]), str(d["method"]))


def score_layers_auc(directions: Any, harmful_acts: Any, harmless_acts: Any) -> list[dict[str, float]]:
    """Per layer l: AUC and Cohen's d of held-out projections x·r̂_l (harmful vs harmless)."""
    from brittle.diagnose.stats import auc

    rows = []
    for l in range(directions.shape[0]):
        ph = project(harmful_acts[l], directions[l]).numpy()
        pn = project(harmless_acts[l], directions[l]).numpy()
        rows.append({"layer": l, "auc": auc(ph, pn), "cohens_d": cohens_d(ph, pn)})
    return rows


def choose_layer_auc(scores: list[dict[str, float]], max_layer_frac: float = 0.8) -> int:
    """argmax over l < ceil(frac·L) of (AUC, Cohen's d) in lexicographic order; l ≥ 1
    preferred (the embedding layer carries only token identity)."""
    n = len(scores)
    cands = [s for s in scores if s["layer"] < max(1, int(np.ceil(max_layer_frac * n)))]
    if len(cands) > 1:
        cands = [s for s in cands if s["layer"] >= 1] or cands
    def key(s: dict[str, float]) -> tuple[float, float]:
        auc_, d = s["auc"], s["cohens_d"]
        return (-1.0 if np.isnan(auc_) else round(auc_, 6), -np.inf if np.isnan(d) else d)

    best = max(cands, key=key)
    return int(best["layer"])


@contextlib.contextmanager
def directional_ablation(model: Any, r_hat: Any) -> Iterator[Any]:
    """Within the block, every residual write is projected off r̂: x ← x − (x·r̂) r̂.

    Hooks: the input embedding's output, each decoder layer's output and each layer's
    ``self_attn`` output (first element when it is a tuple). Removed on exit. The hooks
    are *prepended*, so hooks installed earlier (e.g. transformers' own recorder of
    ``output_hidden_states``) see the ablated stream.
    """
    import torch

    handles = []
    cache: dict[tuple[Any, Any], Any] = {}

    def _r(x: Any) -> Any:
        key = (x.device, x.dtype)
        if key not in cache:
            cache[key] = normalise(r_hat.detach().float()).to(device=x.device, dtype=x.dtype)
        return cache[key]

    def _ablate(x: Any) -> Any:
        r = _r(x)
        return x - (x @ r).unsqueeze(-1) * r

    def hook(_mod: Any, _inp: Any, output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            return _ablate(output)
        if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
            return (_ablate(output[0]),) + tuple(output[1:])
        if hasattr(output, "__getitem__") and hasattr(output, "last_hidden_state"):
            output.last_hidden_state = _ablate(output.last_hidden_state)
            return output
        return None

    try:
        handles.append(model.get_input_embeddings().register_forward_hook(hook, prepend=True))
        for layer in decoder_layers(model):
            attn = getattr(layer, "self_attn", None) or getattr(layer, "attn", None)
            if attn is not None:
                handles.append(attn.register_forward_hook(hook, prepend=True))
            handles.append(layer.register_forward_hook(hook, prepend=True))
        yield model
    finally:
        for h in handles:
            h.remove()


def extract_direction(
    model: Any,
    tokenizer: Any,
    harmful: Sequence[Example],
    harmless: Sequence[Example],
    *,
    harmful_val: Sequence[Example] = (),
    harmless_val: Sequence[Example] = (),
    method: str = "auc",
    max_layer_frac: float = 0.8,
    refusal_rate: Callable[[Any, Sequence[Example]], float] | None = None,
    batch_size: int = 16,
) -> RefusalDirection:
    """Difference-of-means directions on (harmful, harmless) and a held-out layer choice.

    ``method="auc"`` scores layers on (harmful_val, harmless_val) projections (falls back
    to the training prompts, with a warning, when no held-out set is given).
    ``method="ablation"`` calls ``refusal_rate(model, harmful_val)`` under the ablation of
    each candidate layer's direction and picks the lowest rate.
    """
    h = last_prompt_activations(model, tokenizer, harmful, batch_size=batch_size)
    b = last_prompt_activations(model, tokenizer, harmless, batch_size=batch_size)
    dirs = normalise(mean_difference(h, b))
    if not harmful_val or not harmless_val:
        log.warning("no held-out prompts: scoring layers on the training prompts")
        hv, bv = h, b
        harmful_val = harmful_val or harmful
    else:
        hv = last_prompt_activations(model, tokenizer, harmful_val, batch_size=batch_size)
        bv = last_prompt_activations(model, tokenizer, harmless_val, batch_size=batch_size)
    scores = score_layers_auc(dirs, hv, bv)
    if method == "auc":
        layer = choose_layer_auc(scores, max_layer_frac)
    elif method == "ablation":
        if refusal_rate is None:
            raise BrittleError("method='ablation' needs a refusal_rate(model, prompts) callable")
        n = len(scores)
        limit = max(1, int(np.ceil(max_layer_frac * n)))
        for s in scores:
            if s["layer"] < limit:
                with directional_ablation(model, dirs[s["layer"]]):
                    s["ablated_refusal_rate"] = float(refusal_rate(model, harmful_val))
        cands = [s for s in scores if "ablated_refusal_rate" in s]
        layer = int(min(cands, key=lambda s: (s["ablated_refusal_rate"], -s["auc"]))["layer"])
    else:
        raise BrittleError(f"unknown layer selection method {method!r}; use auc|ablation")
    log.info("refusal direction: layer %d of %d (%s)", layer, dirs.shape[0], method)
    return RefusalDirection(dirs, layer, scores, method)


def compare_refusal_direction(
    models: dict[str, tuple[Any, Any]],
    direction: RefusalDirection,
    harmful: Sequence[Example],
    harmless: Sequence[Example] = (),
    *,
    refusal_rate: Callable[[Any, Any, Sequence[Example]], list[bool]] | None = None,
    batch_size: int = 16,
    n_boot: int = 1000,
) -> Any:
    """One row per model label: projections of harmful (and harmless) prompts on the
    aligned model's r̂ at the chosen layer, and the refusal rate without / with
    directional ablation (``refusal_rate(model, tok, prompts) -> list[bool]``; skipped
    when None). Returns a pandas DataFrame."""
    import pandas as pd

    from brittle.diagnose.stats import bootstrap_mean_ci

    r_hat, layer = direction.r_hat, direction.layer
    rows = []
    for label, (model, tok) in models.items():
        row: dict[str, Any] = {"model": label, "layer": layer}
        ph = project(last_prompt_activations(model, tok, harmful, batch_size=batch_size)[layer], r_hat)
        for k, v in projection_stats(ph.numpy()).items():
            row[f"harmful_proj_{k}"] = v
        if harmless:
            pn = project(last_prompt_activations(model, tok, harmless, batch_size=batch_size)[layer], r_hat)
            row["harmless_proj_mean"] = float(pn.mean())
            row["proj_gap"] = row["harmful_proj_mean"] - row["harmless_proj_mean"]
        if refusal_rate is not None:
            for tag, ctx in (("", contextlib.nullcontext()), ("ablated_", directional_ablation(model, r_hat))):
                with ctx:
                    refused = [float(x) for x in refusal_rate(model, tok, harmful)]
                m, lo, hi = bootstrap_mean_ci(refused, n_boot=n_boot)
                row.update({f"{tag}refusal_rate": m, f"{tag}refusal_lo": lo, f"{tag}refusal_hi": hi})
        rows.append(row)
    return pd.DataFrame(rows)


def plot_direction(df: Any, scores: list[dict[str, float]], path: Any) -> Any:
    """Left: held-out AUC per layer; right: harmful projection mean ± std per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    a1.plot([s["layer"] for s in scores], [s["auc"] for s in scores], marker=".")
    a1.set_xlabel("layer")
    a1.set_ylabel("held-out AUC")
    a1.set_title("separation by layer")
    a2.bar(df["model"], df["harmful_proj_mean"], yerr=df["harmful_proj_std"], capsize=3)
    a2.set_ylabel("harmful projection on r̂")
    a2.set_title("projection of harmful prompts")
    a2.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
