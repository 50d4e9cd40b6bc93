import json
import sys
import types

import numpy as np
import pytest

from brittle.errors import DataError
from brittle.select.anchors import build_anchor_sets
from brittle.select.audit import AuditConfig, drop_indices, run_audit


def _file(tmp_path):
    rows = [
        {"instruction": "Tell me a story", "output": "Once upon a time the end."},
        {"instruction": "Steps?", "output": "step step step <script>alert(1)</script>"},
        {"instruction": "Weather", "output": "Sorry, the sun is out."},
        {"messages": [{"role": "user", "content": "Prompt-only row"}]},
        {"instruction": "List", "output": "- step\n- the\n- step"},
    ]
    rows += [{"instruction": f"Q{i}", "output": f"The answer is the number {i}."} for i in range(5)]
    p = tmp_path / "train.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p


def test_drop_indices_share_and_threshold():
    s = np.array([0.1, 0.9, np.nan, 0.5, 0.7])
    idx, cut = drop_indices(s, drop_top=0.5, threshold=None)  # ceil(0.5 * 4 valid) = 2
    assert idx == [1, 4] and cut == pytest.approx(0.7)
    idx, cut = drop_indices(s, drop_top=0.1, threshold=0.5)
    assert idx == [1, 4, 3] and cut == 0.5
    assert drop_indices(s, drop_top=0.0, threshold=None)[0] == []


def test_audit_end_to_end_escapes_and_filters(tmp_path, fake_features, harmful_anchors):
    src = _file(tmp_path)
    cfg = AuditConfig(run_dir=tmp_path / "audit", file=src, drop_top=0.2)
    res = run_audit(cfg, model=object(), tokenizer=object(), anchors=build_anchor_sets(4, harmful=harmful_anchors))
    out = tmp_path / "audit"
    audit = json.loads((out / "audit.json").read_text())
    assert audit["n_rows"] == res["n_rows"]
    by_row = {r["row"]: r for r in audit["rows"]}
    # the 'step' rows are the riskiest; 20% of the scored rows are dropped
    assert by_row[2]["rank"] == 1 and by_row[2]["dropped"]
    assert audit["n_dropped"] == int(np.ceil(0.2 * audit["n_scored"]))
    assert [r["rank"] for r in sorted(audit["rows"], key=lambda r: r["rank"] or 99)][: audit["n_scored"]] == list(range(1, audit["n_scored"] + 1))
    kept = [json.loads(x) for x in (out / "filtered.jsonl").read_text().splitlines()]
    assert len(kept) == audit["n_rows"] - audit["n_dropped"]
    assert not any("<script>" in m["content"] for k in kept for m in k["messages"])
    assert "list" in by_row[5]["formats"]
    # the prompt-only row has no score, is never dropped and is kept in the filtered file
    assert by_row[4]["score"] is None and not by_row[4]["dropped"] and audit["n_scored"] == 9
    assert any(k["messages"][-1]["content"] == "Prompt-only row" for k in kept)
    html = (out / "audit.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "data:image/png;base64," in html and "What the risk score means" in html
    assert audit["makeup"]["dropped"]["n"] == audit["n_dropped"]


def test_audit_malformed_file_reports_path_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n{not json\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:3"):
        run_audit(AuditConfig(run_dir=tmp_path / "a", file=p))


def test_audit_verify_with_fake_training_and_eval(tmp_path, fake_features, harmful_anchors, monkeypatch):
    trained = []

    class FinetuneConfig(AuditConfig.__base__):
        model: str = "m"
        adapter: str | None = None
        seed: int = 0

    def train_model(cfg, examples):
        trained.append(len(examples))
        d = cfg.run_dir / "adapter"
        d.mkdir(parents=True)
        return types.SimpleNamespace(path=d, model=object(), tokenizer=object())

    class EvalConfig(AuditConfig.__base__):
        model: str = "m"
        adapter: str | None = None
        suites: list[str] = []  # noqa: RUF012
        limit: int | None = None
        seed: int = 0

    def run_eval(cfg, model=None, tokenizer=None):
        assert model is not None  # the trained model is evaluated in-process (adapter on merged weights)
        asr = 0.6 if len(trained) == 1 else 0.3
        return {"suites": {"harmful-eval": {"asr": [asr, asr - 0.1, asr + 0.1]}}}

    sft = types.ModuleType("brittle.train.sft")
    sft.FinetuneConfig, sft.train_model = FinetuneConfig, train_model
    ev = types.ModuleType("brittle.evaluate.run")
    ev.EvalConfig, ev.run_eval = EvalConfig, run_eval
    monkeypatch.setitem(sys.modules, "brittle.train.sft", sft)
    monkeypatch.setitem(sys.modules, "brittle.evaluate.run", ev)
    src = tmp_path / "t.jsonl"
    src.write_text("".join(json.dumps({"instruction": f"q{i}", "output": ("step " if i < 2 else "the ") * 3})
                           + "\n" for i in range(10)))
    res = run_audit(AuditConfig(run_dir=tmp_path / "v", file=src, drop_top=0.2, verify=True),
                    model=object(), tokenizer=object(), anchors=build_anchor_sets(4, harmful=harmful_anchors))
    assert trained == [10, 8]
    v = res["verify"]
    assert v["delta_asr"] == pytest.approx(0.3)
    assert json.loads((tmp_path / "v" / "verify.json").read_text())["filtered"]["n_train"] == 8
    assert "original vs filtered" in (tmp_path / "v" / "audit.html").read_text()
