"""The safety adapter brittle ships (a pre-filled cache entry) is the one the code would train."""

from __future__ import annotations

import json

import pytest

import brittle.resources as R
from brittle.lab import adapter_provenance


def test_a_seed_fills_an_empty_cache_entry_once(tmp_path, monkeypatch):
    monkeypatch.setenv("BRITTLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(R, "SEEDS", tmp_path / "seeds")
    (tmp_path / "seeds" / "kind" / "key" / "sub").mkdir(parents=True)
    (tmp_path / "seeds" / "kind" / "key" / "sub" / "w.bin").write_bytes(b"shipped")
    got = R.seeded_cache_dir("kind", "key")
    assert got == tmp_path / "cache" / "kind" / "key" and (got / "sub" / "w.bin").read_bytes() == b"shipped"
    (got / "sub" / "w.bin").write_bytes(b"trained here")  # a filled entry is never overwritten
    assert (R.seeded_cache_dir("kind", "key") / "sub" / "w.bin").read_bytes() == b"trained here"
    assert not any(R.seeded_cache_dir("kind", "other").iterdir())  # no seed: a plain cache dir
    assert sorted(p.name for p in (tmp_path / "cache" / "kind").iterdir()) == ["key", "other"]  # no temp left


def test_provenance_names_where_the_adapter_was_trained(tmp_path):
    base = {"fingerprint": "abc", "recipe_version": 4, "counts": {"harmful_refusals": 160, "benign": 120,
                                                                  "contrast": 80},
            "train": {"steps": 45, "seconds": 198.0}}
    cases = {"trained": {"cached": False}, "cached": {"cached": True},
             "shipped": {"cached": True, "shipped": {"host": "<b>AMD</b>, 2 cores"}}}
    text = {}
    for name, extra in cases.items():
        (tmp_path / f"{name}.json").write_text(json.dumps({**base, **extra}))
        text[name] = adapter_provenance(tmp_path / f"{name}.json")
        assert "160 harmful prompts" in text[name] and "45 steps" in text[name] and "3 min 18 s" in text[name]
    assert "trained in this run" in text["trained"] and "this machine's cache" in text["cached"]
    assert "shipped with brittle" in text["shipped"] and "--retrain-alignment" in text["shipped"]
    assert "&lt;b&gt;AMD" in text["shipped"] and "<b>AMD" not in text["shipped"]
    assert adapter_provenance(tmp_path / "missing.json") == ""


@pytest.mark.embedded
def test_the_shipped_adapter_is_what_the_quick_recipe_would_train(tmp_path, monkeypatch):
    """Fails when the recipe, templates, data or version moved the alignment key without a new
    seed: remake it with `python tools/ship_seeds.py`. No generation and no training here: the
    contrast replies must come from the seed, the adapter must be the seed's."""
    from brittle.models import backends
    from brittle.models.backends import CachedBackend, backend_name
    from brittle.models.identity import model_identity
    from brittle.train import align, sft

    class NoGeneration:
        capabilities = ()

        def __init__(self, spec):
            self.name, self.identity = backend_name("hf", spec), model_identity(spec)

        def generate(self, *a, **k):
            raise AssertionError("contrast replies missing from the shipped seed: run tools/ship_seeds.py")

    def no_training(*a, **k):
        raise AssertionError("no shipped adapter for the current quick recipe: run tools/ship_seeds.py")

    (tmp_path / "cache").mkdir()
    for shared in ("data", "models"):  # fetched data and converted weights from the shared cache
        (tmp_path / "cache" / shared).symlink_to(R.cache_dir(shared), target_is_directory=True)
    monkeypatch.setenv("BRITTLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(backends, "make_backend", lambda spec, device, cache_dir: CachedBackend(
        NoGeneration(spec), cache_dir / "generations.jsonl"))
    monkeypatch.setattr(sft, "train_model", no_training)
    adapter = align.install_alignment(run_dir=tmp_path / "run", quick=True, seed=0, device="cpu")
    assert (adapter / "adapter_model.safetensors").exists()
    info = json.loads((tmp_path / "run" / "alignment.json").read_text())
    assert info["cached"] and info["shipped"]["by"] == "tools/ship_seeds.py" and info["train"]["steps"] == 45
    assert (tmp_path / "run" / "train_log.jsonl").exists() and (tmp_path / "run" / "loss.svg").exists()
