"""The lab recipe: stage bookkeeping, failure isolation and the report (tiny model, fast stages)."""

from __future__ import annotations

import json

import pytest

from brittle import lab
from brittle.errors import BrittleError
from brittle.report.html import Section


def test_overview_stage_writes_report_with_model_and_splits(tmp_path):
    cfg = lab.LabConfig(run_dir=tmp_path / "lab", model="tiny:llama", stages=["overview"])
    result = lab.run_lab(cfg)
    assert result["stages"]["overview"]["ok"]
    page = (tmp_path / "lab" / "index.html").read_text()
    overview = json.loads((tmp_path / "lab" / "overview.json").read_text())
    assert overview["model"]["spec"] == "tiny:llama"
    names = {d["name"] for d in overview["datasets"]}
    assert {"harmful", "benign", "over-refusal"} <= names
    assert "tiny:llama" in page and "over-refusal" in page
    assert (tmp_path / "lab" / "lab.yaml").exists()  # the resolved config


def test_failed_stage_is_reported_escaped_and_the_rest_still_run(tmp_path, monkeypatch):
    def boom(cfg, ctx):
        raise RuntimeError("<script>alert(1)</script>")

    def fine(cfg, ctx):
        return Section("fine stage", "<p>ok</p>", "fine")

    monkeypatch.setitem(lab.STAGE_FUNCS, "align", boom)
    monkeypatch.setitem(lab.STAGE_FUNCS, "rules", fine)
    cfg = lab.LabConfig(run_dir=tmp_path / "lab", model="tiny:llama", stages=["align", "rules"])
    result = lab.run_lab(cfg)
    assert result["stages"]["align"]["ok"] is False and result["stages"]["rules"]["ok"] is True
    assert "RuntimeError" in (tmp_path / "lab" / "align.error.txt").read_text()
    page = (tmp_path / "lab" / "index.html").read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page and "fine stage" in page
    status = json.loads((tmp_path / "lab" / "lab_status.json").read_text())
    assert set(status) == {"align", "rules"}


def test_unknown_stage_is_a_clear_error(tmp_path):
    with pytest.raises(BrittleError, match="unknown lab stage"):
        lab.run_lab(lab.LabConfig(run_dir=tmp_path, model="tiny:llama", stages=["nope"]))


def test_vendor_aligned_model_gets_its_own_grid_and_no_install():
    qwen = lab.LabConfig(model="embedded:qwen2.5-coder-0.5b")
    smol = lab.LabConfig(model="embedded:smollm2-135m")
    assert lab._attack_ns(qwen) == [0, 5, 10, 25] and lab._attack_ns(smol) == [0, 50]
    assert lab._attack_ns(qwen.model_copy(update={"quick": False}))[-1] == 100
    assert (lab._pool_limit(qwen), lab._select_k(qwen)) == (100, 25)
    assert (lab._pool_limit(smol), lab._select_k(smol)) == (100, 10)
    assert lab._finetune_max_length(smol) == 128 and lab._finetune_max_length(smol.model_copy(update={"quick": False})) == 512
    assert lab._pool_limit(qwen.model_copy(update={"quick": False})) is None
    assert smol.utility_limit() == 25 and smol.model_copy(update={"quick": False}).utility_limit() is None
    ctx: dict = {}
    assert lab._aligned_adapter(qwen, ctx) is None and ctx == {"aligned_adapter": None}


