"""Any OpenAI-compatible ``/v1/chat/completions`` endpoint (OpenAI, vLLM serve, llama.cpp
server, Ollama, LiteLLM, ...).

* Requests run on a bounded thread pool (``max_concurrency`` in flight at most).
* Retries with exponential backoff and jitter on 429, 5xx, timeouts and connection errors
  (``Retry-After`` is honoured when the server sends it, capped at ``max_backoff``):
  wait_k = min(max_backoff, backoff * 2**k) * U(0.5, 1.5).
* The API key is read from the environment variable ``api_key_env`` at call time and
  sent only in the ``Authorization`` header; it is never stored on the object, logged or
  written. With no key set, no header is sent (local servers usually need none).
* Credentials inside the base URL (``http://user:pw@host/v1``) are sent as HTTP basic
  auth and appear nowhere else: the backend's ``name``, ``base_url``, ``repr`` and error
  messages carry the URL through :func:`brittle.redaction.redact_url`.
* ``timeout`` (seconds per request) and ``max_retries`` default to :data:`HTTP_DEFAULTS`,
  which the CLI's ``--request-timeout`` / ``--max-retries`` (and ``EvalConfig``) set.
* A reply's ``content`` may be a string, ``null`` (an empty reply, or the ``refusal``
  text when the server sends one) or a list of text parts (joined); anything else is a
  clear error naming the endpoint.
* Prefill (best effort): the prefill is sent as a trailing assistant message. Support
  varies by server: some continue it (e.g. vLLM with ``extra_body={"continue_final_message":
  True, "add_generation_prompt": False}``), some ignore or reject it. If the server echoes
  the prefill at the start of its reply, it is stripped so the reply excludes it.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote, urlparse, urlunparse

from brittle.errors import BrittleError
from brittle.models.backend import GenerationConfig, Messages, prefills
from brittle.redaction import redact_url

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
# per-request timeout (s) and retries of every OpenAIBackend built without explicit values
HTTP_DEFAULTS: dict[str, float | int] = {"timeout": 60.0, "max_retries": 4}


def set_http_defaults(timeout: float | None = None, max_retries: int | None = None) -> None:
    """Set :data:`HTTP_DEFAULTS` (``None`` keeps a value); validated here, before any request."""
    if timeout is not None:
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
            raise BrittleError(f"request timeout must be a positive number of seconds, got {timeout!r}")
        HTTP_DEFAULTS["timeout"] = float(timeout)
    if max_retries is not None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise BrittleError(f"max retries must be an integer >= 0, got {max_retries!r}")
        HTTP_DEFAULTS["max_retries"] = max_retries


class _Credentials:
    """User and password from a base URL; never shown by repr/str/vars (it has no __dict__)."""

    __slots__ = ("_pair",)

    def __init__(self, user: str, password: str) -> None:
        self._pair = (user, password)

    def __repr__(self) -> str:
        return "<credentials redacted>"

    __str__ = __repr__

    def auth(self) -> tuple[str, str]:
        return self._pair


def split_credentials(base_url: str) -> tuple[str, _Credentials | None]:
    """``http://u:p@h/v1`` -> (``http://h/v1``, credentials); URLs without user info unchanged."""
    parsed = urlparse(base_url)
    if parsed.username is None and parsed.password is None:
        return base_url, None
    host = parsed.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{parsed.port}" if parsed.port else "")
    clean = urlunparse(parsed._replace(netloc=netloc))
    return clean, _Credentials(unquote(parsed.username or ""), unquote(parsed.password or ""))


