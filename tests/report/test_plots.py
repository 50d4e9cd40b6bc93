"""Plots: one save helper (PNG + SVG), only categories with data, intervals labelled."""

import math

from brittle.evaluate.plots import categories_with_data, category_bars
from brittle.report.plots import pyplot, save_figure


def test_save_figure_writes_png_and_svg(tmp_path):
    fig, ax = pyplot().subplots()
    ax.plot([0, 1], [0, 1])
    png = save_figure(fig, tmp_path / "sub" / "p.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and (tmp_path / "sub" / "p.svg").read_text().lstrip().startswith("<?xml")


def test_category_bars_skip_empty_categories_and_label_the_ci(tmp_path):
    nan = math.nan
    series = {"a": {"crime": (0.5, 0.3, 0.7), "empty": (nan, nan, nan)}, "b": {"crime": (0.2, 0.1, 0.4)}}
    assert categories_with_data(series) == ["crime"]
    png = category_bars(series, tmp_path / "c.png", title="t")
    svg = (tmp_path / "c.svg").read_text()
    assert png.exists() and "95% CI" in svg and ">empty<" not in svg and "crime" in svg
    assert "%" in svg  # percent axis


def test_no_module_calls_savefig_directly():
    """Every plot goes through save_figure (so each has its SVG)."""
    from pathlib import Path

    import brittle

    root = Path(brittle.__file__).parent
    offenders = [p.relative_to(root).as_posix() for p in root.rglob("*.py")
                 if ".savefig(" in p.read_text(encoding="utf-8") and p.name != "plots.py"]
    offenders += [p.relative_to(root).as_posix() for p in root.rglob("plots.py")
                  if ".savefig(" in p.read_text(encoding="utf-8") and p.parent.name != "report"]
    assert offenders == []
