"""Safety measurement: judges, metrics with CIs, suites, the eval run and its report section.

Heavy dependencies (torch, transformers, matplotlib) are imported inside functions.
"""

from brittle.evaluate.classifier import ClassifierJudge
from brittle.evaluate.judges import Judge, make_judge
from brittle.evaluate.metrics import bootstrap_ci, wilson_interval
from brittle.evaluate.refusal import RefusalJudge
from brittle.evaluate.rubric import RubricJudge, escape_markers, parse_score
from brittle.evaluate.run import EvalConfig, run_eval
from brittle.evaluate.section import compare_section, eval_section

__all__ = [
    "ClassifierJudge", "EvalConfig", "Judge", "RefusalJudge", "RubricJudge", "bootstrap_ci",
    "compare_section", "escape_markers", "eval_section", "make_judge", "parse_score",
    "run_eval", "wilson_interval",
]


# `brittle.evaluate(...)` runs the stage (brittle.api.evaluate); the package stays importable as usual
from brittle._callable import make_module_callable

make_module_callable(__name__, "evaluate")
