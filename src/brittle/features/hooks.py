"""Batch encoding, the per-example loss, and forward/backward hooks shared by all features.

Conventions used by every feature in this package:

* A batch is right-padded (``padding_side='right'`` by default) and built from
  length-sorted examples; ``position_ids = cumsum(mask) - 1`` so left and right padding
  give the same numbers.
* The loss is ``L = Σ_b mean_{t ∈ resp(b)} CE_b,t`` — a *sum* over examples of each
  example's token-mean. Then ``∂L/∂θ`` restricted to example b's activations is exactly
  example b's own gradient (the HF batch token-mean would rescale example b by
  ``n_b / n_total`` and tie features to batch composition).
* Weights are frozen during feature passes; the embedding *output* is made to require
  grad instead, so autograd only runs the input-gradient GEMMs and hooks see
  ``G = ∂L/∂(layer output)`` for every layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from brittle.errors import DataError
from brittle.models.chat import IGNORE, Encoded, collate, encode, encode_prompt


def encode_examples(
    tokenizer: Any,
    examples: Sequence[Any],
    *,
    max_length: int | None = None,
    max_response_tokens: int | None = None,
    require_response: bool = True,
) -> list[Encoded]:
    """Encode examples with response-only labels, cut after the last label token.

    Tokens after the last loss-bearing token (e.g. the template's trailing newline) can
    neither change the loss nor the last label position in a causal LM, so dropping them
    is exact. Prompt-only examples are allowed when ``require_response`` is False (their
    labels are all IGNORE and the sequence is the generation prompt).
    """
    out: list[Encoded] = []
    for ex in examples:
        if ex.response is None:
            if require_response:
                raise DataError(f"{ex.id}: example has no assistant response")
            ids = encode_prompt(tokenizer, ex.messages)
            out.append(Encoded(ids, [IGNORE] * len(ids)))
            continue
        enc = encode(
            tokenizer, ex.messages, max_length=max_length, max_response_tokens=max_response_tokens
        )
        last = max((i for i, lab in enumerate(enc.labels) if lab != IGNORE), default=-1)
        if last < 0:
            if require_response:
                raise DataError(f"{ex.id}: no response tokens left after truncation")
            out.append(enc)
            continue
        out.append(Encoded(enc.input_ids[: last + 1], enc.labels[: last + 1]))
    return out


def make_batch(
    encs: Sequence[Encoded], pad_id: int, device: Any, padding_side: str = "right"
) -> dict[str, Any]:
    """Collate to tensors on ``device`` and add padding-invariant ``position_ids``."""
    b = collate(encs, pad_id, padding_side=padding_side)
    mask = b["attention_mask"]
    b["position_ids"] = (mask.cumsum(1) - 1).clamp(min=0)
    return {k: v.to(device) for k, v in b.items()}


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids")}


def per_example_loss(logits: Any, labels: Any) -> Any:
    """``loss_b = mean_{t: label_{t+1} != IGNORE} CE(logits_t, label_{t+1})`` -> Tensor[B]."""
    import torch
    import torch.nn.functional as F

    lg = logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32))
    lab = labels[:, 1:]
    ce = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), lab.reshape(-1), ignore_index=IGNORE,
                         reduction="none").view(lab.shape)
    n = (lab != IGNORE).sum(1).clamp(min=1)
    return ce.sum(1) / n


def input_embeddings(model: Any) -> Any:
    return model.get_input_embeddings()


@contextlib.contextmanager
def frozen(model: Any, requires_grad: bool = False) -> Iterator[None]:
    """Temporarily set ``requires_grad`` on every parameter; restore afterwards."""
    saved = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in saved:
        p.requires_grad_(requires_grad)
    try:
        yield
    finally:
        for p, r in saved:
            p.requires_grad_(r)


@dataclass
class Capture:
    """Calls ``on_grad(name, X, G)`` in backward for each hooked module.

    ``X`` = the module input (B, T, d_in), multiplied by the attention mask so padded
    positions contribute nothing; ``G`` = ∂L/∂(module output) (B, T, d_out). Both are
    detached. ``mask`` must be set (``capture.mask = batch['attention_mask']``) before the
    forward pass.
    """

    on_grad: Callable[[str, Any, Any], None]
    mask: Any = None


@contextlib.contextmanager
def capture_linears(model: Any, modules: dict[str, Any], capture: Capture) -> Iterator[None]:
    """Forward hooks on ``modules`` (name -> module taking ``x`` first) feeding ``capture``."""
    handles = []

    def make(name: str) -> Callable:
        def hook(mod: Any, inputs: tuple, output: Any) -> None:
            if not output.requires_grad:
                return
            # keep the raw input (it shares storage with layers that consume it, e.g. q/k/v)
            # and apply the mask only when the gradient arrives: no masked copy per linear
            # stays alive between forward and backward
            x_raw, m = inputs[0].detach(), capture.mask

            def on_g(g: Any) -> None:
                x = x_raw if m is None else x_raw * m.to(x_raw.dtype).view(*m.shape, *([1] * (x_raw.dim() - 2)))
                capture.on_grad(name, x, g.detach())

            output.register_hook(on_g)

        return hook

    try:
        for name, mod in modules.items():
            handles.append(mod.register_forward_hook(make(name)))
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def embedding_output_requires_grad(
    model: Any, on_grad: Callable[[Any, Any], None] | None = None
) -> Iterator[None]:
    """Make the input-embedding output a grad-requiring leaf (weights stay frozen).

    ``on_grad(input_ids, G)`` receives ∂L/∂(embedding output) when given.
    """
    emb = input_embeddings(model)

    def hook(mod: Any, inputs: tuple, output: Any) -> Any:
        out = output.detach().requires_grad_(True) if not output.requires_grad else output
        if on_grad is not None:
            ids = inputs[0]
            out.register_hook(lambda g: on_grad(ids, g.detach()))
        return out

    h = emb.register_forward_hook(hook)
    try:
        yield
    finally:
        h.remove()


def linear_modules(model: Any, targets: Sequence[str] | None = None) -> dict[str, Any]:
    """``name -> nn.Linear`` for names whose last component is in ``targets`` (all if None).

    Linear layers living inside a PEFT LoRA wrapper (``lora_A``/``lora_B``/``base_layer``)
    are skipped: callers decide how to handle LoRA wrappers.
    """
    from torch import nn

    out = {}
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Linear):
            continue
        parts = name.split(".")
        if any(p in ("lora_A", "lora_B", "base_layer", "lora_embedding_A") for p in parts):
            continue
        if targets is None or parts[-1] in targets:
            out[name] = mod
    return out


@contextlib.contextmanager
def layer_checkpointing(model: Any, enabled: bool = True) -> Iterator[None]:
    """Reentrant activation checkpointing of every transformers decoder layer, in eval mode.

    Uses transformers' own ``GradientCheckpointingLayer`` switch with
    ``torch.utils.checkpoint.checkpoint(use_reentrant=True)``: the forward runs without a
    graph, and each layer is re-run with grad enabled during backward, so forward hooks
    inside a layer fire (and capture inputs) only for the layer being back-propagated —
    one layer's activations are alive at a time. Only each layer's *own* ``training``
    flag is set (transformers checkpoints only in training mode); dropout children stay in
    eval mode. Everything is restored on exit.
    """
    if not enabled:
        yield
        return
    import functools

    import torch.utils.checkpoint
    from transformers.modeling_layers import GradientCheckpointingLayer

    from brittle.errors import BrittleError

    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    if not layers:
        raise BrittleError(f"{type(model).__name__} has no checkpointable decoder layers "
                           "(transformers GradientCheckpointingLayer); turn gradient_checkpointing off")
    saved = [(m, m.gradient_checkpointing, m.__dict__.get("_gradient_checkpointing_func"), m.training)
             for m in layers]
    fn = functools.partial(torch.utils.checkpoint.checkpoint, use_reentrant=True)
    for m in layers:
        m.gradient_checkpointing, m._gradient_checkpointing_func, m.training = True, fn, True
    try:
        yield
    finally:
        for m, flag, func, training in saved:
            m.gradient_checkpointing, m.training = flag, training
            if func is None:
                m.__dict__.pop("_gradient_checkpointing_func", None)
            else:
                m._gradient_checkpointing_func = func
