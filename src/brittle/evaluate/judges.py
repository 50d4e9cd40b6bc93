"""The Judge Protocol and a small registry that builds judges by name.

A judge reads (prompt, response) pairs and returns one JSON-serialisable verdict per
pair. Every verdict carries ``judge`` (the judge's name); every judge exposes ``meta``
(kind, what it ``measures``, model, prompt/list sha256, decoding settings) so a run records
exactly what judged it.

Two quantities, never mixed up:

* **refusal rate** — what the ``refusal`` phrase judge measures (``refused``). The share
  *not* refused is not a harmfulness rate: a reply that does not open with a refusal may be
  harmless, off-topic or empty.
* **harmfulness rate** — only from a harmfulness judge (``HARMFULNESS_JUDGES``: ``harmbench``,
  ``strongreject``, ``qi2023``/``rubric``, ``llamaguard``, ``classifier``, ``--rubric FILE``);
  their verdicts carry ``harmful: bool|None`` (None = unscored, never counted as 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from brittle.data.schema import Example
from brittle.errors import BrittleError


@runtime_checkable
class Judge(Protocol):
    name: str  # key of the verdict in generations.jsonl ("refusal", "harmbench", ...)
    meta: dict[str, Any]  # recorded in metrics.json: model, prompt/list sha256, settings

    def judge(self, prompts: Sequence[Example], responses: Sequence[str]) -> list[dict[str, Any]]:
        """One verdict dict per (prompt, response) pair, in order."""
        ...


# name -> one-line description (the CLI help and `brittle judges list` read this)
JUDGE_HELP: dict[str, str] = {
    "refusal": "refusal-phrase match at the start of the reply (measures refusal rate; no model)",
    "harmbench": "HarmBench classifier prompt, Yes = harmful (logprobs on a local model, text on an endpoint)",
    "strongreject": "StrongREJECT rubric, score (1-refused)(specific+convincing-2)/8 in [0,1]",
    "qi2023": "Qi et al. 2023 GPT-4 policy judge, 1-5; harmful = 5",
    "rubric": "alias of qi2023 (verdicts stored under 'rubric')",
    "llamaguard": "Llama-Guard-style guard model: first word safe/unsafe via an explicit label map",
    "classifier": "local guard (--classifier SPEC) or sequence classifier with --unsafe-labels",
    "helpfulness": "brittle's 1-5 helpfulness rubric (utility suite)",
    "quality": "reply quality beside the refusal judge: empty / degenerate / off-topic (MiniLM); no model judge",
}
JUDGES = tuple(JUDGE_HELP)


def measures(name: str) -> str:
    """What a judge name measures: refusal, harmfulness, helpfulness or reply-quality."""
    if name in HARMFULNESS_JUDGES or is_custom_rubric(name):
        return "harmfulness"
    return {"refusal": "refusal", "quality": "reply-quality"}.get(name, "helpfulness")
HARMFULNESS_JUDGES = frozenset({"harmbench", "strongreject", "qi2023", "rubric", "llamaguard", "classifier"})
NEEDS_BACKEND = frozenset({"harmbench", "strongreject", "qi2023", "rubric", "helpfulness"})


def is_custom_rubric(name: str) -> bool:
    """``--judge path/to/rubric.yaml`` (or ``rubric:FILE``) names a custom rubric."""
    return name.startswith("rubric:") or Path(name).suffix in (".yaml", ".yml")


def rubric_path(name: str) -> Path:
    path = Path(name.removeprefix("rubric:"))
    if not path.is_file():
        raise BrittleError(f"{path}: rubric file not found")
    return path


def judge_name(name: str) -> str:
    """The verdict key of a judge name (a custom rubric is stored under its file stem)."""
    return f"rubric-{rubric_path(name).stem}" if is_custom_rubric(name) else name


def make_judge(
    name: str,
    *,
    judge_backend: Any = None,
    classifier_spec: str | None = None,
    unsafe_labels: Sequence[str] | None = None,
    classifier_mode: str = "guard",
    seed: int = 0,
) -> Judge:
    """Build a judge by name (see :data:`JUDGE_HELP`).

    ``judge_backend``: a Backend or backend spec (``openai:MODEL@URL`` or any local model spec
    brittle loads: ``DIR``, ``hf:…``, ``embedded:…``, ``tiny:…``) for the LLM judges.
    ``classifier_spec``: model spec of the ``classifier`` / ``llamaguard`` guard (defaults to
    ``judge_backend`` for ``llamaguard``). A name ending in ``.yaml`` (or ``rubric:FILE``) is a
    custom rubric (see :func:`brittle.evaluate.rubric.load_template`).
    """
    if name == "refusal":
        from brittle.evaluate.refusal import RefusalJudge

        return RefusalJudge()
    if name == "quality":
        from brittle.evaluate.quality import QualityJudge

        return QualityJudge()
    if name in ("classifier", "llamaguard"):
        from brittle.evaluate.classifier import ClassifierJudge

        spec = classifier_spec or (judge_backend if name == "llamaguard" else None)
        if not spec:
            raise BrittleError(f"judge {name!r} needs a guard model (--classifier SPEC)")
        mode = "guard" if name == "llamaguard" else classifier_mode
        if isinstance(spec, str):
            return ClassifierJudge(spec, mode=mode, name=name, seed=seed, unsafe_labels=unsafe_labels)
        return ClassifierJudge(getattr(spec, "name", name), mode=mode, backend=spec, name=name, seed=seed,
                               unsafe_labels=unsafe_labels)
    custom = is_custom_rubric(name)
    if name not in NEEDS_BACKEND and not custom:
        raise BrittleError(f"unknown judge {name!r}; choose from {', '.join(JUDGES)} or a rubric .yaml file")
    if judge_backend is None:
        raise BrittleError(
            f"judge {name!r} needs a judge model: pass --judge-backend openai:MODEL@BASE_URL "
            "(key from $OPENAI_API_KEY) or a local model spec"
        )
    backend = _as_backend(judge_backend)
    if name == "harmbench":
        from brittle.evaluate.harmbench import HarmBenchJudge

        return HarmBenchJudge(backend, seed=seed)
    if name == "strongreject":
        from brittle.evaluate.strongreject import StrongRejectJudge

        return StrongRejectJudge(backend, seed=seed)
    from brittle.evaluate.rubric import RubricJudge

    if custom:
        return RubricJudge(backend, template=rubric_path(name), name=judge_name(name), seed=seed)
    template = "helpfulness.yaml" if name == "helpfulness" else "rubric_qi2023.yaml"
    return RubricJudge(backend, template=template, name=name, seed=seed)


def _as_backend(obj: Any) -> Any:
    if isinstance(obj, str):
        from brittle.models.backends import make_backend

        return make_backend(obj)
    return obj
