"""Credentials never leave the process: one place that redacts them from recorded text.

:func:`redact_url` hides the user-info part of any ``scheme://user:password@host`` URL,
the values of secret-looking query parameters (``?api_key=…``, ``&token=…``) and
OpenAI-style ``sk-…`` keys inside a string; :func:`redact_secrets` applies it to every
string of a JSON-like object. Both are used wherever a model or endpoint spec is recorded
(``metrics.json``, ``generations.jsonl``, the HTML report, the config echo) and, through
:class:`RedactingFilter`, on every log line the CLI prints (httpx included).
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s?#@]*(?:@[^/\s?#@]*)*)@")
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;](?:api[_-]?key|apikey|key|access[_-]?token|token|secret|client[_-]?secret|"
    r"password|passwd|pwd|sig|signature|auth|authorization|x-api-key)=)(?P<value>[^&#\s;\"']+)",
    re.IGNORECASE,
)
_API_KEY = re.compile(r"\b(?P<prefix>sk-(?:proj-|ant-)?)(?=[A-Za-z_\-]*\d)[A-Za-z0-9_\-]{16,}")  # has a digit


def redact_url(text: str) -> str:
    """``text`` with URL credentials, secret query values and ``sk-…`` keys masked.

    >>> redact_url("openai:m@http://user:pw@host:8000/v1?api_key=abc&x=1")
    'openai:m@http://***@host:8000/v1?api_key=***&x=1'
    """
    if not isinstance(text, str) or not text:
        return text
    out = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    out = _SECRET_PARAM.sub(lambda m: f"{m['name']}{MASK}", out)
    return _API_KEY.sub(lambda m: f"{m['prefix']}{MASK}", out)


def redact_secrets(obj: Any) -> Any:
    """A copy of a JSON-like object with :func:`redact_url` applied to every string."""
    if isinstance(obj, str):
        return redact_url(obj)
    if isinstance(obj, dict):
        return {redact_secrets(k) if isinstance(k, str) else k: redact_secrets(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_secrets(v) for v in obj)
    return obj


class RedactingFilter(logging.Filter):
    """Rewrites a log record's message through :func:`redact_url` (attach to handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string: leave it to the handler
            return True
        red = redact_url(msg)
        if red != msg:
            record.msg, record.args = red, None
        return True


def install_log_redaction() -> None:
    """Attach :class:`RedactingFilter` to every root handler (idempotent) and keep httpx's
    per-request INFO lines (full URLs) out of the normal output."""
    root = logging.getLogger()
    for h in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in h.filters):
            h.addFilter(RedactingFilter())
    for name in ("httpx", "httpcore"):
        lg = logging.getLogger(name)
        if lg.level == logging.NOTSET or lg.level < logging.WARNING:
            lg.setLevel(logging.WARNING)
