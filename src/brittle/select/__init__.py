"""Which benign data breaks safety: anchoring scores, selections and the audit.

* :mod:`brittle.select.scores` — pure score functions (anchor means, bidirectional,
  max cosine, Self-Inf-N, agreement)
* :mod:`brittle.select.anchors` — harmful / safe anchor sets
* :mod:`brittle.select.selection` — top-K, bottom-K, random-K, format-K, JSONL writer
* :mod:`brittle.select.compute` — method scores from :mod:`brittle.features`
* :mod:`brittle.select.run` — ``SelectConfig``, ``run_select``, ``compare_selections``
* :mod:`brittle.select.audit` — ``AuditConfig``, ``run_audit``
* :mod:`brittle.select.section` — ``select_section`` and plots

Heavy imports (torch, transformers, matplotlib) happen inside functions.
"""

from __future__ import annotations

from brittle._lazy import lazy_getattr

_EXPORTS = {
    "SelectConfig": "brittle.select.run",
    "run_select": "brittle.select.run",
    "compare_selections": "brittle.select.run",
    "AuditConfig": "brittle.select.audit",
    "run_audit": "brittle.select.audit",
    "select_section": "brittle.select.section",
    "build_anchor_sets": "brittle.select.anchors",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_getattr(_EXPORTS)


# `brittle.select(...)` runs the stage (brittle.api.select); the package stays importable as usual
from brittle._callable import make_module_callable

make_module_callable(__name__, "select")
