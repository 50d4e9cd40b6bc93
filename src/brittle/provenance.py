"""The reproducibility record written into every ``metrics.json`` / run directory.

:func:`provenance` answers "what exactly produced these numbers": brittle and library
versions (torch, transformers, peft, trl, accelerate, vllm when installed), Python, the
device, the model spec (URL credentials redacted) with its weights identity
(:func:`brittle.models.identity.identity_details`: the same identity that keys every
cache), the adapter's content fingerprint and the sha256 of the chat template.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path
from typing import Any

LIBRARIES = ("torch", "transformers", "peft", "trl", "accelerate", "safetensors", "tokenizers", "vllm")


def library_versions() -> dict[str, str | None]:
    """Installed versions (None: not installed) without importing the libraries."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def device_info(device: str | None = None) -> dict[str, Any]:
    """The requested device and what torch sees (torch is only asked if already imported)."""
    info: dict[str, Any] = {"requested": device, "machine": platform.machine(),
                            "system": platform.system()}
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            cuda = bool(torch.cuda.is_available())
            info["cuda_available"] = cuda
            info["torch_cuda"] = getattr(torch.version, "cuda", None)
            if cuda:
                info["gpu"] = torch.cuda.get_device_name(0)
                info["gpu_count"] = torch.cuda.device_count()
            info["torch_threads"] = torch.get_num_threads()
        except Exception as e:  # noqa: BLE001 - never let the record break a finished run
            info["error"] = f"{type(e).__name__}: {e}"
    return info


def chat_template_sha256(spec: str | None = None, tokenizer: Any = None) -> str | None:
    """sha256 of the chat template: the loaded tokenizer's, else read from a model directory
    (``chat_template.jinja`` or ``tokenizer_config.json``), else the tiny model's; None when
    unknown without loading the model (e.g. an endpoint)."""
    template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    if template is None and spec:
        template = _template_from_spec(spec)
    if template is None:
        return None
    if not isinstance(template, str):  # several named templates
        template = json.dumps(template, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(template.encode("utf-8")).hexdigest()


def _template_from_spec(spec: str) -> Any:
    spec = spec.removeprefix("hf:").removeprefix("vllm:")
    if spec.startswith("tiny:"):
        from brittle.models.tiny import CHATML_TEMPLATE

        return CHATML_TEMPLATE
    try:
        path = Path(spec).expanduser()
        if not path.is_dir():
            return None
        jinja = path / "chat_template.jinja"
        if jinja.is_file():
            return jinja.read_text(encoding="utf-8")
        cfg = path / "tokenizer_config.json"
        if cfg.is_file():
            return json.loads(cfg.read_text(encoding="utf-8")).get("chat_template")
    except (OSError, ValueError):
        return None
    return None


def provenance(model_spec: str | None, tokenizer: Any = None, *, device: str | None = None,
               adapter: str | Path | None = None) -> dict[str, Any]:
    """The reproducibility record (see module docstring); never raises."""
    import brittle
    from brittle.models.identity import identity_details
    from brittle.redaction import redact_url

    rec: dict[str, Any] = {
        "brittle": brittle.__version__,
        "python": platform.python_version(),
        "libraries": library_versions(),
        "device": device_info(device),
    }
    if model_spec:
        rec["model"] = {"spec": redact_url(str(model_spec)), **identity_details(str(model_spec))}
    if adapter:
        try:
            from brittle.models.backends import adapter_fingerprint

            rec["adapter"] = {"path": Path(adapter).name, "fingerprint": adapter_fingerprint(adapter)}
        except Exception as e:  # noqa: BLE001 - a missing adapter is reported by the stage itself
            rec["adapter"] = {"path": Path(adapter).name, "error": type(e).__name__}
    rec["chat_template_sha256"] = chat_template_sha256(model_spec, tokenizer)
    return rec
