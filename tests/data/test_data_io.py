"""Readers, writers and every error path of brittle.data.io (exact `path:line:` prefixes)."""

from __future__ import annotations

import json

import pytest

from brittle.data import io as dio
from brittle.data.io import (
    read_examples,
    read_examples_report,
    read_prompts,
    write_jsonl,
    write_parquet,
)
from brittle.data.schema import Example
from brittle.errors import DataError


def _w(tmp_path, name, content):
    p = tmp_path / name
    (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
    return p


def _jl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


# ----------------------------------------------------------------------------- formats


def test_alpaca_json_list_appends_input(tmp_path):
    p = _w(
        tmp_path,
        "a.json",
        json.dumps(
            [
                {"instruction": "Summarise", "input": "Some text", "output": "Short."},
                {"instruction": "Say hi", "input": "", "output": "Hi!", "category": "greet"},
            ],
            indent=2,
        ),
    )
    exs = read_examples(p)
    assert [e.prompt for e in exs] == ["Summarise\n\nSome text", "Say hi"]
    assert [e.response for e in exs] == ["Short.", "Hi!"]
    assert exs[1].category == "greet" and exs[0].source == "a.json"
    assert exs[0].meta["line"] == 2 and exs[1].meta["line"] == 7  # line each element starts on


def test_alpaca_jsonl_and_prompt_response(tmp_path):
    p = _w(
        tmp_path,
        "a.jsonl",
        _jl(
            [
                {"instruction": "Q1", "output": "A1", "system": "Be nice."},
                {"prompt": "Q2", "response": "A2"},
            ]
        ),
    )
    rep = read_examples_report(p)
    assert rep.kinds == {"alpaca": 2}
    assert rep.examples[0].messages[0] == {"role": "system", "content": "Be nice."}
    assert rep.examples[1].messages == [
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "A2"},
    ]
    assert rep.examples[1].meta["line"] == 2


def test_sharegpt_and_messages_auto_detected_per_row(tmp_path):
    p = _w(
        tmp_path,
        "m.jsonl",
        _jl(
            [
                {
                    "conversations": [
                        {"from": "system", "value": "S"},
                        {"from": "human", "value": "hi"},
                        {"from": "gpt", "value": "hello"},
                    ]
                },
                {
                    "messages": [
                        {"role": "user", "content": "a"},
                        {"role": "assistant", "content": "b"},
                        {"role": "user", "content": "c"},
                    ]
                },
                {"instruction": "x", "output": "y"},
            ]
        ),
    )
    rep = read_examples_report(p)
    assert rep.kinds == {"sharegpt": 1, "messages": 1, "alpaca": 1}
    assert [m["role"] for m in rep.examples[0].messages] == ["system", "user", "assistant"]
    assert rep.examples[1].response is None and rep.examples[1].prompt == "c"


def test_content_parts_list(tmp_path):
    p = _w(
        tmp_path,
        "m.jsonl",
        _jl(
            [
                {
                    "messages": [
                        {"role": "user", "content": [{"type": "text", "value": "hi"}]},
                        {"role": "assistant", "content": [{"type": "text", "text": "yo"}]},
                    ]
                }
            ]
        ),
    )
    assert read_examples(p)[0].response == "yo"


def test_csv_both_column_styles(tmp_path):
    p = _w(tmp_path, "c.csv", 'instruction,output,category\n"multi\nline",ok,cat1\nq2,a2,\n')
    exs = read_examples(p)
    assert exs[0].prompt == "multi\nline" and exs[0].category == "cat1" and exs[1].category is None
    assert exs[1].meta["line"] == 4
    p2 = _w(tmp_path, "d.csv", "prompt,response\nhello,world\n")
    assert read_examples(p2)[0].response == "world"


def test_explicit_format_restricts_rows(tmp_path):
    p = _w(tmp_path, "m.jsonl", _jl([{"instruction": "x", "output": "y"}]))
    with pytest.raises(DataError, match=rf"^{p}:1: expected 'messages'"):
        read_examples(p, fmt="messages")
    q = _w(tmp_path, "q.jsonl", _jl([{"messages": [{"role": "user", "content": "x"}]}]))
    with pytest.raises(DataError, match=rf"^{q}:1: expected an Alpaca row"):
        read_examples(q, fmt="alpaca")
    with pytest.raises(DataError, match="unknown format"):
        read_examples(q, fmt="yaml")


