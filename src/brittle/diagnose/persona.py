"""Persona sensitivity of refusals (the seed's guardrail-sensitivity line).

The same prompts are sent once per persona statement (``resources/diagnose/personas.yaml``:
``template.format(persona=statement, prompt=prompt)``, plus an unprefixed ``none``
baseline); the refusal rate per persona and suite comes with a Wilson 95% interval, and the
spread = max − min refusal rate over personas (baseline included) per suite.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from brittle.data.schema import Example
from brittle.errors import DataError

log = logging.getLogger(__name__)

DEFAULT_FILE = "diagnose/personas.yaml"
BASELINE_ID = "none"


@dataclass(frozen=True)
class Persona:
    id: str
    statement: str
    group: str = ""


def load_personas(path: str | Path | None = None) -> tuple[str, list[Persona]]:
    """``(template, personas)`` from a YAML file (default: the shipped one).

    The baseline persona ``none`` (empty statement) is always first.
    """
    from brittle.resources import shipped

    path = Path(path) if path else shipped(DEFAULT_FILE)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise DataError(f"{path}:1: cannot read personas: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("personas"), list):
        raise DataError(f"{path}:1: expected a mapping with a 'personas' list")
    template = str(data.get("template", "{persona} {prompt}"))
    if "{prompt}" not in template or "{persona}" not in template:
        raise DataError(f"{path}:1: template must contain {{persona}} and {{prompt}}")
    out = [Persona(BASELINE_ID, "", "baseline")]
    seen = {BASELINE_ID}
    for i, p in enumerate(data["personas"]):
        if not isinstance(p, dict) or not p.get("id") or not str(p.get("statement", "")).strip():
            raise DataError(f"{path}:{i + 1}: persona #{i + 1} needs an id and a statement")
        if p["id"] in seen:
            raise DataError(f"{path}:{i + 1}: duplicate persona id {p['id']!r}")
        seen.add(p["id"])
        out.append(Persona(str(p["id"]), str(p["statement"]).strip(), str(p.get("group", ""))))
    return template, out


def first_per_group(personas: Sequence[Persona], n: int | None) -> list[Persona]:
    """The baseline and the first ``n`` personas of each group, in file order (None: all)."""
    if n is None:
        return list(personas)
    taken: dict[str, int] = {}
    out = []
    for p in personas:
        if p.id == BASELINE_ID or taken.get(p.group, 0) < n:
            out.append(p)
            taken[p.group] = taken.get(p.group, 0) + (p.id != BASELINE_ID)
    return out


def persona_prompt(template: str, persona: Persona, prompt: str) -> str:
    """The user message for one persona (the bare prompt for the baseline)."""
    if not persona.statement:
        return prompt
    return template.format(persona=persona.statement, prompt=prompt)


def build_persona_prompts(
    examples: Sequence[Example], template: str, personas: Sequence[Persona], *, suite: str = ""
) -> list[Example]:
    """One prompt-only example per (persona, example): the last user message is rewritten,
    everything else (system prompt, earlier turns) is kept. ``meta`` records persona,
    group, suite and the original id; ids are ``<persona>/<original id>``."""
    out = []
    for persona in personas:
        for ex in examples:
            msgs = [dict(m) for m in ex.prompt_messages]
            last_user = max(i for i, m in enumerate(msgs) if m["role"] == "user")
            msgs[last_user]["content"] = persona_prompt(template, persona, msgs[last_user]["content"])
            out.append(Example(messages=msgs, id=f"{persona.id}/{ex.id}", category=ex.category,
                               source=ex.source,
                               meta={"persona": persona.id, "group": persona.group,
                                     "suite": suite, "orig_id": ex.id}))
    return out


def run_persona(
    backend: Any,
    judge: Any,
    suites: dict[str, Sequence[Example]],
    *,
    persona_file: str | Path | None = None,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    seed: int = 0,
    store_path: str | Path | None = None,
    per_group: int | None = None,
) -> Any:
    """DataFrame(id, persona, group, suite, orig_id, response, refused, matched).

    ``suites``: e.g. ``{"harmful": [...], "over-refusal": [...]}``. Resumable through a
    :class:`~brittle.store.JsonlStore` at ``store_path`` (key = suite + id). ``per_group``:
    only the first N personas of each group (:func:`first_per_group`).
    """
    import pandas as pd

    from brittle.evaluate.run import resume_chunk
    from brittle.models.backend import GenerationConfig
    from brittle.store import JsonlStore

    template, personas = load_personas(persona_file)
    personas = first_per_group(personas, per_group)
    store = JsonlStore(store_path, key=lambda r: f"{r['suite']}|{r['id']}") if store_path else None
    done = store.done() if store else set()
    records = list(store.records()) if store else []
    cfg = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0, seed=seed,
                           batch_size=batch_size)
    for suite, examples in suites.items():
        prompts = [p for p in build_persona_prompts(examples, template, personas, suite=suite)
                   if f"{suite}|{p.id}" not in done]
        step = resume_chunk(batch_size)  # one store append per step (the resume unit)
        for start in range(0, len(prompts), step):
            chunk = prompts[start : start + step]
            replies = backend.generate([p.messages for p in chunk], config=cfg)
            verdicts = judge.judge(chunk, replies)
            recs = [{"id": p.id, "suite": suite, "persona": p.meta["persona"],
                     "group": p.meta["group"], "orig_id": p.meta["orig_id"], "response": r,
                     "refused": bool(v.get("refused")), "matched": v.get("matched")}
                    for p, r, v in zip(chunk, replies, verdicts)]
            if store:
                store.append(recs)
            records.extend(recs)
    return pd.DataFrame(records)


def persona_summary(df: Any, *, n_boot: int = 1000, seed: int = 0) -> Any:
    """DataFrame(suite, persona, group, refusal_rate, lo, hi, n), one row per pair."""
    import pandas as pd

    from brittle.diagnose.stats import proportion_ci

    rows = []
    for (suite, persona), g in df.groupby(["suite", "persona"], sort=False):
        m, lo, hi = proportion_ci(g["refused"].astype(float).to_numpy())  # Wilson 95%
        rows.append({"suite": suite, "persona": persona, "group": g["group"].iloc[0],
                     "refusal_rate": m, "lo": lo, "hi": hi, "n": len(g)})
    return pd.DataFrame(rows)


def persona_spread(summary: Any) -> dict[str, dict[str, Any]]:
    """Per suite: spread = max − min refusal rate over personas, with the arg-max/min."""
    out = {}
    for suite, g in summary.groupby("suite", sort=False):
        hi, lo = g.loc[g["refusal_rate"].idxmax()], g.loc[g["refusal_rate"].idxmin()]
        base = g[g["persona"] == BASELINE_ID]["refusal_rate"]
        out[str(suite)] = {
            "spread": float(hi["refusal_rate"] - lo["refusal_rate"]),
            "max_persona": str(hi["persona"]), "max_rate": float(hi["refusal_rate"]),
            "min_persona": str(lo["persona"]), "min_rate": float(lo["refusal_rate"]),
            "baseline_rate": float(base.iloc[0]) if len(base) else float("nan"),
        }
    return out


def plot_personas(summary: Any, path: Any) -> Any:
    """Horizontal bars: refusal rate per persona (with CIs), one panel per suite."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suites = list(dict.fromkeys(summary["suite"]))
    fig, axes = plt.subplots(1, len(suites), figsize=(4.5 * len(suites), 0.28 * summary["persona"].nunique() + 1.5),
                             squeeze=False)
    for ax, suite in zip(axes[0], suites):
        g = summary[summary["suite"] == suite]
        err = [g["refusal_rate"] - g["lo"], g["hi"] - g["refusal_rate"]]
        ax.barh(g["persona"], g["refusal_rate"], xerr=err, capsize=2)
        ax.set_xlim(0, 1)
        ax.set_xlabel("refusal rate (share of prompts; bars: 95% CI)")
        ax.set_title(str(suite))
        ax.invert_yaxis()
    fig.tight_layout()
    from brittle.report.plots import save_figure

    return save_figure(fig, path, dpi=120)
