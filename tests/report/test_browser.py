"""The reports in a real browser: headless Chromium (npm ``@sparticuz/chromium`` driven by
``puppeteer-core``, installed by ``make setup`` into ``.node/``) opens the pages of a tiny
end-to-end lab and of a standalone eval and fails on any failed request, missing file,
console error or unescaped model text; the samples page's filters are clicked through.

Skipped (with the reason) only when node or the npm packages are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from brittle.report.html import Section, figure, write_report
from tests.report.tiny_lab import REAL_DATA, add_standalone_pages, run_tiny_lab

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SCRIPT = HERE / "browser_check.mjs"
NODE_MODULES = Path(os.environ.get("BRITTLE_NODE_MODULES", ROOT / ".node" / "node_modules"))
INSTALL = "make node  (npm ci --prefix .node with tests/report/node/package-lock.json)"


def _browser_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (needs Node.js >= 20 and npm)"
    for pkg in ("@sparticuz/chromium", "puppeteer-core"):
        if not (NODE_MODULES / pkg / "package.json").is_file():
            return f"{pkg} not installed in {NODE_MODULES}: run {INSTALL}"
    return None


pytestmark = pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))


def check_pages(root: Path, *pages: str, timeout: int = 240) -> dict[str, Any]:
    """Run browser_check.mjs on ``pages`` (relative to ``root``, linked pages followed)."""
    out = root / "browser_check.json"
    proc = subprocess.run(["node", str(SCRIPT), str(NODE_MODULES), str(root), str(out), *pages],
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())["pages"]


def problems(pages: dict[str, Any]) -> dict[str, list[str]]:
    """Everything a reader would hit, per page (empty when all is well)."""
    out = {}
    for name, p in pages.items():
        bad = p["failed"] + p["console"] + p["missing"] + p["injected"] + [f"no anchor {a}" for a in p["anchors"]]
        if bad:
            out[name] = bad
    return out


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory) -> tuple[Path, list[str]]:
    """A tiny lab run plus a standalone eval page and an audit page, then the whole run
    directory moved elsewhere (pages must still work). Returns (run dir, extra pages)."""
    base = tmp_path_factory.mktemp("browser")
    result = run_tiny_lab(base / "lab")
    if REAL_DATA.is_dir():  # every stage can run; without fetched data some record a failure
        assert all(s["ok"] for s in result["stages"].values()), result["stages"]
    extra = add_standalone_pages(base / "lab")
    moved = base / "moved" / "lab"
    shutil.copytree(base / "lab", moved, symlinks=True)
    shutil.rmtree(base / "lab")
    return moved, extra


@pytest.fixture(scope="module")
def lab_copy(lab_run) -> Path:
    return lab_run[0]


def test_lab_pages_render_with_every_image_link_and_escape(lab_run):
    lab_copy, extra = lab_run
    pages = check_pages(lab_copy, "index.html", *extra)
    assert problems(pages) == {}
    assert set(extra) <= set(pages) and "rules/form.html" in pages
    index = pages["index.html"]
    assert index["scripts"] == 0  # model text never becomes a script
    # every plot a stage wrote is shown (SVG beside each PNG)
    pngs = list(lab_copy.rglob("*.png"))
    assert pngs and all(p.with_suffix(".svg").exists() for p in pngs)
    assert index["images"] >= 4
    # the align evals' samples pages were reached through the lab page's links
    assert any(name.endswith("samples.html") for name in pages)
    text = (lab_copy / "index.html").read_text()
    assert "{'" not in text and "['" not in text and "e+0" not in text  # no literals, no 2.56e+03


def test_pages_show_no_absolute_path_of_the_machine(lab_run):
    """Neither the run's temp directory (run dir, cache, inputs) nor the home directory
    appears in any generated page."""
    lab_copy, _ = lab_run
    machine = [str(lab_copy.parent.parent), str(Path.home())]
    leaks = {p.relative_to(lab_copy).as_posix(): [m for m in machine if m in p.read_text(encoding="utf-8")]
             for p in lab_copy.rglob("*.html")}
    assert {k: v for k, v in leaks.items() if v} == {}


def test_samples_filters_show_the_matching_rows(lab_copy):
    found = sorted(lab_copy.glob("align/eval-*/samples.html"))
    if not found:
        pytest.skip("the align stage wrote no eval (offline data not fetched: run `brittle data fetch`)")
    name = found[0].relative_to(lab_copy).as_posix()
    page = check_pages(lab_copy, name)[name]
    assert problems({name: page}) == {}
    df = pd.read_parquet((lab_copy / name).parent / "samples.parquet")
    assert page["total_rows"] == len(df) > 0 and page["scripts"] == 1
    by = {"suite": df["suite"], "category": df["category"], "v-refusal": df["verdict_refusal"]}
    checked = 0
    for f in page["filters"]:
        if f["filter"] in by:
            assert f["visible"] == int((by[f["filter"]] == f["value"]).sum()), f
            assert f["shown"].startswith(f"{f['visible']} of {len(df)}")
            checked += 1
    assert checked >= 3 and any(f["visible"] < len(df) for f in page["filters"])


def test_an_old_style_link_relative_to_the_stage_dir_fails_in_the_browser(tmp_path):
    """The lab's old bug, reproduced: a stage section's plot linked relative to the stage
    directory and embedded in the lab page one level up without rebasing. The browser check
    must report it (so the lab tests above can fail)."""
    stage = tmp_path / "lab" / "attack"
    stage.mkdir(parents=True)
    from brittle.report.plots import pyplot, save_figure

    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [0, 1])
    png = save_figure(fig, stage / "asr_vs_n.png")
    old = Section("attack", figure(png, stage, "ASR vs N"), "attack")  # no base: the old way
    new = Section("attack", figure(png, stage, "ASR vs N"), "attack", base=str(stage))
    write_report(tmp_path / "lab", "old", [old], filename="old.html")
    write_report(tmp_path / "lab", "new", [new], filename="new.html")
    pages = check_pages(tmp_path / "lab", "old.html", "new.html")
    assert any("ERR_FILE_NOT_FOUND" in f for f in pages["old.html"]["failed"]), pages["old.html"]
    assert problems({"new.html": pages["new.html"]}) == {}


def test_unescaped_text_and_console_errors_are_caught(tmp_path):
    from tests.report.tiny_lab import PAYLOAD

    bad = Section("raw", f"<p>{PAYLOAD}</p><script>console.error('boom')</script>", "raw")
    write_report(tmp_path, "bad", [bad], filename="bad.html")
    page = check_pages(tmp_path, "bad.html")["bad.html"]
    assert page["injected"] and any("boom" in c for c in page["console"])