def test_read_prompts_txt_jsonl_csv_json(tmp_path):
    t = _w(tmp_path, "p.txt", "first prompt\n\n  second  \n")
    assert [e.prompt for e in read_prompts(t)] == ["first prompt", "second"]
    assert read_prompts(t)[1].meta["line"] == 3 and read_prompts(t)[0].response is None
    j = _w(tmp_path, "p.jsonl", _jl([{"prompt": "a", "category": "c"}, {"prompt": "b"}]))
    assert [(e.prompt, e.category) for e in read_prompts(j)] == [("a", "c"), ("b", None)]
    c = _w(tmp_path, "p.csv", "prompt,category\nx,y\n")
    assert read_prompts(c)[0].category == "y"
    s = _w(tmp_path, "p.json", json.dumps(["u", "v"]))
    assert [e.prompt for e in read_prompts(s)] == ["u", "v"]
    bad = _w(tmp_path, "b.jsonl", _jl([{"prompt": "a"}, {"text": "b"}]))
    with pytest.raises(DataError, match=rf"^{bad}:2: missing field 'prompt'"):
        read_prompts(bad)
    with pytest.raises(DataError, match=r":1: file is empty"):
        read_prompts(_w(tmp_path, "e.txt", ""))


# ----------------------------------------------------------------------------- errors

ERRORS = [
    ("bad.jsonl", b'{"instruction": "a", "output": "b"}\n{"instruction": \n', 2, "invalid JSON"),
    (
        "utf.jsonl",
        b'{"instruction": "a", "output": "b"}\n{"instruction": "\xff", "output": "b"}\n',
        2,
        "invalid UTF-8 byte 0xff",
    ),
    (
        "type.jsonl",
        b'{"instruction": 3, "output": "b"}\n',
        1,
        "field 'instruction' must be a string, got number",
    ),
    ("miss.jsonl", b'\n\n{"instruction": "a"}\n', 3, "missing field 'output'"),
    ("empty.jsonl", b"", 1, "file is empty"),
    ("blank.jsonl", b"\n \n", 1, "file is empty"),
    ("list.jsonl", b"[1, 2]\n", 1, "expected a JSON list|expected a JSON object"),
    (
        "order.jsonl",
        b'{"messages": [{"role": "assistant", "content": "x"}]}\n',
        1,
        "roles out of order",
    ),
    (
        "order2.jsonl",
        b'{"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]}\n',
        1,
        "message 1: roles out of order: expected assistant, got user",
    ),
    ("sys.jsonl", b'{"messages": [{"role": "system", "content": "x"}]}\n', 1, "no user message"),
    ("role.jsonl", b'{"messages": [{"role": "bot", "content": "x"}]}\n', 1, "unknown role 'bot'"),
    (
        "from.jsonl",
        b'{"conversations": [{"from": "alien", "value": "x"}]}\n',
        1,
        "unknown speaker 'alien'",
    ),
    (
        "emptyc.jsonl",
        b'{"messages": [{"role": "user", "content": "  "}]}\n',
        1,
        "message 0: empty content",
    ),
    ("emptyi.jsonl", b'{"instruction": "", "output": "x"}\n', 1, "field 'instruction' is empty"),
    ("nolist.jsonl", b'{"messages": "hi"}\n', 1, "field 'messages' must be a list, got string"),
    ("unk.jsonl", b'{"foo": 1}\n', 1, "unrecognised row"),
    (
        "arr.json",
        b'[\n {"instruction": "a", "output": "b"},\n {"instruction": "a"}\n]',
        3,
        "missing field 'output'",
    ),
    (
        "arr2.json",
        b'[\n {"instruction": "a", "output": "b"},\n {"instruction": \n]',
        4,
        "invalid JSON",
    ),
    ("arr3.json", b"[]", 1, "JSON list is empty"),
    ("arr4.json", b'[{"instruction": "a", "output": "b"}', 1, "unterminated list"),
    ("arr5.json", b'[{"instruction": "a", "output": "b"}] x', 1, "extra data"),
    ("obj.json", b'{"prompts": []}', 1, "unrecognised row"),
    ("pretty.json", b'{\n  "prompts": [1]\n}\n', 1, "got one JSON object \\(keys: 'prompts'\\)"),
    ("surr.jsonl", b'{"instruction": "\\ud800", "output": "b"}\n', 1, "lone surrogate"),
    ("deep.jsonl", b"[" * 100000 + b"]" * 100000 + b"\n", 1, "invalid JSON"),
    ("c.csv", b"instruction,output\na,b\nc\n", 3, "expected 2 CSV fields, got 1"),
    ("h.csv", b"foo,bar\na,b\n", 1, "needs a column 'instruction' or 'prompt'"),
    ("e.csv", b"instruction,output\n,b\n", 2, "field 'instruction' is empty"),
    ("u.csv", b"instruction,output\na,\xc3\n", 2, "invalid UTF-8"),
    ("x.txt", b"hello\n", 1, "cannot detect the format"),
]


