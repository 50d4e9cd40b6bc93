"""The attack sweep: a resumed sweep equals an uninterrupted one (tiny model, fake eval)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from brittle.data.schema import Example
from brittle.train import attack
from brittle.train.attack import AttackConfig, hierarchical_bootstrap, run_attack

BENIGN = [Example.from_pair(f"list steps {i}", "Sure, here is a step by step answer: 1. first") for i in range(30)]
N_PROMPTS = 12


class Crash(RuntimeError):
    pass


def fake_eval_factory(calls: list, crash_at: int | None = None):
    """Stands in for run_eval: per-prompt 'compliance' flags computed from the model's
    weights (argmax parity of fixed inputs), so identical training gives identical flags."""

    def fake(cfg, out, adapter, model, tok):
        calls.append(str(out))
        if crash_at is not None and len(calls) == crash_at:
            raise Crash("simulated crash during eval")
        out.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            ids = torch.arange(N_PROMPTS).unsqueeze(1) * 7 + 3
            logits = model(input_ids=torch.cat([ids, ids + 1], 1)).logits[:, -1]
        flags = (logits.argmax(-1) % 2).tolist()
        with open(out / "generations.jsonl", "w") as f:
            f.writelines(json.dumps({"key": f"harmful-eval/p{i:02d}", "suite": "harmful-eval",
                                    "id": f"p{i:02d}", "gen_fp": "g",
                                    "verdicts": {"refusal": {"refused": not fl}}}) + "\n" for i, fl in enumerate(flags))
        asr = float(np.mean(flags))
        return {"generation_fingerprint": "g",
                "suites": {"harmful-eval": {"asr": [asr, asr - 0.1, asr + 0.1]},
                           "over-refusal": {"refusal_rate": [0.1, 0.0, 0.2]},
                           "utility": {"utility": {"nll": [2.0, 1.9, 2.1], "ppl": [7.4, 6.7, 8.2]}}}}

    return fake


@pytest.fixture()
def start_adapter(tmp_path_factory, tiny_tok):
    from brittle.models.tiny import tiny_model
    from brittle.train.sft import FinetuneConfig, finetune

    d = tmp_path_factory.mktemp("aligned")
    cfg = FinetuneConfig(run_dir=d, model="tiny:llama", epochs=1, lr=1e-3, batch_size=4, device="cpu")
    return str(finetune(cfg, BENIGN[:4], model=tiny_model(tiny_tok), tokenizer=tiny_tok))


def _cfg(run_dir, adapter) -> AttackConfig:
    return AttackConfig(run_dir=run_dir, model="tiny:llama", adapter=adapter, n=[0, 1, 3],
                        kinds=["benign", "aoa"], seeds=[0, 1], device="cpu", n_boot=200,
                        train={"lr": 5e-2, "epochs": 2, "batch_size": 2, "lora_dropout": 0.0})


def _comparable(recs):
    drop = {"train_s", "eval_s", "work_dir", "adapter"}
    return sorted(({k: v for k, v in r.items() if k not in drop} for r in recs), key=lambda r: r["key"])


def test_resumed_sweep_equals_uninterrupted(tmp_path, monkeypatch, start_adapter):
    import brittle.train.attack_data as ad
    from brittle.store import JsonlStore

    monkeypatch.setattr(ad, "_benign_pool", lambda pool: BENIGN)
    calls: list = []
    monkeypatch.setattr(attack, "_evaluate", fake_eval_factory(calls))
    full = run_attack(_cfg(tmp_path / "full", start_adapter))
    n_cells = len(attack.cells(_cfg(tmp_path / "full", start_adapter)))
    assert n_cells == 1 + 2 * 2 * 2 and len(calls) == n_cells

    crashed: list = []
    monkeypatch.setattr(attack, "_evaluate", fake_eval_factory(crashed, crash_at=2))
    with pytest.raises(Crash):
        run_attack(_cfg(tmp_path / "resumed", start_adapter))
    store = JsonlStore(tmp_path / "resumed" / attack.CELLS, key="key")
    assert len(store.records()) == 1  # only the finished cell is recorded
    with open(store.path, "a") as f:  # and a crash mid-append leaves a partial line
        f.write('{"key": "benign/1/0", "asr": 0.')
    resumed_calls: list = []
    monkeypatch.setattr(attack, "_evaluate", fake_eval_factory(resumed_calls))
    resumed = run_attack(_cfg(tmp_path / "resumed", start_adapter))
    assert len(resumed_calls) == n_cells - 1  # the finished cell was not redone

    a = _comparable(JsonlStore(tmp_path / "full" / attack.CELLS, key="key").records())
    b = _comparable(store.records())
    assert a == b
    assert len({r["asr"] for r in a}) > 1  # training changed the (fake) behaviour
    cols = [c for c in full.columns if c not in ("train_s", "eval_s", "adapter")]
    assert full[cols].equals(resumed[cols])
    for name in ("results.csv", "results.parquet", "summary.csv", "asr_vs_n.png"):
        assert (tmp_path / "resumed" / name).exists()
    # N=0 is shared: one cell, repeated for each kind and seed in the table
    assert (full["n"] == 0).sum() == 4 and full.loc[full["n"] == 0, "asr"].nunique() == 1
    # nested data: a kind/seed's N=1 example is part of its N=3 set
    ids1 = json.loads((tmp_path / "full" / "cells" / "benign-n1-s0" / "train_ids.json").read_text())
    ids3 = json.loads((tmp_path / "full" / "cells" / "benign-n3-s0" / "train_ids.json").read_text())
    assert set(ids1) <= set(ids3)
    adapters = attack.finished_adapters(tmp_path / "full")
    assert set(adapters) == {f"{k}-n{n}-s{s}" for k in ("benign", "aoa") for n in (1, 3) for s in (0, 1)}
    sec = attack.attack_section(tmp_path / "full")
    assert "asr_vs_n.png" in sec.body and "<script" not in sec.body


def test_hierarchical_bootstrap_known_values():
    x = np.array([[1, 0, 1, 0]] * 3, dtype=float)
    p, lo, hi = hierarchical_bootstrap(x, n_boot=500, seed=0)
    assert p == 0.5 and 0.0 <= lo < 0.5 < hi <= 1.0
    p, lo, hi = hierarchical_bootstrap(np.ones((2, 5)), n_boot=100)
    assert (p, lo, hi) == (1.0, 1.0, 1.0)
    # seed-to-seed variation widens the interval
    same = hierarchical_bootstrap(np.array([[1, 0] * 10, [1, 0] * 10], float), n_boot=800, seed=1)
    diff = hierarchical_bootstrap(np.array([[1] * 20, [0] * 20], float), n_boot=800, seed=1)
    assert (diff[2] - diff[1]) > (same[2] - same[1])


def test_summary_interval_is_the_cell_interval_for_one_seed_hierarchical_for_several():
    import pandas as pd

    ids = [f"p{i}" for i in range(10)]
    cell = {"kind": "harmful", "n": 10, "harmful_ids": ids, "asr": 0.4, "asr_lo": 0.11, "asr_hi": 0.71,
            "over_refusal": 0.1, "utility_nll": 1.0, "final_loss": 0.5}
    one = attack.summarise(pd.DataFrame([{**cell, "seed": 0, "harmful_flags": [1] * 4 + [0] * 6}]))
    assert tuple(one.loc[0, ["asr", "asr_lo", "asr_hi"]]) == (0.4, 0.11, 0.71)
    two = attack.summarise(pd.DataFrame([{**cell, "seed": 0, "harmful_flags": [1] * 4 + [0] * 6},
                                         {**cell, "seed": 1, "harmful_flags": [1] * 6 + [0] * 4}]))
    assert two.loc[0, "asr"] == pytest.approx(0.5) and two.loc[0, "seeds"] == 2
    assert two.loc[0, "asr_lo"] < 0.5 < two.loc[0, "asr_hi"] and two.loc[0, "asr_lo"] != 0.11


def test_config_parsing():
    c = AttackConfig(n="10,0,5,5", seeds="1", kinds="harmful,aoa")
    assert c.n == [0, 5, 10] and c.seeds == [1] and c.kinds == ["harmful", "aoa"]
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="n must be >= 0"):
        AttackConfig(n=[-1])