def test_attacked_models_are_found_from_an_earlier_run(tmp_path):
    cfg = lab.LabConfig(run_dir=tmp_path, model="tiny:llama", quick=False)
    assert lab._diagnosed_attacks(cfg, {}) == {}
    (tmp_path / "attack" / "a10").mkdir(parents=True)
    rows = [{"key": "aligned/0/0", "kind": "aligned", "n": 0, "seed": 0, "adapter": None},
            {"key": "harmful/10/0", "kind": "harmful", "n": 10, "seed": 0,
             "adapter": str(tmp_path / "attack" / "a10")},
            {"key": "harmful/50/0", "kind": "harmful", "n": 50, "seed": 0,
             "adapter": str(tmp_path / "attack" / "gone")}]
    (tmp_path / "attack" / "cells.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert lab._diagnosed_attacks(cfg, {}) == {"harmful-n10-s0": str(tmp_path / "attack" / "a10")}


def test_quick_diagnose_takes_the_most_attacked_model_only(tmp_path):
    (tmp_path / "attack").mkdir()
    rows = [{"key": f"harmful/{n}/0", "kind": "harmful", "n": n, "seed": 0, "adapter": str(tmp_path / f"a{n}")}
            for n in (10, 50, 5)]
    for n in (10, 50, 5):
        (tmp_path / f"a{n}").mkdir()
    (tmp_path / "attack" / "cells.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    quick = lab.LabConfig(run_dir=tmp_path, model="tiny:llama")
    assert lab._diagnosed_attacks(quick, {}) == {"harmful-n50-s0": str(tmp_path / "a50")}
    full = quick.model_copy(update={"quick": False})
    assert set(lab._diagnosed_attacks(full, {})) == {"harmful-n5-s0", "harmful-n10-s0", "harmful-n50-s0"}


def test_transfer_stage_runs_only_with_a_reference(tmp_path):
    assert "transfer" not in lab.LabConfig().stage_list()
    assert lab.LabConfig(reference=tmp_path).stage_list()[-2:] == ["transfer", "rules"]
    result = lab.run_lab(lab.LabConfig(run_dir=tmp_path / "lab", model="tiny:llama", stages=["transfer"]))
    assert result["stages"]["transfer"]["ok"] is False
    assert "--reference" in result["stages"]["transfer"]["error"]


def test_a_later_run_of_some_stages_keeps_the_other_sections(tmp_path, monkeypatch):
    calls = []

    def stage(title):
        def run(cfg, ctx):
            calls.append(title)
            return Section(f"{title} #{calls.count(title)}", "<p>x</p>", title)
        return run

    for name in ("attack", "diagnose"):
        monkeypatch.setitem(lab.STAGE_FUNCS, name, stage(name))
    # stages given out of recipe order are reported in recipe order
    lab.run_lab(lab.LabConfig(run_dir=tmp_path, model="tiny:llama", stages=["diagnose", "attack"]))
    result = lab.run_lab(lab.LabConfig(run_dir=tmp_path, model="tiny:llama", stages=["diagnose"]))
    assert set(result["stages"]) == {"diagnose"}  # this run's stages only
    page = (tmp_path / "index.html").read_text()
    assert "attack #1" in page and "diagnose #2" in page and "diagnose #1" not in page
    assert page.index("attack #1") < page.index("diagnose #2")
    status = json.loads((tmp_path / "lab_status.json").read_text())
    assert set(status) == {"attack", "diagnose"} and status["diagnose"]["ok"]


def test_live_page_while_running_then_budget_and_memory_columns(tmp_path, monkeypatch):
    """While a stage runs, index.html reloads itself and shows the stage with its ETA; once the
    last stage is done the page is static and every stage has its time, budget and peak memory."""
    seen: dict = {}

    def peek(cfg, ctx):
        seen["page"] = (tmp_path / "lab" / "index.html").read_text()
        seen["status"] = json.loads((tmp_path / "lab" / "lab_status.json").read_text())
        return Section("peeked", "<p>ok</p>", "peek")

    monkeypatch.setitem(lab.STAGE_FUNCS, "rules", peek)
    cfg = lab.LabConfig(run_dir=tmp_path / "lab", model="tiny:llama", stages=["overview", "rules"])
    lab.run_lab(cfg)
    assert "http-equiv='refresh'" in seen["page"] and "running…" in seen["page"]
    assert "ETA 2 min after" in seen["page"]  # the quick budget of the rules stage
    assert seen["status"]["rules"]["running"] is True and seen["status"]["overview"]["ok"] is True
    page = (tmp_path / "lab" / "index.html").read_text()
    assert "http-equiv='refresh'" not in page and "running…" not in page
    status = json.loads((tmp_path / "lab" / "lab_status.json").read_text())
    for s in status.values():
        assert s["peak_rss_mb"] > 10 and s["budget_s"] > 0 and "running" not in s
    assert "peak memory" in page and " GB" in page
    assert lab.LabConfig(quick=False).budget_s("rules") is None


def test_align_shows_the_before_numbers_while_the_adapter_trains(tmp_path, monkeypatch):
    """The unaligned eval is on the live page before alignment training starts (issue 18)."""
    from brittle import lab
    from brittle.evaluate import run as erun
    from brittle.evaluate import section as esec
    from brittle.report.html import Section

    evals: list[str] = []
    monkeypatch.setattr(erun, "run_eval", lambda ecfg: evals.append(ecfg.run_dir.name))
    monkeypatch.setattr(esec, "compare_section",
                        lambda dirs, title, report_dir: Section(title, "runs: " + ",".join(dirs), "align"))
    seen: dict[str, str] = {}

    def install(*a, **kw):
        seen["page"] = (tmp_path / "index.html").read_text()
        return tmp_path / "adapter"

    monkeypatch.setattr("brittle.train.align.install_alignment", install)
    lab.run_lab(lab.LabConfig(run_dir=tmp_path, stages=["align"]))
    assert evals == ["eval-unaligned", "eval-aligned"]
    assert "Installing alignment: the safety adapter" in seen["page"] and "runs: unaligned<" in seen["page"]
    assert "http-equiv='refresh'" in seen["page"]  # still live
    final = (tmp_path / "index.html").read_text()
    assert "runs: unaligned,aligned" in final and "Installing alignment: the safety adapter" not in final
