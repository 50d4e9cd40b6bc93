"""Selection transfer (He, Xia & Henderson 2024, §5): benign top-K selections scored with one
model, fine-tuned into another.

:func:`transfer_selections` takes the top-K selections of a finished ``brittle select`` run
(the *source* model, e.g. SmolLM2 with installed alignment) and, as the control, its
random-K; cuts each to the first ``k`` by rank, and fine-tunes the *target* model on them with the same attack recipe that
:func:`~brittle.select.run.compare_selections` uses for the target's own selections (a fresh
adapter on the merged aligned weights, :mod:`brittle.train.recipe`; ``recipe.json`` per
selection), so the rows are directly comparable with the target's top-K and random-K.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brittle.errors import BrittleError
from brittle.select.run import SUMMARY, finetune_on_selections
from brittle.select.selection import Selection, read_selection, write_selection
from brittle.store import read_json


def source_selections(source_select_dir: str | Path) -> list[str]:
    """Names of the source run's selections (``top-<method>``, ``random``, …)."""
    path = Path(source_select_dir) / SUMMARY
    if not path.exists():
        raise BrittleError(f"no finished selection run at {source_select_dir} (missing {SUMMARY})")
    return list(read_json(path)["selections"])


def cut_selection(src: str | Path, dst: str | Path, k: int) -> tuple[Path, int]:
    """Write the first ``k`` examples of selection file ``src`` by rank to ``dst``."""
    exs = sorted(read_selection(src), key=lambda e: e.meta.get("select", {}).get("rank", 0))[:k]
    if not exs:
        raise BrittleError(f"selection file {src} is empty")
    scores = [e.meta.get("select", {}).get("score") for e in exs]
    sel = Selection(Path(src).stem, list(range(len(exs))),
                    None if None in scores else [float(s) for s in scores])
    return write_selection(dst, exs, sel), len(exs)


def transfer_selections(
    source_select_dir: str | Path,
    out_dir: str | Path,
    *,
    model: str,
    adapter: str | None,
    k: int,
    names: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    eval_limit: int | None = None,
    device: str = "auto",
    gen_backend: str = "auto",
    workers: int = 1,
) -> list[dict[str, Any]]:
    """Fine-tune ``model`` (+ ``adapter``) on the source run's selections ``names`` (default:
    every ``top-<method>``; add ``random`` for a control fine-tuned under the same
    conditions), the first ``k`` of each. Rows (selection ``transfer-<name>``, seed, n, ASR
    with CI) go to ``out_dir/results.jsonl`` and ``out_dir/table.json``; resumable.
    ``gen_backend``: hf | vllm | auto, as ``AttackConfig.gen_backend`` (the fine-tuned arms'
    evaluations on one vLLM engine with an adapter per arm). ``workers``: processes splitting
    the arms, as in :func:`~brittle.select.run.finetune_on_selections`."""
    src, out = Path(source_select_dir), Path(out_dir)
    available = source_selections(src)
    names = [n for n in available if n.startswith("top-")] if names is None else list(names)
    missing = [n for n in names if n not in available]
    if missing or not names:
        raise BrittleError(f"{src}: no selection(s) {missing or names} to transfer; it has {available}")
    files = {}
    for name in names:
        files[f"transfer-{name}"] = cut_selection(src / "selections" / f"{name}.jsonl",
                                                  out / "selections" / f"{name}.jsonl", k)
    return finetune_on_selections(files, out, model=model, adapter=adapter, seeds=seeds,
                                  eval_limit=eval_limit, device=device,
                                  attack_overrides={"gen_backend": gen_backend}, workers=workers)
