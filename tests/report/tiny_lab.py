"""A tiny end-to-end lab for the browser test: the real stages on the random-weight
``tiny:llama`` model, with every size cut to a few examples, and replies that carry an HTML
payload (so the pages must escape model text).

Run alone to see the pages: ``python -m tests.report.tiny_lab /tmp/lab``.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from pathlib import Path
from typing import Any

import pytest

PAYLOAD = ('<img src=x data-pwned=1 onerror="window.__pwned=1">'
           "<script>window.__pwned=1</script><b data-pwned>")
STAGES = ["overview", "align", "attack", "select", "diagnose", "rules"]
REAL_DATA = Path(os.environ.get("BRITTLE_REAL_CACHE", Path.home() / ".cache" / "brittle")) / "data"


class PayloadBackend:
    """Wraps a generation backend: every reply starts with :data:`PAYLOAD`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def generate(self, conversations: Any, **kw: Any) -> list[str]:
        return [PAYLOAD + " " + r for r in self._inner.generate(conversations, **kw)]


def patch_tiny(mp: pytest.MonkeyPatch, cache: Path) -> None:
    """Cut every lab size to a few examples; inject the payload into generated replies."""
    from brittle import lab, rules
    from brittle.models import backends
    from brittle.rules import quick
    from brittle.train import align, attack

    cache.mkdir(parents=True, exist_ok=True)
    if REAL_DATA.is_dir() and not (cache / "data").exists():  # the fetched offline data sets, read only
        (cache / "data").symlink_to(REAL_DATA, target_is_directory=True)
    mp.setenv("BRITTLE_CACHE", str(cache))
    mp.setattr(lab.LabConfig, "eval_limit", lambda self: 3)
    mp.setattr(lab.LabConfig, "size", lambda self, q, f: min(q, 4))
    mp.setattr(lab, "_attack_ns", lambda cfg: [0, 2])
    mp.setattr(lab, "_pool_limit", lambda cfg: 8)
    mp.setattr(lab, "_select_k", lambda cfg: 2)
    mp.setattr(lab, "_select_methods", lambda cfg: ["repr"])  # one scoring method is enough here
    mp.setattr(lab, "_small_budget", lambda cfg: True)  # short prefill grid and replies
    mp.setattr(align, "QUICK", align.AlignSettings(n_harmful=4, n_benign=4, n_contrast=0, epochs=1.0, batch_size=4))
    small = {"n_scenarios": 2, "strategies": ["none", "broad"], "k": 1, "n_heldout": 2, "n_selection": 2,
             "n_report": 2, "grpo_steps": 1, "grpo_generations": 2, "grpo_scenarios": 1, "grpo_report": 1,
             "grpo_len": 8}
    budget = quick.BUDGETS["quick"]
    mp.setitem(quick.BUDGETS, "quick", {**budget, **{k: v for k, v in small.items() if k in budget}})
    mp.setattr(quick, "QUICK_RULES", quick.QUICK_RULES[:2])
    if "panel" in inspect.signature(quick.run_rules_quick).parameters:  # the tiny model alone reads
        mp.setattr(rules, "run_rules_quick", functools.partial(quick.run_rules_quick, panel=["tiny:llama"]))

    class TinyAttackConfig(attack.AttackConfig):
        demo_model: str = "tiny:llama"  # the harmful demonstrations' writer (default: a 135M GGUF)

    mp.setattr(attack, "AttackConfig", TinyAttackConfig)
    make = backends.make_backend
    mp.setattr(backends, "make_backend", lambda *a, **kw: PayloadBackend(make(*a, **kw)))


def run_tiny_lab(run_dir: Path) -> dict[str, Any]:
    """The lab on ``tiny:llama`` (quick, CPU) into ``run_dir``; returns run_lab's result."""
    from brittle import lab

    with pytest.MonkeyPatch.context() as mp:
        patch_tiny(mp, run_dir.parent / f"{run_dir.name}-cache")
        cfg = lab.LabConfig(run_dir=run_dir, model="tiny:llama", stages=STAGES, device="cpu")
        return lab.run_lab(cfg)


def add_standalone_pages(run_dir: Path) -> list[str]:
    """The pages other commands write, next to the lab: ``brittle eval``'s index.html for
    one of the lab's evals and ``brittle audit``'s audit.html on a file with the payload.
    Returns their paths relative to ``run_dir``."""
    import json

    from brittle.evaluate.section import eval_section
    from brittle.report.html import write_report
    from brittle.select.audit import AuditConfig, run_audit

    pages = []
    for d in sorted(run_dir.glob("align/eval-*"))[:1]:
        write_report(d, "brittle eval: tiny:llama", [eval_section(d, title="Evaluation of tiny:llama")])
        pages.append((d / "index.html").relative_to(run_dir).as_posix())
    rows = [{"instruction": f"Question {i} {PAYLOAD}", "output": f"Answer {i}: {PAYLOAD} - a\n- b"} for i in range(6)]
    src = run_dir / "audit-input.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BRITTLE_CACHE", str(run_dir.parent / f"{run_dir.name}-cache"))
        run_audit(AuditConfig(run_dir=run_dir / "audit", file=src, model="tiny:llama", method="repr",
                              n_anchor=2, n_anchor_repr=4, batch_size=4, max_length=128, device="cpu"))
    pages.append("audit/audit.html")
    return pages


if __name__ == "__main__":
    import json
    import logging

    logging.basicConfig(level=logging.INFO)
    out = Path(sys.argv[1])
    print(json.dumps(run_tiny_lab(out)["stages"], indent=1))
    print(add_standalone_pages(out))
