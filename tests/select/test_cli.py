import json

import pytest
import typer
from typer.testing import CliRunner

from brittle.cli.select import register


@pytest.fixture()
def app(monkeypatch, fake_features):
    import brittle.select.run as R

    monkeypatch.setattr(R, "load_aligned", lambda spec, adapter, device="auto": (object(), object()))
    a = typer.Typer()
    register(a)
    return a


def test_cli_select_json(app, tmp_path, pool_file):
    res = CliRunner().invoke(app, ["select", "--pool", str(pool_file), "--method", "exact-anchor,repr", "--k", "3",
                                   "--run-dir", str(tmp_path / "s"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert "top-exact-anchor" in out["selections"] and "exact-anchor~repr" in out["agreement"]
    assert len((tmp_path / "s" / "selections" / "top-repr.jsonl").read_text().splitlines()) == 3


def test_cli_audit(app, tmp_path, pool_file):
    res = CliRunner().invoke(app, ["audit", str(pool_file), "--drop-top", "0.1", "--method", "repr",
                                   "--run-dir", str(tmp_path / "a"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["n_rows"] == 30 and out["n_dropped"] == 3
    assert (tmp_path / "a" / "audit.html").exists()
    bad = CliRunner().invoke(app, ["audit", str(tmp_path / "nope.jsonl"), "--run-dir", str(tmp_path / "b")])
    assert bad.exit_code != 0
