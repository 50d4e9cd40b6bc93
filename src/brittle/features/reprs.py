"""Last-token representations (He et al. 2024, ``collect_info.py``).

Feature of an example = the final-layer hidden state at the last non-pad token of
``prompt + response + end-of-turn`` (the chat-templated conversation cut right after the
response's end-of-turn token; a prompt-only example ends at the generation prompt).
"Final layer" = ``hidden_states[-1]`` of the HF model, i.e. *after* the final norm (the
reference code uses ``outputs.hidden_states[-1]`` too). The last position is
``mask.sum(1) - 1`` with right padding and ``-1`` with left padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from brittle.features.hooks import encode_examples, make_batch, model_inputs
from brittle.models.chat import length_sorted_batches


def last_positions(mask: Any, padding_side: str = "right") -> Any:
    """Index of the last real token per row: ``mask.sum(1) - 1`` (right) or ``T-1`` (left)."""
    import torch

    if padding_side == "left":
        return torch.full((mask.shape[0],), mask.shape[1] - 1, dtype=torch.long, device=mask.device)
    return mask.sum(1) - 1


def last_token_reprs(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Any],
    batch_size: int = 16,
    *,
    max_length: int | None = None,
    padding_side: str = "right",
    progress: bool = False,
) -> Any:
    """Tensor[N, d] (float32, CPU) of final-layer last-token hidden states, input order."""
    import torch
    from tqdm.auto import tqdm

    from brittle.models.forward import forward_keep

    device = next(model.parameters()).device
    encs = encode_examples(tokenizer, examples, max_length=max_length, require_response=False)
    out: list[Any] = [None] * len(encs)
    with torch.inference_mode():
        for idx in tqdm(length_sorted_batches([len(e.input_ids) for e in encs], batch_size),
                        disable=not progress, desc="repr features"):
            batch = make_batch([encs[i] for i in idx], tokenizer.pad_token_id, device, padding_side)
            hs = forward_keep(model, 1, **model_inputs(batch), output_hidden_states=True,
                              use_cache=False).hidden_states[-1]
            pos = last_positions(batch["attention_mask"], padding_side)
            rows = hs[torch.arange(len(idx), device=device), pos].float().cpu()
            for j, i in enumerate(idx):
                out[i] = rows[j]
    return torch.stack(out)
