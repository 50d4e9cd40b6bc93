"""Reliability guarantees of issue 16 that span stages (see docs/reliability.md):
no stale reuse after the weights change (16.1), eval resume after kill -9 (16.5), URL
credentials never recorded (16.8) and the reproducibility record (issue 15.5)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import brittle.evaluate.run as R
from brittle.models.identity import CONTENT_HASH_MAX, identity_details, model_identity
from brittle.store import JsonlStore
from tests.evaluate.eval_fakes import FakeBackend, bot, fake_load_suite

ROOT = Path(__file__).resolve().parents[1]


def _save_tiny(path: Path, seed: int) -> Path:
    from brittle.models.tiny import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    tiny_model(tok, seed=seed).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _records(run_dir: Path) -> dict[str, dict]:
    return {r["key"]: r for r in JsonlStore(run_dir / R.GENERATIONS, key="key").records()}


# ---------------------------------------------------------------- 16.1 no stale results


def test_identity_follows_the_weights_not_the_spec(tmp_path, monkeypatch):
    d = _save_tiny(tmp_path / "m", seed=0)
    a = model_identity(str(d))
    assert a.startswith("dir:") and a == model_identity(str(d)) == model_identity(f"hf:{d}")
    _save_tiny(d, seed=1)  # same spec, new weights
    b = model_identity(str(d))
    assert b != a
    # large files are identified by name + size + mtime (no full read)
    monkeypatch.setattr("brittle.models.identity.CONTENT_HASH_MAX", 0)
    c = model_identity(str(d))
    os.utime(d / "model.safetensors", ns=(1, 1))
    assert model_identity(str(d)) != c
    details = identity_details(str(d))
    assert details["kind"] == "dir" and any(f["name"] == "model.safetensors" for f in details["files"])
    assert CONTENT_HASH_MAX >= 1 << 20
    # other kinds never raise
    assert model_identity("tiny:llama").startswith("tiny:")
    assert model_identity("openai:m@http://u:pw@h/v1") == model_identity("openai:m@http://x:y@h/v1")
    assert model_identity(str(tmp_path / "nope")).startswith("unresolved:")


def test_eval_after_weights_replaced_regenerates_instead_of_reusing(tmp_path, monkeypatch):
    """Issue 16.1: `brittle eval --model DIR` reused the old replies byte for byte after the
    weights in DIR were replaced (the fingerprint used the spec string only)."""
    monkeypatch.setattr(R, "load_suite", fake_load_suite)
    model_dir = _save_tiny(tmp_path / "model", seed=0)

    def cfg(run):
        return R.EvalConfig(run_dir=tmp_path / run, model=str(model_dir), suites=["harmful-eval"],
                            limit=3, max_new_tokens=6, batch_size=3)

    first = R.run_eval(cfg("run"))
    old = _records(tmp_path / "run")
    _save_tiny(model_dir, seed=1)  # retrained model written into the same directory
    second = R.run_eval(cfg("run"))
    fresh = R.run_eval(cfg("fresh"))  # what the new weights actually answer
    assert second["generation_fingerprint"] != first["generation_fingerprint"]
    assert second["generation_fingerprint"] == fresh["generation_fingerprint"]
    new = _records(tmp_path / "run")
    assert [r["response"] for r in new.values()] == [r["response"] for r in _records(tmp_path / "fresh").values()]
    assert [r["response"] for r in new.values()] != [r["response"] for r in old.values()]
    # unchanged weights: the rerun reuses everything
    third = R.run_eval(cfg("run"))
    assert third["generation_fingerprint"] == second["generation_fingerprint"]


def test_generation_cache_misses_after_weights_replaced(tmp_path):
    from brittle.models.backend import GenerationConfig
    from brittle.models.backends import make_backend

    model_dir = _save_tiny(tmp_path / "model", seed=0)
    conv = [[{"role": "user", "content": "hello there"}]]
    gen = GenerationConfig(max_new_tokens=5)
    b = make_backend(str(model_dir), device="cpu", cache_dir=tmp_path / "cache")
    b.generate(conv, config=gen)
    _save_tiny(model_dir, seed=1)
    b2 = make_backend(str(model_dir), device="cpu", cache_dir=tmp_path / "cache")
    b2.generate(conv, config=gen)
    assert (b2.hits, b2.misses) == (0, 1)  # before the fix: a hit on the old weights' reply
    b3 = make_backend(str(model_dir), device="cpu", cache_dir=tmp_path / "cache")
    b3.generate(conv, config=gen)
    assert (b3.hits, b3.misses) == (1, 0)


def test_features_and_alignment_keys_include_the_identity(tmp_path):
    from brittle.data.schema import Example
    from brittle.features.run import FeaturesConfig, features_fingerprint
    from brittle.train.align import alignment_key

    d = _save_tiny(tmp_path / "m", seed=0)
    exs = [Example.from_pair("a question", "an answer")]
    c = FeaturesConfig(model=str(d), run_dir=tmp_path / "f")
    f0, k0 = features_fingerprint(c, exs), alignment_key(str(d), exs, {"lr": 1})
    _save_tiny(d, seed=1)
    assert features_fingerprint(c, exs) != f0 and alignment_key(str(d), exs, {"lr": 1}) != k0


# ---------------------------------------------------------------- 16.5 kill -9 during eval

EVAL_SCRIPT = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[3])
import brittle.evaluate.run as R
from tests.evaluate.eval_fakes import FakeBackend, bot, fake_load_suite
R.load_suite = fake_load_suite
kill_after = int(sys.argv[2])

class Killing(FakeBackend):
    def generate(self, conversations, **kw):
        if kill_after and self.calls >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9 between two appends
        return super().generate(conversations, **kw)

cfg = R.EvalConfig(run_dir=sys.argv[1], model="fake", suites=["harmful-eval", "over-refusal"],
                   batch_size=1)
R.run_eval(cfg, backend=Killing(bot))
print("done")
"""


