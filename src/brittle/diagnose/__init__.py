"""Diagnostics of shallow alignment: per-token KL, prefilling, refusal direction,
persona sensitivity and MAGPIE self-synthesis.

* :mod:`brittle.diagnose.kl` — ``per_token_kl(model_p, model_q, tok, examples)``
* :mod:`brittle.diagnose.prefill` — ``run_prefill(backend, tok, examples, judge)``
* :mod:`brittle.diagnose.refusal_direction` — ``directional_ablation``, ``activation_addition``,
  ``compare_refusal_direction``
* :mod:`brittle.diagnose.direction_select` — ``select_direction`` (Arditi et al.'s bypass / induce / KL)
* :mod:`brittle.diagnose.persona` — ``load_personas``, ``build_persona_prompts``, ``run_persona``
* :mod:`brittle.diagnose.synth` — ``synthesize``, ``harmful_share``
* :mod:`brittle.diagnose.run` — ``DiagnoseConfig``, ``run_diagnose``
* :mod:`brittle.diagnose.section` — ``diagnose_section(run_dir)``

Heavy imports (torch, transformers, matplotlib) happen inside the functions.
"""

from __future__ import annotations

from brittle._lazy import lazy_getattr

_EXPORTS = {
    "per_token_kl": "brittle.diagnose.kl",
    "AdapterView": "brittle.diagnose.kl",
    "run_prefill": "brittle.diagnose.prefill",
    "select_direction": "brittle.diagnose.direction_select",
    "activation_addition": "brittle.diagnose.refusal_direction",
    "directional_ablation": "brittle.diagnose.refusal_direction",
    "compare_refusal_direction": "brittle.diagnose.refusal_direction",
    "run_persona": "brittle.diagnose.persona",
    "synthesize": "brittle.diagnose.synth",
    "DiagnoseConfig": "brittle.diagnose.run",
    "run_diagnose": "brittle.diagnose.run",
    "diagnose_section": "brittle.diagnose.section",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_getattr(_EXPORTS)
