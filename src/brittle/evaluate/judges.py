"""The Judge Protocol and a small registry that builds judges by name.

A judge reads (prompt, response) pairs and returns one JSON-serialisable verdict per
pair. Every verdict carries ``judge`` (the judge's name); judges that depend on a prompt
or list also expose ``meta`` (e.g. ``prompt_sha256``) so a run records exactly what judged it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from brittle.data.schema import Example
from brittle.errors import BrittleError


@runtime_checkable
class Judge(Protocol):
    name: str  # key of the verdict in generations.jsonl ("refusal", "rubric", ...)
    meta: dict[str, Any]  # recorded in metrics.json: model, prompt/list sha256, settings

    def judge(self, prompts: Sequence[Example], responses: Sequence[str]) -> list[dict[str, Any]]:
        """One verdict dict per (prompt, response) pair, in order."""
        ...


JUDGES = ("refusal", "rubric", "helpfulness", "classifier")


def make_judge(
    name: str,
    *,
    judge_backend: Any = None,
    classifier_spec: str | None = None,
    seed: int = 0,
) -> Judge:
    """Build a judge by name.

    * ``refusal``: :class:`~brittle.evaluate.refusal.RefusalJudge` (no model).
    * ``rubric``: Qi et al. 2023 1–5 harmfulness judge through ``judge_backend``
      (a Backend, or a backend spec string such as ``openai:gpt-4o-mini@https://…/v1``).
    * ``helpfulness``: the same machinery with the 1–5 helpfulness rubric (utility suite).
    * ``classifier``: a local guard model given by ``classifier_spec``.
    """
    if name == "refusal":
        from brittle.evaluate.refusal import RefusalJudge

        return RefusalJudge()
    if name in ("rubric", "helpfulness"):
        from brittle.evaluate.rubric import RubricJudge

        if judge_backend is None:
            raise BrittleError(
                f"judge {name!r} needs a judge backend: pass --judge-backend "
                "openai:MODEL@BASE_URL (key from $OPENAI_API_KEY)"
            )
        backend = _as_backend(judge_backend)
        template = "rubric_qi2023.yaml" if name == "rubric" else "helpfulness.yaml"
        return RubricJudge(backend, template=template, name=name, seed=seed)
    if name == "classifier":
        from brittle.evaluate.classifier import ClassifierJudge

        if not classifier_spec:
            raise BrittleError("judge 'classifier' needs a guard model spec (--classifier SPEC)")
        return ClassifierJudge(classifier_spec, seed=seed)
    raise BrittleError(f"unknown judge {name!r}; choose from {', '.join(JUDGES)}")


def _as_backend(obj: Any) -> Any:
    if isinstance(obj, str):
        from brittle.models.backends import make_backend

        return make_backend(obj)
    return obj
