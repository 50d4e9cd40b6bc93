"""Which parameters an attack can move, and how much of an anchor gradient lies there.

"Trainable" here means: the **weight matrices of the linear layers a LoRA attack wraps**
(PEFT's target matching; ``"all-linear"`` = every ``nn.Linear`` except the output layer,
as PEFT expands it). A LoRA update ΔW = s·B·A changes exactly these matrices, and for
any rank r ≥ 1 its first step moves W along s²·(GᵀX Aᵀ)A — a direction inside W's
coordinates. So the trainable-restricted gradient is the coordinate projection

    P g = (∂L/∂W)_{W ∈ targets}           (zeros for embeddings, norms, biases, lm_head)

— the *subspace the attack trains in*, not the rank-r LoRA gradient itself (which at
initialisation is ∂L/∂B = s·Gᵀ X Aᵀ for a random A, see :mod:`grads`). The share of an
anchor gradient's squared norm in that subspace is

    share(a) = ‖P g(a)‖² / ‖g(a)‖²,   reported as the mean over the anchors of each set,

and, when the full-parameter combined direction V is built, ‖P V‖² / ‖V‖².
"""

from __future__ import annotations

from typing import Any

from brittle.errors import BrittleError


def trainable_param_names(model: Any, targets: list[str] | str = "all-linear") -> set[str]:
    """Names (as in ``model.named_parameters()``) of the weights a LoRA on ``targets`` moves."""
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists
    from torch import nn

    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    in_emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if not isinstance(targets, str) and list(targets) == ["all-linear"]:
        targets = "all-linear"
    cfg = None if targets == "all-linear" else LoraConfig(target_modules=list(targets) if not isinstance(targets, str) else targets)
    pname = {id(p): n for n, p in model.named_parameters()}
    names: set[str] = set()
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Linear):
            continue
        if cfg is None:
            hit = mod is not out_emb
        else:
            hit = bool(check_target_module_exists(cfg, name))
        if not hit:
            continue
        if in_emb is not None and mod.weight is getattr(in_emb, "weight", None):
            raise BrittleError(f"LoRA target {name!r} shares its weight with the input embedding (tied); "
                               "a trainable-only score is not defined for it — drop it from the targets")
        names.add(pname[id(mod.weight)])
    if not names:
        raise BrittleError(f"no linear layer matches the trainable targets {targets!r}")
    return names


def direction_share(direction: dict[str, Any], include: set[str]) -> float:
    """‖P V‖² / ‖V‖² for a direction given as ``{param name: tensor}``."""
    tot = sum(float(v.double().pow(2).sum()) for v in direction.values())
    part = sum(float(v.double().pow(2).sum()) for n, v in direction.items() if n in include)
    return part / tot if tot > 0 else float("nan")
