import csv
import json
import re

import pytest
import typer
from typer.testing import CliRunner

from brittle.cli.label import register
from brittle.errors import BrittleError, DataError
from brittle.evaluate import labeling as L
from brittle.evaluate import run as R
from brittle.evaluate.calibration import rogan_gladen

from .eval_fakes import FakeBackend, bot, fake_load_suite


def _complier(prompt: str) -> str:
    # complies with everything; "harmful" content only for prompts about bombs/poison/malware
    if any(w in prompt for w in ("bomb", "poison", "malware")):
        return "Sure, here is how: step 1 get the materials, step 2 assemble them."
    return "Sure! Here is a poem about the sea instead."


@pytest.fixture()
def lab_dir(tmp_path, monkeypatch):
    """A lab-like run: a top-level eval plus two attack cells, each an eval store."""
    monkeypatch.setattr(R, "load_suite", fake_load_suite)
    root = tmp_path / "lab"
    for sub, reply in [("eval", bot), ("attack/cells/aoa-n1-s0/eval", _complier),
                       ("attack/cells/aoa-n3-s0/eval", lambda p: "Sure, " + p)]:
        R.run_eval(R.EvalConfig(run_dir=root / sub, model=sub, suites=["harmful-eval", "over-refusal"]),
                   backend=FakeBackend(reply))
    return root


def _truth(r: L.Reply) -> bool:
    """Synthetic human label: harmful only when the reply gives steps for a harmful topic."""
    return "step 1" in r.response and r.verdict is True


def test_collect_finds_every_cell_and_only_harmful_suites(lab_dir):
    replies = L.collect(lab_dir)
    cells = {r.cell for r in replies}
    assert cells == {"eval", "attack/cells/aoa-n1-s0/eval", "attack/cells/aoa-n3-s0/eval"}
    assert {r.suite for r in replies} == {"harmful-eval"}
    assert len(replies) == 30 and all(r.verdict is not None for r in replies)
    # an eval run dir on its own is its own single cell
    assert {r.cell for r in L.collect(lab_dir / "eval")} == {"."}


def test_sample_is_seeded_distinct_and_spans_cells(lab_dir):
    replies = L.collect(lab_dir)
    a, b = L.sample(replies, 12, seed=5), L.sample(replies, 12, seed=5)
    assert [r.id for r in a] == [r.id for r in b]
    assert [r.id for r in a] != [r.id for r in L.sample(replies, 12, seed=6)]
    assert len({r.id for r in a}) == 12 and len({r.cell for r in a}) >= 2
    assert len(L.sample(replies, 500)) == len({r.id for r in replies})


def test_form_escapes_and_states_redaction_off(lab_dir, tmp_path):
    items = L.sample(L.collect(lab_dir), 30, seed=0)
    html, csv_path = L.write_form(items, tmp_path / "f" / "form.html", lab_dir, seed=0)
    page = html.read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Redaction is OFF" in page and "default-src 'none'" in page
    assert "aoa-n1-s0" not in re.sub(r'data-cell="[^"]*"', "", page)  # blind: cell only in the export
    assert "positive" not in page  # blind: no judge verdicts
    assert len(re.findall(r'class="item" data-id="([0-9a-f]{16})"', page)) == len(items)
    rows = _rows(csv_path)
    assert tuple(rows[0]) == L.CSV_COLUMNS and all(r["label"] == "" for r in rows)
    assert {r["judge_verdict"] for r in rows} <= {"positive", "negative"}


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _fill_csv(csv_path, out, label_of):
    rows = _rows(csv_path)
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "label": label_of(r)})
    return out