def reply_text(message: Any, where: str) -> str:
    """The text of a chat-completion ``message``: a string, ``null`` (-> the ``refusal``
    string if any, else ""), or a list of text parts (``{"type": "text", "text": …}`` or
    plain strings, joined); anything else raises a BrittleError naming ``where``."""
    if not isinstance(message, dict):
        raise BrittleError(f"{where}: malformed completion response (message is {type(message).__name__})")
    content = message.get("content")
    if isinstance(content, str):
        return content
    if content is None:
        refusal = message.get("refusal")
        return refusal if isinstance(refusal, str) else ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") in ("text", "output_text") \
                    and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, dict) and part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
                parts.append(part["refusal"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BrittleError(f"{where}: reply content has a non-text part ({kind!r}); "
                                   "only text parts are supported")
        return "".join(parts)
    raise BrittleError(f"{where}: reply content must be a string or a list of text parts, "
                       f"got {type(content).__name__}")


def chat_completions_url(base_url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1/chat/completions``; a base URL that
    already has a path (``.../v1``) gets ``/chat/completions`` appended, like the OpenAI SDK."""
    base = base_url.rstrip("/")
    try:
        parsed = urlparse(base)
        parsed.port  # noqa: B018 - raises ValueError on a non-numeric port
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BrittleError(f"base URL must be http(s)://host[:port][/path], got {redact_url(base_url)!r}")
    if not parsed.path:
        base += "/v1"
    return base + "/chat/completions"


def _logsumexp(values: list[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


class OpenAIBackend:
    """Chat completions over HTTP with a bounded pool, retries and timeouts."""

    capabilities = frozenset({"generate", "prefill", "choice_logprobs"})  # prefill: best effort

    def __init__(
        self,
        model: str,
        base_url: str = DEFAULT_BASE_URL,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout: float | None = None,
        max_retries: int | None = None,
        *,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        extra_body: dict[str, Any] | None = None,
        name: str | None = None,
    ):
        if max_concurrency < 1:
            raise BrittleError("max_concurrency must be >= 1")
        self.model = model
        chat_completions_url(base_url)  # validates the URL before it is split
        clean, self._auth = split_credentials(base_url)
        self.url = chat_completions_url(clean)  # what is requested (no user info)
        self.base_url = redact_url(base_url)  # what is shown and recorded
        self.display_url = redact_url(self.url)
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout = float(HTTP_DEFAULTS["timeout"] if timeout is None else timeout)
        self.max_retries = int(HTTP_DEFAULTS["max_retries"] if max_retries is None else max_retries)
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise BrittleError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if self.max_retries < 0:
            raise BrittleError(f"max_retries must be >= 0, got {max_retries!r}")
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.extra_body = dict(extra_body or {})
        self.name = redact_url(name or f"openai:{model}@{base_url}")
        self._client = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never shows the key (it is not stored anyway)
        return (
            f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r}, "
            f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency}, "
            f"timeout={self.timeout}, max_retries={self.max_retries})"
        )

    # ------------------------------------------------------------------ plumbing
    def _http(self):
        import httpx

        with self._lock:
            if self._client is None:
                limits = httpx.Limits(
                    max_connections=self.max_concurrency,
                    max_keepalive_connections=self.max_concurrency,
                )
                self._client = httpx.Client(timeout=self.timeout, limits=limits)
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        delay = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.5)
        if retry_after:
            try:
                delay = min(self.max_backoff, max(delay, float(retry_after)))
            except ValueError:
                pass
        return delay

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST one request with retries; returns the parsed JSON response."""
        import httpx

        client = self._http()
        last = ""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                resp = client.post(self.url, json=body, headers=self._headers(),
                                   **({"auth": self._auth.auth()} if self._auth else {}))
            except (httpx.TimeoutException, httpx.TransportError) as e:
                last = f"{type(e).__name__}"
            else:
                if resp.status_code == 200:
                    try:
                        return resp.json()
                    except ValueError:
                        raise BrittleError(f"{self.display_url}: response is not JSON") from None
                if resp.status_code in (401, 403):
                    raise BrittleError(
                        f"{self.display_url}: HTTP {resp.status_code} (unauthorised); set the API key "
                        f"in the environment variable {self.api_key_env}"
                    )
                if resp.status_code not in RETRY_STATUS:
                    raise BrittleError(
                        f"{self.display_url}: HTTP {resp.status_code}: {resp.text[:200]}"
                    )
                last = f"HTTP {resp.status_code}"
                retry_after = resp.headers.get("retry-after")
            if attempt < self.max_retries:
                delay = self._wait(attempt, retry_after)
                log.debug("%s: %s, retry %d in %.2fs", self.display_url, last, attempt + 1, delay)
                time.sleep(delay)
        raise BrittleError(f"{self.display_url}: giving up after {self.max_retries + 1} attempts ({last})")

    def _map(self, bodies: list[dict[str, Any]], desc: str) -> list[dict[str, Any]]:
        from tqdm.auto import tqdm

        if not bodies:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(bodies))) as pool:
            return list(
                tqdm(pool.map(self._post, bodies), total=len(bodies), desc=desc, disable=None)
            )

    @staticmethod
    def _messages(msgs: Messages, prefill: str | None) -> list[dict[str, str]]:
        out = [{"role": m["role"], "content": m["content"]} for m in msgs]
        if prefill:
            out.append({"role": "assistant", "content": prefill})
        return out

    # ------------------------------------------------------------------ API
    def generate(
        self,
        conversations: Sequence[Messages],
        *,
        prefill: Sequence[str | None] | None = None,
        config: GenerationConfig = GenerationConfig(),
    ) -> list[str]:
        """One reply per conversation, in input order (see module docstring on prefill)."""
        pre = prefills(prefill, len(conversations))
        bodies = [
            {
                **self.extra_body,
                "model": self.model,
                "messages": self._messages(list(msgs), p),
                "max_tokens": config.max_new_tokens,
                "temperature": config.temperature,
                "top_p": config.top_p,
                "seed": config.seed,
            }
            for msgs, p in zip(conversations, pre)
        ]
        replies = []
        for resp, p in zip(self._map(bodies, "openai generate"), pre):
            try:
                message = resp["choices"][0]["message"]
            except (KeyError, IndexError, TypeError):
                raise BrittleError(f"{self.display_url}: malformed completion response") from None
            text = reply_text(message, self.display_url)
            if p and text.startswith(p):  # the server echoed the prefill
                text = text[len(p) :]
            replies.append(text)
        return replies

    def choice_logprobs(
        self, conversations: Sequence[Messages], options: list[str]
    ) -> list[dict[str, float]] | None:
        """Log-probability of each option as the *first* reply token, from the server's
        top-20 first-token log-probs (``logprobs: true, top_logprobs: 20, max_tokens: 1``).

        Tokens that match an option after stripping whitespace (``"A"``, ``" A"``) are
        merged: lp(option) = log Σ exp(lp(token)). Options outside the top 20 get ``-inf``.
        Returns ``None`` when the server does not return log-probs.
        """
        bodies = [
            {
                **self.extra_body,
                "model": self.model,
                "messages": self._messages(list(msgs), None),
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": True,
                "top_logprobs": 20,
            }
            for msgs in conversations
        ]
        out: list[dict[str, float]] = []
        for resp in self._map(bodies, "openai logprobs"):
            try:
                top = resp["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            except (KeyError, IndexError, TypeError):
                log.warning("%s returned no logprobs; choice_logprobs unavailable", self.display_url)
                return None
            if not top:
                return None
            scores: dict[str, float] = {}
            for opt in options:
                hits = [float(t["logprob"]) for t in top if t["token"].strip() == opt.strip()]
                scores[opt] = _logsumexp(hits) if hits else float("-inf")
            out.append(scores)
        return out