@pytest.mark.parametrize("name,content,line,reason", ERRORS, ids=[e[0] for e in ERRORS])
def test_error_messages_have_path_line_prefix(tmp_path, name, content, line, reason):
    p = _w(tmp_path, name, content)
    with pytest.raises(DataError) as ei:
        read_examples(p)
    msg = str(ei.value)
    assert msg.startswith(f"{p}:{line}: "), msg
    import re

    assert re.search(reason, msg), msg


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r":0: no such file"):
        read_examples(tmp_path / "nope.jsonl")


def test_huge_line_is_reported_and_skippable(tmp_path, monkeypatch):
    monkeypatch.setattr(dio, "MAX_LINE_BYTES", 100)
    p = _w(
        tmp_path,
        "h.jsonl",
        _jl(
            [
                {"instruction": "a", "output": "b"},
                {"instruction": "x" * 500, "output": "b"},
                {"instruction": "c", "output": "d"},
            ]
        ),
    )
    with pytest.raises(DataError, match=rf"^{p}:2: line longer than"):
        read_examples(p)
    rep = read_examples_report(p, skip_invalid=True)
    assert [e.prompt for e in rep.examples] == ["a", "c"]
    assert len(rep.skipped) == 1 and rep.skipped[0].startswith(f"{p}:2: ")
    assert rep.examples[1].meta["line"] == 3  # line numbers keep counting past the long line


def test_skip_invalid_counts_every_bad_row(tmp_path):
    p = _w(
        tmp_path,
        "s.jsonl",
        b'{"instruction": "a", "output": "b"}\nnot json\n{"x": 1}\n'
        b'\xff\xfe\n{"instruction": "c", "output": "d"}\n',
    )
    rep = read_examples_report(p, skip_invalid=True)
    assert len(rep.examples) == 2
    assert [s.split(": ")[0] for s in rep.skipped] == [f"{p}:2", f"{p}:3", f"{p}:4"]


def test_skip_invalid_all_bad_returns_empty_with_reasons(tmp_path):
    p = _w(tmp_path, "s.jsonl", "nope\n")
    rep = read_examples_report(p, skip_invalid=True)
    assert rep.examples == [] and len(rep.skipped) == 1


def test_bom_is_accepted(tmp_path):
    p = _w(tmp_path, "b.jsonl", b'\xef\xbb\xbf{"instruction": "a", "output": "b"}\n')
    assert read_examples(p)[0].prompt == "a"


def test_report_formats_counts_response_tags(tmp_path):
    p = _w(
        tmp_path,
        "f.jsonl",
        _jl(
            [
                {"instruction": "a", "output": "- x\n- y\n- z"},
                {"instruction": "b", "output": "2 + 2 = 4"},
            ]
        ),
    )
    f = read_examples_report(p).formats
    assert f["list"] == 1 and f["math"] == 1 and f["short"] == 2


# ----------------------------------------------------------------------------- writers


def _examples():
    return [
        Example.from_pair("Q1", "A1", category="c1", source="s", meta={"k": [1, 2], "n": None}),
        Example.from_pair("Q2 ünïcødé", None, system="sys"),
        Example(
            messages=[
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
                {"role": "assistant", "content": "d"},
            ],
            id="custom-id",
        ),
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_write_read_round_trip(tmp_path, suffix):
    exs = _examples()
    path = tmp_path / f"out{suffix}"
    (write_parquet if suffix == ".parquet" else write_jsonl)(exs, path)
    back = read_examples(path)
    assert [e.messages for e in back] == [e.messages for e in exs]
    assert [e.id for e in back] == [e.id for e in exs]
    assert [e.category for e in back] == [e.category for e in exs]
    assert back[0].meta["k"] == [1, 2] and back[0].source == "s"
    assert back[1].source == path.name  # no source recorded -> the file name


def test_parquet_messages_are_list_of_struct(tmp_path):
    import pyarrow.parquet as pq

    path = write_parquet(_examples(), tmp_path / "o.parquet")
    t = pq.read_table(path)
    import pyarrow as pa

    typ = t.schema.field("messages").type
    assert pa.types.is_list(typ) and typ.value_type == pa.struct(
        [("role", pa.string()), ("content", pa.string())]
    )
    assert t.num_rows == 3


def test_corrupt_parquet(tmp_path):
    p = _w(tmp_path, "bad.parquet", b"PAR1garbage")
    with pytest.raises(DataError, match=rf"^{p}:0: unreadable Parquet"):
        read_examples(p)
