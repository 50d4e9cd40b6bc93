"""vLLM generation backend (GPU users; optional extra ``brittle[vllm]``).

Same inputs and outputs as :class:`brittle.models.generate.HFBackend`: prompts are rendered
with the tokenizer's chat template (:func:`brittle.models.chat.encode_prompt`, prefill
appended) and passed to vLLM as token ids, so no second BOS is added; replies exclude the
prefill. ``vllm`` is imported lazily, with a clear error when it is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brittle.errors import BrittleError
from brittle.models.backend import GenerationConfig, Messages
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

    capabilities = frozenset({"generate", "prefill"})

    def __init__(
        self,
        model_spec: str,
        *,
        adapter: str | Path | None = None,
        dtype: str = "auto",
        name: str | None = None,
        max_lora_rank: int = 64,
        **llm_kwargs: Any,
    ):
        vllm = import_vllm()
        self.model_spec = model_spec
        self.name = name or f"vllm:{model_spec}"
        path = resolve_model_path(model_spec)
        kw: dict[str, Any] = {"model": path, "dtype": dtype, "trust_remote_code": False}
        self._lora = None
        if adapter is not None:
            from vllm.lora.request import LoRARequest

            kw.update(enable_lora=True, max_lora_rank=max_lora_rank)
            self._lora = LoRARequest("brittle-adapter", 1, str(adapter))
        kw.update(llm_kwargs)
        self.llm = vllm.LLM(**kw)
        self.tokenizer = self.llm.get_tokenizer()

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

        if prefill is not None and len(prefill) != len(conversations):
            raise BrittleError(
                f"prefill has {len(prefill)} entries for {len(conversations)} conversations"
            )
        prompts = [
            {"prompt_token_ids": encode_prompt(self.tokenizer, list(m), prefill[i] if prefill else None)}
            for i, m in enumerate(conversations)
        ]
        params = SamplingParams(
            max_tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_p=config.top_p if config.temperature > 0 else 1.0,
            seed=config.seed,
            skip_special_tokens=True,
        )
        outs = self.llm.generate(prompts, params, lora_request=self._lora)
        return [o.outputs[0].text for o in outs]
