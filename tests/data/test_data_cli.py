"""`brittle data …` through typer's CliRunner on a local app (no traceback, exit codes)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from brittle.cli import data as data_cli


@pytest.fixture(scope="module")
def app():
    a = typer.Typer()
    a.command("noop")(lambda: None)  # keep "data" a sub-command group
    data_cli.register(a)
    return a


runner = CliRunner()


def test_list_json(app):
    r = runner.invoke(app, ["data", "list", "--json"])
    assert r.exit_code == 0, r.output
    rows = {d["name"]: d for d in json.loads(r.stdout)}
    assert rows["harmful"]["rows"] == 1138 and rows["math"]["rows"] == 100


def test_show_eval_limit(app):
    r = runner.invoke(app, ["data", "show", "harmful", "--split", "eval", "--rows", "3", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == 3 and all(x["meta"]["split"] == "eval" for x in rows)
    r = runner.invoke(app, ["data", "show", "harmful", "--split", "eval", "--rows", "3"])
    assert r.exit_code == 0 and len(r.stdout.strip().splitlines()) == 3


def test_show_bad_split_is_one_line(app):
    r = runner.invoke(app, ["data", "show", "math", "--split", "train"])
    assert r.exit_code == 1 and r.exception is None or isinstance(r.exception, SystemExit)
    assert "no split 'train'" in r.output and "Traceback" not in r.output


def test_validate_ok_and_counts(app, tmp_path):
    p = tmp_path / "ok.jsonl"
    p.write_text(json.dumps({"instruction": "a", "output": "1. x\n2. y\n3. z"}) + "\n")
    r = runner.invoke(app, ["data", "validate", str(p), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["examples"] == 1 and d["row_formats"] == {"alpaca": 1}
    assert d["response_formats"] == {"numbered": 1, "short": 1}


def test_validate_error_exit_1_with_path_line(app, tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"instruction": "a", "output": "b"}\n{oops\n')
    r = runner.invoke(app, ["data", "validate", str(p)])
    assert r.exit_code == 1
    assert r.stderr.strip().startswith(f"{p}:2: invalid JSON")
    assert "Traceback" not in r.output


def test_validate_skip_invalid(app, tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_bytes(b'{"instruction": "a", "output": "b"}\n\xff\n')
    r = runner.invoke(app, ["data", "validate", str(p), "--skip-invalid", "--json"])
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    assert d["examples"] == 1 and d["skipped"] == 1 and d["errors"][0].startswith(f"{p}:2:")
    q = tmp_path / "allbad.jsonl"
    q.write_bytes(b"nope\n")
    assert runner.invoke(app, ["data", "validate", str(q), "--skip-invalid"]).exit_code == 1


def test_validate_missing_file_and_bad_format(app, tmp_path):
    r = runner.invoke(app, ["data", "validate", str(tmp_path / "nope.csv")])
    assert r.exit_code == 1 and "no such file" in r.stderr
    p = tmp_path / "x.jsonl"
    p.write_text('{"instruction": "a", "output": "b"}\n')
    r = runner.invoke(app, ["data", "validate", str(p), "--format", "yaml"])
    assert r.exit_code == 1 and "unknown format" in r.stderr


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_export_round_trip(app, tmp_path, suffix):
    out = tmp_path / f"m{suffix}"
    r = runner.invoke(
        app, ["data", "export", "harmful-pairs", "--split", "train", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    from brittle.data.embedded import load_dataset
    from brittle.data.io import read_examples

    back = [e.to_dict() for e in read_examples(out)]
    for d in back:
        d["meta"].pop("line")  # the reader records the line each row came from
    assert back == [e.to_dict() for e in load_dataset("harmful-pairs", "train")]


def test_export_bad_suffix(app, tmp_path):
    r = runner.invoke(app, ["data", "export", "math", "--out", str(tmp_path / "x.csv")])
    assert r.exit_code == 1 and ".jsonl or .parquet" in r.stderr
