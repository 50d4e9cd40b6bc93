"""`brittle eval` as a function: generate → judge → metrics, resumable.

Reads top to bottom: resolve suites → (lazily) build the backend and judges → for each
suite, generate the missing replies in chunks and append them with their verdicts to
``run_dir/generations.jsonl`` (a :class:`~brittle.store.JsonlStore` keyed by
``suite/id``) → score utility references → compute metrics from the store → write
``run_dir/metrics.json``. A re-run skips every record whose generation fingerprint
(backend name, model identity = the weights behind the spec, adapter, max_new_tokens, seed)
matches and only adds verdicts of judges
that are new or changed (judge fingerprint = its name + prompt/list hash + model).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from brittle.config import CsvList, StageConfig
from brittle.data.fields import CATEGORY_FIELD_HELP, PROMPT_FIELD_HELP, FieldMap
from brittle.data.schema import Example
from brittle.errors import BrittleError
from brittle.evaluate import metrics as M
from brittle.evaluate.harm_metrics import harmfulness_metrics
from brittle.evaluate.judges import JUDGES, Judge, is_custom_rubric, make_judge
from brittle.evaluate.suites import SPECS, SUITES, USER_SUITES, load_suite, reference_nll
from brittle.fingerprint import fingerprint
from brittle.redaction import redact_url
from brittle.store import JsonlStore, write_json
from brittle.tracking import REPORT_TO_HELP, ReportTo, log_metrics

log = logging.getLogger(__name__)

GENERATIONS = "generations.jsonl"
METRICS = "metrics.json"
# which judges apply to which suites (a judge listed in the config but not applicable is
# skipped): harmful suites get the refusal judge + every judge whose meta says it measures
# harmfulness; utility gets the refusal judge + helpfulness rubrics; benign suites refusal only.


class EvalConfig(StageConfig):
    run_dir: Path = Field(Path("runs/eval"), description="Directory for generations.jsonl, metrics.json, index.html (resumable).")
    model: str = Field("embedded:smollm2-135m", description="Model or backend spec (embedded:…, tiny:llama, dir, hf:…, vllm:…, openai:MODEL@URL).")
    adapter: Path | None = Field(None, description="LoRA adapter directory applied on top of the model.")
    suites: CsvList = Field(["harmful", "over-refusal", "utility"], description="Suites to run (comma list): harmful = harmful-only held-out prompts (HarmBench+AdvBench+StrongREJECT+JBB); named: harmbench, advbench, strongreject, jailbreakbench, donotanswer (NAME-eval = its held-out split); harmful-eval = the legacy MIXED set; over-refusal; utility; prompts / prompts-benign (the --prompts file).")
    judges: CsvList = Field(["refusal"], description=f"Judges (comma list): {', '.join(JUDGES)} (refusal: refusal rate; the others: harmfulness or helpfulness), or a custom rubric FILE.yaml; see `brittle judges list`.")
    prompts: Path | None = Field(None, description="User prompt file: txt (one a line), or JSONL / JSON list / CSV / Parquet in any layout `brittle data validate` reads (HarmBench, AdvBench/JBB, StrongREJECT, XSTest, TRL prompt/completion, messages, instruction rows; see --prompt-field); adds suite 'prompts' (or 'prompts-benign', see --prompts-kind).")
    limit: int | None = Field(None, ge=1, description="Keep at most N examples per suite (deterministic subsample).")
    utility_limit: int | None = Field(None, ge=1, description="Keep at most N utility references (default: --limit); the utility NLL is a teacher-forced pass over every reference answer token.")
    max_new_tokens: int = Field(64, ge=1, description="Generation length per reply.")
    batch_size: int = Field(0, ge=0, description="Generation / forward batch size (0: sized to memory; all prompts of a small suite in one batch).")
    seed: int = Field(0, description="Seed for generation, judges, subsampling and bootstrap.")
    redact: bool = Field(True, description="Redact replies to harmful prompts in the HTML report (first words only).")
    judge_backend: str | None = Field(None, description="Judge model for harmbench/strongreject/qi2023/helpfulness/rubric files: openai:MODEL@https://…/v1 (key from $OPENAI_API_KEY) or a local model spec (logprobs for harmbench).")
    classifier: str | None = Field(None, description="Guard model spec for the 'classifier' / 'llamaguard' judges.")
    classifier_mode: str = Field("guard", pattern="^(guard|seqcls)$", description="'classifier' judge: guard (generates safe/unsafe) or seqcls (sequence classifier).")
    unsafe_labels: CsvList = Field([], description="seqcls classifier: comma list of the model labels (config.id2label names) that mean unsafe; checked at load.")
    utility_generate: bool = Field(False, description="Also generate and judge replies on the utility suite (on automatically with the helpfulness judge).")
    system_prompt: str | None = Field(None, description="Optional system message prepended to every prompt.")
    report_to: ReportTo = Field("none", description=REPORT_TO_HELP)
    reuse_from: list[Path] = Field([], description="Other eval run dirs: their replies and reference scores are copied in where the fingerprints match (same model, adapter contents, length, seed, system prompt).")
    request_timeout: float | None = Field(None, gt=0, allow_inf_nan=False, description="Seconds per HTTP request to an openai: endpoint, model and judges (default 60, or `brittle --request-timeout`).")
    max_retries: int | None = Field(None, ge=0, description="Retries of a failed or timed-out request to an openai: endpoint (default 4, or `brittle --max-retries`).")
    prompts_kind: Literal["harmful", "benign"] = Field("harmful", description="How the --prompts file is scored: harmful (suite 'prompts': refusal rate, ASR, harmfulness judges) or benign (suite 'prompts-benign': refusal rate reported as over-refusal, no harmfulness judge).")
    prompt_field: str | None = Field(None, min_length=1, description=PROMPT_FIELD_HELP)
    category_field: str | None = Field(None, min_length=1, description=CATEGORY_FIELD_HELP)

    @model_validator(mode="after")
    def _user_suite_kind(self) -> EvalConfig:
        """prompts_kind=benign scores the user file as over-refusal: 'prompts' -> 'prompts-benign'."""
        if self.prompts_kind == "benign" and "prompts" in self.suites:
            self.suites = [USER_SUITES["benign"] if s == "prompts" else s for s in self.suites]
        return self

    def field_map(self) -> FieldMap:
        """The field mapping for the user's --prompts file."""
        return FieldMap(prompt_field=self.prompt_field, category_field=self.category_field)

    @field_validator("suites")
    @classmethod
    def _known_suites(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in SPECS]
        if bad:
            raise ValueError(f"unknown suite(s) {bad}; choose from {list(SUITES)}")
        return v

    @field_validator("model", "judge_backend", "classifier")
    @classmethod
    def _valid_spec(cls, v: str | None) -> str | None:
        """An openai: spec without an http(s):// endpoint fails here, before any work."""
        if v is None:
            return v
        from brittle.models.backends import validate_spec

        try:
            return validate_spec(v)
        except BrittleError as e:
            raise ValueError(str(e)) from None

    @field_validator("judges")
    @classmethod
    def _known_judges(cls, v: list[str]) -> list[str]:
        bad = [j for j in v if j not in JUDGES and not is_custom_rubric(j)]
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
    if cfg.request_timeout is not None or cfg.max_retries is not None:  # every endpoint built from here
        from brittle.models.openai_backend import set_http_defaults

        set_http_defaults(timeout=cfg.request_timeout, max_retries=cfg.max_retries)
    run_dir = Path(cfg.run_dir)
    cfg.echo("eval_config")
    user = [USER_SUITES[cfg.prompts_kind]] if cfg.prompts and not set(USER_SUITES.values()) & set(cfg.suites) else []
    suites = list(cfg.suites) + user
    data = {s: _load(s, cfg) for s in suites}

    lazy = _Lazy(cfg, model=model, tokenizer=tokenizer, backend=backend)
    judge_list = list(judges) if judges is not None else [
        make_judge(j, judge_backend=cfg.judge_backend, classifier_spec=cfg.classifier,
                   unsafe_labels=cfg.unsafe_labels, classifier_mode=cfg.classifier_mode, seed=cfg.seed)
        for j in cfg.judges
    ]
    adapter_id = _adapter_id(cfg.adapter)
    # the model identity (weights, not just the spec string) is part of both fingerprints
    gen_fp = fingerprint(lazy.name, lazy.identity, adapter_id, cfg.max_new_tokens, cfg.seed, cfg.system_prompt)
    nll_fp = fingerprint(lazy.name, lazy.identity, adapter_id, cfg.system_prompt, "reference-nll")
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
        "model": redact_url(cfg.model),  # URL credentials are never recorded
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
    from brittle.provenance import provenance  # versions, device, weights identity, template

    result["provenance"] = provenance(
        cfg.model, lazy.tokenizer or getattr(lazy._backend, "tokenizer", None),
        device=getattr(cfg, "device", None), adapter=cfg.adapter)
    write_json(run_dir / METRICS, result)
    log_metrics(cfg.report_to, run_dir, {"suites": result["suites"]}, run_name=run_dir.name)
    from brittle.evaluate.samples import write_samples  # samples.parquet + samples.html

    keys = {_key(s, e) for s in suites for e in data[s]}
    write_samples(run_dir, [r for k, r in current.items() if k in keys and r.get("gen_fp") == gen_fp],
                  redact_harmful=cfg.redact, title=f"brittle eval samples: {redact_url(cfg.model)}")
    log.info("eval written to %s (%.1fs)", run_dir, result["wall_s"])
    return result


