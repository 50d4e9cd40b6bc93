"""vLLM generation backend (GPU users; optional extra ``brittle[vllm]``).

Same inputs and outputs as :class:`brittle.models.generate.HFBackend`: prompts are rendered
with the tokenizer's chat template (:func:`brittle.models.chat.encode_prompt`, prefill
appended) and passed to vLLM as token ids, so no second BOS is added; replies exclude the
prefill. ``vllm`` is imported lazily, with a clear error when it is missing.

One engine per base model, many adapters: an engine started with ``enable_lora=True``
serves any number of LoRA adapters through vLLM's multi-LoRA support —
:meth:`VLLMBackend.with_adapter` returns a backend on the *same* engine that generates with
another adapter (no reload; ``max_loras`` adapters are resident at once, others are
swapped in). Prefix caching is on, so the shared chat-template prefix (prefilling, judging)
is computed once. Engine options come from ``-M`` (``tensor_parallel_size``,
``gpu_memory_utilization``, ``dtype``, ``revision``, ``trust_remote_code``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brittle.errors import BrittleError
from brittle.models.backend import GenerationConfig, Messages, prefills
from brittle.models.chat import encode_prompt

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "the vllm backend needs vLLM (a CUDA GPU): pip install 'brittle[vllm]' "
    "(or pip install vllm); use the hf backend otherwise"
)


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise BrittleError(INSTALL_HINT) from e
    return vllm


def resolve_model_path(model_spec: str) -> str:
    """A path or hub id vLLM can load: ``embedded:<name>`` -> its cached safetensors dir."""
    if model_spec.startswith("embedded:"):
        from brittle.models.load import EMBEDDED, embedded_safetensors_dir

        name = model_spec.split(":", 1)[1]
        if name not in EMBEDDED:
            raise BrittleError(f"unknown embedded model {name!r}; known: {', '.join(EMBEDDED)}")
        return str(embedded_safetensors_dir(EMBEDDED[name]))
    if model_spec.startswith("tiny:") or model_spec.endswith(".gguf"):
        raise BrittleError(f"{model_spec}: not supported by the vllm backend; use hf")
    return model_spec


class VLLMBackend:
    """Generation with ``vllm.LLM`` (optionally with a LoRA adapter)."""

    # whole_batch: the engine schedules its own batches, so callers pass every prompt at once
    capabilities = frozenset({"generate", "prefill", "whole_batch"})

    def __init__(
        self,
        model_spec: str,
        *,
        adapter: str | Path | None = None,
        dtype: str = "auto",
        name: str | None = None,
        max_lora_rank: int = 64,
        enable_lora: bool | None = None,
        max_loras: int = 8,
        prefix_caching: bool = True,
        **llm_kwargs: Any,
    ):
        vllm = import_vllm()
        self.model_spec = model_spec
        self.name = name or f"vllm:{model_spec}"
        path = resolve_model_path(model_spec)
        kw: dict[str, Any] = {"model": path, "dtype": dtype, "trust_remote_code": False,
                              "enable_prefix_caching": prefix_caching}
        self.lora_enabled = adapter is not None if enable_lora is None else enable_lora
        if self.lora_enabled:
            kw.update(enable_lora=True, max_lora_rank=max_lora_rank, max_loras=max_loras)
        self._lora_ids: dict[str, int] = {}  # adapter dir -> LoRA id, shared by with_adapter views
        self._lora = None
        kw.update(llm_kwargs)
        self.llm = vllm.LLM(**kw)
        self.tokenizer = self.llm.get_tokenizer()
        if adapter is not None:
            self._lora = self._request(adapter)

    def _request(self, adapter: str | Path) -> Any:
        from vllm.lora.request import LoRARequest

        path = str(Path(adapter).resolve())
        lora_id = self._lora_ids.setdefault(path, len(self._lora_ids) + 1)
        return LoRARequest(f"brittle-adapter-{lora_id}", lora_id, path)

    def with_adapter(self, adapter: str | Path, name: str | None = None) -> VLLMBackend:
        """A backend on the same engine that generates with LoRA ``adapter`` (multi-LoRA)."""
        import copy

        if not self.lora_enabled:
            raise BrittleError("this vLLM engine was started without LoRA support: "
                               "VLLMBackend(..., enable_lora=True) to serve several adapters")
        view = copy.copy(self)  # shares llm, tokenizer and the adapter-id table
        view._lora = self._request(adapter)
        if name is None:
            from brittle.models.backends import backend_name

            name = backend_name("vllm", self.model_spec, adapter)
        view.name = name
        return view

    def __repr__(self) -> str:
        return f"VLLMBackend(name={self.name!r})"

    def generate(
        self,
        conversations: Sequence[Messages],
        *,
        prefill: Sequence[str | None] | None = None,
        config: GenerationConfig = GenerationConfig(),
    ) -> list[str]:
        from vllm import SamplingParams

        pre = prefills(prefill, len(conversations))
        prompts = [{"prompt_token_ids": encode_prompt(self.tokenizer, list(m), p)} for m, p in zip(conversations, pre)]
        params = SamplingParams(
            max_tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_p=config.top_p if config.temperature > 0 else 1.0,
            seed=config.seed,
            skip_special_tokens=True,
        )
        outs = self.llm.generate(prompts, params, lora_request=self._lora)
        return [o.outputs[0].text for o in outs]
