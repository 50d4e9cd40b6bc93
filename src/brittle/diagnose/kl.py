"""Per-token KL between two models on fixed responses (Qi et al. 2025, arXiv 2406.05946).

For a prompt x and a response y = (y_1 … y_T), response position k has the next-token
distributions P(· | x, y_<k) and Q(· | x, y_<k). We compute

    KL_k = Σ_v P(v | x, y_<k) · (log P(v | x, y_<k) − log Q(v | x, y_<k))

for k = 1 … K, teacher-forced on the given response (no generation): ONE forward pass
per batch per model over prompt+response, right-padded, with response positions taken
from :func:`brittle.models.chat.encode` labels (assistant content + end-of-turn token).
Positions beyond a response's length are NaN.

"Aligned" and "base" can be two models, or one PEFT model with its adapter on/off
(:class:`AdapterView`, or pass the same PeftModel twice: the second pass runs under
``model.disable_adapter()``), which needs the weights in memory only once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from brittle.data.schema import Example
from brittle.errors import BrittleError
from brittle.models.chat import IGNORE, collate, encode, length_sorted_batches

log = logging.getLogger(__name__)

FIRST_TOKENS = 5


@dataclass(frozen=True)
class AdapterView:
    """A PEFT model seen with one adapter active (``adapter=name``) or none (``None``)."""

    model: Any
    adapter: str | None = None

    @contextlib.contextmanager
    def active(self) -> Iterator[Any]:
        m = self.model
        if self.adapter is None:
            if not hasattr(m, "disable_adapter"):
                yield m  # a plain model is its own base
                return
            with m.disable_adapter():
                yield m
            return
        if not hasattr(m, "set_adapter"):
            raise BrittleError(f"model has no adapters; cannot activate {self.adapter!r}")
        previous = getattr(m, "active_adapter", None)
        m.set_adapter(self.adapter)
        try:
            yield m
        finally:
            if isinstance(previous, str) and previous != self.adapter:
                m.set_adapter(previous)


def _as_view(model: Any) -> AdapterView | None:
    return model if isinstance(model, AdapterView) else None


@contextlib.contextmanager
def _activate(model: Any) -> Iterator[Any]:
    view = _as_view(model)
    if view is None:
        yield model
    else:
        with view.active() as m:
            yield m


def _device(model: Any) -> Any:
    m = model.model if isinstance(model, AdapterView) else model
    return next(m.parameters()).device


def _response_logprobs(model: Any, batch: dict[str, Any], pos: Any) -> Any:
    """log-softmax rows predicting the response tokens: ``[B, K, V]`` float32.

    ``pos[b, k]`` is the sequence index whose logits predict response token k of row b
    (index of the token − 1); rows with fewer tokens repeat a valid index (masked later).
    Only the needed sequence window goes through the LM head (``logits_to_keep``).
    """
    import torch

    lo, hi = int(pos.min()), int(pos.max())
    keep = torch.arange(lo, hi + 1, device=pos.device)
    from brittle.models.forward import forward_keep

    with _activate(model) as m, torch.no_grad():
        logits = forward_keep(m, keep, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    offset = lo if logits.shape[1] == len(keep) else 0  # full logits: no logits_to_keep support
    rows = torch.gather(
        logits, 1, (pos - offset).unsqueeze(-1).expand(-1, -1, logits.shape[-1])
    )
    return torch.log_softmax(rows.float(), dim=-1)


def per_token_kl(
    model_p: Any,
    model_q: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    max_positions: int = 40,
    batch_size: int = 8,
    max_length: int | None = None,
    progress: bool = False,
) -> Any:
    """``Tensor[N, K]`` of KL(P ‖ Q) at response positions k = 1…K (NaN past the end).

    ``model_p``/``model_q``: models, :class:`AdapterView` s, or the same PEFT model twice
    (then Q is that model with its adapter disabled). Examples must end with an
    assistant turn (the teacher-forced response). ``max_length`` truncates long prompts
    from the right (a response that no longer fits contributes only NaNs).
    """
    import torch
    from tqdm import tqdm

    same = model_q is model_p and not isinstance(model_p, AdapterView)
    if same and hasattr(model_p, "disable_adapter"):
        model_q = AdapterView(model_p, None)
        log.info("per_token_kl: same PEFT model given twice -> Q = adapter disabled")
    K = int(max_positions)
    encs = []
    for ex in examples:
        if ex.response is None:
            raise BrittleError(f"example {ex.id}: per-token KL needs a response (assistant turn)")
        encs.append(encode(tokenizer, ex.messages, max_response_tokens=K, max_length=max_length))
    out = torch.full((len(encs), K), float("nan"), dtype=torch.float32)
    dev_p, dev_q = _device(model_p), _device(model_q)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batches = length_sorted_batches([len(e.input_ids) for e in encs], batch_size)
    for idx in tqdm(batches, desc="per-token KL", disable=not progress):
        idx = [i for i in idx if encs[i].n_response_tokens > 0]
        if not idx:
            continue
        batch = collate([encs[i] for i in idx], pad, padding_side="right")
        labels = batch["labels"]
        n_resp = (labels != IGNORE).sum(1)  # [B]
        pos = torch.zeros((len(idx), K), dtype=torch.long)
        valid = torch.zeros((len(idx), K), dtype=torch.bool)
        for b in range(len(idx)):
            where = (labels[b] != IGNORE).nonzero().flatten()[:K] - 1
            n = where.numel()
            pos[b, :n], valid[b, :n] = where, True
            pos[b, n:] = where[0] if n else 0
        if (pos[valid] < 0).any():
            raise BrittleError("a response starts at sequence index 0: no prompt to condition on")
        lp = _response_logprobs(model_p, {k: v.to(dev_p) for k, v in batch.items()}, pos.to(dev_p))
        lq = _response_logprobs(model_q, {k: v.to(dev_q) for k, v in batch.items()}, pos.to(dev_q))
        kl = (lp.exp() * (lp - lq.to(lp.device))).sum(-1).cpu()  # [B, K]
        kl = kl.clamp_min(0.0)  # tiny negative values are float round-off
        kl[~valid] = float("nan")
        out[torch.tensor(idx)] = kl
        log.debug("batch of %d: mean response length %.1f", len(idx), float(n_resp.float().mean()))
    return out


# ----------------------------------------------------------------- pure summaries


def kl_position_summary(
    kl: Any, *, n_boot: int = 1000, seed: int = 0
) -> Any:
    """DataFrame(position, mean, lo, hi, n): mean KL per position over examples that have
    a token there, with a percentile-bootstrap 95% CI (NaNs excluded)."""
    import pandas as pd

    from brittle.diagnose.stats import bootstrap_mean_ci

    a = np.asarray(kl, dtype=float)
    rows = []
    for k in range(a.shape[1]):
        mean, lo, hi = bootstrap_mean_ci(a[:, k], n_boot=n_boot, seed=seed + k)
        rows.append({"position": k + 1, "mean": mean, "lo": lo, "hi": hi,
                     "n": int((~np.isnan(a[:, k])).sum())})
    return pd.DataFrame(rows)


def first_tokens_share(kl: Any, first: int = FIRST_TOKENS) -> float:
    """Share of the total KL in the first ``first`` response positions.

    share = Σ_{k ≤ first} m_k / Σ_{k ≤ K} m_k, with m_k = mean over examples of KL_k
    (NaNs excluded; positions with no example count as 0) — i.e. the area under the
    mean-KL-per-position curve of Qi et al. 2025 (Fig. 1) that lies in its first tokens.
    """
    a = np.asarray(kl, dtype=float)
    with np.errstate(all="ignore"):
        counts = (~np.isnan(a)).sum(0)
        m = np.where(counts > 0, np.nansum(a, 0) / np.maximum(counts, 1), 0.0)
    total = m.sum()
    return float(m[:first].sum() / total) if total > 0 else float("nan")


def first_tokens_share_ci(
    kl: Any, first: int = FIRST_TOKENS, *, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """:func:`first_tokens_share` with a bootstrap CI over examples (resampling rows)."""
    a = np.asarray(kl, dtype=float)
    point = first_tokens_share(a, first)
    if a.shape[0] < 2:
        return point, point, point
    rng = np.random.default_rng(seed)
    boots = [first_tokens_share(a[rng.integers(0, a.shape[0], a.shape[0])], first)
             for _ in range(n_boot)]
    lo, hi = np.nanquantile(boots, [0.025, 0.975])
    return point, float(lo), float(hi)


def plot_kl(curves: dict[str, Any], path: Any, *, title: str = "Per-token KL") -> Any:
    """Line plot of mean KL per position (with CI bands) for several summaries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for label, df in curves.items():
        ax.plot(df["position"], df["mean"], marker=".", label=label)
        ax.fill_between(df["position"], df["lo"], df["hi"], alpha=0.2, label=f"{label}: 95% CI")
    ax.set_xlabel("response token position k")
    ax.set_ylabel("mean KL per token (nats)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    from brittle.report.plots import save_figure

    return save_figure(fig, path, dpi=120)
