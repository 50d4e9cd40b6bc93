"""One forward pass that sends only the needed positions through the LM head.

The vocabulary projection of every position is the largest tensor of a forward pass
(batch x length x vocabulary: 0.4 GB for 16 x 128 tokens of SmolLM2, 1.2 GB for Qwen's
152k vocabulary) and most callers read one position. ``logits_to_keep`` (transformers'
causal LMs) skips the rest; architectures without it get the full logits.
"""

from __future__ import annotations

from typing import Any


def forward_keep(model: Any, keep: Any = 1, **inputs: Any) -> Any:
    """``model(**inputs)`` with ``logits_to_keep=keep`` where the model accepts it (its
    ``logits`` then cover the last ``keep`` positions, or the positions of an index tensor)."""
    try:
        return model(**inputs, logits_to_keep=keep)
    except TypeError:  # architecture without logits_to_keep
        return model(**inputs)
