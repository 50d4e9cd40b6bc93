"""Shipped rule/strategy/scenario files and the WildChat-style reader."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from brittle.errors import DataError
from brittle.rules.data import load_rules, load_strategies, read_scenarios

# keys of PRINCIPLES in langchain-classic==1.0.8 (read once with `ast`; see docs/rules.md)
CAI_KEYS = {
    "harmful1", "harmful2", "harmful3", "harmful4", "insensitive", "offensive", "harmful5",
    "age-innappropriate", "derogatory", "illegal", "controversial", "harmful6", "thoughtful",
    "misogynistic", "criminal", "harmful7", "uo-assumptions-1", "uo-assumptions-2",
    "uo-assumptions-3", "uo-reasoning-1", "uo-reasoning-2", "uo-reasoning-3", "uo-reasoning-4",
    "uo-reasoning-5", "uo-reasoning-6", "uo-reasoning-7", "uo-reasoning-8", "uo-reasoning-9",
    "uo-evidence-1", "uo-evidence-2", "uo-evidence-3", "uo-evidence-4", "uo-evidence-5",
    "uo-security-1", "uo-security-2", "uo-security-3", "uo-security-4", "uo-ethics-1",
    "uo-ethics-2", "uo-ethics-3", "uo-ethics-4", "uo-ethics-5", "uo-ethics-6", "uo-utility-1",
    "uo-utility-2", "uo-utility-3", "uo-utility-4", "uo-utility-5", "uo-utility-6",
    "uo-utility-7", "uo-utility-8", "uo-implications-1", "uo-implications-2", "uo-implications-3",
}


def test_shipped_rules_cite_sources():
    rules = load_rules()
    assert len(rules) == 56 and len({r.id for r in rules}) == 56
    for r in rules:
        assert r.text.startswith("Your response must"), r.id
        src = r.source
        assert src["collection"] in {"cai-bai2022", "uo-samwald2023", "claude-constitution-2023"}
        if src["collection"] == "claude-constitution-2023":
            assert src["section"] and src["principle"]
        else:
            assert src["principle"] in CAI_KEYS, r.id


def test_shipped_strategies():
    s = load_strategies()
    assert s[0].id == "none" and len(s) == 13
    assert {x.leaning for x in s} == {"narrow", "broad", "neutral"}
    assert all(x.instruction for x in s[1:])
    assert [x.id for x in load_strategies(ids=["broad", "none"])] == ["broad", "none"]
    with pytest.raises(DataError, match="unknown strategies"):
        load_strategies(ids=["nope"])


def test_shipped_scenarios_end_with_a_response():
    sc = read_scenarios()
    assert 40 <= len(sc) <= 60
    assert all(s.messages[-1]["role"] == "assistant" and s.messages[0]["role"] == "user" for s in sc)
    assert len(read_scenarios(limit=5)) == 5


def test_wildchat_style_jsonl_and_parquet(tmp_path):
    rows = [
        {"conversation_hash": "h1", "conversation": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        {"id": "x2", "messages": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
        {"id": "x3", "prompt": "only a prompt"},
    ]
    p = tmp_path / "wc.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    sc = read_scenarios(p)
    assert [s.id for s in sc] == ["h1", "x2", "x3"]
    assert sc[1].messages == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert sc[2].messages[-1]["role"] == "user"  # response generated at run time
    pq = tmp_path / "wc.parquet"
    pd.DataFrame(rows[:1]).to_parquet(pq)
    assert read_scenarios(pq)[0].messages[1]["content"] == "hello"


@pytest.mark.parametrize(
    "line, msg",
    [
        ("{not json", r"wc.jsonl:2: invalid JSON"),
        ('{"id": "b", "conversation": []}', r"wc.jsonl:2: .*non-empty list"),
        ('{"id": "b", "conversation": [{"role": "wizard", "content": "x"}]}', r"wc.jsonl:2: bad turn"),
        ('{"id": "b", "conversation": [{"role": "assistant", "content": "x"}]}', r"wc.jsonl:2: conversation has no user turn"),
        ('["a list"]', r"wc.jsonl:2: expected a JSON object"),
    ],
)
def test_reader_errors_name_path_and_line(tmp_path, line, msg):
    p = tmp_path / "wc.jsonl"
    p.write_text('{"id": "a", "messages": [{"role": "user", "content": "x"}]}\n' + line + "\n")
    with pytest.raises(DataError, match=msg):
        read_scenarios(p)


def test_rules_yaml_errors(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("rules:\n  - {id: a, text: 'Your response must x.'}\n  - {id: a, text: 'y'}\n")
    with pytest.raises(DataError, match="duplicate id"):
        load_rules(p)
    p.write_text("rules:\n  - {id: a}\n")
    with pytest.raises(DataError, match="rule #1: needs a non-empty `text`"):
        load_rules(p)
    p.write_text("rules:\n  - Your response must be short.\n")
    assert load_rules(p)[0].id == "rule01"
