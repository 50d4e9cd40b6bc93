"""The attack recipe as one recorded object: what is trained, from which weights, with which
hyper-parameters, on which demonstrations (issue 13).

Every attack / selection / transfer run trains the same way on every model: the *merged*
aligned weights (an installed safety adapter merged with ``merge_and_unload``, or the vendor
weights as loaded) get a **fresh** adapter (or full fine-tuning) with the preset's
hyper-parameters. The run writes ``recipe.json`` and each cell records its optimiser steps and
trainable-parameter count, so a report section can state the recipe next to its numbers.

The starting weights are named by one string, :func:`start_label` — ``SPEC`` or
``SPEC merged:ADAPTER_DIR`` — used as ``FinetuneConfig.model``, so the ``finetune_config.yaml``
of an installed-alignment run and of a vendor run differ only in ``model``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

RECIPE = "recipe.json"
MERGED = " merged:"


def start_label(model: str, merged_adapter: str | Path | None) -> str:
    """``model`` or ``"model merged:ADAPTER"``: the weights a fine-tune starts from."""
    return model if merged_adapter is None else f"{model}{MERGED}{merged_adapter}"


def split_start(label: str) -> tuple[str, str | None]:
    """Inverse of :func:`start_label`: ``(model spec, merged adapter or None)``."""
    model, sep, adapter = label.partition(MERGED)
    return model, (adapter if sep else None)


def recipe_record(fcfg: Any, *, model: str, merged_adapter: str | None, bf16: bool = False,
                  demonstrations: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recipe of a run from one cell's resolved ``FinetuneConfig`` and whether it trained
    under bf16 autocast (JSON-ready)."""
    # the adapter is shown in shared pages: relative or ~/.cache/…, never the machine's path
    from brittle.report.format import display_path

    lora = fcfg.method == "lora"
    return {
        "method": "LoRA (fresh adapter)" if lora else "full fine-tuning",
        "preset": fcfg.preset,
        "from_weights": (f"{model} + installed alignment adapter merged into the weights "
                         f"({display_path(merged_adapter)})" if merged_adapter else f"{model} (weights as loaded)"),
        "lora_r": fcfg.lora_r if lora else None,
        "lora_alpha": fcfg.lora_alpha if lora else None,
        "lora_dropout": fcfg.lora_dropout if lora else None,
        "lora_targets": fcfg.lora_targets if lora else None,
        "lr": fcfg.lr,
        "epochs": fcfg.epochs,
        "max_steps": fcfg.max_steps,
        "batch_size": fcfg.batch_size,
        "grad_accum": fcfg.grad_accum,
        "max_length": fcfg.max_length,
        "scheduler": fcfg.scheduler,
        "precision": "bf16 autocast over fp32 master weights" if bf16 else "fp32",
        "demonstrations": demonstrations,
    }


def recipe_rows(recipe: dict[str, Any], cells: list[dict[str, Any]]) -> list[dict[str, str]]:
    """(field, value) rows: the recipe plus steps and trainable parameters per cell."""
    names = {"method": "method", "preset": "preset", "from_weights": "trained from",
             "lora_r": "adapter rank r", "lora_alpha": "adapter alpha", "lora_dropout": "adapter dropout",
             "lora_targets": "adapter targets", "lr": "learning rate", "epochs": "epochs",
             "max_steps": "max steps", "batch_size": "batch size", "grad_accum": "gradient accumulation",
             "max_length": "max tokens", "scheduler": "lr schedule", "precision": "precision"}
    rows = [{"field": label, "value": _fmt(recipe.get(k))} for k, label in names.items()
            if recipe.get(k) is not None]
    trained = [c for c in cells if c.get("n", 0) > 0 and c.get("steps") is not None]
    if trained:
        rows.append({"field": "optimiser steps (per cell)",
                     "value": ", ".join(f"{c['key']}: {c['steps']}" for c in trained)})
        params = sorted({(c.get("trainable_params"), c.get("total_params")) for c in trained} - {(None, None)},
                        key=str)
        rows.extend({"field": "trainable parameters",
                     "value": f"{t:,} of {tot:,} ({t / tot:.2%})" if t and tot else _fmt(t)} for t, tot in params)
    demo = recipe.get("demonstrations")
    if demo:
        rows.append({"field": "demonstrations", "value": _fmt(demo)})
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, dict):
        return "; ".join(f"{k}={_fmt(x)}" for k, x in v.items() if x is not None)
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def recipe_html(run_dir: str | Path) -> str:
    """``<h3>Recipe</h3>`` + table for an attack run dir (``recipe.json`` + ``cells.jsonl``);
    empty when the run has no recipe yet (older run dirs)."""
    from brittle.report.html import table
    from brittle.store import JsonlStore, read_json

    run_dir = Path(run_dir)
    if not (run_dir / RECIPE).exists():
        return ""
    cells = JsonlStore(run_dir / "cells.jsonl", key="key").records() if (run_dir / "cells.jsonl").exists() else []
    return "<h3>Fine-tuning recipe</h3>" + table(recipe_rows(read_json(run_dir / RECIPE), cells))


def compare_recipe_html(compare_dir: str | Path) -> str:
    """One recipe table for a set of attack runs (the selection comparison / transfer: one run
    per selection under ``compare_dir``), with the steps of each; a warning when the runs did
    not all use the same recipe."""
    from brittle.report.html import table
    from brittle.store import JsonlStore, read_json

    runs = sorted(d for d in Path(compare_dir).iterdir() if (d / RECIPE).exists()) if Path(compare_dir).is_dir() else []
    if not runs:
        return ""
    recipes = [{k: v for k, v in read_json(d / RECIPE).items() if k != "demonstrations"} for d in runs]
    cells = []
    for d in runs:
        if (d / "cells.jsonl").exists():
            cells += [{**c, "key": f"{d.name} (seed {c['seed']})"} for c in JsonlStore(d / "cells.jsonl", key="key").records()]
    note = "" if all(r == recipes[0] for r in recipes) else (
        '<p class="note">The selections were not all fine-tuned with the same recipe: compare with care.</p>')
    return "<h3>Fine-tuning recipe (every selection)</h3>" + note + table(recipe_rows(recipes[0], cells))
