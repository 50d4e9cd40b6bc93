"""Refusal direction (Arditi et al. 2024, arXiv 2406.11717): activations, candidate
directions and the two interventions, after the reference code
(andyrdt/refusal_direction, ``pipeline/submodules/generate_directions.py`` and
``pipeline/utils/hook_utils.py``).

* Post-instruction positions: the chat template's tokens after the user's instruction
  (``<|im_end|>\\n<|im_start|>assistant\\n`` for ChatML: k = 5), read at positions
  −k…−1 of the generation prompt (left padding, so −1 is every prompt's last token).
* Activations: the residual stream at the *input* of decoder layer l = 0…L−1 (forward
  pre-hooks on the decoder blocks, the reference's ``resid_pre``).
* Candidates: r_{p,l} = μ_{p,l}(harmful) − μ_{p,l}(harmless) (means in float64, kept
  unnormalised: activation addition adds r itself); r̂ = r / ‖r‖.
* Directional ablation: x ← x − (x·r̂) r̂ on every write to the residual stream
  (:func:`directional_ablation`), at every layer and position.
* Activation addition: x ← x + c·r at the input of the direction's own layer l, every
  position (:func:`activation_addition`, c = 1 as in the reference).

Which candidate is *the* refusal direction is decided by :mod:`brittle.diagnose.direction_select`.
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
from brittle.models.chat import Encoded, encode_prompt, length_sorted_batches, render_prompt

log = logging.getLogger(__name__)

_SENTINEL = "brittle sentinel instruction"


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


# ----------------------------------------------------------------------------- pure math


def mean_difference(harmful: Any, harmless: Any) -> Any:
    """r = mean_i harmful[..., i, :] − mean_j harmless[..., j, :] (example axis −2), in
    float64 like the reference; unnormalised."""
    return harmful.double().mean(-2) - harmless.double().mean(-2)


def normalise(r: Any) -> Any:
    """r̂ = r / ‖r‖ along the last dimension (a zero vector stays zero)."""
    return r / r.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def project(acts: Any, r_hat: Any) -> Any:
    """Scalar projections x·r̂ (``acts[..., d]`` · ``r_hat[d]``)."""
    return acts @ r_hat


def ablate(x: Any, r_hat: Any) -> Any:
    """Directional ablation x − (x·r̂) r̂ (r̂ unit-norm): removes x's component along r̂."""
    return x - (x @ r_hat).unsqueeze(-1) * r_hat


def add_direction(x: Any, r: Any, coeff: float = 1.0) -> Any:
    """Activation addition x + c·r (r unnormalised, as in the reference)."""
    return x + coeff * r


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


# ----------------------------------------------------------------------------- prompts


def post_instruction_length(tokenizer: Any) -> int:
    """k = number of template tokens after the user's instruction in a generation prompt
    (the reference's ``eoi_toks``): tokens of ``render_prompt([user: SENTINEL])`` that start
    at or after the sentinel's end."""
    text = render_prompt(tokenizer, [{"role": "user", "content": _SENTINEL}])
    end = text.rindex(_SENTINEL) + len(_SENTINEL)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    k = sum(1 for s, _e in enc["offset_mapping"] if s >= end)
    if k < 1:
        raise BrittleError("chat template has no tokens after the instruction (no post-instruction position)")
    return k


