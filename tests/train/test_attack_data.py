"""Attack data: nested in N, AOA benign-only with the persona, harmful via a backend + cache."""

from __future__ import annotations

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
