"""Shared fixtures: tiny random-weight Llama models with a ChatML template (offline, fast)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)  # unit tests: predictable, leave the other core free


@pytest.fixture(scope="session")
def tiny_tok():
    from brittle.models.tiny import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture()
def tiny_lm(tiny_tok):
    from brittle.models.tiny import tiny_model

    return tiny_model(tiny_tok)


@pytest.fixture(autouse=True)
def _isolated_cache(request, tmp_path_factory, monkeypatch):
    """Unit tests never touch the user's cache; `embedded` tests share it (dequantise once)."""
    if request.node.get_closest_marker("embedded"):
        return
    monkeypatch.setenv("BRITTLE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
