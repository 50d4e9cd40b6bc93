"""The judge panel: different *readers* (models), each under the answer-order permutations.

A panel is configured as a list of reader specs plus a list of permutations (prompt
templates of ``judge_prompt.yaml``; ``default`` and ``swapped``, which swaps the option
letters). Each reader is judged under every permutation, so the panel's members are
readers × permutations; entropy is computed between readers and disagreement between
one reader's permutations is reported as template sensitivity
(:mod:`brittle.rules.metrics`).

Reader specs: ``installed`` (every distinct judge model installed here: SmolLM2-135M
always, Qwen2.5-Coder-0.5B when its chunk packages are installed — ``make qwen``; found
with importlib, never imported), a local model spec (``embedded:…``, ``tiny:llama``, a
path, ``hf:<id>``), or ``openai:<model>@<base_url>``; optional ``?T=FLOAT`` (temperature).
A spec that names a ``template=`` is one member under that template only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from brittle.errors import BrittleError, MissingResource

INSTALLED = "installed"
DEFAULT_PERMUTATIONS = ("default", "swapped")
ALWAYS = "embedded:smollm2-135m"
# judge models that may be installed next to SmolLM2 (the 1.5B model is too heavy to join
# a default panel: ~16 GB peak RAM on CPU)
OPTIONAL = {"embedded:qwen2.5-coder-0.5b": "QWEN_05B"}


@dataclass(frozen=True)
class JudgeMember:
    """One panel member. Spec string: ``<model spec>[?template=swapped&T=2]`` where the model
    spec is ``hf:<spec>`` / a bare model spec (local) or ``openai:<model>@<base_url>``."""

    name: str
    model: str
    template: str = "default"
    temperature: float = 1.0

    @property
    def kind(self) -> str:
        return "openai" if self.model.startswith("openai:") else "hf"

    @property
    def load_spec(self) -> str:
        return self.model.removeprefix("hf:")

    @property
    def reader(self) -> str:
        """The model behind this member (its spec without the template)."""
        return self.model + (f"?T={self.temperature:g}" if self.temperature != 1.0 else "")

    @classmethod
    def build(cls, model: str, template: str = "default", temperature: float = 1.0) -> JudgeMember:
        """A member with the canonical name ``model[?template=NAME][&T=FLOAT]``."""
        opts = ([f"template={template}"] if template != "default" else []) + (
            [f"T={temperature:g}"] if temperature != 1.0 else []
        )
        return cls(model + ("?" + "&".join(opts) if opts else ""), model, template, temperature)

    @classmethod
    def parse(cls, spec: str) -> JudgeMember:
        model, _, query = spec.partition("?")
        opts = dict(parse_qsl(query))
        unknown = set(opts) - {"template", "T"}
        if unknown or not model:
            raise BrittleError(f"bad judge spec {spec!r}: use <model>[?template=NAME&T=FLOAT]")
        try:
            temp = float(opts.get("T", 1.0))
        except ValueError:
            raise BrittleError(f"bad judge spec {spec!r}: T must be a number") from None
        return cls(spec, model, opts.get("template", "default"), temp)


def chunks_installed(name: str) -> bool:
    """Are all chunk files of ``brittle.models.chunked.<name>`` on disk (no import)?"""
    from brittle.models import chunked
    from brittle.resources import package_dir

    spec = getattr(chunked, name)
    try:
        return all((package_dir(mod) / rel).is_file() for mod, rel in spec.parts)
    except MissingResource:
        return False


def installed_readers() -> list[str]:
    """Every distinct judge model installed here: SmolLM2-135M, plus Qwen2.5-Coder-0.5B when
    its chunk packages are present."""
    return [ALWAYS, *(spec for spec, chunks in OPTIONAL.items() if chunks_installed(chunks))]


def resolve_readers(specs: Sequence[str]) -> list[str]:
    """Reader specs with ``installed`` expanded, duplicates (same spec) dropped, order kept."""
    out: list[str] = []
    for spec in specs:
        for s in installed_readers() if spec.strip() == INSTALLED else [spec.strip()]:
            if s and s not in out:
                out.append(s)
    if not out:
        raise BrittleError("the judge panel is empty")
    return out


def expand_panel(specs: Sequence[str], permutations: Sequence[str] = DEFAULT_PERMUTATIONS) -> list[JudgeMember]:
    """Members = readers × permutations (a spec with ``template=`` keeps its one template);
    a member that appears twice is judged once."""
    from brittle.rules.prompts import template

    perms = list(dict.fromkeys(permutations)) or ["default"]
    for t in perms:
        template(t)  # unknown template -> BrittleError now, not mid-run
    members: dict[str, JudgeMember] = {}
    for spec in resolve_readers(specs):
        m = JudgeMember.parse(spec)
        new = [m] if "template=" in spec else [JudgeMember.build(m.model, t, m.temperature) for t in perms]
        for x in new:  # an old-style list (m, m?template=swapped) gives each member once
            members.setdefault(JudgeMember.build(x.model, x.template, x.temperature).name, x)
    return list(members.values())
