"""`brittle lab --paper NAME`: shipped LabConfig presets (data), validated and loadable."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from brittle.errors import BrittleError
from brittle.lab import LabConfig
from brittle.lab_papers import paper_config, paper_names


def test_paper_presets_are_valid_full_lab_configs():
    assert {"qi2023", "he2024"} <= set(paper_names())
    qi, he = LabConfig.load(paper_config("qi2023")), LabConfig.load(paper_config("he2024"))
    assert not qi.quick and qi.vendor_aligned and "attack" in qi.stage_list() and "select" not in qi.stage_list()
    assert not he.quick and "select" in he.stage_list()
    for name in paper_names():  # each file starts with the command that runs it
        assert paper_config(name).read_text().startswith(f"# brittle lab --paper {name} ")
    with pytest.raises(BrittleError, match="choose from he2024, qi2023"):
        paper_config("nope")


def test_cli_paper_flag_loads_the_preset(monkeypatch, tmp_path):
    from brittle import lab
    from brittle.cli import app

    seen = []
    monkeypatch.setattr(lab, "run_lab", lambda cfg: seen.append(cfg) or {"report": "x", "stages": {}})
    res = CliRunner().invoke(app, ["lab", "--paper", "he2024", "--run-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert not seen[0].quick and seen[0].stages == ["overview", "align", "select"] and seen[0].run_dir == tmp_path
    res = CliRunner().invoke(app, ["lab", "--paper", "he2024", "--quick"])
    assert seen[1].quick  # flags still override the preset
    bad = CliRunner().invoke(app, ["lab", "--paper", "he2024", "--config", str(tmp_path / "x.yaml")])
    assert isinstance(bad.exception, BrittleError)
