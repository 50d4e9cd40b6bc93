"""Hostile data files (issue 16.6 / 16.7): every problem is ``path:line: reason`` (or
``path:0: reason`` for the file itself), never a traceback, "no such file" for something
that exists, or a record past the per-record cap."""

from __future__ import annotations

import json
import os

import pytest

from brittle.data.io import MAX_LINE_BYTES, read_examples, read_prompts
from brittle.errors import DataError


@pytest.fixture()
def hostile(tmp_path):
    (tmp_path / "dir.jsonl").mkdir()
    (tmp_path / "loop.txt").symlink_to(tmp_path / "loop.txt")
    (tmp_path / "dangling.jsonl").symlink_to(tmp_path / "gone.jsonl")
    os.mkfifo(tmp_path / "fifo.jsonl")
    return tmp_path


@pytest.mark.parametrize("reader", [read_examples, read_prompts])
@pytest.mark.parametrize("name, reason", [
    ("dir.jsonl", "is a directory, expected a file"),
    ("loop.txt", "symbolic link loop"),
    ("dangling.jsonl", "broken symbolic link"),
    ("fifo.jsonl", "is a named pipe (FIFO), expected a regular file"),
    ("missing.txt", "no such file"),
])
def test_file_problems_are_named_not_no_such_file(reader, name, reason, hostile):
    with pytest.raises(DataError) as e:
        reader(hostile / name)  # a FIFO is never opened: this would block forever
    assert str(e.value) == f"{hostile / name}:0: {reason}"


def test_a_record_larger_than_the_cap_inside_a_json_list_is_refused(tmp_path):
    """The 10 MB per-line cap of JSON Lines held for a .json list too: a 50 MB record was
    accepted (here 10 MB + 1 KB, the same check)."""
    p = tmp_path / "big.json"
    big = "x" * (MAX_LINE_BYTES + 1024)
    p.write_text(json.dumps([{"instruction": "ok", "output": "fine"},
                             {"instruction": "huge", "output": big}]), encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{p}:1: record longer than 10 MB"):
        read_examples(p)
    q = tmp_path / "big_prompts.json"
    q.write_text(json.dumps(["a fine prompt", big]), encoding="utf-8")
    with pytest.raises(DataError, match="record longer than 10 MB"):
        read_prompts(q)


def test_record_cap_in_a_multiline_json_list_names_the_record_line(tmp_path, monkeypatch):
    monkeypatch.setattr("brittle.data.io.MAX_LINE_BYTES", 100)
    p = tmp_path / "l.json"
    p.write_text('[\n {"prompt": "a", "response": "b"},\n {"prompt": "' + "y" * 200 + '", "response": "c"}\n]\n')
    with pytest.raises(DataError, match=rf"^{p}:3: record longer than"):
        read_examples(p)


@pytest.mark.parametrize("suffix, body", [
    (".txt", "Tell me a joke\nHow do I bake bread?\nTell me a joke\n"),
    (".jsonl", '{"prompt": "Tell me a joke"}\n{"prompt": "How do I bake bread?"}\n{"prompt": "Tell me a joke"}\n'),
    (".csv", "prompt\nTell me a joke\nHow do I bake bread?\nTell me a joke\n"),
])
def test_duplicate_prompt_names_both_lines(tmp_path, suffix, body):
    p = tmp_path / f"p{suffix}"
    p.write_text(body)
    first, dup = (1, 3) if suffix != ".csv" else (2, 4)
    with pytest.raises(DataError, match=rf"^{p}:{dup}: duplicate prompt \(same as line {first}\)"):
        read_prompts(p)
