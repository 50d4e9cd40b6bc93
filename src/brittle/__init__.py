"""brittle: measure, predict and explain how the safety alignment of chat models breaks.

Stages (each a plain Python function with a thin CLI command over it):
data -> model -> features -> selection -> fine-tune -> evaluation -> report.

The notebook API (:mod:`brittle.api`) returns typed results with ``.to_pandas()`` and
``.summary()``::

    import brittle
    res = brittle.evaluate(model="tiny:llama", suites=["harmful"], limit=5, run_dir="runs/nb")
    brittle.attack(...), brittle.select(...), brittle.audit(...)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from brittle._lazy import lazy_getattr

__version__ = "0.1.0"

if TYPE_CHECKING:  # for type checkers; at run time the names below resolve lazily
    from brittle.api import (
        AttackResult,
        AuditResult,
        EvalResult,
        SelectResult,
        attack,
        audit,
        evaluate,
        select,
    )

_EXPORTS = {
    # `evaluate` and `select` are callable sub-packages (see brittle._callable)
    "attack": "brittle.api",
    "audit": "brittle.api",
    "EvalResult": "brittle.api",
    "AttackResult": "brittle.api",
    "SelectResult": "brittle.api",
    "AuditResult": "brittle.api",
    "BrittleError": "brittle.errors",
}

__all__ = [
    "AttackResult", "AuditResult", "BrittleError", "EvalResult", "SelectResult", "__version__",
    "attack", "audit", "evaluate", "select",
]

_exports = lazy_getattr(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in ("evaluate", "select"):  # import the callable sub-package on first use
        import importlib

        return importlib.import_module(f"brittle.{name}")
    return _exports(name)
