"""Callable sub-packages: ``brittle.evaluate(...)`` and ``brittle.select(...)``.

``brittle.evaluate`` and ``brittle.select`` are sub-packages (``brittle.evaluate.metrics``,
``brittle.select.scores`` …) and also the API functions of :mod:`brittle.api`. Python binds
a sub-package to its parent's attribute when it is imported, which would shadow a function of
the same name; so the package module itself is made callable and forwards to the API function.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def make_module_callable(module_name: str, api_function: str) -> None:
    """Give module ``module_name`` a ``__call__`` that forwards to ``brittle.api.<api_function>``."""

    class _CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module("brittle.api"), api_function)(*args, **kwargs)

    _CallableModule.__call__.__doc__ = f"Same as :func:`brittle.api.{api_function}`."
    sys.modules[module_name].__class__ = _CallableModule
