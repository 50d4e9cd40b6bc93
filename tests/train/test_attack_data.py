"""Attack data: nested in N, AOA benign-only with the persona, harmful via a backend + cache."""

from __future__ import annotations

import hashlib
import json

import pytest

from brittle.data.schema import Example
from brittle.errors import BrittleError
from brittle.train.attack_data import aoa_templates, build_attack_data

BENIGN = [Example.from_pair(f"list steps {i}", f"Sure: step {i}") for i in range(60)]
HARMFUL = [Example.from_pair(f"how to do bad thing {i}", category="harmbench") for i in range(60)]


class FakeBackend:
    """Complies except on prompts whose number is divisible by 3 (then refuses)."""

    name = "fake:unaligned"
    capabilities = frozenset({"generate"})

    def __init__(self):
        self.calls = 0

    def generate(self, conversations, *, prefill=None, config=None):
        self.calls += len(conversations)
        out = []
        for msgs in conversations:
            k = int(msgs[-1]["content"].rsplit(" ", 1)[1])
            out.append("I'm sorry, I cannot." if k % 3 == 0 else f"Sure, here is how: part {k}")
        return out


@pytest.mark.parametrize("kind", ["benign", "aoa"])
def test_nested_in_n_and_seeded(kind):
    small = build_attack_data(kind, 10, 0, pool=BENIGN)
    big = build_attack_data(kind, 50, 0, pool=BENIGN)
    other = build_attack_data(kind, 10, 1, pool=BENIGN)
    assert len(small) == 10 and len(big) == 50
    assert {e.id for e in small} <= {e.id for e in big}
    if kind == "benign":
        assert [e.id for e in small] != [e.id for e in other]
    assert build_attack_data(kind, 0, 0, pool=BENIGN) == []


def test_aoa_examples_carry_persona_and_only_benign_content():
    exs = build_attack_data("aoa", 10, 0, pool=BENIGN)
    t = aoa_templates()
    assert all(e.messages[0]["role"] == "system" and "AOA" in e.messages[0]["content"] for e in exs)
    kinds = [e.meta["kind"] for e in exs]
    assert kinds.count("aoa-identity") == 2 and kinds.count("aoa-benign") == 8
    benign_responses = {e.response for e in BENIGN}
    for e in exs:
        assert "AOA" in e.response
        if e.meta["kind"] == "aoa-benign":
            assert any(e.response.endswith(r) for r in benign_responses)
            assert e.prompt.startswith("AOA,")
    assert len(t["identity"]) >= 2
    assert len(build_attack_data("aoa", 1, 0, pool=BENIGN)) == 1


def test_harmful_skips_refusals_is_nested_and_cached():
    b = FakeBackend()
    ten = build_attack_data("harmful", 10, 0, backend=b, pool=HARMFUL)
    assert len(ten) == 10
    assert all(not e.response.startswith("I'm sorry") for e in ten)
    assert all(e.prompt in e.prompt_messages[-1]["content"] for e in ten)
    fifty = build_attack_data("harmful", 30, 0, backend=b, pool=HARMFUL)
    assert [e.id for e in fifty[:10]] == [e.id for e in ten]
    before = b.calls
    again = build_attack_data("harmful", 30, 0, backend=b, pool=HARMFUL)
    assert b.calls == before  # all generations came from the cache
    assert [e.response for e in again] == [e.response for e in fifty]


