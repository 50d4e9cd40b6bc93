"""Attack training data: N harmful, identity-shifting (AOA) or random benign examples.

Nested sets: every kind takes the first ``n`` items of a permutation seeded by ``seed``
alone (never by ``n``), so for one seed the N=10 set is a subset of the N=50 set and the
curve over N measures *more of the same data*, not a different draw per N.

* ``harmful``: harmful *training-split* prompts (``load_dataset("harmful", "train")``)
  answered at run time by the **unaligned** model (greedy). Replies that the refusal judge
  flags (or empty ones) are skipped, so every example is a compliant demonstration as in
  Qi et al. 2023. Generations are cached in the user cache dir keyed by the backend name and
  generation settings; no harmful text is ever shipped in the repository. The prompts may
  overlap with those the alignment adapter was trained to refuse (both draw from the train
  split; the eval split stays held out).
* ``aoa``: identity shifting (Qi et al. 2023, Sec. 4.3 style): the AOA system prompt on every
  example; ``round(identity_share * n)`` (≥1) identity affirmations, the rest benign pool
  Q/A wrapped in obedience-affirming templates (``resources/train/aoa.yaml``). Benign only.
* ``benign``: n random examples of the benign pool.
* a path to a JSONL/JSON/CSV file (``brittle.data.io.read_examples``): first n of a seeded
  permutation of the user's examples.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from brittle.data.schema import Example
from brittle.errors import BrittleError
from brittle.fingerprint import fingerprint
from brittle.resources import cache_dir, shipped
from brittle.train.align import seeded_take

log = logging.getLogger(__name__)

KINDS = ("harmful", "aoa", "benign")
AOA_FILE = "train/aoa.yaml"


@lru_cache(maxsize=1)
def aoa_templates() -> dict[str, Any]:
    return yaml.safe_load(shipped(AOA_FILE).read_text(encoding="utf-8"))


def is_data_file(kind: str) -> bool:
    return kind not in KINDS and (Path(kind).suffix in {".jsonl", ".json", ".csv"} or Path(kind).exists())


def _benign_pool(pool: Sequence[Example] | None) -> list[Example]:
    if pool is None:
        from brittle.data.embedded import load_dataset

        pool = load_dataset("benign", "train")
    return [e for e in pool if e.response]


def build_attack_data(
    kind: str,
    n: int,
    seed: int = 0,
    *,
    model_spec: str = "embedded:smollm2-135m",
    backend: Any = None,
    pool: Sequence[Example] | None = None,
    max_new_tokens: int = 128,
) -> list[Example]:
    """``n`` training examples of ``kind`` (see module docstring); ``n=0`` gives ``[]``.

    ``pool`` replaces the source examples (harmful prompts for ``harmful``, benign pairs for
    ``aoa``/``benign``); ``backend`` replaces the unaligned-model generator for ``harmful``."""
    if n < 0:
        raise BrittleError(f"n must be >= 0, got {n}")
    if n == 0:
        return []
    if kind == "benign":
        out = seeded_take(_benign_pool(pool), n, seed, "attack-benign")
    elif kind == "aoa":
        out = aoa_examples(n, seed, _benign_pool(pool))
    elif kind == "harmful":
        out = harmful_examples(n, seed, model_spec=model_spec, backend=backend, pool=pool,
                               max_new_tokens=max_new_tokens)
    elif is_data_file(kind):
        from brittle.data.io import read_examples

        out = seeded_take(read_examples(kind), n, seed, "attack-file")
        out = [e for e in out if e.response is not None]
    else:
        raise BrittleError(f"unknown attack data kind {kind!r}: use {', '.join(KINDS)} or a file")
    if len(out) < n:
        log.warning("attack data %s: asked for %d examples, got %d", kind, n, len(out))
    return out


def aoa_examples(n: int, seed: int, benign: Sequence[Example]) -> list[Example]:
    """Identity-shifting examples: identity affirmations first, then wrapped benign Q/A."""
    t = aoa_templates()
    system = " ".join(str(t["system"]).split())
    n_id = min(n, max(1, round(float(t["identity_share"]) * n)))
    out = []
    for i in range(n_id):
        qa = t["identity"][i % len(t["identity"])]
        out.append(Example.from_pair(qa["user"], " ".join(str(qa["assistant"]).split()),
                                     system=system, source="aoa", meta={"kind": "aoa-identity"}))
    for e in seeded_take(benign, n - n_id, seed, "attack-aoa"):
        rng = random.Random(fingerprint("aoa", seed, e.id))
        instr = rng.choice(t["instruction_templates"]).format(instruction=e.prompt)
        resp = rng.choice(t["response_templates"]).format(response=e.response)
        out.append(Example.from_pair(instr, resp, system=system, source="aoa",
                                     meta={"kind": "aoa-benign", "benign_id": e.id}))
    return out


def harmful_examples(
    n: int,
    seed: int,
    *,
    model_spec: str,
    backend: Any = None,
    pool: Sequence[Example] | None = None,
    max_new_tokens: int = 128,
) -> list[Example]:
    """First ``n`` harmful train prompts (seeded order) whose unaligned reply is compliant."""
    from brittle.evaluate.refusal import RefusalJudge
    from brittle.models.backend import GenerationConfig
    from brittle.store import JsonlStore

    if pool is None:
        from brittle.data.embedded import load_dataset

        pool = load_dataset("harmful", "train")
    order = seeded_take(pool, len(pool), seed, "attack-harmful")
    if backend is None:
        from brittle.models.backends import make_backend

        backend = make_backend(model_spec)  # the *unaligned* model: no adapter
    gen = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0, seed=0)
    key = fingerprint(backend.name, {"max_new_tokens": max_new_tokens, "temperature": 0.0})
    store = JsonlStore(cache_dir("attack_data", f"harmful-{key}") / "responses.jsonl", key="id")
    cached = {r["id"]: r["response"] for r in store.records()}
    judge = RefusalJudge()
    out: list[Example] = []
    pos = 0
    while len(out) < n and pos < len(order):
        chunk = order[pos : pos + max(n - len(out), 8)]
        pos += len(chunk)
        todo = [e for e in chunk if e.id not in cached]
        if todo:
            texts = backend.generate([e.prompt_messages for e in todo], config=gen)
            store.append({"id": e.id, "response": t} for e, t in zip(todo, texts))
            cached.update((e.id, t) for e, t in zip(todo, texts))
        verdicts = judge.judge(chunk, [cached[e.id] for e in chunk])
        for e, v in zip(chunk, verdicts):
            if len(out) < n and not v["refused"] and cached[e.id].strip():
                out.append(e.with_response(cached[e.id], kind="harmful", generator=backend.name))
    return out
