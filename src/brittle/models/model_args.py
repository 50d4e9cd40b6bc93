"""Model arguments: one channel (``-M key=value,...``) for loading / serving options.

Parsed once by the pure :func:`parse_model_args` into a typed :class:`ModelArgs`, then
each backend takes the keys it understands:

==========================  =====================================================
key                         used by
==========================  =====================================================
dtype                       hf (``from_pretrained(dtype=)``), vllm (``LLM(dtype=)``)
device_map                  hf: accelerate placement (``"auto"``, ``"balanced"``,
                            ``"sequential"``, ``"cpu"``, ``"cuda:1"`` or a JSON map
                            ``{"": "cpu"}``); the model is then never ``.to(device)``-ed
revision                    hf, vllm (hub branch / tag / commit)
max_memory                  hf with device_map (``0:70GiB;1:70GiB;cpu:200GiB`` or JSON)
allow_pickle                hf (``.bin`` weights; off by default)
trust_remote_code           hf, vllm (off by default)
tensor_parallel_size        vllm
gpu_memory_utilization      vllm (0 < x ≤ 1)
max_concurrency             openai (requests in flight)
extra_body                  openai (JSON object merged into every request)
==========================  =====================================================

Values with commas (JSON objects) are allowed: commas inside ``{}``, ``[]`` or quotes do
not split. The CLI sets the parsed arguments for the command being run
(:func:`use_model_args`, a context variable); :func:`brittle.models.load.load_model` and
:func:`brittle.models.backends.make_backend` read them when no explicit ``model_args``
is passed, so every stage that loads a model gets them without new plumbing.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from brittle.errors import BrittleError

HF_KEYS = ("dtype", "device_map", "revision", "max_memory", "allow_pickle", "trust_remote_code")
VLLM_KEYS = ("dtype", "revision", "trust_remote_code", "tensor_parallel_size", "gpu_memory_utilization")
OPENAI_KEYS = ("max_concurrency", "extra_body")


class ModelArgs(BaseModel):
    """Typed model arguments (all optional; None = the backend's default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dtype: str | None = Field(None, description="auto | float32 | bfloat16 | float16 (hf, vllm).")
    device_map: str | dict[str, int | str] | None = Field(
        None, description="accelerate device map: auto | balanced | sequential | cpu | cuda:N | JSON map (hf).")
    revision: str | None = Field(None, description="Hub revision: branch, tag or commit (hf, vllm).")
    max_memory: dict[str, str] | None = Field(
        None, description="Per-device memory cap with device_map: '0:70GiB;cpu:200GiB' or JSON (hf).")
    allow_pickle: bool | None = Field(None, description="Allow pickle (.bin/.pt) weights (hf).")
    trust_remote_code: bool | None = Field(None, description="Run the model repo's own code (hf, vllm).")
    tensor_parallel_size: int | None = Field(None, ge=1, description="GPUs per vLLM engine (vllm).")
    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="Share of GPU memory vLLM may use (vllm).")
    max_concurrency: int | None = Field(None, ge=1, description="Requests in flight (openai).")
    extra_body: dict[str, Any] | None = Field(None, description="JSON merged into each request (openai).")

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str | None) -> str | None:
        ok = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
        if v is not None and v not in ok:
            raise ValueError(f"dtype must be one of {', '.join(ok)}")
        return v

    @field_validator("max_memory", mode="before")
    @classmethod
    def _max_memory(cls, v: Any) -> Any:
        """``0:70GiB;1:70GiB;cpu:200GiB`` -> {"0": "70GiB", "1": "70GiB", "cpu": "200GiB"}."""
        if isinstance(v, str) and not v.lstrip().startswith("{"):
            out = {}
            for part in filter(None, (p.strip() for p in v.split(";"))):
                dev, sep, mem = part.partition(":")
                if not sep or not dev or not mem:
                    raise ValueError(f"max_memory entries are DEVICE:SIZE, got {part!r}")
                out[dev.strip()] = mem.strip()
            return out
        return _json(v)

    @field_validator("device_map", "extra_body", mode="before")
    @classmethod
    def _maybe_json(cls, v: Any) -> Any:
        return _json(v)

    def given(self) -> dict[str, Any]:
        """The keys that were set."""
        return self.model_dump(exclude_none=True)

    def for_backend(self, keys: tuple[str, ...]) -> dict[str, Any]:
        return {k: v for k, v in self.given().items() if k in keys}

    def ignored_by(self, keys: tuple[str, ...]) -> list[str]:
        """Keys set here that a backend understanding ``keys`` will not use."""
        return sorted(k for k in self.given() if k not in keys)


def _json(v: Any) -> Any:
    if isinstance(v, str) and v.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(v)
        except json.JSONDecodeError as e:
            raise ValueError(f"invalid JSON ({e.msg} at column {e.colno})") from None
    return v


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets/braces and quotes."""
    parts, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def parse_model_args(text: str | None) -> ModelArgs:
    """``"dtype=bfloat16,device_map=auto,max_memory=0:70GiB;cpu:100GiB"`` -> ModelArgs.

    Unknown keys, repeated keys and bad values raise one-line :class:`BrittleError`s.
    """
    valid = list(ModelArgs.model_fields)
    data: dict[str, str] = {}
    for item in split_top_level(text or ""):
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise BrittleError(f"model args are key=value pairs separated by commas, got {item!r}")
        if key not in valid:
            raise BrittleError(f"unknown model arg {key!r}; valid: {', '.join(valid)}")
        if key in data:
            raise BrittleError(f"model arg {key!r} given twice")
        data[key] = value.strip()
    try:
        return ModelArgs(**data)
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        raise BrittleError(f"invalid model args: {msgs}") from None


_CURRENT: contextvars.ContextVar[ModelArgs | None] = contextvars.ContextVar("brittle_model_args", default=None)


def current_model_args() -> ModelArgs:
    """The model arguments of the running command (empty when none were given)."""
    return _CURRENT.get() or ModelArgs()


def set_model_args(args: ModelArgs | None) -> None:
    """Set the running command's model arguments (the CLI option does this once)."""
    _CURRENT.set(args)


@contextlib.contextmanager
def use_model_args(args: ModelArgs | str | None) -> Iterator[ModelArgs]:
    """``with use_model_args("device_map=auto"): run_select(cfg)`` — Python API equivalent of -M."""
    parsed = args if isinstance(args, ModelArgs) else parse_model_args(args)
    token = _CURRENT.set(parsed)
    try:
        yield parsed
    finally:
        _CURRENT.reset(token)
