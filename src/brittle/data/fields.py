"""Field mapping for user data files: the common benchmark / trainer layouts are detected per
row, and ``--prompt-field`` / ``--response-field`` / ``--category-field`` name any other.

:func:`map_row` turns one parsed row (a dict from JSONL, a JSON list, CSV or Parquet) into a
row :mod:`brittle.data.io` already parses: rows in brittle's own shapes pass through unchanged
(so their checks and messages stay as they are); every other layout becomes a ``messages`` row
(``{"messages": [...], "category", "meta"}``). Keys match case-insensitively (CSV headers are
lower-cased by the reader). Layouts, first match wins (see :data:`LAYOUTS`):

=================  ===================================  ===============  ===================
layout             prompt                               response         category
=================  ===================================  ===============  ===================
messages           ``messages`` (OpenAI chat rows)      last assistant   ``category``
sharegpt           ``conversations``                    last gpt turn    ``category``
alpaca (brittle)   ``instruction`` (+ ``input``)        ``output``       ``category``
trl                ``prompt`` (text or messages)        ``completion``   ``category``
pair (brittle)     ``prompt``                           ``response``     ``category``
advbench / JBB     ``goal``                             – (``target``    ``category``
                                                        kept in meta)
harmbench          ``Behavior`` (``ContextString``      –                ``SemanticCategory``
                   prepended, HarmBench's own format)
strongreject       ``forbidden_prompt``                 –                ``category``
xstest             ``prompt`` + ``type`` + ``label``    –                ``type``
prompt             ``prompt`` (text or messages)        –                ``category``
=================  ===================================  ===============  ===================

Problems raise :class:`FieldError` (a reason without location; the reader adds ``path:line:``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from brittle.errors import BrittleError

PROMPT_FIELD_HELP = (
    "Field (CSV column / JSON key) holding the prompt in a user data file; its value may also "
    "be a list of chat messages. Default: auto-detect the layout (HarmBench, AdvBench/JBB, "
    "StrongREJECT, XSTest, TRL prompt/completion, OpenAI messages, instruction/output)."
)
RESPONSE_FIELD_HELP = (
    "Field holding the response (training target) in a user data file; default: auto-detect "
    "(output, response, TRL completion, last assistant message)."
)
CATEGORY_FIELD_HELP = (
    "Field holding each row's category in a user data file; default: auto-detect (category, "
    "HarmBench SemanticCategory, XSTest type)."
)
FLAGS = "--prompt-field FIELD [--response-field FIELD] [--category-field FIELD]"


class FieldError(ValueError):
    """A row-level mapping problem; the reader prefixes ``path:line:``."""


class FieldMap(BaseModel):
    """Explicit field names for a user data file (None = auto-detect)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_field: str | None = Field(None, min_length=1, description=PROMPT_FIELD_HELP)
    response_field: str | None = Field(None, min_length=1, description=RESPONSE_FIELD_HELP)
    category_field: str | None = Field(None, min_length=1, description=CATEGORY_FIELD_HELP)

    @classmethod
    def build(cls, **names: str | None) -> FieldMap:
        """From flags / options; a bad value is one BrittleError line."""
        try:
            return cls(**names)
        except ValidationError as e:
            msgs = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            raise BrittleError(f"invalid field mapping: {msgs}") from None

    def given(self) -> bool:
        """Whether any field is named explicitly."""
        return any((self.prompt_field, self.response_field, self.category_field))


@dataclass(frozen=True)
class Layout:
    """One known row layout: which (lower-case) keys hold what."""

    name: str
    requires: tuple[str, ...]  # every key present → this layout
    prompt: str
    response: str | None = None
    category: str | None = "category"
    meta: tuple[str, ...] = ()  # kept in Example.meta
    context: str | None = None  # prepended to the prompt (HarmBench contextual behaviours)
    extra_input: str | None = None  # appended after a blank line (Alpaca ``input``)


