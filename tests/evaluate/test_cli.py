import json

import pytest
import typer
from typer.testing import CliRunner

from brittle.cli.eval import register
from brittle.evaluate import run as R

from .eval_fakes import fake_load_suite


@pytest.fixture()
def app(monkeypatch):
    monkeypatch.setattr(R, "load_suite", fake_load_suite)
    a = typer.Typer()
    register(a)

    @a.callback()
    def _root() -> None:  # keep `eval` a sub-command
        pass

    return a


def test_eval_cli_tiny_model(app, tmp_path):
    pytest.importorskip("brittle.models.backends")
    out = tmp_path / "ev"
    res = CliRunner().invoke(app, ["eval", "--model", "tiny:llama", "--suite", "harmful-eval,utility",
                                   "--limit", "3", "--max-new-tokens", "4", "--run-dir", str(out), "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.output[res.output.index("{"):])
    assert m["suites"]["harmful-eval"]["n"] == 3 and m["suites"]["utility"]["utility"]["n"] == 3
    assert (out / "index.html").exists() and (out / "generations.jsonl").exists()
    page = (out / "index.html").read_text()
    assert "<script>" not in page and "harmful-eval" in page


def test_eval_cli_named_suites_tiny_model(tmp_path):
    """Issue 15: `brittle eval --suite harmbench,advbench,jailbreakbench,strongreject --limit 5`."""
    from brittle.cli.eval import register as reg

    a = typer.Typer()
    reg(a)

    @a.callback()
    def _root() -> None:
        pass

    out = tmp_path / "named"
    res = CliRunner().invoke(a, ["eval", "--model", "tiny:llama", "--suite",
                                 "harmbench,advbench,jailbreakbench,strongreject,donotanswer", "--limit", "5",
                                 "--max-new-tokens", "2", "--batch-size", "5", "--run-dir", str(out), "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.output[res.output.index("{"):])
    for s in ("harmbench", "advbench", "jailbreakbench", "strongreject", "donotanswer"):
        assert m["suites"][s]["n"] == 5
    assert len(m["suites"]["jailbreakbench"]["per_category"]) > 1
