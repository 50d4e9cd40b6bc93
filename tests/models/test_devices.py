"""Each torchrun / accelerate rank works on its own GPU (not all on cuda:0)."""

from __future__ import annotations

import torch

from brittle.models.load import resolve_device


def test_local_rank_picks_its_own_gpu(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device("auto") == "cuda:3" and resolve_device("cuda") == "cuda:3"
    assert chosen == ["cuda:3", "cuda:3"]
    assert resolve_device("cuda:1") == "cuda:1" and resolve_device("cpu") == "cpu"  # explicit wins
    monkeypatch.delenv("LOCAL_RANK")
    assert resolve_device("auto") == "cuda"
