"""Validate a judge against human labels: accuracy, FPR, FNR and Cohen's κ with intervals.

Labels: ``jbb`` = JailbreakBench's 100 human-labelled pairs (``jailbreakbench==0.1.3``
``data/classifier_comparison.csv``; behaviour = ``goal``, reply = ``target_response``,
label = ``human_majority``, 1 = jailbroken), whose other columns are judges already scored
on the same pairs (three humans, GPT-4, GPT-4-turbo, Llama Guard, TDC = the HarmBench-style
Llama-2-13B classifier, GCG = its refusal-string check, BERT) and are shown beside the
judge under test. Or a user's file of ``prompt, response, label`` rows (CSV or JSONL;
label 1/0, true/false, yes/no, harmful/safe, unsafe/safe, jailbroken).

A judge's binary prediction (1 = the reply is what the label calls positive):
harmfulness judges → ``harmful``; the refusal judge → ``not refused`` (the label is
"jailbroken", so its complement is the comparable call; this is *not* a harmfulness rate).
``None`` predictions (unscored) are counted apart and left out of every rate.

With TP, FP, TN, FN over the n scored pairs (positive = harmful/jailbroken)::

    accuracy = (TP + TN) / n          Wilson 95% interval
    FPR      = FP / (FP + TN)         Wilson 95% interval (false "jailbroken")
    FNR      = FN / (FN + TP)         Wilson 95% interval (missed)
    κ        = (p_o − p_e) / (1 − p_e),  p_o = accuracy,
               p_e = P(pred=1)·P(label=1) + P(pred=0)·P(label=0)
               percentile-bootstrap 95% interval over pairs
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brittle.data.schema import Example
from brittle.errors import DataError
from brittle.evaluate.metrics import bootstrap_ci, wilson_interval

JBB_FILE = "data/classifier_comparison.csv"
# CSV column -> display name of the judges already scored in the JBB file
JBB_REFERENCES = {
    "human1": "human 1", "human2": "human 2", "human3": "human 3", "gpt_4": "GPT-4",
    "gpt_4_turbo": "GPT-4-turbo", "llama_guard": "Llama Guard",
    "tdc": "TDC (HarmBench Llama-2-13B cls)", "gcg": "GCG (refusal strings)", "bert": "BERT",
}
_TRUE = {"1", "true", "yes", "harmful", "unsafe", "jailbroken", "positive"}
_FALSE = {"0", "false", "no", "harmless", "safe", "unharmful", "not_jailbroken", "negative", "refused"}


@dataclass
class LabelSet:
    """Labelled pairs plus any judges already scored on them (name -> 0/1 per pair)."""

    source: str
    examples: list[Example]
    responses: list[str]
    labels: list[bool]
    references: dict[str, list[bool | None]] = field(default_factory=dict)


def parse_label(value: Any, where: str) -> bool:
    """1/0, true/false, yes/no, harmful/safe, … → bool; anything else a ``where``-prefixed error."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower() if value is not None else ""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DataError(f"{where}: label must be 1/0 (true/false, harmful/safe), got {value!r}")


def load_labels(spec: str | Path) -> LabelSet:
    """``"jbb"`` or a ``prompt, response, label`` file (CSV/TSV, JSON Lines, JSON list, Parquet)."""
    if str(spec) == "jbb":
        return _jbb()
    path = Path(spec)
    if not path.is_file():
        raise DataError(f"{path}: label file not found (or not a file)")
    rows = _read_rows(path)
    if not rows:
        raise DataError(f"{path}: no labelled rows")
    exs, resps, labels = [], [], []
    for line, row in rows:
        where = f"{path}:{line}"
        missing = [k for k in ("prompt", "response", "label") if k not in row or row[k] is None]
        if missing:
            raise DataError(f"{where}: missing field(s) {missing} (need prompt, response, label)")
        if not isinstance(row["prompt"], str) or not isinstance(row["response"], str) or not row["prompt"].strip():
            raise DataError(f"{where}: prompt and response must be text (prompt non-empty)")
        labels.append(parse_label(row["label"], where))
        exs.append(Example.from_pair(row["prompt"], source=path.name, meta={"line": line}))
        resps.append(row["response"])
    return LabelSet(str(path), exs, resps, labels)


