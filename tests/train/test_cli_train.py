"""CLI: `brittle finetune`, `brittle attack`, `brittle align` on a local Typer app (tiny model)."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from brittle.cli import train as train_cli
from brittle.data.schema import Example


def _app() -> typer.Typer:
    app = typer.Typer()
    train_cli.register(app)
    return app


def _data(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("".join(json.dumps({"instruction": f"list steps {i}", "output": "Sure: 1. first 2. second"}) + "\n"
                         for i in range(6)))
    return f


def test_finetune_cli(tmp_path):
    res = CliRunner().invoke(_app(), [
        "finetune", "--data", str(_data(tmp_path)), "--model", "tiny:llama", "--epochs", "2",
        "--lr", "0.005", "--batch-size", "3", "--device", "cpu", "--run-dir", str(tmp_path / "ft"), "--json",
    ])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    assert out["n_trained"] == 6 and out["steps"] == 4
    assert (tmp_path / "ft" / "adapter" / "adapter_model.safetensors").exists()


def test_finetune_cli_config_and_preset(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: tiny:llama\npreset: lora-attack\nmax_steps: 1\ndevice: cpu\nrun_dir: {tmp_path / 'ft2'}\n")
    res = CliRunner().invoke(_app(), ["finetune", "--data", str(_data(tmp_path)), "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    echo = (tmp_path / "ft2" / "finetune_config.yaml").read_text()
    assert "lora_r: 8" in echo and "lr: 0.0001" in echo


def test_attack_cli_with_user_data(tmp_path, monkeypatch):
    from brittle.train import attack

    def fake_eval(cfg, out, adapter, model, tok):
        out.mkdir(parents=True, exist_ok=True)
        (out / "generations.jsonl").write_text(
            json.dumps({"key": "harmful-eval/a", "suite": "harmful-eval", "id": "a", "gen_fp": "g",
                        "verdicts": {"refusal": {"refused": adapter is None}}}) + "\n")
        asr = 0.0 if adapter is None else 1.0  # consistent with the one flag above
        return {"generation_fingerprint": "g", "suites": {"harmful-eval": {"asr": [asr, asr, asr]}}}

    monkeypatch.setattr(attack, "_evaluate", fake_eval)
    res = CliRunner().invoke(_app(), [
        "attack", "--n", "0,2", "--data", str(_data(tmp_path)), "--seeds", "0", "--model", "tiny:llama",
        "--adapter", "none", "--epochs", "1", "--device", "cpu", "--run-dir", str(tmp_path / "atk"), "--json",
    ])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    rows = {r["n"]: r for r in out["summary"]}
    assert rows[0]["kind"] == "data" and rows[0]["asr"] == 0.0 and rows[2]["asr"] == 1.0


def test_align_cli_no_eval(tmp_path, monkeypatch):
    import brittle.data.embedded as emb

    harmful = [Example.from_pair(f"how to hack thing {i}", category="harmbench") for i in range(6)]
    benign = [Example.from_pair(f"list steps {i}", "Sure: 1. first") for i in range(6)]
    monkeypatch.setattr(emb, "load_dataset", lambda name, split=None, limit=None: {"harmful": harmful, "benign": benign}[name])
    res = CliRunner().invoke(_app(), [
        "align", "--model", "tiny:llama", "--n-harmful", "3", "--n-benign", "3", "--n-contrast", "0", "--epochs", "1",
        "--no-eval", "--device", "cpu", "--run-dir", str(tmp_path / "al"), "--json",
    ])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    assert out["adapter"].endswith("adapter")
    info = json.loads((tmp_path / "al" / "train" / "alignment.json").read_text())
    assert info["counts"]["harmful_refusals"] == 3 and info["counts"]["benign"] == 3