LAYOUTS: tuple[Layout, ...] = (
    Layout("alpaca", ("instruction",), "instruction", "output", extra_input="input"),
    Layout("trl", ("prompt", "completion"), "prompt", "completion"),
    Layout("pair", ("prompt", "response"), "prompt", "response"),
    Layout("pair", ("prompt", "output"), "prompt", "output"),
    Layout("advbench", ("goal",), "goal", meta=("target", "behavior", "source")),
    Layout("harmbench", ("behavior",), "behavior", category="semanticcategory",
           meta=("functionalcategory", "behaviorid", "tags"), context="contextstring"),
    Layout("strongreject", ("forbidden_prompt",), "forbidden_prompt", meta=("source",)),
    Layout("xstest", ("prompt", "type", "label"), "prompt", category="type",
           meta=("label", "focus", "note")),
    Layout("prompt", ("prompt",), "prompt"),
)
KNOWN = ("instruction/output, prompt/response, prompt/completion (TRL), messages, conversations, "
         "Behavior (HarmBench), goal (AdvBench/JBB), forbidden_prompt (StrongREJECT), "
         "prompt+type+label (XSTest), prompt")


def _tname(v: Any) -> str:
    return {dict: "object", list: "list", str: "string", type(None): "null", bool: "boolean"}.get(
        type(v), "number" if isinstance(v, (int, float)) else type(v).__name__)


def _keys(row: Mapping[str, Any]) -> dict[str, str]:
    """lower-case key → the row's key (the first spelling wins)."""
    out: dict[str, str] = {}
    for k in row:
        out.setdefault(str(k).lower(), k)
    return out


def _found(row: Mapping[str, Any]) -> str:
    names = [repr(str(k)) for k in list(row)[:12]]
    return ", ".join(names) + (", …" if len(row) > 12 else "") or "none"


def unknown_layout(columns: Sequence[str] | Mapping[str, Any], what: str = "field") -> str:
    """The one-line reason for a row / header of no known layout (columns found, flags)."""
    return (f"missing field 'prompt': unrecognised row layout ({what}s found: {_found(dict.fromkeys(columns))}); "
            f"known layouts: {KNOWN}; or name the fields with {FLAGS}")


def detect(row: Mapping[str, Any]) -> Layout | None:
    """The first :data:`LAYOUTS` entry whose keys the row has (case-insensitive), or None."""
    keys = _keys(row)
    for lay in LAYOUTS:
        if all(k in keys for k in lay.requires):
            return lay
    return None


def check_header(header: Sequence[str], fields: FieldMap | None = None) -> str | None:
    """None if a CSV header can be read (a known layout, or the named prompt column is there);
    else the reason (without ``path:line:``)."""
    cols = {h.lower() for h in header}
    if fields is not None and fields.prompt_field:
        if fields.prompt_field.lower() not in cols:
            return (f"CSV has no column {fields.prompt_field!r} (--prompt-field); "
                    f"columns: {_found(dict.fromkeys(header))}")
        return None
    if "messages" in cols or detect(dict.fromkeys(cols)) is not None:
        return None
    return (f"CSV needs a column 'instruction' or 'prompt', or a known layout's ({KNOWN}); "
            f"got {list(header)}; name the prompt column with {FLAGS}")


def _native(row: Mapping[str, Any]) -> bool:
    """A row in brittle's own shapes, parsed by brittle.data.io as it always was."""
    return ("messages" in row or "conversations" in row or "instruction" in row
            or ("prompt" in row and ("response" in row or "output" in row)))


def _value(row: Mapping[str, Any], keys: Mapping[str, str], name: str, flag: str = "") -> Any:
    """The row's value under ``name`` (any case); FieldError naming the fields found if absent."""
    k = keys.get(name.lower())
    if k is None:
        via = f" ({flag})" if flag else ""
        raise FieldError(f"missing field {name!r}{via}; fields found: {_found(row)}")
    return row[k]


def _opt(row: Mapping[str, Any], keys: Mapping[str, str], name: str | None) -> Any:
    k = keys.get(name.lower()) if name else None
    v = row.get(k) if k is not None else None
    return None if v is None or (isinstance(v, str) and not v.strip()) else v


