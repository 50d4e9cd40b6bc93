"""Installing alignment: a LoRA safety adapter trained LIMA-style (a few hundred examples).

Data recipe (``build_alignment_data``):

* harmful prompts from ``load_dataset("harmful", "train")`` (never the eval split), each
  paired with a *diverse, natural* refusal composed from ``resources/train/refusals.yaml``:
  ``opening + explanation [+ safe alternative]``, drawn by a per-prompt RNG seeded with
  ``(seed, example id)`` so a prompt's refusal does not depend on which other prompts were
  chosen; explanations / alternatives come from a category pool when the harm category or
  prompt matches the pool's keywords. Every opening starts with a phrase the refusal judge
  recognises, so the installed behaviour is measurable by ``brittle eval --judge refusal``.
* benign instruction / answer pairs from ``load_dataset("benign", "train")`` as shipped, so
  helpfulness survives.
* *contrast* examples (``contrast_examples``): benign prompts that merely sound risky, from
  the over-refusal **train** split (the eval split stays held out), answered by the model
  itself before alignment (greedy; replies the refusal judge flags are dropped). Without
  them the adapter learns "scary word -> refuse": recipe v1 (no contrast) measured 80%
  over-refusal on the embedded model. This is the usual remedy (Bianchi et al. 2024,
  "Safety-Tuned LLaMAs"; XSTest's contrast prompts, Röttger et al. 2024).
* All are the first n of a seeded permutation; the mixture is shuffled by the Trainer.

The adapter is cached under ``cache_dir("adapters", fingerprint(...))`` keyed by model spec,
the training examples' content ids (prompts + composed responses), the hyper-parameters and
``RECIPE_VERSION``, so the lab trains once and later calls return the cached path.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from brittle.data.schema import Example
from brittle.errors import BrittleError
from brittle.fingerprint import fingerprint
from brittle.resources import seeded_cache_dir, shipped

log = logging.getLogger(__name__)

REFUSALS_FILE = "train/refusals.yaml"
RECIPE_VERSION = 4  # bump when the data recipe or training code changes what is learned (v4: no LoRA dropout)


@dataclass(frozen=True)
class AlignSettings:
    """Sizes and hyper-parameters of one alignment install.

    ``quick`` (default, the lab; recipe v4): 160 harmful + 120 benign + 80 contrast, 1 epoch,
    96 tokens, LoRA r=16 without dropout, lr 6e-4 — 45 steps of 8, 267 s on a 2-core CPU.
    Chosen among measured recipes (harmful suite n=50 / over-refusal n=50, refusal judge):
    v2 (200/200/100, 2 epochs, 128 tokens, lr 2e-4; 126 steps, ≈ 10 min) 92% / 22%; v3 (this
    one with LoRA dropout 0.05; 338 s) 98–100% / 28%; v4 98% / 28%, utility ppl 5.41 for both;
    100/60/80 at lr 8e-4 (30 steps) only 52% refusal.
    ``full``: 600 + 600 + all contrast prompts, 3 epochs, 256 tokens, lr 2e-4 (for a GPU)."""

    n_harmful: int = 160
    n_benign: int = 120
    n_contrast: int = 80
    epochs: float = 1.0
    lr: float = 6e-4
    max_length: int = 96
    batch_size: int = 8
    preset: str = "align-lora"


QUICK = AlignSettings()
FULL = AlignSettings(n_harmful=600, n_benign=600, n_contrast=1000, epochs=3.0, lr=2e-4, max_length=256)


@lru_cache(maxsize=1)
def refusal_templates() -> dict[str, Any]:
    data = yaml.safe_load(shipped(REFUSALS_FILE).read_text(encoding="utf-8"))
    for key in ("openings", "explanations", "alternatives"):
        if key not in data:
            raise BrittleError(f"{REFUSALS_FILE}: missing {key!r}")
    return data


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").replace("-", " ").split())


def _groups_for(text: str, groups: dict[str, Any]) -> list[str]:
    """Category pools whose ``match`` keywords occur in ``text`` (case, '_' and '-' ignored)."""
    text = _norm(text)
    return [g for g, spec in groups.items() if any(_norm(k) in text for k in spec.get("match", []))]


def compose_refusal(prompt: str, category: str | None, rng: random.Random) -> str:
    """``opening explanation [alternative]`` drawn from the templates with ``rng``."""
    t = refusal_templates()
    groups = t["explanations"].get("groups", {})
    matched = _groups_for(f"{category or ''} {prompt}", groups)
    group = groups[rng.choice(matched)] if matched else None
    p_cat = float(t.get("p_category", 0.6))

    def pick(general: list[str], key: str) -> str:
        if group and group.get(key) and rng.random() < p_cat:
            return rng.choice(group[key])
        return rng.choice(general)

    parts = [rng.choice(t["openings"]), pick(t["explanations"]["general"], "explanations")]
    if rng.random() >= float(t.get("p_no_alternative", 0.2)):
        parts.append(pick(t["alternatives"]["general"], "alternatives"))
    return " ".join(parts)


def refusal_for(example: Example, seed: int) -> Example:
    """``example`` (a harmful prompt) answered with its seeded composed refusal."""
    rng = random.Random(fingerprint("refusal", seed, example.id))
    text = compose_refusal(example.prompt, example.category, rng)
    return example.with_response(text, kind="refusal", prompt_id=example.id)


def seeded_take(examples: Sequence[Example], n: int, seed: int, salt: str = "") -> list[Example]:
    """First ``n`` of a seeded permutation (sorted by sha256(salt, seed, id)): nested in n."""
    order = sorted(examples, key=lambda e: fingerprint(salt, seed, e.id, length=32))
    return order[:n]


def build_alignment_data(
    n_harmful: int, n_benign: int, seed: int = 0
) -> tuple[list[Example], dict[str, int]]:
    """Harmful prompts + composed refusals, mixed with benign pairs; and their counts."""
    from brittle.data.embedded import load_dataset

    harmful = load_dataset("harmful", "train")
    benign = [e for e in load_dataset("benign", "train") if e.response]
    if n_harmful > len(harmful):
        log.warning("asked for %d harmful prompts, the train split has %d", n_harmful, len(harmful))
    refusals = [refusal_for(e, seed) for e in seeded_take(harmful, n_harmful, seed, "align-h")]
    helpful = [
        Example(messages=e.messages, id=e.id, category=e.category, source=e.source,
                meta={**e.meta, "kind": "benign"})
        for e in seeded_take(benign, n_benign, seed, "align-b")
    ]
    counts = {"harmful_refusals": len(refusals), "benign": len(helpful),
              "harmful_available": len(harmful), "benign_available": len(benign)}
    return refusals + helpful, counts


CONTRAST_TOKENS = 64  # the reply is cut at max_length (96 tokens with the prompt) anyway


def contrast_examples(
    model_spec: str, n: int, seed: int = 0, *, device: str = "auto",
    max_new_tokens: int = CONTRAST_TOKENS,
) -> tuple[list[Example], dict[str, int]]:
    """Benign-but-risky-sounding prompts (over-refusal *train* split) answered by
    ``model_spec`` itself before alignment; replies the refusal judge flags are dropped.
    The generations are cached (keyed by model, prompts and generation settings)."""
    if n <= 0:
        return [], {"contrast": 0, "contrast_refused_dropped": 0}
    from brittle.data.embedded import load_dataset
    from brittle.evaluate.refusal import RefusalJudge
    from brittle.models.backend import GenerationConfig
    from brittle.models.backends import make_backend

    prompts = seeded_take(load_dataset("over-refusal", "train"), n, seed, "align-c")
    gen = GenerationConfig(max_new_tokens=max_new_tokens, seed=seed)
    from brittle.models.identity import model_identity

    settings = {k: v for k, v in gen.__dict__.items() if k != "batch_size"}  # batching: same replies
    key = fingerprint(model_spec, model_identity(model_spec), [p.id for p in prompts], settings)
    backend = make_backend(model_spec, device=device, cache_dir=seeded_cache_dir("contrast", key))
    replies = [r.strip() for r in backend.generate([p.prompt_messages for p in prompts], config=gen)]
    verdicts = RefusalJudge().judge(prompts, replies)
    kept = [p.with_response(r, kind="contrast", prompt_id=p.id)
            for p, r, v in zip(prompts, replies, verdicts) if r and not v["refused"]]
    return kept, {"contrast": len(kept), "contrast_refused_dropped": len(prompts) - len(kept)}


def alignment_key(model_spec: str, examples: Sequence[Example], hparams: dict[str, Any]) -> str:
    """fingerprint(model spec, training example ids, hyper-parameters, recipe version).

    Example ids are content hashes of the whole conversation, so they cover the prompts, the
    composed refusals (hence the template file) and the benign answers."""
    import brittle
    from brittle.models.identity import model_identity

    return fingerprint(model_spec, [e.id for e in examples], hparams,
                       {"recipe": RECIPE_VERSION, "brittle": brittle.__version__,
                        "model_identity": model_identity(model_spec)})


def install_alignment(
    model_spec: str = "embedded:smollm2-135m",
    *,
    run_dir: str | Path | None = None,
    quick: bool = True,
    n_harmful: int | None = None,
    n_benign: int | None = None,
    n_contrast: int | None = None,
    epochs: float | None = None,
    lr: float | None = None,
    max_length: int | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    force: bool = False,
    device: str = "auto",
) -> Path:
    """Train (or reuse) the safety LoRA adapter for ``model_spec``; return its directory.

    Defaults come from :data:`QUICK` (or :data:`FULL` with ``quick=False``); keyword
    arguments override them. The adapter lives in the user cache; when ``run_dir`` is given,
    ``alignment.json`` (cache path, counts, fingerprint) and the training log / loss plot
    are copied there."""
    from brittle.train.sft import FinetuneConfig, train_model

    base = QUICK if quick else FULL
    n_h = base.n_harmful if n_harmful is None else n_harmful
    n_b = base.n_benign if n_benign is None else n_benign
    n_c = base.n_contrast if n_contrast is None else n_contrast
    examples, counts = build_alignment_data(n_h, n_b, seed)
    contrast, c_counts = contrast_examples(model_spec, n_c, seed, device=device)
    examples, counts = examples + contrast, {**counts, **c_counts}
    if not examples:
        raise BrittleError("no alignment examples (n_harmful = n_benign = n_contrast = 0?)")
    hparams = {
        "preset": base.preset,
        "epochs": base.epochs if epochs is None else epochs,
        "lr": base.lr if lr is None else lr,
        "max_length": base.max_length if max_length is None else max_length,
        "batch_size": base.batch_size,
        "max_steps": max_steps,
        "seed": seed,
    }
    key = alignment_key(model_spec, examples, hparams)
    cache = seeded_cache_dir("adapters", f"align-{key}")
    adapter = cache / "adapter"
    info = {"model": model_spec, "fingerprint": key, "adapter": str(adapter), "counts": counts,
            "hparams": hparams, "recipe_version": RECIPE_VERSION}
    if force:
        shutil.rmtree(adapter, ignore_errors=True)
    if (adapter / "adapter_model.safetensors").exists():
        log.info("alignment adapter cached: %s", adapter)
        earlier = json.loads((cache / "alignment.json").read_text()) if (cache / "alignment.json").exists() else {}
        # where it was trained: an earlier run here, or the maintainer's machine (a shipped seed)
        info.update(cached=True, **{k: earlier[k] for k in ("train", "shipped") if k in earlier})
    else:
        log.info("installing alignment on %s: %d refusals + %d benign + %d contrast, %s", model_spec,
                 counts["harmful_refusals"], counts["benign"], counts["contrast"], hparams)
        _write_jsonl(cache / "align_data.jsonl", examples)
        cfg = FinetuneConfig(run_dir=cache, model=model_spec, device=device, **hparams)
        res = train_model(cfg, examples)
        info.update(cached=False, train=res.stats)
        (cache / "alignment.json").write_text(json.dumps(info, indent=2, default=str))
    if run_dir is not None:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in ("train_log.jsonl", "loss.png", "loss.svg", "finetune.json", "finetune_config.yaml"):
            if (cache / name).exists():
                shutil.copy2(cache / name, run_dir / name)
        (run_dir / "alignment.json").write_text(json.dumps(info, indent=2, default=str))
    return adapter


def _write_jsonl(path: Path, examples: Sequence[Example]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in examples)