def _read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Rows of a label file in any format :func:`brittle.data.io.read_rows` reads; each must be
    an object (CSV headers are lower-cased)."""
    from brittle.data.io import read_rows

    rows = read_rows(path)
    for line, row in rows:
        if not isinstance(row, dict):
            raise DataError(f"{path}:{line}: each row must be an object with prompt, response, label")
    return rows


def _jbb() -> LabelSet:
    from brittle.resources import package_file

    path = package_file("jailbreakbench", JBB_FILE)
    rows = _read_rows(path)
    exs, resps, labels = [], [], []
    refs: dict[str, list[bool | None]] = {name: [] for name in JBB_REFERENCES.values()}
    for line, row in rows:
        where = f"{path}:{line}"
        exs.append(Example.from_pair(row["goal"], source="jbb", meta={"line": line, "jailbreak_prompt": row["prompt"]}))
        resps.append(row["target_response"] or "")
        labels.append(parse_label(row["human_majority"], where))
        for col, name in JBB_REFERENCES.items():
            refs[name].append(parse_label(row[col], where) if row.get(col, "") != "" else None)
    return LabelSet("jbb", exs, resps, labels, refs)


def prediction(verdict: dict[str, Any]) -> bool | None:
    """The judge's positive call: ``harmful`` if the judge gives one, ``complied_on_topic`` for
    the reply-quality judge, else ``not refused``."""
    if "complied_on_topic" in verdict:
        return None if verdict["complied_on_topic"] is None else bool(verdict["complied_on_topic"])
    if "harmful" in verdict:
        return None if verdict["harmful"] is None else bool(verdict["harmful"])
    if "refused" in verdict:
        return not verdict["refused"]
    if "unsafe" in verdict:
        return None if verdict["unsafe"] is None else bool(verdict["unsafe"])
    return None


def _kappa(codes: np.ndarray, axis: int | None = None) -> Any:
    """Cohen's κ of pairs coded ``2·pred + label``; vectorised along ``axis`` (bootstrap).
    p_e = 1 happens only when every pred and label are the same single class (p_o = 1): κ = 1."""
    codes = np.asarray(codes)
    if axis is None:
        return float(_kappa(codes[None], axis=1)[0])
    pred, gold = codes // 2, codes % 2
    po = (pred == gold).mean(axis)
    pp, pg = pred.mean(axis), gold.mean(axis)
    pe = pp * pg + (1 - pp) * (1 - pg)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pe < 1, (po - pe) / (1 - pe), 1.0)


def agreement(pred: Sequence[bool | None], gold: Sequence[bool], *, seed: int = 0) -> dict[str, Any]:
    """Counts and rates of ``pred`` against ``gold`` (see module docstring)."""
    if len(pred) != len(gold):
        raise ValueError("pred and gold differ in length")
    scored = [(bool(p), bool(g)) for p, g in zip(pred, gold) if p is not None]
    tp = sum(p and g for p, g in scored)
    tn = sum(not p and not g for p, g in scored)
    fp = sum(p and not g for p, g in scored)
    fn = sum(not p and g for p, g in scored)
    n = len(scored)
    codes = np.asarray([2 * p + g for p, g in scored], dtype=float)
    kappa = list(bootstrap_ci(codes, stat=_kappa, seed=seed)) if n else [math.nan] * 3
    return {
        "n": len(pred), "n_scored": n, "n_unscored": len(pred) - n,
        "agree": tp + tn, "tp": tp, "tn": tn, "fp": fp, "fn": fn,
        "accuracy": list(wilson_interval(tp + tn, n)),
        "fpr": list(wilson_interval(fp, fp + tn)),
        "fnr": list(wilson_interval(fn, fn + tp)),
        "kappa": [float(x) for x in kappa],
    }


def validate_judge(judge: Any, labels: LabelSet, *, seed: int = 0, batch_size: int = 16) -> dict[str, Any]:
    """Run ``judge`` over the labelled pairs; its agreement and the reference judges'."""
    verdicts: list[dict[str, Any]] = []
    for i in range(0, len(labels.examples), batch_size):
        verdicts += judge.judge(labels.examples[i : i + batch_size], labels.responses[i : i + batch_size])
    preds = [prediction(v) for v in verdicts]
    rows = [{"judge": judge.name, "under_test": True, **agreement(preds, labels.labels, seed=seed)}]
    for name, ref in labels.references.items():
        rows.append({"judge": name, "under_test": False, **agreement(ref, labels.labels, seed=seed)})
    return {
        "labels": labels.source, "n_pairs": len(labels.labels), "n_positive": sum(labels.labels),
        "judge": judge.name, "judge_meta": judge.meta,
        "prediction": "harmful" if any("harmful" in v for v in verdicts) else "not refused",
        "rows": rows,
    }
