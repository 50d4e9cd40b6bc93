"""Ambiguous rules (He et al. 2025, arXiv 2509.01186): judge panels read rules under
law-inspired interpretive strategies; ambiguity = entropy of their judgments; rules are
refined by prompting or GRPO and checked for meaning shift.

Stages: :func:`run_judge` → :func:`run_analyze` → :func:`run_refine` / :func:`run_grpo`;
:func:`run_rules_quick` chains them for the lab; :func:`rules_section` reports them.
Imports are lazy so ``import brittle.rules`` stays cheap.
"""

from __future__ import annotations

from brittle._lazy import lazy_getattr

_EXPORTS = {
    "RulesJudgeConfig": "brittle.rules.judge",
    "run_judge": "brittle.rules.judge",
    "OptionScorer": "brittle.rules.judge",
    "JudgeMember": "brittle.rules.panel",
    "expand_panel": "brittle.rules.panel",
    "installed_readers": "brittle.rules.panel",
    "split_scenarios": "brittle.rules.split",
    "RulesAnalyzeConfig": "brittle.rules.analyze",
    "run_analyze": "brittle.rules.analyze",
    "RulesRefineConfig": "brittle.rules.refine",
    "run_refine": "brittle.rules.refine",
    "RulesGRPOConfig": "brittle.rules.grpo",
    "run_grpo": "brittle.rules.grpo",
    "rules_section": "brittle.rules.section",
    "run_rules_quick": "brittle.rules.quick",
    "load_rules": "brittle.rules.data",
    "load_strategies": "brittle.rules.data",
    "read_scenarios": "brittle.rules.data",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_getattr(_EXPORTS)
