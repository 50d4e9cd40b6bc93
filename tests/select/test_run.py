import json
import sys
import types

import numpy as np
import pandas as pd
import pytest

from brittle.errors import BrittleError
from brittle.select.anchors import build_anchor_sets
from brittle.select.run import (
    SelectConfig,
    compare_selections,
    compare_table,
    run_select,
    seed_interval,
)
from brittle.select.section import select_section

MODEL = object()
TOK = object()


def _cfg(tmp_path, pool_file, **kw):
    base = {"run_dir": tmp_path / "sel", "pool": str(pool_file), "k": 6,
            "methods": ["exact-anchor", "grad", "repr", "outlier"], "n_anchor": 4, "n_anchor_repr": 8,
            "selections": ["top", "bottom", "random", "list", "math", "harmful"]}
    base.update(kw)
    return SelectConfig(**base)


def test_run_select_end_to_end(tmp_path, pool_file, fake_features, harmful_anchors):
    cfg = _cfg(tmp_path, pool_file)
    anchors = build_anchor_sets(8, harmful=harmful_anchors)
    s = run_select(cfg, model=MODEL, tokenizer=TOK, anchors=anchors)
    run = cfg.run_dir
    # the pool rows with "step" answers (every 5th row) are the most harmful-looking
    top = [json.loads(x) for x in (run / "selections" / "top-exact-anchor.jsonl").read_text().splitlines()]
    assert [r["rank"] for r in top] == list(range(1, 7))
    assert all("step" in r["messages"][-1]["content"] for r in top[:6])
    assert [r["score"] for r in top] == sorted([r["score"] for r in top], reverse=True)
    # refusal-like "sorry" rows are pushed down by the safe anchors
    bottom = [json.loads(x) for x in (run / "selections" / "bottom-exact-anchor.jsonl").read_text().splitlines()]
    assert sum("Sorry" in r["messages"][-1]["content"] for r in bottom) >= 5
    # format selections and their make-up
    assert s["selections"]["list"]["makeup"]["list"] == 1.0
    assert s["selections"]["math"]["makeup"]["math"] == 1.0
    assert s["selections"]["random"]["n"] == 6
    assert s["selections"]["harmful"]["n"] == 6
    assert 0 < s["pool_makeup"]["list"] < 1
    # grad and exact-anchor see the same fake features: perfect agreement
    ag = s["agreement"]["exact-anchor~grad"]
    assert ag["spearman"] == pytest.approx(1.0) and ag["topk_overlap"] == 1.0
    df = pd.read_parquet(run / "scores.parquet")
    assert len(df) == 30 and {"exact-anchor", "exact-anchor:grad_norm", "repr", "repr:bidirectional", "outlier"} <= set(df.columns)
    # anchors: gradient methods use n_anchor, repr n_anchor_repr
    assert fake_features.calls == {"exact": 1, "grad": 4, "repr": 4, "outlier": 1}
    # re-run: scores come from the per-method cache, features are not recomputed
    run_select(cfg, model=MODEL, tokenizer=TOK, anchors=anchors)
    assert fake_features.calls == {"exact": 1, "grad": 4, "repr": 4, "outlier": 1}
    # a different k does not invalidate the scores, a different anchor count does
    run_select(cfg.model_copy(update={"n_anchor": 3}), model=MODEL, tokenizer=TOK, anchors=anchors)
    assert fake_features.calls["exact"] == 2 and fake_features.calls["repr"] == 4
    # repr without the safe sets (the reference's method): pool + harmful anchors only, same score
    lean = cfg.model_copy(update={"run_dir": tmp_path / "lean", "methods": ["repr"], "repr_safe_anchors": False})
    run_select(lean, model=MODEL, tokenizer=TOK, anchors=anchors)
    assert fake_features.calls["repr"] == 4 + 2
    df_lean = pd.read_parquet(lean.run_dir / "scores.parquet")
    assert "repr:bidirectional" not in df_lean.columns
    assert df_lean["repr"].tolist() == pd.read_parquet(run / "scores.parquet")["repr"].tolist()
    text = select_section(lean.run_dir).body
    assert "safe1 (" in text and "unused by repr" in text and "harmful (" in text
    assert "unused by repr" not in select_section(run).body


