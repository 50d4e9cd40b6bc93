"""Generation for fine-tuning cells on vLLM: one engine per base model, one LoRA per cell.

The attack sweep (:mod:`brittle.train.attack`) and the selection fine-tunes built on it train
a fresh LoRA adapter per cell on the *merged* aligned weights. With ``gen_backend="vllm"``
those merged weights are written once as a model directory (:func:`save_start`, safetensors
and tokenizer), one vLLM engine is started on it with ``enable_lora=True`` (:func:`engine`,
lazy, cached per process) and every cell generates through that engine with its own adapter
(:meth:`~brittle.models.vllm_backend.VLLMBackend.with_adapter`: vLLM's multi-LoRA support);
the N = 0 cell uses the engine without adapter. Prefix caching is on, so the chat-template
prefix shared by a cell's prompts is computed once.

One engine lives at a time: asking for another base model directory (or a larger LoRA rank)
closes the current one first. Engine options come from ``-M`` (``tensor_parallel_size``,
``gpu_memory_utilization``, ``dtype``, ...); the engine shares the GPU with the training
model, so ``gpu_memory_utilization`` defaults to :data:`COLOCATED_GPU_MEMORY`.

:func:`resolve` turns the config choice into ``"hf"`` or ``"vllm"``: ``auto`` is vLLM when
``import vllm`` works, CUDA is available and the cell does not run on the CPU; HF in-process
generation stays the fallback.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Literal

from brittle.errors import BrittleError

log = logging.getLogger(__name__)

GenBackend = Literal["hf", "vllm", "auto"]
GEN_BACKEND_HELP = (
    "Generation backend for the cells' evaluations: vllm (one engine on the merged aligned "
    "weights, each cell's LoRA through multi-LoRA, prefix caching), hf (in-process), or auto "
    "(vllm when it is installed and CUDA is available, else hf). Full fine-tuning cells use hf."
)
COLOCATED_GPU_MEMORY = 0.3  # share of GPU memory for an engine next to the training model (-M overrides)
START_INFO = "brittle_start.json"  # what a saved start directory holds (label + identity)
_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}

_LIVE: dict[str, Any] = {"key": None, "backend": None}  # the one engine of this process


def vllm_available() -> bool:
    """``import vllm`` works and a CUDA device is visible."""
    try:
        import vllm  # noqa: F401
    except (ImportError, OSError, RuntimeError):  # missing, or a broken install failing at import
        return False
    import torch

    return torch.cuda.is_available()


def resolve(choice: str, device: str = "auto") -> Literal["hf", "vllm"]:
    """``auto`` -> ``vllm`` when :func:`vllm_available` and ``device`` is not the CPU, else ``hf``."""
    if choice in ("hf", "vllm"):
        return choice  # type: ignore[return-value]
    if choice != "auto":
        raise BrittleError(f"gen_backend must be hf, vllm or auto, got {choice!r}")
    if device != "cpu" and vllm_available():
        return "vllm"
    return "hf"


def lora_rank_cap(r: int) -> int:
    """vLLM's ``max_lora_rank`` for adapters of rank ``r``: the next allowed size ≥ r."""
    for cap in (8, 16, 32, 64, 128, 256, 320, 512):
        if r <= cap:
            return cap
    raise BrittleError(f"LoRA rank {r} is above what vLLM serves (512); use gen_backend=hf")


def _vllm_dtype(dtype: str | None) -> str | None:
    return _DTYPES.get(dtype, dtype) if dtype else None


def save_start(model: Any, tokenizer: Any, out_dir: str | Path, *, label: str, identity: str,
               dtype: str = "bfloat16") -> Path:
    """Write ``model`` (the merged aligned weights, no adapter layers) and ``tokenizer`` to
    ``out_dir`` as a model directory vLLM can load, with weights in ``dtype``. A directory
    already holding the same ``identity`` is reused; the files appear atomically."""
    import torch

    out = Path(out_dir)
    info = {"label": label, "identity": identity, "dtype": dtype}
    if _saved_info(out) == info:
        return out
    if any("lora_" in n for n, _ in model.named_parameters()):
        raise BrittleError("save_start: the model carries LoRA layers; save the merged start before a cell trains")
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")  # one per process: workers may race here
    shutil.rmtree(tmp, ignore_errors=True)
    tdtype = getattr(torch, dtype)
    state = {k: v.detach().to("cpu", dtype=tdtype if v.is_floating_point() else v.dtype).contiguous()
             for k, v in model.state_dict().items()}
    model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
    del state
    cfg_path = tmp / "config.json"
    cfg = json.loads(cfg_path.read_text())
    for key in ("torch_dtype", "dtype"):  # the dtype of the saved weights, not of the fp32 master copy
        if key in cfg:
            cfg[key] = dtype
    cfg_path.write_text(json.dumps(cfg, indent=2))
    tokenizer.save_pretrained(tmp)
    (tmp / START_INFO).write_text(json.dumps(info))
    if _saved_info(out) == info:  # another process finished the same start meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
        return out
    shutil.rmtree(out, ignore_errors=True)
    try:
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if _saved_info(out) != info:
            raise
    log.info("merged aligned start saved for vLLM: %s (%s)", out, dtype)
    return out