def _eval_proc(run_dir: Path, kill_after: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", EVAL_SCRIPT, str(run_dir), str(kill_after), str(ROOT)],
                          check=False, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_eval_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "load_suite", fake_load_suite)

    def cfg(run):
        return R.EvalConfig(run_dir=tmp_path / run, model="fake", suites=["harmful-eval", "over-refusal"],
                            batch_size=1)

    full = R.run_eval(cfg("full"), backend=FakeBackend(bot))  # uninterrupted, in-process
    killed = _eval_proc(tmp_path / "resumed", 2)  # the same run in a process killed with -9
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    partial = _records(tmp_path / "resumed")
    assert 0 < len(partial) < 14
    with open(tmp_path / "resumed" / R.GENERATIONS, "ab") as f:  # a torn last record too
        f.write(b'{"key": "harmful-eval/torn", "resp')
    second = FakeBackend(bot)
    resumed = R.run_eval(cfg("resumed"), backend=second)
    assert len(second.seen) == 14 - len(partial)  # only the missing replies are generated
    assert resumed["suites"] == full["suites"]
    assert _records(tmp_path / "resumed") == _records(tmp_path / "full")


# ---------------------------------------------------------------- 16.8 credentials never recorded


def test_credentials_in_an_endpoint_url_are_recorded_nowhere(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from brittle.cli import app
    from tests.models.test_openai_backend import FakeServer

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    prompts = tmp_path / "p.txt"
    prompts.write_text("How do I bake bread?\nTell me a joke\n")
    with FakeServer(require_key=None) as srv:
        host = srv.url.removeprefix("http://")
        spec = f"openai:m@http://alice:hunter2-secret@{host}"
        r = CliRunner().invoke(app, ["eval", "--model", spec, "--prompts", str(prompts), "--run-dir",
                                     str(tmp_path / "run"), "--json"])
    assert r.exit_code == 0, r.output
    assert "hunter2-secret" not in r.output
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert {"metrics.json", "generations.jsonl", "index.html"} <= {p.name for p in files}
    for p in files:
        data = p.read_bytes()
        assert b"hunter2-secret" not in data, p


# ---------------------------------------------------------------- 15.5 reproducibility record


def test_metrics_record_versions_device_template_and_identity(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "load_suite", fake_load_suite)
    model_dir = _save_tiny(tmp_path / "model", seed=0)
    m = R.run_eval(R.EvalConfig(run_dir=tmp_path / "run", model=str(model_dir), suites=["harmful-eval"],
                                limit=2, max_new_tokens=4))
    p = json.loads((tmp_path / "run" / R.METRICS).read_text())["provenance"]
    assert p == m["provenance"]
    assert p["brittle"] and all(p["libraries"][k] for k in ("torch", "transformers", "peft", "trl"))
    assert p["device"]["cuda_available"] in (True, False)
    assert p["model"]["identity"] == model_identity(str(model_dir))
    import hashlib

    from brittle.models.tiny import CHATML_TEMPLATE

    assert p["chat_template_sha256"] == hashlib.sha256(CHATML_TEMPLATE.encode()).hexdigest()
    # a fully resumed run loads nothing and still records the template (read from the dir)
    again = R.run_eval(R.EvalConfig(run_dir=tmp_path / "run", model=str(model_dir), suites=["harmful-eval"],
                                    limit=2, max_new_tokens=4), backend=None)
    assert again["provenance"]["chat_template_sha256"] == p["chat_template_sha256"]


def test_provenance_without_a_model_and_for_an_endpoint():
    from brittle.provenance import provenance

    p = provenance("openai:m@http://u:secret@h/v1")
    assert "secret" not in json.dumps(p) and p["chat_template_sha256"] is None
    assert p["model"]["kind"] == "endpoint"
    assert provenance(None)["libraries"]["torch"]


@pytest.mark.parametrize("spec", ["tiny:llama", "embedded:nope", "vllm:tiny:llama"])
def test_identity_of_builtin_specs_is_stable(spec):
    assert model_identity(spec) == model_identity(spec)


def test_fake_backends_keep_their_fingerprint(tmp_path, monkeypatch):
    """A caller's backend without an identity (tests, plug-ins) keeps working as before."""
    monkeypatch.setattr(R, "load_suite", fake_load_suite)
    c = R.EvalConfig(run_dir=tmp_path / "r", model="fake", suites=["harmful-eval"], batch_size=2)
    a = R.run_eval(c, backend=FakeBackend(bot))
    b = FakeBackend(bot)
    assert R.run_eval(c, backend=b)["generation_fingerprint"] == a["generation_fingerprint"]
    assert b.calls == 0


# ---------------------------------------------------------------- 16.5 feature store

FEATURES_SCRIPT = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[3])
from brittle.features.run import FeaturesConfig, run_features
from tests.features.conftest import PAIRS
from brittle.data.schema import Example
exs = [Example.from_pair(p, r, id=f"ex{i}") for i, (p, r) in enumerate(PAIRS)]
kill_after = int(sys.argv[2])
done = []

