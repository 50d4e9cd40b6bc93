"""Named suites (issue 15.1) and the harmful-only default suite (issue 12.1)."""

from collections import Counter

import pytest

from brittle.data.embedded import load_dataset, normalise
from brittle.errors import BrittleError
from brittle.evaluate.run import EvalConfig
from brittle.evaluate.suites import BENCHMARKS, DEFAULT_HARMFUL_SUITE, SPECS, load_suite


def test_default_eval_suite_is_harmful_only():
    assert DEFAULT_HARMFUL_SUITE == "harmful" and EvalConfig().suites[0] == "harmful"
    exs = load_suite("harmful")
    assert exs and {e.source for e in exs} <= {"harmbench", "advbench", "strongreject", "jailbreakbench"}
    assert all(e.meta["split"] == "eval" for e in exs)
    assert SPECS["harmful-eval"].mixed and not SPECS["harmful"].mixed


@pytest.mark.parametrize("name", BENCHMARKS)
def test_named_suites_whole_and_held_out(name):
    full, held = load_suite(name), load_suite(f"{name}-eval")
    assert {e.source for e in full} == {name} and SPECS[name].harmful
    assert {e.id for e in held} < {e.id for e in full}
    assert len(Counter(e.category for e in full)) >= 1


def test_suite_limit_mixes_categories_and_is_deterministic():
    a, b = load_suite("jailbreakbench", limit=20, seed=1), load_suite("jailbreakbench", limit=20, seed=1)
    assert [e.id for e in a] == [e.id for e in b] and len({e.category for e in a}) > 3


def test_harmful_suite_excludes_lab_training_prompts():
    ev = {normalise(e.prompt) for e in load_suite("harmful")}
    train = {normalise(e.prompt) for n in ("harmful", "harmful-pairs") for e in load_dataset(n, "train")}
    assert not ev & train


def test_unknown_suite():
    with pytest.raises(BrittleError, match="unknown suite"):
        load_suite("nope")
    with pytest.raises(ValueError):
        EvalConfig(suites=["harmbench-train"])
