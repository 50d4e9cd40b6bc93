"""The attack sweep: a resumed sweep equals an uninterrupted one (tiny model, fake eval)."""

from __future__ import annotations

import json
from pathlib import Path

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
            f.writelines(json.dumps({"key": f"harmful/p{i:02d}", "suite": "harmful",
                                    "id": f"p{i:02d}", "gen_fp": "g",
                                    "verdicts": {"refusal": {"refused": not fl}}}) + "\n" for i, fl in enumerate(flags))
        asr = float(np.mean(flags))
        return {"generation_fingerprint": "g",
                "suites": {"harmful": {"asr": [asr, asr - 0.1, asr + 0.1]},
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


# --------------------------------------------------------------------------- one recipe for all models


def _one_cell_cfg(run_dir, adapter, **kw) -> AttackConfig:
    base = {"run_dir": run_dir, "model": "tiny:llama", "adapter": adapter, "n": [1, 2], "kinds": ["benign"],
            "seeds": [0], "device": "cpu", "n_boot": 50, "train": {"batch_size": 2, "epochs": 1}}
    return AttackConfig(**{**base, **kw})


def test_attack_trains_a_fresh_adapter_on_the_merged_alignment(tmp_path, monkeypatch, start_adapter, tiny_tok):
    """The attacked model's trainable parameters are a fresh lora-attack adapter only; the
    alignment delta sits merged in frozen weights, identical to base + alignment adapter
    merged independently, and the alignment adapter's files are unchanged."""
    import brittle.train.attack_data as ad
    from brittle.fingerprint import file_sha256
    from brittle.models.load import apply_adapter
    from brittle.models.tiny import tiny_model

    monkeypatch.setattr(ad, "_benign_pool", lambda pool: BENIGN)
    sha = file_sha256(Path(start_adapter) / "adapter_model.safetensors")
    seen = {}

    def capture(cfg, out, adapter, model, tok):
        if "n2" in str(out):
            seen["trainable"] = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            seen["frozen"] = {n.replace("base_model.model.", "").replace(".base_layer", ""): p.detach().clone()
                              for n, p in model.named_parameters() if not p.requires_grad}
        return fake_eval_factory([])(cfg, out, adapter, model, tok)

    monkeypatch.setattr(attack, "_evaluate", capture)
    run_attack(_one_cell_cfg(tmp_path / "run", start_adapter))
    trainable = seen["trainable"]
    assert trainable and all(".lora_A.default." in n or ".lora_B.default." in n for n in trainable)
    assert {p.shape[0] for n, p in trainable.items() if "lora_A" in n} == {8}  # lora-attack r, not the r=16 start
    merged = apply_adapter(tiny_model(tiny_tok), start_adapter).merge_and_unload()
    expected = dict(merged.named_parameters())
    assert set(seen["frozen"]) == set(expected)
    assert all(torch.equal(seen["frozen"][n], expected[n].detach()) for n in expected)
    assert file_sha256(Path(start_adapter) / "adapter_model.safetensors") == sha
    cfg = json.loads((tmp_path / "run" / "cells" / "benign-n2-s0" / "train" / "adapter" / "adapter_config.json").read_text())
    assert (cfg["r"], cfg["lora_alpha"], cfg["lora_dropout"]) == (8, 16, 0.0)
    rec = {r["key"]: r for r in attack.JsonlStore(tmp_path / "run" / attack.CELLS, key="key").records()}
    assert rec["benign/2/0"]["base_adapter"] == start_adapter
    assert rec["benign/2/0"]["trainable_params"] == sum(p.numel() for p in trainable.values())


def test_finetune_configs_of_installed_and_vendor_runs_differ_only_in_model(tmp_path, monkeypatch, start_adapter):
    import yaml

    import brittle.train.attack_data as ad

    monkeypatch.setattr(ad, "_benign_pool", lambda pool: BENIGN)
    monkeypatch.setattr(attack, "_evaluate", fake_eval_factory([]))
    run_attack(_one_cell_cfg(tmp_path / "installed", start_adapter))
    run_attack(_one_cell_cfg(tmp_path / "vendor", None))
    for cell in ("benign-n1-s0", "benign-n2-s0"):
        a, b = (yaml.safe_load((tmp_path / r / "cells" / cell / "train" / "finetune_config.yaml").read_text())
                for r in ("installed", "vendor"))
        assert {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} == {"model"}
        assert a["model"] == f"tiny:llama merged:{start_adapter}" and b["model"] == "tiny:llama"
    ra, rb = (json.loads((tmp_path / r / "recipe.json").read_text()) for r in ("installed", "vendor"))
    assert {k for k in ra if ra[k] != rb[k]} == {"from_weights"}
    sec = attack.attack_section(tmp_path / "vendor")
    assert "Fine-tuning recipe" in sec.body and "adapter rank r" in sec.body and "trainable parameters" in sec.body


def test_sweep_loads_the_model_once_and_saves_only_adapters(tmp_path, monkeypatch):
    """Two trained cells (+ N=0) reuse one loaded model; each cell writes its adapter and no
    full weights; the aligned weights are the same before every cell."""
    import brittle.train.attack_data as ad
    from brittle.models import load

    monkeypatch.setattr(ad, "_benign_pool", lambda pool: BENIGN)
    loads, weights = [], []
    real = load.load_model

    def counting(spec, **kw):
        loads.append(spec)
        return real(spec, **kw)

    def fake(cfg, out, adapter, model, tok):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        weights.append(base.model.embed_tokens.weight.detach().clone())
        return fake_eval_factory([])(cfg, out, adapter, model, tok)

    monkeypatch.setattr(load, "load_model", counting)
    monkeypatch.setattr(attack, "_evaluate", fake)
    run_attack(_one_cell_cfg(tmp_path, None, n=[0, 1, 2]))
    assert loads == ["tiny:llama"]
    assert len(weights) == 3 and all(torch.equal(w, weights[0]) for w in weights)
    for cell in ("benign-n1-s0", "benign-n2-s0"):
        files = {p.relative_to(tmp_path / "cells" / cell).as_posix() for p in (tmp_path / "cells" / cell).rglob("*")
                 if p.is_file()}
        weights_files = {f for f in files if f.endswith((".safetensors", ".bin", ".pt"))}
        assert weights_files == {"train/adapter/adapter_model.safetensors"}


def test_full_finetuning_sweep_restores_weights_and_saves_nothing_per_cell(tmp_path, monkeypatch):
    import brittle.train.attack_data as ad

    monkeypatch.setattr(ad, "_benign_pool", lambda pool: BENIGN)
    weights = []

    def fake(cfg, out, adapter, model, tok):
        weights.append(model.model.embed_tokens.weight.detach().clone())
        assert adapter is None or "n0" in str(out)
        return fake_eval_factory([])(cfg, out, adapter, model, tok)

    monkeypatch.setattr(attack, "_evaluate", fake)
    run_attack(_one_cell_cfg(tmp_path, None, n=[0, 1, 2], preset="qi2023-full",
                             train={"batch_size": 2, "epochs": 1, "lr": 1e-2}))
    assert not torch.equal(weights[1], weights[0]) and not torch.equal(weights[2], weights[1])
    # the N=2 cell started from the aligned weights, not from the N=1 cell's: retraining it alone matches
    alone = []
    monkeypatch.setattr(attack, "_evaluate", lambda cfg, out, adapter, model, tok: (
        alone.append(model.model.embed_tokens.weight.detach().clone()) or fake_eval_factory([])(cfg, out, adapter, model, tok)))
    run_attack(_one_cell_cfg(tmp_path / "alone", None, n=[2], preset="qi2023-full",
                             train={"batch_size": 2, "epochs": 1, "lr": 1e-2}))
    assert torch.allclose(alone[0], weights[2])
    assert not list(tmp_path.glob("cells/*/train/model"))
    recipe = json.loads((tmp_path / "recipe.json").read_text())
    assert recipe["method"] == "full fine-tuning" and recipe["lora_r"] is None and recipe["lr"] == 1e-2


def test_selection_fine_tunes_share_one_loaded_model_and_one_recipe(tmp_path, monkeypatch):
    """finetune_on_selections (the selection comparison and transfer) loads the aligned model
    once for all selections, and every selection's run records the same recipe."""
    from brittle.data.io import write_jsonl
    from brittle.models import load
    from brittle.select.run import finetune_on_selections
    from brittle.train.recipe import compare_recipe_html

    loads = []
    real = load.load_model

    def counting(spec, **kw):
        loads.append(spec)
        return real(spec, **kw)

    monkeypatch.setattr(load, "load_model", counting)
    monkeypatch.setattr(attack, "_evaluate", fake_eval_factory([]))
    files = {name: (write_jsonl(BENIGN[i:i + 3], tmp_path / f"{name}.jsonl"), 3)
             for i, name in ((0, "top-x"), (10, "random"))}
    rows = finetune_on_selections(files, tmp_path / "compare", model="tiny:llama", adapter=None, device="cpu",
                                  attack_overrides={"train": {"batch_size": 2, "epochs": 1}, "n_boot": 50})
    assert loads == ["tiny:llama"] and [r["selection"] for r in rows] == ["top-x", "random"]
    recipes = [json.loads((tmp_path / "compare" / n / "recipe.json").read_text()) for n in files]
    assert recipes[0]["lora_r"] == 8 and {k: v for k, v in recipes[0].items() if k != "demonstrations"} == {
        k: v for k, v in recipes[1].items() if k != "demonstrations"}
    html = compare_recipe_html(tmp_path / "compare")
    assert "top-x (seed 0): 2" in html and "not all" not in html
    with pytest.raises(attack.BrittleError, match="loaded 'tiny:llama'"):
        other = _one_cell_cfg(tmp_path / "other", None, model="tiny:other", n=[1])
        attack.run_attack(other, start=attack.load_start(_one_cell_cfg(tmp_path / "x", None), None))


def test_cell_intervals_are_wilson_and_do_not_collapse_at_zero():
    from brittle.train.attack import _wilson

    lo, hi = _wilson([0] * 12)
    assert lo == 0.0 and hi == pytest.approx(0.2425, abs=1e-3)  # 3.84 / (12 + 3.84): Wilson at k = 0
    lo, hi = _wilson([1] * 9 + [0])
    assert 0.55 < lo < 0.6 and hi == pytest.approx(0.982, abs=1e-3)
    assert _wilson([]) is None