def on_shard(j):
    done.append(j)
    if kill_after and len(done) >= kill_after:
        os.kill(os.getpid(), signal.SIGKILL)

cfg = FeaturesConfig(run_dir=sys.argv[1], model="tiny:llama", kind="repr", shard_size=3, batch_size=2,
                     max_length=64, device="cpu")
print(run_features(cfg, examples=exs, on_shard=on_shard)["fingerprint"])
"""


def _features_proc(run_dir: Path, kill_after: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", FEATURES_SCRIPT, str(run_dir), str(kill_after), str(ROOT)],
                          check=False, capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_features_killed_with_sigkill_resume_bit_identical_and_corrupt_shard_recomputed(tmp_path):
    import torch

    from brittle.data.schema import Example
    from brittle.features.run import FeaturesConfig, run_features
    from brittle.features.store import FeatureStore
    from tests.features.conftest import PAIRS

    exs = [Example.from_pair(p, r, id=f"ex{i}") for i, (p, r) in enumerate(PAIRS)]

    def cfg(run):
        return FeaturesConfig(run_dir=tmp_path / run, model="tiny:llama", kind="repr", shard_size=3,
                              batch_size=2, max_length=64, device="cpu")

    fp = run_features(cfg("full"), examples=exs)["fingerprint"]  # uninterrupted, in-process
    killed = _features_proc(tmp_path / "resumed", 2)  # the same run, kill -9 after 2 shards
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    store = FeatureStore(tmp_path / "resumed" / "features", fp)
    assert len(store.pending()) == 2  # 4 shards planned, 2 on disk
    done = []
    run_features(cfg("resumed"), examples=exs, on_shard=done.append)
    assert len(done) == 2
    ids_a, fa = FeatureStore(tmp_path / "full" / "features", fp).load()
    ids_b, fb = store.load()
    assert ids_a == ids_b and torch.equal(fa, fb)
    # bit rot in a finished shard: quarantined and recomputed on the next run, not a traceback
    store.shard_path(1).write_bytes(b"\x00" * 64)
    again = []
    run_features(cfg("resumed"), examples=exs, on_shard=again.append)
    assert again == [1] and store.shard_path(1).with_name("shard-00001.safetensors.corrupt").exists()
    assert torch.equal(store.load()[1], fa)


def test_feature_store_ranks_starting_together_agree_on_one_plan(tmp_path):
    from brittle.errors import BrittleError
    from brittle.features.store import FeatureStore

    a, b = FeatureStore(tmp_path, "fp", rank=0, world_size=2), FeatureStore(tmp_path, "fp", rank=1, world_size=2)
    assert a.plan([["x", "y"], ["z"]]) == [["x", "y"], ["z"]]
    assert b.plan([["z"], ["x", "y"]]) == [["x", "y"], ["z"]]  # the first plan wins, whole
    a.manifest_path.write_text("{broken")
    with pytest.raises(BrittleError, match="corrupt feature-store manifest"):
        a.pending()


# ---------------------------------------------------------------- 16.5 attack sweep

ATTACK_SCRIPT = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[3])
import brittle.train.attack_data as ad
from brittle.train import attack
from tests.train import test_attack as T
from tests.test_reliability import _small_attack_cfg
ad._benign_pool = lambda pool: T.BENIGN
calls = []
fake = T.fake_eval_factory(calls)

def killing(*a, **k):
    if len(calls) + 1 >= int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 inside the 2nd cell, after its training
    return fake(*a, **k)

attack._evaluate = killing
attack.run_attack(_small_attack_cfg(sys.argv[1], sys.argv[4]))
"""