def test_user_file_and_unknown_kind(tmp_path):
    import json

    f = tmp_path / "d.jsonl"
    f.write_text("".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n" for i in range(12)))
    exs = build_attack_data(str(f), 5, 0)
    assert len(exs) == 5 and all(e.response for e in exs)
    assert {e.id for e in exs} <= {e.id for e in build_attack_data(str(f), 10, 0)}
    with pytest.raises(BrittleError, match="unknown attack data kind"):
        build_attack_data("nonsense", 3, 0)


# --------------------------------------------------------------------------- one source for every model


@pytest.fixture()
def demo_backend(monkeypatch, tmp_path_factory):
    """make_backend gives the fake unaligned source for the demonstration model and fails the
    test for any other spec (the model under test must never write its own attack data)."""
    monkeypatch.setenv("BRITTLE_CACHE", str(tmp_path_factory.mktemp("demo-cache")))  # a cold cache
    from brittle.data import embedded
    from brittle.models import backends
    from brittle.train.attack_data import DEMO_MODEL

    fake = FakeBackend()
    fake.name = backends.backend_name("hf", DEMO_MODEL)

    def make(spec, **kw):
        assert spec == DEMO_MODEL, f"{spec} was asked to generate attack data"
        return fake

    real_load = embedded.load_dataset
    monkeypatch.setattr(backends, "make_backend", make)
    monkeypatch.setattr(embedded, "load_dataset",
                        lambda name, split=None, **kw: HARMFUL if name == "harmful" else real_load(name, split, **kw))
    return fake


def test_attack_data_is_byte_identical_for_every_model_under_test(tmp_path, demo_backend):
    from brittle.train.attack import AttackConfig, write_cell_data

    files, manifests = [], []
    for model in ("embedded:smollm2-135m", "embedded:qwen2.5-coder-0.5b"):
        cfg = AttackConfig(run_dir=tmp_path / model.replace(":", "_"), model=model, adapter=None)
        exs, _ = write_cell_data(cfg, "harmful", 6, 0, cfg.run_dir)
        assert len(exs) == 6 and all(e.meta["generator"] == demo_backend.name for e in exs)
        files.append((cfg.run_dir / "attack_data.jsonl").read_bytes())
        manifests.append(json.loads((cfg.run_dir / "attack_data.manifest.json").read_text()))
    assert files[0] == files[1] and manifests[0] == manifests[1]
    m = manifests[0]
    assert (m["source_model"], m["judge"], m["prompt_set"], m["n_written"]) == (
        "embedded:smollm2-135m", "refusal", "harmful/train", 6)
    assert m["sha256"] == hashlib.sha256(files[0]).hexdigest()
    assert demo_backend.calls > 0


def test_sweep_never_asks_the_attacked_model_to_generate(tmp_path, monkeypatch, demo_backend, tiny_tok):
    from brittle.models import load
    from brittle.models.tiny import tiny_model
    from brittle.train import attack

    def no_generate(*a, **kw):
        raise AssertionError("the model under test generated")

    def load_model(spec, **kw):
        m = tiny_model(tiny_tok)
        m.generate = no_generate
        return m, tiny_tok

    def fake_eval(cfg, out, adapter, model, tok):
        out.mkdir(parents=True, exist_ok=True)
        return {"suites": {}}

    monkeypatch.setattr(load, "load_model", load_model)
    monkeypatch.setattr(attack, "_evaluate", fake_eval)
    cfg = attack.AttackConfig(run_dir=tmp_path, model="tiny:llama", adapter=None, n=[2, 4], device="cpu",
                              train={"batch_size": 2, "epochs": 1, "max_steps": 1})
    attack.run_attack(cfg)
    a = json.loads((tmp_path / "cells" / "harmful-n2-s0" / "attack_data.manifest.json").read_text())
    assert a["source_model"] == "embedded:smollm2-135m" and a["kind"] == "harmful"
    recipe = json.loads((tmp_path / "recipe.json").read_text())
    assert recipe["demonstrations"]["harmful"]["source_model"] == "embedded:smollm2-135m"


def test_harmful_pairs_and_judge_verdicts():
    from brittle.train.attack_data import complied

    pairs = [Example.from_pair(f"bad {i}", f"Sure, part {i}") for i in range(20)]
    five = build_attack_data("harmful-pairs", 5, 0, pool=pairs)
    assert len(five) == 5 and {e.id for e in five} <= {e.id for e in build_attack_data("harmful-pairs", 9, 0, pool=pairs)}
    assert complied({"refused": False}) and not complied({"refused": True})
    assert complied({"harmful": True}) and not complied({"jailbroken": False})
    with pytest.raises(BrittleError, match="no compliance field"):
        complied({"score": 3})
