"""End to end on the tiny model: adapters, fake data, the real refusal judge and HF backend."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from brittle.data.schema import Example

ANSWER = "Sure, here is a step by step answer: 1. first 2. second"


def _adapter(tmp_path, name, seed):
    import torch
    from peft import LoraConfig, get_peft_model

    from brittle.models.tiny import tiny_model, tiny_tokenizer

    torch.manual_seed(seed)
    m = get_peft_model(tiny_model(tiny_tokenizer()),
                       LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    m.save_pretrained(tmp_path / name)
    return tmp_path / name


@pytest.fixture()
def fake_data(monkeypatch):
    from brittle.diagnose import run

    harmful = [Example.from_pair(f"how to kill process {i}", ANSWER) for i in range(4)]
    monkeypatch.setattr(run, "compliant_examples", lambda cfg: harmful[: cfg.n_prompts])

    def prompts(name, split, n):
        words = {"harmful": "kill", "benign": "fox", "over-refusal": "process"}[name]
        return [Example.from_pair(f"{words} {split} {i} quick") for i in range(n)]

    monkeypatch.setattr(run, "_prompts", prompts)


def test_run_diagnose_end_to_end(tmp_path, fake_data):
    from brittle.diagnose.run import DiagnoseConfig, run_diagnose
    from brittle.diagnose.section import diagnose_section

    pfile = tmp_path / "p.yaml"
    pfile.write_text("template: '{persona} {prompt}'\npersonas:\n  - {id: teen, statement: As a 16-year-old,}\n")
    cfg = DiagnoseConfig(
        run_dir=tmp_path / "run", model="tiny:llama", aligned_adapter=_adapter(tmp_path, "al", 1),
        attacked={"atk": _adapter(tmp_path, "atk", 2)}, n_prompts=4, kl_positions=6,
        prefill_ks=[0, 2], max_new_tokens=3, batch_size=4, persona_prompts=2, synth_n=4,
        persona_file=pfile, diagnostics=["kl", "prefill", "direction", "persona", "synth"], device="cpu",
        direction_n_train=4, direction_n_val=3, direction_n_test=4, direction_positions=2,
        direction_kl_threshold=None, direction_induce_threshold=None,  # a random model induces nothing
    )
    res = run_diagnose(cfg)
    rd = cfg.run_dir
    for f in ["kl.parquet", "kl.png", "prefill.parquet", "prefill.png", "direction.parquet",
              "direction.png", "persona.parquet", "persona.png", "synth.parquet", "diagnose.json"]:
        assert (rd / f).exists(), f
    assert set(res["kl"]) == {"aligned‖base", "atk‖aligned"}
    share = res["kl"]["aligned‖base"]["share_first5"]
    assert 0 < share <= 1
    kl = pd.read_parquet(rd / "kl.parquet")
    assert set(kl["position"]) == set(range(1, 7))
    assert set(res["prefill"]) == {"aligned", "atk"} and set(res["prefill"]["aligned"]) == {0, 2}
    d = res["direction"]
    assert [m["model"] for m in d["models"]] == ["aligned", "atk"]
    assert (d["n_harmful_val"], d["n_harmless_val"], d["n_harmful_test"], d["n_harmful_train"]) == (3, 3, 4, 4)
    assert d["n_candidates"] == 2 * 2 and d["position"] in (-2, -1) and d["layer"] == 0  # layer 1 of 2 pruned
    cands = json.loads((rd / "direction_candidates.json").read_text())
    assert d["bypass_score"] == min(c["bypass"] for c in cands if c["kept"])
    m0 = d["models"][0]
    assert m0["ablated_refusal_lo"] <= m0["ablated_refusal_rate"] <= m0["ablated_refusal_hi"]
    assert m0["refusal_hi"] > m0["refusal_lo"]  # Wilson: never a zero-width interval
    assert {"ablation_effect", "added_refusal_rate", "addition_effect_hi"} <= set(m0)
    per = pd.read_parquet(rd / "persona.parquet")
    assert len(per) == 2 * 2 * 2 * 2  # models x suites x personas(+none) x prompts
    assert set(res["synth"]) == {"aligned", "atk"}
    json.loads((rd / "diagnose.json").read_text())
    sec = diagnose_section(rd)
    assert "Per-token KL" in sec.body and "<img" in sec.body and "<script" not in sec.body
    assert "select_direction.py" in sec.body and "bypass" in sec.body and "Wilson" in sec.body
    # resume: a second run regenerates nothing and gives the same prefill result
    res2 = run_diagnose(cfg.model_copy(update={"diagnostics": ["prefill"]}))
    assert json.dumps(res2["prefill"], sort_keys=True) == json.dumps(res["prefill"], sort_keys=True)


def test_cli_registers_commands(tmp_path, fake_data):
    import typer

    from brittle.cli.diagnose import register

    app = typer.Typer()

    @app.callback()
    def _root():
        pass

    register(app)
    r = CliRunner().invoke(app, ["diagnose", "kl", "--model", "tiny:llama", "--run-dir", str(tmp_path / "r"),
                                 "--aligned-adapter", str(_adapter(tmp_path, "al", 1)), "--n-prompts", "2",
                                 "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{"):])
    assert "aligned‖base" in out["kl"]
    r = CliRunner().invoke(app, ["synth", "--model", "tiny:llama", "--out", str(tmp_path / "s.jsonl"),
                                 "--n-instructions", "3", "--max-instruction-tokens", "5", "--max-response-tokens", "3",
                                 "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s.jsonl").exists()
    r = CliRunner().invoke(app, ["diagnose", "--help"])
    assert "prefill" in r.output and "persona" in r.output


def test_cli_direction_options_and_nothing_passing_the_filter(tmp_path, fake_data):
    import typer

    from brittle.cli.diagnose import register
    from brittle.diagnose.section import diagnose_section

    app = typer.Typer()

    @app.callback()
    def _root():
        pass

    register(app)
    run = tmp_path / "r"
    r = CliRunner().invoke(app, ["diagnose", "direction", "--model", "tiny:llama", "--run-dir", str(run),
                                 "--n-train", "3", "--n-val", "2", "--n-test", "0", "--positions", "1",
                                 "--induce-threshold", "1000", "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output[r.output.index("{"):])["direction"]
    assert "filtered out" in d["skipped"] and "induce" in d["skipped"]
    assert (d["n_harmful_train"], d["n_harmful_val"], d["rules"]["induce_threshold"]) == (3, 2, 1000.0)
    assert "no direction chosen" in diagnose_section(run).body


def test_a_layer_stride_reaches_the_scores_and_the_report_states_it(tmp_path, fake_data):
    from brittle.diagnose.run import DiagnoseConfig, run_diagnose
    from brittle.diagnose.section import diagnose_section

    cfg = DiagnoseConfig(
        run_dir=tmp_path / "run", model="tiny:llama", diagnostics=["direction"], device="cpu", batch_size=4,
        max_new_tokens=3, direction_n_train=4, direction_n_val=3, direction_n_test=2, direction_positions=1,
        direction_layer_stride=2, direction_prune_layers=None, direction_kl_threshold=None,
        direction_induce_threshold=None,
    )
    d = run_diagnose(cfg)["direction"]
    cands = json.loads((cfg.run_dir / "direction_candidates.json").read_text())
    assert [(c["layer"], c["scored"], c["discarded"]) for c in cands] == [(0, True, None), (1, False, "not scored")]
    assert d["layer"] == 0 and d["discarded"] == {"not scored": 1}
    body = diagnose_section(cfg.run_dir).body
    assert "Deviation from the reference" in body and "one layer in 2" in body and "last 1 post-instruction" in body
