"""Training: supervised fine-tuning (LoRA or full), installing alignment, attack sweeps.

* :mod:`brittle.train.sft` — ``FinetuneConfig``, ``finetune(cfg, examples) -> adapter dir``
* :mod:`brittle.train.align` — ``install_alignment(model_spec, ...) -> cached adapter dir``
* :mod:`brittle.train.attack_data` — ``build_attack_data(kind, n, seed, ...)`` (harmful
  demonstrations from one unaligned source model), ``write_attack_data`` (JSONL + manifest)
* :mod:`brittle.train.attack` — ``AttackConfig``, ``run_attack(cfg) -> DataFrame``,
  ``attack_section(run_dir)``
* :mod:`brittle.train.recipe` — the recorded attack recipe (``recipe.json``, report tables)

Heavy imports (torch, transformers, peft) happen inside the functions.
"""

from __future__ import annotations

from brittle._lazy import lazy_getattr

_EXPORTS = {
    "FinetuneConfig": "brittle.train.sft",
    "finetune": "brittle.train.sft",
    "install_alignment": "brittle.train.align",
    "build_attack_data": "brittle.train.attack_data",
    "write_attack_data": "brittle.train.attack_data",
    "AttackConfig": "brittle.train.attack",
    "run_attack": "brittle.train.attack",
    "attack_section": "brittle.train.attack",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_getattr(_EXPORTS)