def test_select_section_escapes_and_shows_makeup(tmp_path, fake_features, harmful_anchors):
    rows = [{"instruction": f"q{i}", "output": f"step step <script>alert({i})</script>"} for i in range(4)]
    rows += [{"instruction": f"r{i}", "output": "- a\n- b\n- c"} for i in range(4)]
    p = tmp_path / "pool.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _cfg(tmp_path, p, k=2, methods=["exact-anchor"], selections=["top", "random", "list"])
    run_select(cfg, model=MODEL, tokenizer=TOK, anchors=build_anchor_sets(4, harmful=harmful_anchors))
    sec = select_section(cfg.run_dir)
    assert "<script>" not in sec.body and "&lt;script&gt;alert(" in sec.body
    assert "Format make-up" in sec.body and "top-exact-anchor" in sec.body and "100%" in sec.body
    with pytest.raises(BrittleError):
        select_section(tmp_path / "nothing")


def test_bad_method_and_missing_pool(tmp_path):
    with pytest.raises(ValueError):
        SelectConfig(methods=["magic"])
    with pytest.raises(BrittleError):
        run_select(SelectConfig(run_dir=tmp_path, pool=str(tmp_path / "missing.jsonl")))


def _fake_attack(monkeypatch, asr_by_file):
    calls = []

    class AttackConfig(SelectConfig.__base__):  # a StageConfig with the fields compare uses
        model: str = "m"
        adapter: str | None = "auto"
        n: list[int] = [0]  # noqa: RUF012
        kinds: list[str] = ["harmful"]  # noqa: RUF012
        seeds: list[int] = [0]  # noqa: RUF012
        data: str | None = None
        eval_limit: int | None = None
        eval_suites: list[str] = []  # noqa: RUF012
        device: str = "auto"
        gen_backend: str = "auto"

    def run_attack(cfg):
        calls.append(cfg)
        name = cfg.data.rsplit("/", 1)[-1].removesuffix(".jsonl")
        rows = [{"kind": "data", "n": cfg.n[0], "seed": s, "asr": asr_by_file(name, s),
                 "asr_lo": 0.0, "asr_hi": 1.0} for s in cfg.seeds]
        rows.append({"kind": "aligned", "n": 0, "seed": cfg.seeds[0], "asr": 0.01, "asr_lo": 0, "asr_hi": 0.1})
        return pd.DataFrame(rows)

    mod = types.ModuleType("brittle.train.attack")
    mod.AttackConfig, mod.run_attack = AttackConfig, run_attack
    monkeypatch.setitem(sys.modules, "brittle.train.attack", mod)
    return calls


def test_compare_selections_with_fake_attack(tmp_path, pool_file, fake_features, harmful_anchors, monkeypatch):
    cfg = _cfg(tmp_path, pool_file, methods=["exact-anchor"], selections=["top", "bottom", "random", "list", "numbered"],
               gen_backend="vllm")
    run_select(cfg, model=MODEL, tokenizer=TOK, anchors=build_anchor_sets(4, harmful=harmful_anchors))
    calls = _fake_attack(monkeypatch, lambda name, s: {"top-exact-anchor": 0.6, "random": 0.2}.get(name, 0.3) + 0.1 * s)
    rows = compare_selections(cfg, seeds=[0, 1], eval_limit=5)
    # bottom-* are not fine-tuned by default; the empty "numbered" selection is skipped
    assert {r["selection"] for r in rows} == {"top-exact-anchor", "random", "list"}
    assert len(calls) == 3 and calls[0].kinds == ["data"] and calls[0].n == [6] and calls[0].adapter == "none"
    assert calls[0].eval_limit == 5 and calls[0].seeds == [0, 1] and calls[0].gen_backend == "vllm"
    tab = {r["selection"]: r for r in compare_table(rows)}
    assert tab["top-exact-anchor"]["asr"] == pytest.approx(0.65)  # mean over seeds, not the n=0 row
    assert tab["random"]["ci_over"] == "seeds" and tab["random"]["lo"] < 0.25 < tab["random"]["hi"]
    # resume: nothing is re-run
    compare_selections(cfg, seeds=[0, 1], eval_limit=5)
    assert len(calls) == 3
    sec = select_section(cfg.run_dir)
    assert "data:image/png;base64," in sec.body and "ASR per selection" not in sec.title
    assert (cfg.run_dir / "compare" / "table.json").exists()