def test_round_trip_corrects_every_rate(lab_dir, tmp_path):
    replies = L.collect(lab_dir)
    items = L.sample(replies, 40, seed=1)  # 40 > distinct replies: all of them
    _, csv_path = L.write_form(items, tmp_path / "form.html", lab_dir, seed=1)
    truth = {r.id: _truth(r) for r in items}
    filled = _fill_csv(csv_path, tmp_path / "filled.csv",
                       lambda r: "harmful" if truth[r["id"]] else "not-harmful")
    res = L.calibrate(lab_dir, filled, n_boot=500)
    assert (lab_dir / L.CALIBRATION).exists()
    assert json.loads((lab_dir / L.CALIBRATION).read_text())["rates"] == res["rates"]
    # confusion from the labels, computed independently
    tp = sum(1 for r in items if r.verdict and truth[r.id])
    fp = sum(1 for r in items if r.verdict and not truth[r.id])
    fn = sum(1 for r in items if not r.verdict and truth[r.id])
    tn = len(items) - tp - fp - fn
    acc = res["judge_accuracy"]
    assert (acc["tp"], acc["fp"], acc["fn"], acc["tn"]) == (tp, fp, fn, tn)
    assert acc["precision"][0] == pytest.approx(tp / (tp + fp))
    se, sp = tp / (tp + fn), tn / (tn + fp)
    assert {(r["cell"], r["suite"]) for r in res["rates"]} == {
        (c, "harmful-eval") for c in ("eval", "attack/cells/aoa-n1-s0/eval", "attack/cells/aoa-n3-s0/eval")}
    for r in res["rates"]:
        cell = [x for x in replies if x.cell == r["cell"]]
        k = sum(x.verdict for x in cell)
        assert r["n"] == len(cell) and r["k"] == k
        assert r["corrected"][0] == pytest.approx(rogan_gladen(k / len(cell), se, sp))
        assert r["corrected"][1] <= r["corrected"][0] <= r["corrected"][2]
        assert r["n_labelled"] == sum(1 for x in cell if x.id in truth)


def test_form_download_format_reads_back(lab_dir, tmp_path):
    # the form's script writes id,cell,suite,label with every field quoted, CRLF line ends
    items = L.sample(L.collect(lab_dir), 10, seed=2)
    text = '"id","cell","suite","label"\r\n' + "".join(
        f'"{r.id}","{r.cell}","{r.suite}","{v}"\r\n'
        for r, v in zip(items, ["harmful", "not-harmful", "skip", "", "1", "0", "yes", "no", "HARMFUL", "No"]))
    (tmp_path / "labels.csv").write_text(text, encoding="utf-8")
    got = L.read_labels(tmp_path / "labels.csv")
    assert got == {items[0].id: True, items[1].id: False, items[4].id: True, items[5].id: False,
                   items[6].id: True, items[7].id: False, items[8].id: True, items[9].id: False}


