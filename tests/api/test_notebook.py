"""The notebook API: `brittle.evaluate / attack / audit` on the tiny model return typed results."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import brittle
from brittle.api import AttackResult, AuditResult, EvalResult
from brittle.errors import BrittleError


def test_evaluate_returns_typed_result(tmp_path):
    res = brittle.evaluate(model="tiny:llama", suites=["harmful-eval"], limit=3, max_new_tokens=4,
                           run_dir=tmp_path / "eval")
    assert isinstance(res, EvalResult) and res.suites == ["harmful-eval"]
    df = res.to_pandas()
    row = df[(df.suite == "harmful-eval") & (df.metric == "refusal_rate")].iloc[0]
    assert row.n == 3 and row.lo <= row.value <= row.hi
    assert row.value == res.metrics["suites"]["harmful-eval"]["refusal_rate"][0]
    text = res.summary()
    assert "harmful-eval: n=3" in text and "refusal-phrase judge" in text
    # the package stays importable as a package next to being callable
    import brittle.evaluate.metrics as M

    assert M.wilson_interval(0, 3)[1] == 0.0


def test_bad_option_is_one_clear_error(tmp_path):
    with pytest.raises(BrittleError, match="limit"):
        brittle.evaluate(model="tiny:llama", limit=0, run_dir=tmp_path)
    with pytest.raises(BrittleError, match="no_such_option"):
        brittle.audit(file=tmp_path / "x.jsonl", no_such_option=1)


def test_attack_and_audit(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Give me a list {i}", "output": f"1. a\n2. b {i}"}) + "\n"
                            for i in range(6)), encoding="utf-8")
    res = brittle.attack(model="tiny:llama", adapter=None, kinds=["data"], data=str(data), n=[0, 2],
                         train={"epochs": 1}, eval_suites=["harmful-eval"], eval_limit=2,
                         max_new_tokens=4, run_dir=tmp_path / "attack")
    assert isinstance(res, AttackResult)
    summary = res.to_pandas()
    assert sorted(summary["n"]) == [0, 2] and "ASR" in res.summary()
    assert isinstance(res.cells, pd.DataFrame) and len(res.cells) == 2

    aud = brittle.audit(file=data, model="tiny:llama", method="repr", n_anchor=2, n_anchor_repr=2,
                        run_dir=tmp_path / "audit")
    assert isinstance(aud, AuditResult)
    rows = aud.to_pandas()
    assert len(rows) == 6 and rows["score"].notna().all()
    assert "6 rows" in aud.summary()