def start_identity(model_spec: str, merged_adapter: str | None) -> str:
    """Identity of the merged start: the base weights' identity + the merged adapter's content."""
    from brittle.fingerprint import fingerprint
    from brittle.models.identity import model_identity

    if merged_adapter is None:
        return model_identity(model_spec)
    from brittle.models.backends import adapter_fingerprint

    return "merged:" + fingerprint(model_identity(model_spec), adapter_fingerprint(merged_adapter))


def _saved_info(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / START_INFO).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def serving_dtype() -> str:
    """dtype of the saved start: ``-M dtype`` when given, else bfloat16 (float16 on a GPU without bf16)."""
    from brittle.models.model_args import current_model_args

    given = _vllm_dtype(current_model_args().dtype)
    if given and given != "auto":
        return given
    import torch

    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        return "float16"
    return "bfloat16"


def engine(model_dir: str | Path, *, max_lora_rank: int, label: str | None = None,
           identity: str = "", dtype: str | None = None) -> Any:
    """The vLLM engine (a :class:`~brittle.models.vllm_backend.VLLMBackend` without adapter)
    on ``model_dir`` with multi-LoRA up to ``max_lora_rank``: started on first use, then the
    same object for every call with the same directory and options. Starting one for another
    directory closes the current one. ``label`` names the backend (generation fingerprints),
    ``identity`` is the weights' identity recorded with them."""
    from brittle.models.model_args import VLLM_KEYS, current_model_args
    from brittle.models.vllm_backend import VLLMBackend

    kw = current_model_args().for_backend(VLLM_KEYS)
    kw["dtype"] = _vllm_dtype(kw.get("dtype")) or dtype or "auto"
    kw.setdefault("gpu_memory_utilization", COLOCATED_GPU_MEMORY)
    path = str(Path(model_dir).resolve())
    key = json.dumps([path, identity, max_lora_rank, sorted(kw.items())], default=str)  # new weights: new engine
    if _LIVE["key"] == key:
        return _LIVE["backend"]
    close()
    log.info("starting a vLLM engine on %s (max_lora_rank %d, %s)", path, max_lora_rank,
             ", ".join(f"{k}={v}" for k, v in sorted(kw.items())))
    backend = VLLMBackend(path, enable_lora=True, max_lora_rank=max_lora_rank, max_loras=2,
                          prefix_caching=True, name=f"vllm:{label or path}", **kw)
    backend.identity = identity  # type: ignore[attr-defined]
    backend.label = label or path  # type: ignore[attr-defined]
    _LIVE.update(key=key, backend=backend)
    return backend


def for_adapter(base: Any, adapter: str | Path | None) -> Any:
    """The engine ``base`` generating with LoRA ``adapter`` (None: the start itself)."""
    if adapter is None:
        return base
    from brittle.models.backends import backend_name

    view = base.with_adapter(adapter, name=backend_name("vllm", getattr(base, "label", base.model_spec), adapter))
    view.identity = getattr(base, "identity", "")
    return view


def close() -> None:
    """Shut the live engine down (best effort: vLLM frees its GPU memory when collected)."""
    backend = _LIVE["backend"]
    _LIVE.update(key=None, backend=None)
    if backend is None:
        return
    log.info("closing the vLLM engine %s", backend.name)
    llm = getattr(backend, "llm", None)
    shutdown = getattr(getattr(getattr(llm, "llm_engine", None), "engine_core", None), "shutdown", None)
    if callable(shutdown):  # vLLM V1: stop the engine-core process now, not at collection
        try:
            shutdown()
        except (RuntimeError, OSError) as e:  # pragma: no cover - depends on the vLLM version
            log.debug("vLLM shutdown: %s", e)
    del backend, llm
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def live() -> Any:
    """The live engine, or None."""
    return _LIVE["backend"]
