"""Fakes for the select tests: feature functions derived from the text, so the expected
ranking is known without a model. Real features are tested in tests/features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from brittle.data.schema import Example

# direction 0 = "harmful-compliance-like" (word "step"), 1 = neutral, 2 = refusal-like ("sorry")
KEYS = ("step", "the", "sorry")


def phi(e: Example) -> np.ndarray:
    words = (e.response or "").lower().replace(",", " ").replace(".", " ").split()
    v = np.array([sum(w == k for w in words) for k in KEYS], dtype=float) + 0.01
    return v


class FakeFeatures:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def last_token_reprs(self, model, tok, examples, opts):
        self._count("repr")
        return np.stack([phi(e) for e in examples])

    def projected_grads(self, model, tok, examples, opts, *, response_tokens):
        self._count("grad")
        F = np.stack([phi(e) for e in examples])
        return F / np.linalg.norm(F, axis=1, keepdims=True)

    def exact_anchor_scores(self, model, tok, candidates, anchors, opts):
        self._count("exact")
        F = np.stack([phi(e) for e in candidates])
        F = F / np.linalg.norm(F, axis=1, keepdims=True)
        out = {}
        for name, exs in anchors.items():
            A = np.stack([phi(e) for e in exs])
            A = A / np.linalg.norm(A, axis=1, keepdims=True)
            out[name] = F @ A.mean(0)
        return out

    def exact_combined_scores(self, model, tok, candidates, anchors, weights, opts, *, cache_dir=None):
        parts = self.exact_anchor_scores(model, tok, candidates, anchors, opts)
        score = sum(w * parts[name] for name, w in weights.items())
        return {"score": score, "grad_norm": np.ones(len(candidates))}, {}

    def grad_sq_norms(self, model, tok, examples, opts):
        self._count("outlier")
        return (np.array([len(e.response or "") for e in examples], float),
                np.array([len((e.response or "").split()) for e in examples], float))


@pytest.fixture()
def fake_features(monkeypatch):
    import brittle.select.compute as C

    fake = FakeFeatures()
    for name in ("last_token_reprs", "projected_grads", "exact_anchor_scores", "exact_combined_scores",
                 "grad_sq_norms"):
        monkeypatch.setattr(C, name, getattr(fake, name))
    return fake


@pytest.fixture()
def harmful_anchors() -> list[Example]:
    return [
        Example.from_pair(f"How do I do bad thing {i}?", f"Sure, step one, step two, step {i}.",
                          category="illegal" if i % 2 else "hate")
        for i in range(12)
    ]


def pool_rows() -> list[dict]:
    rows = []
    for i in range(30):
        if i % 5 == 0:
            out = f"First step, next step, final step {i}."  # "harmful-like" gradient
        elif i % 5 == 1:
            out = "- apples\n- pears\n- plums\n- the cherries"
        elif i % 5 == 2:
            out = f"We compute 3 + {i} = {3 + i}. The answer is {3 + i}."
        elif i % 5 == 3:
            out = "Sorry, the weather is the best topic; the sun is out."
        else:
            out = "The capital of the country is the big city on the river."
        rows.append({"instruction": f"Question number {i}", "output": out})
    return rows


@pytest.fixture()
def pool_file(tmp_path) -> Path:
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in pool_rows()), encoding="utf-8")
    return path