def test_malformed_labels_name_path_and_line(lab_dir, tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text('id,prompt,label\nabc,"two\nlines",harmful\ndef,x,maybe\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.csv:4: label 'maybe'"):
        L.read_labels(p)
    p.write_text("id,verdict\nabc,1\n")
    with pytest.raises(DataError, match=r"bad\.csv:1: .*`id` and `label`"):
        L.read_labels(p)
    p.write_text("id,label\n0123456789abcdef,harmful\n")
    with pytest.raises(DataError, match="not replies of"):
        L.calibrate(lab_dir, p)


def test_chance_level_labels_give_no_estimate_with_reason(lab_dir, tmp_path):
    items = L.sample(L.collect(lab_dir), 40, seed=0)
    # human says harmful exactly when the judge says refused: Se = Sp = 0
    p = tmp_path / "l.csv"
    p.write_text("id,label\n" + "".join(f"{r.id},{'no' if r.verdict else 'yes'}\n" for r in items))
    res = L.calibrate(lab_dir, p, n_boot=200)
    assert all(r["corrected"] is None and "no better than chance" in r["reason"] for r in res["rates"])


def test_cli_form_then_labels(lab_dir, tmp_path):
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    runner = CliRunner()
    res = runner.invoke(app, ["label", str(lab_dir), "--n-replies", "8", "--seed", "3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["n"] == 8 and out["form"].endswith("form.html")
    filled = _fill_csv(out["csv"], tmp_path / "filled.csv",
                       lambda r: "yes" if "step 1" in r["reply"] and r["judge_verdict"] == "positive" else "no")
    res = runner.invoke(app, ["label", str(lab_dir), "--labels", str(filled), "--n-boot", "200"])
    assert res.exit_code == 0, res.output
    assert "precision" in res.output and "harmfulness (corrected)" in res.output
    assert (lab_dir / L.CALIBRATION).exists()


def test_missing_run_dir_is_clear(tmp_path):
    with pytest.raises(BrittleError, match="no such run directory"):
        L.collect(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BrittleError, match="brittle eval"):
        L.sample(L.collect(tmp_path / "empty"), 5)


NODE_HARNESS = r"""
const fs = require('fs');
const [script, items] = [fs.readFileSync(process.argv[2], 'utf8'), JSON.parse(fs.readFileSync(process.argv[3], 'utf8'))];
let handlers = {}, text = null, name = null;
global.Blob = class { constructor(parts) { text = parts.join(''); } };
global.URL = { createObjectURL: () => 'blob:labels' };
const els = items.map(it => ({ dataset: { id: it.id, cell: it.cell, suite: it.suite },
  querySelector: () => (it.value ? { value: it.value } : null) }));
global.document = {
  querySelectorAll: sel => (sel === '.item' ? els : els.filter(e => e.querySelector())),
  addEventListener: () => {},
  getElementById: id => ({ addEventListener: (ev, fn) => { handlers[id] = fn; } }),
  createElement: () => ({ click() { name = this.download; }, remove() {} }),
  body: { appendChild: () => {} },
};
eval(script);
handlers['dl']();
process.stdout.write(name + '\n' + text);
"""


def test_form_script_download_reads_back(lab_dir, tmp_path):
    """Runs the form's own inline script (node, with a stub DOM) and reads its CSV back."""
    import html as H
    import shutil
    import subprocess

    if shutil.which("node") is None:
        pytest.skip("node not installed")
    items = L.sample(L.collect(lab_dir), 6, seed=4)
    page = L.write_form(items, tmp_path / "form.html", lab_dir, seed=4)[0].read_text()
    script = re.search(r"<script>(.*)</script>", page, re.DOTALL).group(1)
    found = re.findall(r'class="item" data-id="([^"]*)" data-cell="([^"]*)" data-suite="([^"]*)"', page)
    values = ["harmful", "not-harmful", "skip", "", "harmful", "not-harmful"]
    (tmp_path / "s.js").write_text(script)
    (tmp_path / "items.json").write_text(json.dumps(
        [{"id": H.unescape(i), "cell": H.unescape(c), "suite": H.unescape(s), "value": v}
         for (i, c, s), v in zip(found, values)]))
    (tmp_path / "h.js").write_text(NODE_HARNESS)
    out = subprocess.run(["node", str(tmp_path / "h.js"), str(tmp_path / "s.js"), str(tmp_path / "items.json")],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    name, text = out.split("\n", 1)
    assert name == "labels.csv"
    (tmp_path / "labels.csv").write_text(text, encoding="utf-8", newline="")
    got = L.read_labels(tmp_path / "labels.csv")
    assert got == {items[0].id: True, items[1].id: False, items[4].id: True, items[5].id: False}
    assert L.calibrate(lab_dir, tmp_path / "labels.csv", n_boot=100)["n_labelled"] == 4


def test_suite_filter(tmp_path, monkeypatch):
    from brittle.data.schema import Example

    def load(name, **kw):  # suite "harmful": other prompts than "harmful-eval"
        exs = fake_load_suite(name, **kw)
        if name != "harmful":
            return exs
        return [Example.from_pair(e.prompt + " (v2)", category=e.category, source="test") for e in exs]

    monkeypatch.setattr(R, "load_suite", load)
    R.run_eval(R.EvalConfig(run_dir=tmp_path / "r", model="m", suites=["harmful-eval", "harmful", "over-refusal"]),
               backend=FakeBackend(_complier))
    assert {r.suite for r in L.collect(tmp_path / "r")} == {"harmful-eval", "harmful"}
    only = L.collect(tmp_path / "r", suites=["harmful"])
    assert {r.suite for r in only} == {"harmful"} and len(only) == 10
    p = tmp_path / "l.csv"
    p.write_text("id,label\n" + "".join(f"{r.id},{'yes' if 'step 1' in r.response else 'no'}\n" for r in only))
    res = L.calibrate(tmp_path / "r", p, suites=["harmful"], n_boot=100)
    assert [x["suite"] for x in res["rates"]] == ["harmful"] and res["labels_per_suite"] == {"harmful": 10}
    # a label file made over every suite: labels of the other suites are set aside, not errors
    allp = tmp_path / "all.csv"
    every = L.collect(tmp_path / "r")
    allp.write_text("id,label\n" + "".join(f"{r.id},no\n" for r in every if r.suite == "harmful-eval")
                    + p.read_text().split("\n", 1)[1])
    res2 = L.calibrate(tmp_path / "r", allp, suites=["harmful"], n_boot=100)
    assert res2["rates"] == res["rates"] and res2["n_labelled_other_suites"] == 10


def test_label_file_that_is_a_directory_or_missing_is_one_line(tmp_path):
    with pytest.raises(BrittleError, match="is a directory"):
        L.read_labels(tmp_path)
    with pytest.raises(BrittleError, match="no such file"):
        L.read_labels(tmp_path / "nope.csv")
