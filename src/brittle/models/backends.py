"""Build a generation backend from a spec string, and cache its generations on disk.

Specs:

* ``hf:<model spec>`` or a bare model spec (``embedded:smollm2-135m``, ``tiny:llama``, a
  local directory, a ``.gguf`` file, a hub id): :class:`~brittle.models.generate.HFBackend`.
* ``vllm:<model spec>``: :class:`~brittle.models.vllm_backend.VLLMBackend` (needs vLLM).
* ``openai:<model>@<base_url>`` with an explicit ``http(s)://`` base URL (OpenAI itself is
  ``openai:gpt-4o-mini@https://api.openai.com/v1``; a bare model or a host without a scheme
  is an error, never a silent fallback to the public API):
  :class:`~brittle.models.openai_backend.OpenAIBackend`; the key comes from
  ``$OPENAI_API_KEY`` or from the variable named by ``$BRITTLE_API_KEY_ENV``.

A backend's ``name`` includes the adapter fingerprint when an adapter is applied, and its
``identity`` (:func:`brittle.models.identity.model_identity`: the weights behind the spec)
is part of every :class:`CachedBackend` key, so caches never mix two models — not even a
model whose weights were replaced behind an unchanged spec.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from brittle.errors import BrittleError
from brittle.fingerprint import file_sha256, fingerprint
from brittle.models.backend import Backend, GenerationConfig, Messages, prefills
from brittle.models.model_args import OPENAI_KEYS, VLLM_KEYS, ModelArgs, current_model_args
from brittle.store import JsonlStore

log = logging.getLogger(__name__)


def adapter_fingerprint(adapter: str | Path) -> str:
    """fingerprint(adapter_config.json content, sha256 of each adapter weight file)."""
    adapter = Path(adapter)
    cfg_path = adapter / "adapter_config.json"
    if not cfg_path.exists():
        raise BrittleError(f"{adapter}: not a PEFT adapter directory (no adapter_config.json)")
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    weights = sorted(adapter.glob("adapter_model*.safetensors")) or sorted(
        adapter.glob("adapter_model*")
    )
    if not weights:
        raise BrittleError(f"{adapter}: no adapter weights (adapter_model.safetensors)")
    return fingerprint(cfg, [(w.name, file_sha256(w)) for w in weights])


def backend_name(kind: str, model_spec: str, adapter: str | Path | None = None) -> str:
    """``hf:embedded:smollm2-135m`` or ``hf:embedded:smollm2-135m+adapter:<fingerprint>``."""
    name = f"{kind}:{model_spec}"
    return name + (f"+adapter:{adapter_fingerprint(adapter)}" if adapter is not None else "")


def parse_openai_spec(rest: str) -> tuple[str, str]:
    """``<model>@<base_url>`` -> (model, base_url). Model names may contain ``:`` or ``/``;
    the base URL starts at the first ``@http://`` or ``@https://`` and is required: a bare
    model name or an endpoint without a scheme is an error (never the public API by default)."""
    import re

    from brittle.models.openai_backend import DEFAULT_BASE_URL
    from brittle.redaction import redact_url

    m = re.search(r"@https?://", rest, flags=re.IGNORECASE)
    if m is None:
        if "@" in rest:
            model, host = rest.rsplit("@", 1)
            raise BrittleError(
                f"openai spec {redact_url('openai:' + rest)!r}: endpoint {redact_url(host)!r} has no "
                f"scheme; write openai:{model}@http://{redact_url(host)} (or https://)")
        raise BrittleError(
            f"openai spec {redact_url('openai:' + rest)!r} has no endpoint; write "
            f"openai:<model>@http(s)://host[:port]/v1 (OpenAI itself: "
            f"openai:{redact_url(rest) or '<model>'}@{DEFAULT_BASE_URL})")
    model, base = rest[: m.start()], rest[m.start() + 1 :]
    if not model:
        raise BrittleError("openai spec needs a model name: openai:<model>@<base_url>")
    return model, base


def validate_spec(spec: str) -> str:
    """Check what can be checked about a backend spec without loading anything (an
    ``openai:`` spec needs a model and an explicit http(s):// endpoint); returns ``spec``."""
    if isinstance(spec, str) and spec.startswith("openai:"):
        from brittle.models.openai_backend import chat_completions_url

        _, base = parse_openai_spec(spec.split(":", 1)[1])
        chat_completions_url(base)
    return spec


def make_backend(
    spec: str,
    *,
    model: Any = None,
    tokenizer: Any = None,
    adapter: str | Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
    cache_dir: str | Path | None = None,
    model_args: ModelArgs | None = None,
) -> Backend:
    """Backend for ``spec`` (see module docstring).

    HF only: pass an already loaded ``model`` + ``tokenizer`` to skip loading (``spec`` is
    then just the name). ``adapter`` (a PEFT dir) is applied on top unless ``model`` is
    already a PEFT model, in which case it is assumed to carry that adapter and is used for
    the name only. ``cache_dir``: wrap in :class:`CachedBackend` writing
    ``cache_dir/generations.jsonl`` (generated text lands there: use the run dir).
    ``model_args`` (default: the running command's ``-M``) go to the backend that
    understands each key (:mod:`brittle.models.model_args`); the others are logged.
    """
    backend: Backend
    ma = model_args if model_args is not None else current_model_args()
    if spec.startswith("openai:"):
        from brittle.models.openai_backend import OpenAIBackend

        if adapter is not None:
            raise BrittleError("adapters cannot be applied to an openai endpoint")
        name, base_url = parse_openai_spec(spec.split(":", 1)[1])
        key_env = os.environ.get("BRITTLE_API_KEY_ENV") or "OPENAI_API_KEY"
        _log_ignored(ma, OPENAI_KEYS, "openai")
        backend = OpenAIBackend(name, base_url, api_key_env=key_env, **ma.for_backend(OPENAI_KEYS))
        model_spec = spec
    elif spec.startswith("vllm:"):
        from brittle.models.vllm_backend import VLLMBackend

        model_spec = spec.split(":", 1)[1]
        _log_ignored(ma, VLLM_KEYS, "vllm")
        kw = ma.for_backend(VLLM_KEYS)
        kw.setdefault("dtype", dtype)
        backend = VLLMBackend(
            model_spec, adapter=adapter, name=backend_name("vllm", model_spec, adapter), **kw
        )
    else:
        from brittle.models.generate import HFBackend

        model_spec = spec.removeprefix("hf:")
        if model is None:
            from brittle.models.load import load_model

            model, tokenizer = load_model(model_spec, dtype=dtype, device=device, adapter=adapter,
                                          merge=True, model_args=ma)
        else:
            if tokenizer is None:
                raise BrittleError("make_backend(model=...) also needs tokenizer=...")
            if adapter is not None and not _is_peft(model):
                from brittle.models.load import apply_adapter

                model = apply_adapter(model, adapter).eval()
        backend = HFBackend(model, tokenizer, backend_name("hf", model_spec, adapter))
    from brittle.models.identity import model_identity

    backend.identity = model_identity(model_spec)  # type: ignore[attr-defined]
    if cache_dir is not None:
        backend = CachedBackend(backend, Path(cache_dir) / "generations.jsonl")
    return backend


def _log_ignored(ma: ModelArgs, keys: tuple[str, ...], backend: str) -> None:
    if ma.ignored_by(keys):
        log.info("model args %s are not used by the %s backend", ma.ignored_by(keys), backend)


def _is_peft(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


def generation_key(
    backend_name: str, messages: Messages, prefill: str | None, config: GenerationConfig
) -> str:
    """sha256 over (backend name, messages, prefill, generation settings). ``batch_size``
    is left out: it changes speed, not what is asked for."""
    settings = {k: v for k, v in asdict(config).items() if k != "batch_size"}
    return fingerprint(backend_name, list(messages), prefill, settings, length=64)


class CachedBackend:
    """Wraps a backend; generations are cached in a JSONL file keyed by
    :func:`generation_key`, so a re-run pays only for what changed.

    Missing items are generated in chunks of ``chunk_size`` (roughly length-sorted) and
    appended after each chunk, so an interrupted run resumes where it stopped. Identical
    requests within a call are generated once (for several samples, vary the seed).
    Other attributes (``token_logprobs``, ``choice_logprobs``, ...) pass through uncached.
    """

    def __init__(self, backend: Backend, path: str | Path, *, chunk_size: int = 256):
        self.inner = backend
        self.path = Path(path)
        self.chunk_size = chunk_size
        self.store = JsonlStore(self.path, key="key")
        self.name = backend.name
        self.identity = getattr(backend, "identity", "") or ""
        # the cache key names the weights too: replaced weights never hit old entries
        self._key_name = self.name + (f"#{self.identity}" if self.identity else "")
        self.capabilities = backend.capabilities
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"CachedBackend({self.inner!r}, path={str(self.path)!r})"

    def __getattr__(self, attr: str) -> Any:
        if attr == "inner":  # not yet set (e.g. during unpickling)
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def generate(
        self,
        conversations: Sequence[Messages],
        *,
        prefill: Sequence[str | None] | None = None,
        config: GenerationConfig = GenerationConfig(),
    ) -> list[str]:
        pre = prefills(prefill, len(conversations))
        keys = [
            generation_key(self._key_name, list(m), p, config) for m, p in zip(conversations, pre)
        ]
        cached = {r["key"]: r["text"] for r in self.store.records()}
        todo: dict[str, int] = {}  # key -> first index asking for it
        for i, k in enumerate(keys):
            if k not in cached and k not in todo:
                todo[k] = i
        self.hits += sum(k in cached for k in keys)
        self.misses += len(todo)
        size = lambda i: sum(len(m["content"]) for m in conversations[i]) + len(pre[i] or "")
        order = sorted(todo.values(), key=size, reverse=True)
        for start in range(0, len(order), self.chunk_size):
            chunk = order[start : start + self.chunk_size]
            texts = self.inner.generate(
                [conversations[i] for i in chunk],
                prefill=[pre[i] for i in chunk] if prefill is not None else None,
                config=config,
            )
            recs = [{"key": keys[i], "backend": self.name, "text": t} for i, t in zip(chunk, texts)]
            self.store.append(recs)
            cached.update((r["key"], r["text"]) for r in recs)
        return [cached[k] for k in keys]