def _small_attack_cfg(run_dir, adapter):
    from brittle.train.attack import AttackConfig

    return AttackConfig(run_dir=run_dir, model="tiny:llama", adapter=adapter, n=[0, 1, 2],
                        kinds=["benign"], seeds=[0], device="cpu", n_boot=50,
                        train={"lr": 5e-2, "epochs": 1, "batch_size": 2, "lora_dropout": 0.0})


def test_attack_sweep_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, tiny_tok):
    import brittle.train.attack_data as ad
    from brittle.train import attack
    from tests.train import test_attack as T

    start = T.start_adapter.__wrapped__(type("F", (), {"mktemp": lambda self, n: tmp_path / n})(), tiny_tok)
    monkeypatch.setattr(ad, "_benign_pool", lambda pool: T.BENIGN)
    monkeypatch.setattr(attack, "_evaluate", T.fake_eval_factory([]))
    attack.run_attack(_small_attack_cfg(tmp_path / "full", start))  # uninterrupted, in-process
    killed = subprocess.run([sys.executable, "-c", ATTACK_SCRIPT, str(tmp_path / "resumed"), "2", str(ROOT),
                             start], check=False, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    cells = JsonlStore(tmp_path / "resumed" / attack.CELLS, key="key")
    assert len(cells.records()) == 1  # the killed cell was not recorded
    calls: list = []
    monkeypatch.setattr(attack, "_evaluate", T.fake_eval_factory(calls))
    attack.run_attack(_small_attack_cfg(tmp_path / "resumed", start))
    assert len(calls) == 2  # only the unfinished cells are redone
    assert T._comparable(cells.records()) == T._comparable(
        JsonlStore(tmp_path / "full" / attack.CELLS, key="key").records())


def test_log_lines_never_carry_url_credentials(caplog):
    import logging

    from brittle.redaction import RedactingFilter, redact_url

    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, 'HTTP Request: POST %s "%s"',
                               ("http://bob:s3cret@h:1/v1/chat/completions?token=t0k", "200 OK"), None)
    assert RedactingFilter().filter(record)
    msg = record.getMessage()
    assert "s3cret" not in msg and "t0k" not in msg and "http://***@h:1/v1/chat/completions?token=***" in msg
    assert redact_url("no url here, user@example.com") == "no url here, user@example.com"
    assert redact_url("ssh://git@host/x and http://h/p?x=1") == "ssh://***@host/x and http://h/p?x=1"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_run_dir_is_a_config_error(tmp_path):
    from brittle.errors import BrittleError

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(BrittleError, match="is not writable"):
            R.EvalConfig.load(run_dir=ro / "run")
    finally:
        ro.chmod(0o700)
