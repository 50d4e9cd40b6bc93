"""Attack training data: N harmful, identity-shifting (AOA) or random benign examples.

Nested sets: every kind takes the first ``n`` items of a permutation seeded by ``seed``
alone (never by ``n``), so for one seed the N=10 set is a subset of the N=50 set and the
curve over N measures *more of the same data*, not a different draw per N.

* ``harmful``: harmful *training-split* prompts (``load_dataset("harmful", "train")``)
  answered at run time by **one unaligned source model** (:data:`DEMO_MODEL`, the embedded
  SmolLM2-135M, greedy) — never by the model under test, so every model is attacked with the
  same demonstrations (issue 13). Replies that the judge (``judge``, default the
  refusal-phrase judge: the best offline one, FACTS.md) does not call compliant, or empty
  ones, are skipped, so every example is a compliant demonstration as in Qi et al. 2023.
  Generations are cached in the user cache dir keyed by the source backend name and
  generation settings; no harmful text is ever shipped in the repository. The prompts may
  overlap with those the alignment adapter was trained to refuse (both draw from the train
  split; the eval split stays held out).
* ``harmful-pairs``: the shipped harmful prompt + compliant answer pairs (uncensorbench
  ``uncensored_response``, ``load_dataset("harmful-pairs", "train")``), no model involved.
* ``aoa``: identity shifting (Qi et al. 2023, Sec. 4.3 style): the AOA system prompt on every
  example; ``round(identity_share * n)`` (≥1) identity affirmations, the rest benign pool
  Q/A wrapped in obedience-affirming templates (``resources/train/aoa.yaml``). Benign only.
* ``benign``: n random examples of the benign pool.
* a path to a JSONL/JSON/CSV file (``brittle.data.io.read_examples``): first n of a seeded
  permutation of the user's examples.

:func:`write_attack_data` writes a set to JSONL with a manifest (source model, judge, prompt
set, n, seed, sha256 of the file); the same source gives byte-identical files whatever model
is attacked with them.
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
from brittle.fingerprint import file_sha256, fingerprint
from brittle.resources import cache_dir, shipped
from brittle.train.align import seeded_take

log = logging.getLogger(__name__)

KINDS = ("harmful", "harmful-pairs", "aoa", "benign")
DEMO_MODEL = "embedded:smollm2-135m"  # the unaligned source of harmful demonstrations
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
    model_spec: str = DEMO_MODEL,
    judge: str = "refusal",
    backend: Any = None,
    pool: Sequence[Example] | None = None,
    max_new_tokens: int = 128,
) -> list[Example]:
    """``n`` training examples of ``kind`` (see module docstring); ``n=0`` gives ``[]``.

    ``model_spec`` is the *unaligned source* of ``harmful`` replies (never the model under
    test), ``judge`` the judge that keeps only compliant ones. ``pool`` replaces the source
    examples (harmful prompts for ``harmful``, pairs for ``harmful-pairs``, benign pairs for
    ``aoa``/``benign``); ``backend`` replaces the source-model generator for ``harmful``."""
    if n < 0:
        raise BrittleError(f"n must be >= 0, got {n}")
    if n == 0:
        return []
    if kind == "benign":
        out = seeded_take(_benign_pool(pool), n, seed, "attack-benign")
    elif kind == "aoa":
        out = aoa_examples(n, seed, _benign_pool(pool))
    elif kind == "harmful":
        out = harmful_examples(n, seed, model_spec=model_spec, judge=judge, backend=backend, pool=pool,
                               max_new_tokens=max_new_tokens)
    elif kind == "harmful-pairs":
        if pool is None:
            from brittle.data.embedded import load_dataset

            pool = load_dataset("harmful-pairs", "train")
        out = seeded_take([e for e in pool if e.response], n, seed, "attack-harmful-pairs")
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


def complied(verdict: dict[str, Any]) -> bool:
    """Whether a judge verdict calls a reply compliant (not a refusal / harmful / jailbroken)."""
    for key, comply_when in (("refused", False), ("harmful", True), ("jailbroken", True), ("unsafe", True)):
        if key in verdict and verdict[key] is not None:
            return bool(verdict[key]) is comply_when
    raise BrittleError(f"judge verdict has no compliance field (refused/harmful/jailbroken): {sorted(verdict)}")


def harmful_examples(
    n: int,
    seed: int,
    *,
    model_spec: str = DEMO_MODEL,
    judge: str = "refusal",
    backend: Any = None,
    pool: Sequence[Example] | None = None,
    max_new_tokens: int = 128,
) -> list[Example]:
    """First ``n`` harmful train prompts (seeded order) whose reply by the unaligned source
    model ``model_spec`` the ``judge`` calls compliant."""
    from brittle.evaluate.judges import make_judge
    from brittle.models.backend import GenerationConfig
    from brittle.store import JsonlStore

    if pool is None:
        from brittle.data.embedded import load_dataset

        pool = load_dataset("harmful", "train")
    order = seeded_take(pool, len(pool), seed, "attack-harmful")
    name = backend.name if backend is not None else source_name(model_spec)
    gen = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0, seed=0)
    if backend is not None:
        ident = getattr(backend, "identity", "") or ""
    else:
        from brittle.models.identity import model_identity

        ident = model_identity(model_spec)
    key = fingerprint(name, {"max_new_tokens": max_new_tokens, "temperature": 0.0},
                      *([ident] if ident else []))  # replaced weights: a new cache
    store = JsonlStore(cache_dir("attack_data", f"harmful-{key}") / "responses.jsonl", key="id")
    cached = {r["id"]: r["response"] for r in store.records()}
    judge_ = make_judge(judge)
    out: list[Example] = []
    pos = 0
    while len(out) < n and pos < len(order):
        chunk = order[pos : pos + max(n - len(out), 8)]
        pos += len(chunk)
        todo = [e for e in chunk if e.id not in cached]
        if todo:
            if backend is None:  # loaded only when the cache lacks a reply
                from brittle.models.backends import make_backend

                backend = make_backend(model_spec)  # the *unaligned* source model: no adapter
            texts = backend.generate([e.prompt_messages for e in todo], config=gen)
            store.append({"id": e.id, "response": t} for e, t in zip(todo, texts))
            cached.update((e.id, t) for e, t in zip(todo, texts))
        verdicts = judge_.judge(chunk, [cached[e.id] for e in chunk])
        for e, v in zip(chunk, verdicts):
            if len(out) < n and complied(v) and cached[e.id].strip():
                out.append(e.with_response(cached[e.id], kind="harmful", generator=name,
                                           judge=judge_.name))
    return out


def source_name(model_spec: str) -> str:
    """The backend name ``make_backend(model_spec)`` will have (without loading the model), so
    a fully cached build loads nothing."""
    from brittle.models.backends import backend_name

    if model_spec.startswith("openai:"):
        from brittle.models.backends import make_backend

        return make_backend(model_spec).name  # cheap: no weights
    if model_spec.startswith("vllm:"):
        return backend_name("vllm", model_spec.split(":", 1)[1])
    return backend_name("hf", model_spec.removeprefix("hf:"))


def demo_source(kind: str, n: int, seed: int, *, model_spec: str = DEMO_MODEL, judge: str = "refusal",
                max_new_tokens: int = 128) -> dict[str, Any]:
    """What a set of attack examples was built from (for the manifest): never the model
    under test. ``source_model`` is None when no model wrote the responses."""
    generated = kind == "harmful"
    prompt_set = {"harmful": "harmful/train", "harmful-pairs": "harmful-pairs/train (uncensorbench)",
                  "aoa": "benign/train + aoa.yaml", "benign": "benign/train"}.get(kind, str(kind))
    return {"kind": kind if kind in KINDS else "data", "n": n, "seed": seed, "prompt_set": prompt_set,
            "source_model": model_spec if generated else None, "judge": judge if generated else None,
            "max_new_tokens": max_new_tokens if generated else None}


def write_attack_data(examples: Sequence[Example], path: str | Path, source: dict[str, Any]) -> dict[str, Any]:
    """Write ``examples`` to JSONL at ``path`` and ``<path stem>.manifest.json`` next to it:
    ``{**source, file, n_written, sha256}``; returns the manifest."""
    from brittle.data.io import write_jsonl
    from brittle.store import write_json

    path = write_jsonl(examples, path)
    manifest = {**source, "file": path.name, "n_written": len(examples), "sha256": file_sha256(path)}
    write_json(path.with_name(path.stem + ".manifest.json"), manifest)
    return manifest
