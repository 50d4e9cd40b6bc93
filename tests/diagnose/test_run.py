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
    assert [m["model"] for m in res["direction"]["models"]] == ["aligned", "atk"]
    assert 0 <= res["direction"]["models"][0]["ablated_refusal_rate"] <= 1
    per = pd.read_parquet(rd / "persona.parquet")
    assert len(per) == 2 * 2 * 2 * 2  # models x suites x personas(+none) x prompts
    assert set(res["synth"]) == {"aligned", "atk"}
    json.loads((rd / "diagnose.json").read_text())
    sec = diagnose_section(rd)
    assert "Per-token KL" in sec.body and "<img" in sec.body and "<script" not in sec.body
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
                                 "--aligned-adapter", str(_adapter(tmp_path, "al", 1)), "--n", "2",
                                 "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{"):])
    assert "aligned‖base" in out["kl"]
    r = CliRunner().invoke(app, ["synth", "--model", "tiny:llama", "--out", str(tmp_path / "s.jsonl"),
                                 "--n", "3", "--max-instruction-tokens", "5", "--max-response-tokens", "3",
                                 "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s.jsonl").exists()
    r = CliRunner().invoke(app, ["diagnose", "--help"])
    assert "prefill" in r.output and "persona" in r.output