# -- helpers -------------------------------------------------------------------------------


class _Lazy:
    """Backend / model built on first use, so a fully resumed run loads nothing."""

    def __init__(self, cfg: EvalConfig, *, model: Any, tokenizer: Any, backend: Any) -> None:
        self.cfg, self.model, self.tokenizer, self._backend = cfg, model, tokenizer, backend
        self.name: str = getattr(backend, "name", None) or redact_url(cfg.model)
        if backend is not None:  # a caller's backend: its own identity (fakes have none)
            self.identity: str = getattr(backend, "identity", "") or ""
        else:
            from brittle.models.identity import model_identity

            self.identity = model_identity(cfg.model)

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


def _load(suite: str, cfg: EvalConfig) -> list[Example]:
    """One suite's examples (+ system prompt); the user's file is read with the field mapping."""
    kw = {"fields": cfg.field_map()} if SPECS[suite].dataset is None else {}
    limit = (cfg.utility_limit or cfg.limit) if suite == "utility" else cfg.limit
    exs = load_suite(suite, limit=limit, seed=cfg.seed, prompts=cfg.prompts, **kw)
    return _with_system(exs, cfg.system_prompt)


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
    want = "harmfulness" if SPECS[suite].harmful else ("helpfulness" if suite == "utility" else None)
    beside_refusal = ("refusal", "reply-quality")  # no model judge: every generated suite
    return [j for j in judges if j.name == "refusal" or j.meta.get("measures") in beside_refusal
            or (want and j.meta.get("measures") == want)]


