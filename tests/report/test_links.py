"""Links in generated pages resolve relative to the page that contains them."""

from pathlib import Path

from brittle.report.html import Section, figure, relocate, write_report
from brittle.report.links import is_relative_link, rebase_link, rebase_links, relative_link


def test_relative_link_goes_up_when_outside():
    assert relative_link("/r/attack/asr.png", "/r") == "attack/asr.png"
    assert relative_link("/r/plots/x.png", "/r/align/eval-a") == "../../plots/x.png"


def test_only_relative_links_are_rewritten():
    for v in ("#s1", "/abs.png", "data:image/png;base64,AA", "https://x.org/a", "//host/a", "", "mailto:a@b"):
        assert not is_relative_link(v) and rebase_link(v, "/r/attack", "/r") == v
    assert rebase_link("asr.png?v=1#top", "/r/attack", "/r") == "attack/asr.png?v=1#top"


def test_rebase_links_rewrites_src_and_href_and_keeps_escaping():
    body = ('<img src="kl.png" alt="a"><a href="form.html">f</a><a href=\'x y&amp;z.svg\'>s</a>'
            '<a href="#top">t</a><img src="data:image/png;base64,AA">')
    out = rebase_links(body, "/run/diagnose", "/run")
    assert 'src="diagnose/kl.png"' in out and 'href="diagnose/form.html"' in out
    assert "href='diagnose/x y&amp;z.svg'" in out
    assert 'href="#top"' in out and 'src="data:image/png;base64,AA"' in out
    assert rebase_links(body, "/run/diagnose", "/run/diagnose/") == body


def test_escaped_text_that_looks_like_a_link_is_left_alone():
    body = "<td>x src=&quot;evil.png&quot; href=&#x27;y&#x27;</td>"
    assert rebase_links(body, "/run/a", "/run") == body


def test_stage_figure_resolves_from_the_lab_page(tmp_path):
    """The lab's bug: a stage section linked its plot relative to the stage directory and the
    lab page one level up could not find it."""
    stage = tmp_path / "lab" / "attack"
    stage.mkdir(parents=True)
    (stage / "asr_vs_n.png").write_bytes(b"png")
    (stage / "asr_vs_n.svg").write_text("<svg/>")
    sec = Section("attack", figure(stage / "asr_vs_n.png", stage, "ASR"), "attack", base=str(stage))
    page = write_report(tmp_path / "lab", "lab", [sec]).read_text()
    assert 'src="attack/asr_vs_n.svg"' in page and 'href="attack/asr_vs_n.png"' in page
    # the same section on a page inside the stage directory
    own = write_report(stage, "attack", [sec], filename="page.html").read_text()
    assert 'src="asr_vs_n.svg"' in own
    # stored sections keep no absolute base: links are already relative to the page dir
    moved = relocate(sec, tmp_path / "lab")
    assert moved.base == "" and str(tmp_path) not in moved.body


def test_every_relative_link_on_a_written_page_exists(tmp_path):
    import re

    stage = tmp_path / "run" / "rules"
    stage.mkdir(parents=True)
    for name in ("a.png", "a.svg", "form.html"):
        (stage / name).write_text("x")
    body = figure(stage / "a.png", stage, "cap") + '<a href="form.html">form</a>'
    page = write_report(tmp_path / "run", "t", [Section("rules", body, "rules", base=str(stage))])
    links = re.findall(r'(?:src|href)="([^"#][^"]*)"', page.read_text())
    assert links and all((page.parent / link).exists() for link in links), links
    assert not any(Path(link).is_absolute() for link in links)


def test_lab_stores_sections_relative_and_links_resolve_after_a_move(tmp_path, monkeypatch):
    import json
    import shutil

    from brittle import lab

    def stage(cfg, ctx):
        d = cfg.run_dir / "attack"
        d.mkdir(parents=True, exist_ok=True)
        (d / "asr_vs_n.png").write_bytes(b"png")
        return Section("attack", figure(d / "asr_vs_n.png", d, "ASR"), "attack", base=str(d))

    monkeypatch.setitem(lab.STAGE_FUNCS, "attack", stage)
    run = tmp_path / "a" / "lab"
    lab.run_lab(lab.LabConfig(run_dir=run, model="tiny:llama", stages=["attack"]))
    stored = (run / "sections" / "attack.json").read_text()
    assert str(tmp_path) not in stored and json.loads(stored)["base"] == ""
    moved = tmp_path / "b" / "lab"
    shutil.copytree(run, moved)
    shutil.rmtree(run)
    page = lab._write_report(moved, "t", json.loads((moved / "lab_status.json").read_text()))
    assert 'src="attack/asr_vs_n.png"' in page.read_text() and (moved / "attack" / "asr_vs_n.png").exists()