def prompt_batches(tokenizer: Any, examples: Sequence[Example], batch_size: int, device: Any) -> list[tuple[list[int], dict[str, Any]]]:
    """Length-sorted, left-padded generation-prompt batches ``(indices, inputs)`` with
    ``position_ids = cumsum(mask) − 1`` (so padding changes nothing); position −1 is every
    prompt's last token."""
    from brittle.features.hooks import make_batch, model_inputs

    encs = [Encoded(ids, list(ids)) for ids in (encode_prompt(tokenizer, ex.prompt_messages) for ex in examples)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = []
    for idx in length_sorted_batches([len(e.input_ids) for e in encs], batch_size):
        out.append((idx, model_inputs(make_batch([encs[i] for i in idx], pad, device, padding_side="left"))))
    return out


def model_device(model: Any) -> Any:
    return next(model.parameters()).device


# ----------------------------------------------------------------------------- hooks


def _hidden_arg(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs["hidden_states"]


def _with_hidden(args: tuple[Any, ...], kwargs: dict[str, Any], x: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if args:
        return (x, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": x}


def post_instruction_activations(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    n_positions: int,
    *,
    layers: Sequence[int] | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> Any:
    """``Tensor[P, len(layers), N, d]`` (float32, CPU): the residual stream at the input of
    each decoder layer (default: all L), at positions −P…−1 of each generation prompt."""
    import torch
    from tqdm import tqdm

    blocks = decoder_layers(model)
    layers = list(range(len(blocks))) if layers is None else list(layers)
    out: Any = None
    current: dict[int, Any] = {}

    def hook_for(j: int) -> Callable[..., None]:
        def hook(_mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            current[j] = _hidden_arg(args, kwargs)[:, -n_positions:].detach().float().cpu()
        return hook

    handles = [blocks[l].register_forward_pre_hook(hook_for(j), with_kwargs=True) for j, l in enumerate(layers)]
    try:
        for idx, inputs in tqdm(prompt_batches(tokenizer, examples, batch_size, model_device(model)),
                                desc="activations", disable=not progress):
            with torch.no_grad():
                model(**inputs, use_cache=False)
            acts = torch.stack([current[j] for j in range(len(layers))])  # [L', B, P, d]
            if out is None:
                out = torch.zeros((n_positions, len(layers), len(examples), acts.shape[-1]))
            out[:, :, torch.tensor(idx)] = acts.permute(2, 0, 1, 3)
    finally:
        for h in handles:
            h.remove()
    return out


@contextlib.contextmanager
def directional_ablation(model: Any, r: Any) -> Iterator[Any]:
    """Within the block, every residual write is projected off r̂ = r/‖r‖: x ← x − (x·r̂) r̂.

    Hooks: the input embedding's output, each decoder layer's output and each layer's
    ``self_attn`` output (first element when it is a tuple). For pre-norm residual models
    this equals the reference's hooks (block inputs, attention and MLP outputs): the
    stream has no r̂ component at any layer boundary nor mid-layer. Removed on exit. The
    hooks are *prepended*, so hooks installed earlier (e.g. transformers' own recorder of
    ``output_hidden_states``) see the ablated stream.
    """
    import torch

    handles = []
    cache: dict[tuple[Any, Any], Any] = {}

    def _r(x: Any) -> Any:
        key = (x.device, x.dtype)
        if key not in cache:
            cache[key] = normalise(r.detach().float()).to(device=x.device, dtype=x.dtype)
        return cache[key]

    def hook(_mod: Any, _inp: Any, output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            return ablate(output, _r(output))
        if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
            return (ablate(output[0], _r(output[0])),) + tuple(output[1:])
        if hasattr(output, "__getitem__") and hasattr(output, "last_hidden_state"):
            output.last_hidden_state = ablate(output.last_hidden_state, _r(output.last_hidden_state))
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


@contextlib.contextmanager
def activation_addition(model: Any, r: Any, layer: int, coeff: float = 1.0) -> Iterator[Any]:
    """Within the block, the input of decoder layer ``layer`` is x + c·r at every position
    (a forward pre-hook; the reference's ``get_activation_addition_input_pre_hook``)."""
    block = decoder_layers(model)[layer]
    vec = r.detach().float()

    def hook(_mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        x = _hidden_arg(args, kwargs)
        return _with_hidden(args, kwargs, add_direction(x, vec.to(device=x.device, dtype=x.dtype), coeff))

    handle = block.register_forward_pre_hook(hook, with_kwargs=True, prepend=True)
    try:
        yield model
    finally:
        handle.remove()


# ----------------------------------------------------------------------------- record


@dataclass
class RefusalDirection:
    """Candidate directions r_{p,l} (unnormalised, ``Tensor[P, L, d]``) and the chosen one.

    ``position`` is negative (−P…−1, the reference's convention); both are ``None`` when no
    candidate passed the filter. ``scores`` is the table of every candidate (position,
    layer, bypass, induce, kl, kept, discarded); ``baseline`` holds the unintervened mean
    refusal scores; ``refusal_tokens`` the token ids scored.
    """

    candidates: Any
    position: int | None
    layer: int | None
    scores: list[dict[str, Any]] = field(default_factory=list)
    baseline: dict[str, float] = field(default_factory=dict)
    refusal_tokens: list[int] = field(default_factory=list)
    method: str = "arditi2024"

    @property
    def vector(self) -> Any:
        """r (unnormalised): what activation addition adds."""
        if self.position is None or self.layer is None:
            raise BrittleError("no refusal direction was chosen (every candidate was filtered out)")
        return self.candidates[self.position, self.layer]

    @property
    def r_hat(self) -> Any:
        """r̂ = r / ‖r‖: what directional ablation removes."""
        return normalise(self.vector)

    @property
    def chosen(self) -> dict[str, Any]:
        """The chosen candidate's row of :attr:`scores` (empty when not scored)."""
        return next((s for s in self.scores if s["position"] == self.position and s["layer"] == self.layer), {})

    def save(self, path: Any) -> None:
        import torch

        torch.save({"candidates": self.candidates, "position": self.position, "layer": self.layer,
                    "scores": self.scores, "baseline": self.baseline, "refusal_tokens": self.refusal_tokens,
                    "method": self.method}, str(path))

    @classmethod
    def load(cls, path: Any) -> RefusalDirection:
        import torch

        d = torch.load(str(path), weights_only=True)
        pos, layer = d["position"], d["layer"]
        return cls(d["candidates"], None if pos is None else int(pos), None if layer is None else int(layer),
                   list(d["scores"]), dict(d["baseline"]), list(d["refusal_tokens"]), str(d["method"]))


# ----------------------------------------------------------------------------- comparison


def compare_refusal_direction(
    models: dict[str, tuple[Any, Any]],
    direction: RefusalDirection,
    harmful: Sequence[Example],
    harmless: Sequence[Example] = (),
    *,
    refusal_flags: Callable[[Any, Any, Sequence[Example]], list[bool]] | None = None,
    batch_size: int = 16,
    n_boot: int = 1000,
    seed: int = 0,
) -> Any:
    """One row per model label, with r from the aligned model fixed:

    * projections x·r̂ of the (held-out) harmful and harmless prompts at the direction's
      (position, layer); ``proj_gap`` = mean harmful − mean harmless;
    * mean refusal score (log-odds of the refusal tokens at the first reply position) on
      harmful and harmless prompts;
    * with ``refusal_flags(model, tok, prompts) -> list[bool]`` (generation + judge):
      refusal rate on harmful prompts without / with directional ablation and on harmless
      prompts without / with activation addition, each with a Wilson 95 % interval
      (``*_lo``/``*_hi``, ``*_k`` refused of ``*_n``), and the paired differences
      (``ablation_effect`` = ablated − baseline, ``addition_effect`` = added − baseline)
      with percentile-bootstrap CIs.

    Returns a pandas DataFrame.
    """
    import pandas as pd

    from brittle.diagnose.direction_select import mean_refusal_score
    from brittle.diagnose.stats import bootstrap_diff_ci, proportion_ci

    pos, layer = direction.position, direction.layer
    r_hat, r = direction.r_hat, direction.vector
    rows = []

    def proj(model: Any, tok: Any, exs: Sequence[Example]) -> Any:
        acts = post_instruction_activations(model, tok, exs, -pos, layers=[layer], batch_size=batch_size)
        return project(acts[pos, 0], r_hat.float()).numpy()

    def rate(row: dict[str, Any], tag: str, flags: list[bool]) -> None:
        p, lo, hi = proportion_ci([float(f) for f in flags])
        row.update({f"{tag}refusal_rate": p, f"{tag}refusal_lo": lo, f"{tag}refusal_hi": hi,
                    f"{tag}refusal_k": int(sum(flags)), f"{tag}refusal_n": len(flags)})

    def effect(row: dict[str, Any], name: str, after: list[bool], before: list[bool]) -> None:
        m, lo, hi = bootstrap_diff_ci([float(x) for x in after], [float(x) for x in before], n_boot=n_boot, seed=seed)
        row.update({name: m, f"{name}_lo": lo, f"{name}_hi": hi})

    for label, (model, tok) in models.items():
        row: dict[str, Any] = {"model": label, "layer": layer, "position": pos}
        for k, v in projection_stats(proj(model, tok, harmful)).items():
            row[f"harmful_proj_{k}"] = v
        row["harmful_refusal_score"] = mean_refusal_score(model, tok, harmful, direction.refusal_tokens,
                                                          batch_size=batch_size)
        if harmless:
            row["harmless_proj_mean"] = float(proj(model, tok, harmless).mean())
            row["proj_gap"] = row["harmful_proj_mean"] - row["harmless_proj_mean"]
            row["harmless_refusal_score"] = mean_refusal_score(model, tok, harmless, direction.refusal_tokens,
                                                               batch_size=batch_size)
        if refusal_flags is not None:
            base = refusal_flags(model, tok, harmful)
            with directional_ablation(model, r):
                ablated = refusal_flags(model, tok, harmful)
            rate(row, "", base)
            rate(row, "ablated_", ablated)
            effect(row, "ablation_effect", ablated, base)
            if harmless:
                hbase = refusal_flags(model, tok, harmless)
                with activation_addition(model, r, layer):
                    added = refusal_flags(model, tok, harmless)
                rate(row, "harmless_", hbase)
                rate(row, "added_", added)
                effect(row, "addition_effect", added, hbase)
        rows.append(row)
    return pd.DataFrame(rows)