def test_seed_interval():
    p, lo, hi = seed_interval([0.2, 0.4, 0.6])
    assert p == pytest.approx(0.4) and lo < 0.4 < hi
    # t(0.975, 2) = 4.303; s = 0.2; half = 4.303 * 0.2 / sqrt(3) = 0.4969 -> clipped at 0
    assert hi == pytest.approx(min(1.0, 0.4 + 4.302653 * 0.2 / 3 ** 0.5), rel=1e-4)
    assert lo == 0.0
    p, lo, hi = seed_interval([0.5])
    assert p == 0.5 and np.isnan(lo)


def test_pool_limit_is_a_seeded_subset(pool_file):
    from brittle.select.run import load_pool

    a, b = load_pool(str(pool_file), limit=10, seed=0), load_pool(str(pool_file), limit=10, seed=0)
    assert [e.id for e in a] == [e.id for e in b] and len(a) == 10
    assert [e.id for e in load_pool(str(pool_file), limit=10, seed=1)] != [e.id for e in a]
    full = [e.id for e in load_pool(str(pool_file))]
    assert [full.index(e.id) for e in a] == sorted(full.index(e.id) for e in a)  # order kept


def test_transfer_fine_tunes_the_source_top_k_cut_to_k(tmp_path, pool_file, fake_features, harmful_anchors,
                                                       monkeypatch):
    from brittle.select.transfer import transfer_selections

    cfg = _cfg(tmp_path, pool_file, methods=["exact-anchor", "repr"], selections=["top", "random"])
    run_select(cfg, model=MODEL, tokenizer=TOK, anchors=build_anchor_sets(4, harmful=harmful_anchors))
    calls = _fake_attack(monkeypatch, lambda name, s: 0.5)
    out = tmp_path / "target" / "transfer"
    rows = transfer_selections(cfg.run_dir, out, model="other", adapter=None, k=3, eval_limit=7)
    assert [r["selection"] for r in rows] == ["transfer-top-exact-anchor", "transfer-top-repr"]
    assert [c.model for c in calls] == ["other", "other"] and calls[0].n == [3] and calls[0].eval_limit == 7
    src = [json.loads(x) for x in (cfg.run_dir / "selections" / "top-exact-anchor.jsonl").read_text().splitlines()]
    cut = [json.loads(x) for x in (out / "selections" / "top-exact-anchor.jsonl").read_text().splitlines()]
    assert [r["messages"] for r in cut] == [r["messages"] for r in src[:3]]
    assert [r["score"] for r in cut] == [r["score"] for r in src[:3]]
    assert json.loads((out / "table.json").read_text())[0]["asr"] == 0.5
    transfer_selections(cfg.run_dir, out, model="other", adapter=None, k=3, eval_limit=7)
    assert len(calls) == 2  # resumed: nothing re-run
    rows = transfer_selections(cfg.run_dir, out, model="other", adapter=None, k=3, names=["random"], gen_backend="hf")
    assert [r["selection"] for r in rows] == ["transfer-random"] and len(calls) == 3
    assert calls[0].gen_backend == "auto" and calls[2].gen_backend == "hf"
    with pytest.raises(BrittleError, match=r"no selection\(s\) \['top-grad'\]"):
        transfer_selections(cfg.run_dir, out, model="other", adapter=None, k=3, names=["top-grad"])
    with pytest.raises(BrittleError, match="no finished selection run"):
        transfer_selections(tmp_path / "nothing", out, model="other", adapter=None, k=3)
