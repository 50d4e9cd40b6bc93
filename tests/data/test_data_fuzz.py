"""Fuzzing: reading arbitrary bytes / JSON never raises anything but DataError."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brittle.data.io import read_examples_report, read_prompts
from brittle.errors import DataError

SUFFIXES = [".jsonl", ".json", ".csv", ".txt", ".parquet", ".tsv"]
FUZZ = settings(
    max_examples=int(os.environ.get("BRITTLE_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "instruction",
                    "input",
                    "output",
                    "prompt",
                    "response",
                    "messages",
                    "conversations",
                    "role",
                    "content",
                    "from",
                    "value",
                    "category",
                    "id",
                    "meta",
                    "system",
                    "type",
                    "text",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=15,
)


def _check(path, fmt="auto", skip=False):
    try:
        rep = read_examples_report(path, fmt, skip)
    except DataError as e:
        assert str(e).startswith(f"{path}:"), str(e)
        return
    for ex in rep.examples:
        assert ex.messages and all(m["content"].strip() for m in ex.messages)
    for s in rep.skipped:
        assert s.startswith(f"{path}:")


@FUZZ
@given(
    data=st.binary(max_size=300),
    suffix=st.sampled_from(SUFFIXES),
    fmt=st.sampled_from(["auto", "alpaca", "messages", "csv"]),
    skip=st.booleans(),
)
def test_random_bytes(tmp_path, data, suffix, fmt, skip):
    p = tmp_path / f"f{suffix}"
    p.write_bytes(data)
    _check(p, fmt, skip)
    try:
        read_prompts(p)
    except DataError as e:
        assert str(e).startswith(f"{p}:")


@FUZZ
@given(rows=st.lists(json_values, max_size=5), as_list=st.booleans(), skip=st.booleans())
def test_random_json_rows(tmp_path, rows, as_list, skip):
    if as_list:
        p = tmp_path / "f.json"
        p.write_text(json.dumps(rows))
    else:
        p = tmp_path / "f.jsonl"
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _check(p, "auto", skip)


@FUZZ
@given(
    rows=st.lists(st.lists(st.text(max_size=8), min_size=1, max_size=4), max_size=5),
    header=st.sampled_from(["instruction,output", "prompt,response,category", "a,b"]),
)
def test_random_csv(tmp_path, rows, header):
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    for r in rows:
        w.writerow(r)
    p = tmp_path / "f.csv"
    p.write_text(header + "\n" + buf.getvalue())
    _check(p)
