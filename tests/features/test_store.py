"""Feature store: crash + resume == uninterrupted run; ranks + merge == one process; CLI."""

from __future__ import annotations

import pytest
import torch
import typer
from typer.testing import CliRunner

from brittle.errors import BrittleError
from brittle.features.run import FeaturesConfig, run_features
from brittle.features.store import FeatureStore


class Boom(RuntimeError):
    pass


def _cfg(tmp, **kw):
    base = {"run_dir": tmp, "model": "tiny:llama", "kind": "grad", "k": 64, "lora_rank": 4, "shard_size": 3,
                "batch_size": 2, "max_length": 64}
    return FeaturesConfig(**{**base, **kw})


def test_resume_after_crash_identical(tmp_path, tiny_lm, tiny_tok, examples):
    ref = run_features(_cfg(tmp_path / "a"), model=tiny_lm, tokenizer=tiny_tok, examples=examples)
    written = []

    def crash(j):
        written.append(j)
        if len(written) == 2:
            raise Boom

    cfg = _cfg(tmp_path / "b")
    with pytest.raises(Boom):
        run_features(cfg, model=tiny_lm, tokenizer=tiny_tok, examples=examples, on_shard=crash)
    store = FeatureStore(cfg.run_dir / "features", ref["fingerprint"])
    assert len(store.pending()) == ref["shards"] - 2
    (store.dir / ".shard-00003.safetensors.tmp999").write_bytes(b"partial")  # a kill -9 leftover
    again = []
    res = run_features(cfg, model=tiny_lm, tokenizer=tiny_tok, examples=examples, on_shard=again.append)
    assert len(again) == ref["shards"] - 2 and res["complete"] and res["fingerprint"] == ref["fingerprint"]
    ids_a, fa = FeatureStore(tmp_path / "a" / "features", ref["fingerprint"]).load()
    ids_b, fb = store.load()
    assert ids_a == ids_b and sorted(ids_a) == sorted(e.id for e in examples)
    assert torch.equal(fa, fb)
    assert len(store.index()) == len(examples)
    _, sub = store.load(["ex3", "ex0"])
    assert torch.equal(sub[1], fa[ids_a.index("ex0")])


def test_ranks_write_own_shards_and_merge(tmp_path, tiny_lm, tiny_tok, examples):
    one = run_features(_cfg(tmp_path / "one", kind="repr"), model=tiny_lm, tokenizer=tiny_tok, examples=examples)
    cfg0 = _cfg(tmp_path / "two", kind="repr", rank=0, world_size=2)
    r0 = run_features(cfg0, model=tiny_lm, tokenizer=tiny_tok, examples=examples)
    assert not r0["complete"]
    with pytest.raises(BrittleError, match="missing"):
        FeatureStore(cfg0.run_dir / "features", r0["fingerprint"]).merge()
    r1 = run_features(_cfg(tmp_path / "two", kind="repr", rank=1, world_size=2), model=tiny_lm,
                      tokenizer=tiny_tok, examples=examples)
    assert r1["complete"] and r1["dim"] == tiny_lm.config.hidden_size
    a = FeatureStore(tmp_path / "one" / "features", one["fingerprint"]).load()
    b = FeatureStore(tmp_path / "two" / "features", r1["fingerprint"]).load()
    assert a[0] == b[0] and torch.equal(a[1], b[1])


def test_fingerprint_depends_on_data_and_config(tmp_path, examples):
    from brittle.features.run import features_fingerprint

    c = _cfg(tmp_path)
    f = features_fingerprint(c, examples)
    assert f == features_fingerprint(c, list(examples))
    assert f != features_fingerprint(c, examples[:-1])
    assert f != features_fingerprint(c.model_copy(update={"k": 128}), examples)
    changed = [examples[0].with_response("other")] + examples[1:]
    assert f != features_fingerprint(c, changed)


def test_cli_features(tmp_path, examples, monkeypatch):
    import brittle.features.run as run_mod
    from brittle.cli.features import register

    monkeypatch.setattr(run_mod, "load_examples", lambda data, split=None, limit=None: examples[:4])
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps `features` a named sub-command
        pass

    res = CliRunner().invoke(app, ["features", "--kind", "repr", "--model", "tiny:llama", "--data", "x",
                                   "--run-dir", str(tmp_path), "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    assert '"n": 4' in res.output and (tmp_path / "features.json").exists()