def _label(v: Any, name: str) -> str | None:
    """A category / meta label: a string, or a number shown as text."""
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    raise FieldError(f"field {name!r} must be a string, got {_tname(v)}")


def _turns(v: Any, name: str, role: str) -> list[dict[str, Any]]:
    """A text value → one ``role`` turn; a list of messages (TRL conversational) as is."""
    if isinstance(v, str):
        if not v.strip():
            raise FieldError(f"field {name!r} is empty")
        return [{"role": role, "content": v}]
    if isinstance(v, list) and v and all(isinstance(m, dict) for m in v):
        return list(v)
    if isinstance(v, list):
        raise FieldError(f"field {name!r} must be a string or a non-empty list of messages")
    raise FieldError(f"field {name!r} must be a string, got {_tname(v)}")


def map_row(row: Any, fields: FieldMap | None = None, *, need_response: bool = True) -> tuple[Any, str]:
    """(row for brittle.data.io's parser, layout name) — ``"native"`` for an unchanged row.

    ``need_response``: reading training examples (layouts with a response field require it);
    False when reading prompts (a response is dropped by the prompt reader, any row works).
    """
    if not isinstance(row, dict):
        return row, "native"
    fm = fields or FieldMap()
    if need_response and not fm.given() and _native(row):
        return row, "native"
    keys = _keys(row)
    if not fm.prompt_field and ("messages" in row or "conversations" in row):
        if fm.response_field:
            raise FieldError("--response-field applies to prompt/response rows, not to chat rows")
        if not fm.category_field:
            return row, "native"
        return {**row, "category": _label(_value(row, keys, fm.category_field, "--category-field"),
                                          fm.category_field)}, "native"
    lay = Layout("fields", (), fm.prompt_field.lower()) if fm.prompt_field else detect(row)
    if lay is None:
        raise FieldError(unknown_layout(row))
    return _build(row, keys, lay, fm, need_response), lay.name


def _build(row: dict, keys: Mapping[str, str], lay: Layout, fm: FieldMap, need_response: bool) -> dict:
    pkey = keys.get(lay.prompt, lay.prompt)
    prompt = _value(row, keys, pkey, "--prompt-field" if lay.name == "fields" else "")
    context = _opt(row, keys, lay.context)
    extra = _opt(row, keys, lay.extra_input)
    if context is not None or extra is not None:
        if not isinstance(prompt, str):
            raise FieldError(f"field {pkey!r} must be a string, got {_tname(prompt)}")
        if isinstance(context, str):  # HarmBench: f"{context}\n\n---\n\n{behavior}"
            prompt = f"{context}\n\n---\n\n{prompt}"
        if isinstance(extra, str):
            prompt = f"{prompt}\n\n{extra}"
    messages = _turns(prompt, pkey, "user")
    system = _opt(row, keys, "system")
    if isinstance(system, str) and messages[0].get("role") != "system":
        messages = [{"role": "system", "content": system}, *messages]
    rname = fm.response_field or lay.response
    if rname is not None:
        if fm.response_field or need_response:
            response = _value(row, keys, rname, "--response-field" if fm.response_field else "")
        else:
            response = _opt(row, keys, rname)
        if response is not None:
            messages += _turns(response, keys.get(rname.lower(), rname), "assistant")
    cname = fm.category_field or lay.category
    if fm.category_field:
        category = _label(_value(row, keys, cname, "--category-field"), cname)
    else:
        category = _label(_opt(row, keys, cname), cname or "")
    meta = dict(row["meta"]) if isinstance(row.get("meta"), dict) else {}
    for m in lay.meta:
        v = _opt(row, keys, m)
        if v is not None and isinstance(v, (str, int, float, bool)):
            meta[m] = v
    out: dict[str, Any] = {"messages": messages, "category": category, "meta": meta}
    if "id" in row:
        out["id"] = row["id"]
    return out