def _judge_fp(j: Judge) -> str:
    """fingerprint(name, meta) + the identity of the judge's model when its meta names one
    (a guard or rubric model whose weights were replaced gives new verdicts)."""
    spec = j.meta.get("model") or j.meta.get("judge_model")
    if isinstance(spec, str) and spec:
        from brittle.models.identity import model_identity

        return fingerprint(j.name, j.meta, model_identity(spec))
    return fingerprint(j.name, j.meta)


def _key(suite: str, e: Example) -> str:
    return f"{suite}/{e.id}"


AUTO_CHUNK = 128  # prompts per generate call (and per store append) when the batch is sized to memory
NLL_BATCH = 8  # teacher-forced reference scoring: full-vocabulary logits per token dominate memory


def resume_chunk(batch_size: int) -> int:
    """Prompts per generate call and store append (the resume unit): 4 batches, or
    :data:`AUTO_CHUNK` when the batch is sized to memory (``batch_size`` 0)."""
    return batch_size * 4 if batch_size else AUTO_CHUNK


def _chunk_size(cfg: EvalConfig) -> int:
    return resume_chunk(cfg.batch_size)


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
    # one append (fsync) per chunk: resume granularity; an engine that batches itself (vLLM)
    # gets the whole suite in one call
    whole = "whole_batch" in getattr(lazy.backend, "capabilities", ())
    chunk = len(todo) if whole else _chunk_size(cfg)
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
        for part in _chunks(recs, _chunk_size(cfg)):
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
    for part in _chunks(todo, _chunk_size(cfg)):
        if use_logprobs:
            lps = lazy.backend.token_logprobs([e.prompt_messages for e in part], [e.response for e in part])
            scores = [(-float(sum(lp)), len(lp)) for lp in lps]
        else:
            scores = reference_nll(model, tok, part, batch_size=cfg.batch_size or NLL_BATCH)
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
            if suite in SPECS and not SPECS[suite].harmful and SPECS[suite].generate:
                out["over_refusal_rate"] = out["refusal_rate"]  # benign prompts: refusal = over-refusal
            out["per_category"] = M.per_category(items, M.refusal_metrics, seed=seed)
        elif j.meta.get("measures") == "helpfulness":
            sm = M.score_metrics(vs, seed=seed)
            sm["top_score_rate"] = sm.pop("top_rate")
            out[j.name] = sm
        elif j.meta.get("measures") == "harmfulness":
            # harmfulness rate = share of *scored* replies the judge calls harmful (unscored apart)
            out[j.name] = harmfulness_metrics(vs, seed=seed)
            if j.name == "classifier":  # earlier key, read by reports
                out[j.name]["unsafe_rate"] = out[j.name]["harmfulness_rate"]
            out[f"{j.name}_per_category"] = {
                c: {k: m[k] for k in ("n_scored", "harmfulness_rate", "mean_score") if k in m}
                for c, m in M.per_category(items, harmfulness_metrics, seed=seed).items()
            }
        elif j.meta.get("measures") == "reply-quality":
            out[j.name] = M.quality_metrics(vs, seed=seed)
    scored = [r for r in recs if r and r.get("nll_fp") == nll_fp]
    if scored:
        out["utility"] = M.nll_metrics([r["nll_sum"] for r in scored], [r["n_tokens"] for r in scored], seed=seed)
    return out
