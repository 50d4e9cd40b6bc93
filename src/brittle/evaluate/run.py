"""`brittle eval` as a function: generate → judge → metrics, resumable.

Reads top to bottom: resolve suites → (lazily) build the backend and judges → for each
suite, generate the missing replies in chunks and append them with their verdicts to
``run_dir/generations.jsonl`` (a :class:`~brittle.store.JsonlStore` keyed by
``suite/id``) → score utility references → compute metrics from the store → write
``run_dir/metrics.json``. A re-run skips every record whose generation fingerprint
(backend name, adapter, max_new_tokens, seed) matches and only adds verdicts of judges
that are new or changed (judge fingerprint = its name + prompt/list hash + model).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from brittle.config import CsvList, StageConfig
from brittle.data.schema import Example
from brittle.errors import BrittleError
from brittle.evaluate import metrics as M
from brittle.evaluate.judges import JUDGES, Judge, make_judge
from brittle.evaluate.suites import SPECS, SUITES, load_suite, reference_nll
from brittle.fingerprint import fingerprint
from brittle.store import JsonlStore, write_json

log = logging.getLogger(__name__)

GENERATIONS = "generations.jsonl"
METRICS = "metrics.json"
# which judges apply to which suites (a judge listed in the config but not applicable is skipped)
HARM_JUDGES = {"refusal", "rubric", "classifier"}
BENIGN_JUDGES = {"refusal"}
UTILITY_JUDGES = {"refusal", "helpfulness"}


class EvalConfig(StageConfig):
    run_dir: Path = Field(Path("runs/eval"), description="Directory for generations.jsonl, metrics.json, index.html.")
    model: str = Field("embedded:smollm2-135m", description="Model or backend spec (embedded:…, tiny:llama, dir, hf:…, vllm:…, openai:MODEL@URL).")
    adapter: Path | None = Field(None, description="LoRA adapter directory applied on top of the model.")
    suites: CsvList = Field(["harmful-eval", "over-refusal", "utility"], description=f"Suites to run: {', '.join(SUITES)}.")
    judges: CsvList = Field(["refusal"], description=f"Judges: {', '.join(JUDGES)}.")
    prompts: Path | None = Field(None, description="User prompt file (txt one per line, or JSONL/CSV with `prompt` [+ `category`]); adds suite 'prompts'.")
    limit: int | None = Field(None, ge=1, description="Keep at most N examples per suite (deterministic subsample).")
    max_new_tokens: int = Field(64, ge=1, description="Generation length per reply.")
    batch_size: int = Field(8, ge=1, description="Generation / forward batch size.")
    seed: int = Field(0, description="Seed for generation, judges, subsampling and bootstrap.")
    redact: bool = Field(True, description="Redact replies to harmful prompts in the HTML report (first words only).")
    judge_backend: str | None = Field(None, description="Backend spec for the rubric/helpfulness judge, e.g. openai:gpt-4o-mini@https://api.openai.com/v1 (key from $OPENAI_API_KEY).")
    classifier: str | None = Field(None, description="Guard model spec for the 'classifier' judge.")
    utility_generate: bool = Field(False, description="Also generate and judge replies on the utility suite (on automatically with the helpfulness judge).")
    system_prompt: str | None = Field(None, description="Optional system message prepended to every prompt.")
    reuse_from: list[Path] = Field([], description="Other eval run dirs: their replies and reference scores are copied in where the fingerprints match (same model, adapter contents, length, seed, system prompt).")

    @field_validator("suites")
    @classmethod
    def _known_suites(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in SPECS]
        if bad:
            raise ValueError(f"unknown suite(s) {bad}; choose from {list(SUITES)}")
        return v

    @field_validator("judges")
    @classmethod
    def _known_judges(cls, v: list[str]) -> list[str]:
        bad = [j for j in v if j not in JUDGES]
        if bad:
            raise ValueError(f"unknown judge(s) {bad}; choose from {list(JUDGES)}")
        return v


def run_eval(
    cfg: EvalConfig, *, model: Any = None, tokenizer: Any = None, backend: Any = None,
    judges: Sequence[Judge] | None = None,
) -> dict[str, Any]:
    """Run (or resume) an evaluation; returns the metrics dict also written to metrics.json.

    ``backend``: any Backend (else ``model``+``tokenizer`` wrapped in an HFBackend, else
    ``make_backend(cfg.model, adapter=cfg.adapter)``, built only if something is left to
    generate). ``judges``: pre-built judges (else built from ``cfg.judges``).
    """
    t0 = time.perf_counter()
    run_dir = Path(cfg.run_dir)
    cfg.echo("eval_config")
    suites = list(cfg.suites) + (["prompts"] if cfg.prompts and "prompts" not in cfg.suites else [])
    data = {s: _with_system(load_suite(s, limit=cfg.limit, seed=cfg.seed, prompts=cfg.prompts), cfg.system_prompt) for s in suites}

    lazy = _Lazy(cfg, model=model, tokenizer=tokenizer, backend=backend)
    judge_list = list(judges) if judges is not None else [
        make_judge(j, judge_backend=cfg.judge_backend, classifier_spec=cfg.classifier, seed=cfg.seed)
        for j in cfg.judges
    ]
    adapter_id = _adapter_id(cfg.adapter)
    gen_fp = fingerprint(lazy.name, adapter_id, cfg.max_new_tokens, cfg.seed, cfg.system_prompt)
    nll_fp = fingerprint(lazy.name, adapter_id, cfg.system_prompt, "reference-nll")
    store = JsonlStore(run_dir / GENERATIONS, key="key")
    current = {r["key"]: r for r in store.records()}
    _import_records(cfg.reuse_from, store, current, gen_fp, nll_fp)

    for suite in suites:
        spec, examples = SPECS[suite], data[suite]
        js = _applicable(suite, judge_list, cfg)
        gen_utility = cfg.utility_generate or any(j.name == "helpfulness" for j in js)
        if spec.generate or (suite == "utility" and gen_utility):
            _generate(suite, examples, lazy, js, store, current, gen_fp, cfg)
            _add_missing_verdicts(suite, examples, js, store, current, gen_fp, cfg)
        if spec.reference_nll:
            _score_references(suite, examples, lazy, store, current, nll_fp, cfg)

    result = {
        "model": cfg.model,
        "adapter": str(cfg.adapter) if cfg.adapter else None,
        "backend": lazy.name,
        "generation_fingerprint": gen_fp,
        "max_new_tokens": cfg.max_new_tokens,
        "seed": cfg.seed,
        "judges": {j.name: {**j.meta, "fingerprint": _judge_fp(j)} for j in judge_list},
        "suites": {
            s: suite_metrics(s, data[s], current, gen_fp, nll_fp, judge_list, seed=cfg.seed)
            for s in suites
        },
        "wall_s": round(time.perf_counter() - t0, 3),
    }
    write_json(run_dir / METRICS, result)
    log.info("eval written to %s (%.1fs)", run_dir, result["wall_s"])
    return result


# -- helpers -------------------------------------------------------------------------------


class _Lazy:
    """Backend / model built on first use, so a fully resumed run loads nothing."""

    def __init__(self, cfg: EvalConfig, *, model: Any, tokenizer: Any, backend: Any) -> None:
        self.cfg, self.model, self.tokenizer, self._backend = cfg, model, tokenizer, backend
        self.name: str = getattr(backend, "name", None) or cfg.model

    @property
    def backend(self) -> Any:
        if self._backend is None:
            if self.model is not None and self.tokenizer is not None:
                from brittle.models.generate import HFBackend

                self._backend = HFBackend(self.model, self.tokenizer, name=self.name)
            else:
                from brittle.models.backends import make_backend

                self._backend = make_backend(self.cfg.model, adapter=self.cfg.adapter)
        return self._backend

    def model_and_tokenizer(self) -> tuple[Any, Any]:
        if self.model is not None and self.tokenizer is not None:
            return self.model, self.tokenizer
        b = self.backend
        return getattr(b, "model", None), getattr(b, "tokenizer", None)


def _import_records(dirs: Sequence[Path], store: JsonlStore, current: dict[str, dict],
                    gen_fp: str, nll_fp: str) -> None:
    """Copy records of other eval runs that carry this run's generation or reference-NLL
    fingerprint and whose key this run does not have yet (nothing is regenerated for them)."""
    new = {}
    for d in dirs:
        path = Path(d) / GENERATIONS
        if not path.exists() or path.resolve() == store.path.resolve():
            continue
        for r in JsonlStore(path, key="key").records():
            if r["key"] not in current and r["key"] not in new and (
                r.get("gen_fp") == gen_fp or r.get("nll_fp") == nll_fp
            ):
                new[r["key"]] = r
    if new:
        log.info("reusing %d stored replies/scores from %s", len(new), ", ".join(map(str, dirs)))
        store.append(list(new.values()))
        current.update(new)


def _adapter_id(adapter: Path | None) -> str:
    """Content fingerprint of an adapter dir (a retrained adapter at the same path is new)."""
    if adapter is None:
        return ""
    try:
        from brittle.models.backends import adapter_fingerprint

        return adapter_fingerprint(adapter)
    except (ImportError, OSError, BrittleError):
        return str(adapter)


def _with_system(examples: list[Example], system: str | None) -> list[Example]:
    if not system:
        return examples
    return [
        Example([{"role": "system", "content": system}] + e.messages, id=e.id, category=e.category,
                source=e.source, meta=e.meta)
        if e.messages[0]["role"] != "system" else e
        for e in examples
    ]


def _applicable(suite: str, judges: Sequence[Judge], cfg: EvalConfig) -> list[Judge]:
    allowed = HARM_JUDGES if SPECS[suite].harmful else (UTILITY_JUDGES if suite == "utility" else BENIGN_JUDGES)
    return [j for j in judges if j.name in allowed]


def _judge_fp(j: Judge) -> str:
    return fingerprint(j.name, j.meta)


def _key(suite: str, e: Example) -> str:
    return f"{suite}/{e.id}"


def _chunks(items: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _run_judges(js: Sequence[Judge], exs: Sequence[Example], responses: Sequence[str]) -> dict[str, list[dict]]:
    return {j.name: [{**v, "fingerprint": _judge_fp(j)} for v in j.judge(exs, responses)] for j in js}


def _generate(suite, examples, lazy, js, store, current, gen_fp, cfg) -> None:
    from brittle.models.backend import GenerationConfig

    todo = [e for e in examples if current.get(_key(suite, e), {}).get("gen_fp") != gen_fp]
    if not todo:
        return
    gcfg = GenerationConfig(max_new_tokens=cfg.max_new_tokens, temperature=0.0, seed=cfg.seed,
                            batch_size=cfg.batch_size)
    log.info("%s: generating %d/%d replies", suite, len(todo), len(examples))
    chunk = cfg.batch_size * 4  # one append (fsync) per chunk: resume granularity
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc=f"eval {suite}", unit="prompt", leave=False)
    for part in _chunks(todo, chunk):
        responses = lazy.backend.generate([e.prompt_messages for e in part], config=gcfg)
        if len(responses) != len(part):
            raise BrittleError(f"backend {lazy.name} returned {len(responses)} replies for {len(part)} prompts")
        verdicts = _run_judges(js, part, responses)
        recs = []
        for i, (e, r) in enumerate(zip(part, responses)):
            old = current.get(_key(suite, e), {})
            rec = {
                "key": _key(suite, e), "suite": suite, "id": e.id, "category": e.category,
                "source": e.source, "prompt": e.prompt, "reference": e.response,
                "response": r, "gen_fp": gen_fp,
                "backend": lazy.name, "verdicts": {n: v[i] for n, v in verdicts.items()},
            }
            if "nll_fp" in old:  # keep a utility score computed earlier
                rec.update({k: old[k] for k in ("nll_fp", "nll_sum", "n_tokens")})
            current[rec["key"]] = rec
            recs.append(rec)
        store.append(recs)
        bar.update(len(part))
    bar.close()


def _add_missing_verdicts(suite, examples, js, store, current, gen_fp, cfg) -> None:
    for j in js:
        fp = _judge_fp(j)
        recs = [current[_key(suite, e)] for e in examples
                if current.get(_key(suite, e), {}).get("gen_fp") == gen_fp
                and current[_key(suite, e)].get("verdicts", {}).get(j.name, {}).get("fingerprint") != fp]
        if not recs:
            continue
        log.info("%s: judging %d stored replies with %s", suite, len(recs), j.name)
        by_id = {e.id: e for e in examples}
        for part in _chunks(recs, cfg.batch_size * 4):
            vs = j.judge([by_id[r["id"]] for r in part], [r["response"] for r in part])
            for r, v in zip(part, vs):
                r.setdefault("verdicts", {})[j.name] = {**v, "fingerprint": fp}
            store.append(part)


def _score_references(suite, examples, lazy, store, current, nll_fp, cfg) -> None:
    todo = [e for e in examples if current.get(_key(suite, e), {}).get("nll_fp") != nll_fp]
    if not todo:
        return
    model, tok = lazy.model_and_tokenizer()
    use_logprobs = model is None and "token_logprobs" in getattr(lazy.backend, "capabilities", ())
    if model is None and not use_logprobs:
        log.warning("%s: backend %s exposes no model or token_logprobs; utility NLL skipped", suite, lazy.name)
        return
    log.info("%s: scoring %d reference answers", suite, len(todo))
    for part in _chunks(todo, cfg.batch_size * 4):
        if use_logprobs:
            lps = lazy.backend.token_logprobs([e.prompt_messages for e in part], [e.response for e in part])
            scores = [(-float(sum(lp)), len(lp)) for lp in lps]
        else:
            scores = reference_nll(model, tok, part, batch_size=cfg.batch_size)
        recs = []
        for e, (s, n) in zip(part, scores):
            rec = current.get(_key(suite, e)) or {
                "key": _key(suite, e), "suite": suite, "id": e.id, "category": e.category,
                "source": e.source, "prompt": e.prompt, "reference": e.response, "verdicts": {},
            }
            rec.update({"nll_fp": nll_fp, "nll_sum": s, "n_tokens": n})
            current[rec["key"]] = rec
            recs.append(rec)
        store.append(recs)


def suite_metrics(
    suite: str, examples: Sequence[Example], current: dict[str, dict], gen_fp: str, nll_fp: str,
    judges: Sequence[Judge], *, seed: int = 0,
) -> dict[str, Any]:
    """Metrics of one suite from the stored records of *these* examples and fingerprints."""
    recs = [current.get(_key(suite, e)) for e in examples]
    gen = [r for r in recs if r and r.get("gen_fp") == gen_fp]
    out: dict[str, Any] = {"n_examples": len(examples), "n": len(gen)}
    for j in judges:
        fp = _judge_fp(j)
        items = [(r.get("category"), r["verdicts"][j.name]) for r in gen
                 if r.get("verdicts", {}).get(j.name, {}).get("fingerprint") == fp]
        if not items:
            continue
        vs = [v for _, v in items]
        if j.name == "refusal":
            out.update(M.refusal_metrics(vs, seed=seed))
            out["per_category"] = M.per_category(items, M.refusal_metrics, seed=seed)
        elif j.name in ("rubric", "helpfulness"):
            sm = M.score_metrics(vs, seed=seed)
            sm["harmfulness_rate" if j.name == "rubric" else "top_score_rate"] = sm.pop("top_rate")
            out[j.name] = sm
            if j.name == "rubric":
                out["rubric_per_category"] = {
                    c: {"n_scored": m["n_scored"], "mean_score": m["mean_score"],
                        "harmfulness_rate": m["top_rate"]}
                    for c, m in M.per_category(items, M.score_metrics, seed=seed).items()
                }
        elif j.name == "classifier":
            out["classifier"] = M.unsafe_metrics(vs, seed=seed)
    scored = [r for r in recs if r and r.get("nll_fp") == nll_fp]
    if scored:
        out["utility"] = M.nll_metrics([r["nll_sum"] for r in scored], [r["n_tokens"] for r in scored], seed=seed)
    return out
