"""Readers and writers for instruction data: Alpaca, ShareGPT, OpenAI messages, CSV, Parquet.

Every malformed row raises :class:`~brittle.errors.DataError` whose message starts with
``path:line:``; with ``skip_invalid=True`` the row is skipped and its message recorded in
:attr:`ReadReport.skipped` — nothing is dropped silently.

Row kinds (``fmt="auto"`` detects them per row):

- ``alpaca``   : ``{"instruction", "input"?, "output", "system"?}`` — a non-empty ``input`` is
                 appended to the instruction after a blank line; also ``{"prompt", "response"}``.
- ``sharegpt`` : ``{"conversations": [{"from": human|gpt|system, "value": str}, …]}``.
- ``messages`` : ``{"messages": [{"role": system|user|assistant, "content": str}, …]}`` (also
                 what :func:`write_jsonl` writes, so ids/categories/meta round-trip).
- ``csv``      : columns ``instruction``/``output`` or ``prompt``/``response`` (+ ``category``).

Containers: a JSON list (``.json``), JSON Lines (``.jsonl``), CSV (``.csv``/``.tsv``), Parquet.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brittle.data.fields import FieldError, FieldMap, check_header, map_row
from brittle.data.formats import detect_formats
from brittle.data.schema import Example
from brittle.errors import DataError
from brittle.paths import PathError, check_input_file

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 10 * 1024 * 1024  # one JSONL/CSV line
MAX_FILE_BYTES = 1024 * 1024 * 1024  # a whole JSON list file
FORMATS = ("auto", "alpaca", "messages", "sharegpt", "csv")

_SHAREGPT_ROLES = {
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bing": "assistant",
    "system": "system",
}  # fmt: skip


@dataclass
class ReadReport:
    """Result of reading one file: the examples, skipped-row messages, and row kinds seen."""

    examples: list[Example]
    skipped: list[str] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)

    @property
    def formats(self) -> Counter:
        """How many responses carry each :func:`detect_formats` tag."""
        c: Counter = Counter()
        for ex in self.examples:
            if ex.response is not None:
                c.update(detect_formats(ex.response))
        return c


class _RowError(ValueError):
    """A row-level problem; the reader adds ``path:line:``."""


# ----------------------------------------------------------------------------- reading


def read_examples(
    path: str | Path, fmt: str = "auto", skip_invalid: bool = False, fields: FieldMap | None = None
) -> list[Example]:
    """Examples of a data file (see module doc); raises DataError ``path:line: reason``.
    Other layouts (TRL prompt/completion, HarmBench, …) and ``fields`` overrides: see
    :mod:`brittle.data.fields`."""
    return read_examples_report(path, fmt, skip_invalid, fields).examples


def read_examples_report(
    path: str | Path, fmt: str = "auto", skip_invalid: bool = False, fields: FieldMap | None = None
) -> ReadReport:
    """Like :func:`read_examples` but also returns skipped rows and row-kind counts."""
    path = Path(path)
    if fmt not in FORMATS:
        raise DataError(f"{path}:0: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    report = ReadReport(examples=[])
    container = _container(path, fmt)
    if container == "parquet":
        rows: Iterable[tuple[int, Any]] = _parquet_rows(path)
    elif container == "csv":
        rows = _csv_rows(path, report, skip_invalid, fields)
    elif container == "jsonlist":
        rows = _json_list_rows(path)
    else:
        rows = _jsonl_rows(path, report, skip_invalid)
    want = "alpaca" if fmt == "alpaca" else "messages" if fmt in ("messages", "sharegpt") else None
    for line, row in rows:
        try:
            row, layout = map_row(row, fields)  # other layouts -> a messages row
            kind, ex = _row_to_example(row, want, csv_row=container == "csv" and layout == "native")
        except (_RowError, FieldError) as e:
            _fail(report, skip_invalid, f"{path}:{line}: {e}")
            continue
        ex.source = ex.source or path.name
        ex.meta.setdefault("line", line)
        report.examples.append(ex)
        report.kinds[kind if layout == "native" else layout] += 1
    if not report.examples and not report.skipped:
        raise DataError(f"{path}:1: no examples in file")
    if report.skipped:
        log.warning("%s: skipped %d invalid rows", path, len(report.skipped))
    return report


def read_prompts(path: str | Path, fields: FieldMap | None = None) -> list[Example]:
    """Prompts: plain text one per line, or any row file :func:`read_examples` reads (JSON(L),
    CSV, Parquet; every layout of :mod:`brittle.data.fields`, a final reply is dropped).
    The same prompt twice is an error naming both lines (``path:line: duplicate prompt``)."""
    path = _check_file(Path(path))
    suffix = path.suffix.lower()
    report = ReadReport(examples=[])
    if suffix in (".jsonl", ".json", ".ndjson", ".csv", ".tsv", ".parquet"):
        container = _container(path, "auto")
        if container == "parquet":
            rows: Iterable[tuple[int, Any]] = _parquet_rows(path)
        elif container == "csv":
            rows = _csv_rows(path, report, False, fields)
        elif container == "jsonlist":
            rows = _json_list_rows(path)
        else:
            rows = _jsonl_rows(path, report, False)
        out = []
        for line, row in rows:
            if isinstance(row, str) and row.strip():
                row = {"prompt": row}
            if not isinstance(row, dict):
                raise DataError(
                    f"{path}:{line}: expected an object with 'prompt', got {_tname(row)}"
                )
            try:
                row, layout = map_row(row, fields, need_response=False)
                _, ex = _row_to_example(row, None, csv_row=container == "csv" and layout == "native")
            except (_RowError, FieldError) as e:
                raise DataError(f"{path}:{line}: {e}") from None
            out.append(Example(messages=ex.prompt_messages, category=ex.category,
                               source=path.name, meta={**ex.meta, "line": line}))
    else:
        out = [
            Example.from_pair(text, source=path.name, meta={"line": line})
            for line, text in _text_lines(path)
        ]
    if not out:
        raise DataError(f"{path}:1: no prompts in file")
    _check_unique_prompts(path, out)
    return out


def _check_unique_prompts(path: Path, examples: list[Example]) -> None:
    first: dict[str, Any] = {}
    for ex in examples:
        line = ex.meta.get("line", "?")
        if ex.id in first:
            raise DataError(f"{path}:{line}: duplicate prompt (same as line {first[ex.id]}); "
                            "remove one of them")
        first[ex.id] = line


def _check_file(path: Path) -> Path:
    """``path`` if it is a readable regular file; else DataError ``path:0: reason`` (a
    directory, FIFO, symlink loop or missing file is named as such, never opened)."""
    try:
        return check_input_file(path, line="0")
    except PathError as e:
        raise DataError(str(e)) from None


def _fail(report: ReadReport, skip_invalid: bool, message: str) -> None:
    if not skip_invalid:
        raise DataError(message)
    report.skipped.append(message)


def read_rows(path: str | Path) -> list[tuple[int, Any]]:
    """``(line, row)`` of every row of a JSON Lines, JSON list, CSV/TSV (header lower-cased) or
    Parquet file, with the same file checks and ``path:line`` errors as :func:`read_examples`
    but no row layout imposed (e.g. label files: ``prompt, response, label``)."""
    path = Path(path)
    container = _container(path, "auto")
    if container == "parquet":
        return list(_parquet_rows(path))
    if container == "jsonlist":
        return list(_json_list_rows(path))
    report = ReadReport(examples=[])
    if container == "csv":
        return list(_csv_rows(path, report, skip_invalid=False, check_layout=False))
    return list(_jsonl_rows(path, report, skip_invalid=False))


def _container(path: Path, fmt: str) -> str:
    """'parquet' | 'csv' | 'jsonlist' | 'jsonl' from the format, extension and first byte."""
    _check_file(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet" and fmt in ("auto", "alpaca", "messages", "sharegpt"):
        return "parquet"
    if fmt == "csv" or suffix in (".csv", ".tsv"):
        return "csv"
    with path.open("rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise DataError(f"{path}:1: file is empty")
    if head[:1] == b"[":
        return "jsonlist"
    if head[:1] == b"{" and suffix == ".json" and path.stat().st_size <= MAX_FILE_BYTES:
        _reject_json_object(path)
    if head[:1] == b"{" or suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    raise DataError(
        f"{path}:1: cannot detect the format (expected a JSON list, JSON Lines or CSV); "
        "pass --format"
    )


def _reject_json_object(path: Path) -> None:
    """A ``.json`` file holding one multi-line JSON object is not a data file: say so."""
    try:
        text = path.read_bytes().decode("utf-8").lstrip("\ufeff")
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return  # not one JSON document: read it as JSON Lines and report the bad line
    if isinstance(obj, dict) and len([ln for ln in text.splitlines() if ln.strip()]) > 1:
        keys = ", ".join(repr(k) for k in list(obj)[:6])
        raise DataError(
            f"{path}:1: expected a JSON list of rows or JSON Lines, got one JSON object "
            f"(keys: {keys})"
        )


def _decode(data: bytes, path: Path, first_line: int = 1) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + data[: e.start].count(b"\n")
        raise DataError(f"{path}:{line}: invalid UTF-8 byte 0x{data[e.start]:02x}") from None


def _iter_lines(path: Path, report: ReadReport, skip_invalid: bool) -> Iterator[tuple[int, str]]:
    """(line number, decoded line) for each line; over-long or undecodable lines -> error."""
    with path.open("rb") as f:
        lineno = 0
        while True:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # consume the rest of the line
                    raw = f.readline(MAX_LINE_BYTES)
                _fail(
                    report,
                    skip_invalid,
                    f"{path}:{lineno}: line longer than {MAX_LINE_BYTES // (1024 * 1024)} MB",
                )
                continue
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = _decode(raw, path, lineno)
            except DataError as e:
                _fail(report, skip_invalid, str(e))
                continue
            yield lineno, text


def _jsonl_rows(path: Path, report: ReadReport, skip_invalid: bool) -> Iterator[tuple[int, Any]]:
    any_line = False
    for lineno, text in _iter_lines(path, report, skip_invalid):
        if not text.strip():
            continue
        any_line = True
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            _fail(
                report, skip_invalid, f"{path}:{lineno}: invalid JSON: {e.msg} (column {e.colno})"
            )
            continue
        except (ValueError, RecursionError) as e:
            _fail(report, skip_invalid, f"{path}:{lineno}: invalid JSON: {_short(e)}")
            continue
        yield lineno, row
    if not any_line and not report.skipped:
        raise DataError(f"{path}:1: file is empty")


def _json_list_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """Elements of a top-level JSON list with the line each element starts on."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(
            f"{path}:1: JSON list file larger than {MAX_FILE_BYTES >> 20} MB; use JSONL"
        )
    text = _decode(path.read_bytes(), path).lstrip("\ufeff")
    dec = json.JSONDecoder()
    ws = " \t\r\n"

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in ws:
            pos += 1
        return pos

    pos = skip(0)
    if pos >= len(text) or text[pos] != "[":
        raise DataError(f"{path}:{line_of(pos)}: expected a JSON list")
    pos = skip(pos + 1)
    if pos < len(text) and text[pos] == "]":
        raise DataError(f"{path}:{line_of(pos)}: JSON list is empty")
    while True:
        try:
            obj, end = dec.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})"
            ) from None
        except (ValueError, RecursionError) as e:
            raise DataError(f"{path}:{line_of(pos)}: invalid JSON: {_short(e)}") from None
        if end - pos > MAX_LINE_BYTES // 4 and len(text[pos:end].encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES:
            # the same per-record cap as a JSONL line: one giant record is not data
            raise DataError(f"{path}:{line_of(pos)}: record longer than "
                            f"{MAX_LINE_BYTES // (1024 * 1024)} MB")
        yield line_of(pos), obj
        pos = skip(end)
        if pos >= len(text):
            raise DataError(f"{path}:{line_of(pos)}: invalid JSON: unterminated list")
        if text[pos] == "]":
            if skip(pos + 1) < len(text):
                raise DataError(f"{path}:{line_of(skip(pos + 1))}: extra data after the JSON list")
            return
        if text[pos] != ",":
            raise DataError(f"{path}:{line_of(pos)}: invalid JSON: expected ',' or ']'")
        pos = skip(pos + 1)


def _csv_rows(
    path: Path, report: ReadReport, skip_invalid: bool, fields: FieldMap | None = None,
    check_layout: bool = True,
) -> Iterator[tuple[int, Any]]:
    lines = list(_iter_lines(path, report, skip_invalid))
    if not any(t.strip() for _, t in lines):
        raise DataError(f"{path}:1: file is empty")
    if report.skipped:  # CSV records may span lines: a bad line makes the rest unreliable
        return
    text = "".join(t for _, t in lines)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except csv.Error as e:
        raise DataError(f"{path}:1: invalid CSV header: {e}") from None
    header = [h.strip().lower() for h in header]
    if len(set(header)) != len(header):
        raise DataError(f"{path}:1: duplicate column names in CSV header")
    problem = check_header(header, fields) if check_layout else None  # a known layout, or --prompt-field
    if problem:
        raise DataError(f"{path}:1: {problem}")
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            _fail(report, skip_invalid, f"{path}:{start}: invalid CSV: {e}")
            return
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            _fail(
                report,
                skip_invalid,
                f"{path}:{start}: expected {len(header)} CSV fields, got {len(values)}",
            )
            continue
        yield start, dict(zip(header, values))


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(f"{path}:0: unreadable Parquet file: {e}") from None
    for i, row in enumerate(table.to_pylist(), start=1):
        if isinstance(row.get("meta"), str):
            try:
                row["meta"] = json.loads(row["meta"])
            except json.JSONDecodeError:
                raise DataError(f"{path}:{i}: 'meta' is not valid JSON") from None
        yield i, row


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    report = ReadReport(examples=[])
    if path.stat().st_size == 0:
        raise DataError(f"{path}:1: file is empty")
    for lineno, text in _iter_lines(path, report, False):
        text = text.strip()
        if text:
            yield lineno, text


# ----------------------------------------------------------------------------- rows


def _short(e: BaseException) -> str:
    if isinstance(e, RecursionError):
        return "nested too deeply"
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


def _tname(v: Any) -> str:
    return {dict: "object", list: "list", str: "string", type(None): "null", bool: "boolean"}.get(
        type(v), "number" if isinstance(v, (int, float)) else type(v).__name__
    )


def _text(row: dict, key: str, *, allow_empty: bool = False) -> str:
    if key not in row or row[key] is None:
        raise _RowError(f"missing field {key!r}")
    v = row[key]
    if not isinstance(v, str):
        raise _RowError(f"field {key!r} must be a string, got {_tname(v)}")
    if not allow_empty and not v.strip():
        raise _RowError(f"field {key!r} is empty")
    return v


def _opt_text(row: dict, key: str) -> str | None:
    v = row.get(key)
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise _RowError(f"field {key!r} must be a string, got {_tname(v)}")
    return v


def _row_to_example(row: Any, want: str | None, *, csv_row: bool) -> tuple[str, Example]:
    """(row kind, Example) for one parsed row; raises _RowError with a reason."""
    try:
        return _row_to_example_unchecked(row, want, csv_row=csv_row)
    except UnicodeEncodeError:
        raise _RowError("invalid Unicode (lone surrogate escape)") from None


def _row_to_example_unchecked(row: Any, want: str | None, *, csv_row: bool) -> tuple[str, Example]:
    if not isinstance(row, dict):
        raise _RowError(f"expected a JSON object, got {_tname(row)}")
    if csv_row:
        return "csv", _pair_example(row)
    if "messages" in row or "conversations" in row:
        if want == "alpaca":
            raise _RowError("expected an Alpaca row (instruction/output), got a conversation")
        if "messages" in row:
            return "messages", _messages_example(row, "messages")
        return "sharegpt", _messages_example(row, "conversations")
    if "instruction" in row or "prompt" in row:
        if want == "messages":
            raise _RowError("expected 'messages' or 'conversations', got an instruction row")
        return "alpaca", _pair_example(row)
    keys = ", ".join(repr(k) for k in list(row)[:6]) or "none"
    raise _RowError(
        "unrecognised row: expected 'instruction'/'output', 'prompt'/'response', "
        f"'messages' or 'conversations' (keys: {keys})"
    )


def _pair_example(row: dict) -> Example:
    if "instruction" in row:
        instruction = _text(row, "instruction")
        extra = _opt_text(row, "input")
        if extra and extra.strip():
            instruction = f"{instruction}\n\n{extra}"
        resp_key = "output"
    else:
        instruction = _text(row, "prompt")
        resp_key = "output" if "output" in row and "response" not in row else "response"
    response = _text(row, resp_key)
    system = _opt_text(row, "system")
    return Example.from_pair(instruction, response, system=system, **_common(row))


def _common(row: dict) -> dict[str, Any]:
    out: dict[str, Any] = {"category": _opt_text(row, "category")}
    if "id" in row and row["id"] not in (None, ""):
        if not isinstance(row["id"], (str, int)) or isinstance(row["id"], bool):
            raise _RowError(f"field 'id' must be a string, got {_tname(row['id'])}")
        out["id"] = str(row["id"])
    out["source"] = _opt_text(row, "source")
    meta = row.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise _RowError(f"field 'meta' must be an object, got {_tname(meta)}")
    out["meta"] = dict(meta or {})
    return out


def _content(v: Any, i: int) -> str:
    """Message content: a string, or a list of text parts ({type: text, text|value})."""
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        parts = []
        for p in v:
            if isinstance(p, dict) and p.get("type", "text") == "text":
                t = p.get("text", p.get("value"))
                if isinstance(t, str):
                    parts.append(t)
                    continue
            raise _RowError(f"message {i}: only text content parts are supported")
        return "".join(parts)
    raise _RowError(f"message {i}: content must be a string, got {_tname(v)}")


def _messages_example(row: dict, key: str) -> Example:
    turns = row[key]
    if not isinstance(turns, list):
        raise _RowError(f"field {key!r} must be a list, got {_tname(turns)}")
    if not turns:
        raise _RowError(f"field {key!r} is empty")
    messages = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            raise _RowError(f"message {i}: expected an object, got {_tname(t)}")
        if key == "conversations" and "from" in t:
            who, content = t.get("from"), t.get("value")
            role = _SHAREGPT_ROLES.get(who) if isinstance(who, str) else None
            if role is None:
                raise _RowError(f"message {i}: unknown speaker {who!r} (expected human/gpt/system)")
        else:
            role, content = t.get("role"), t.get("content")
            if role not in ("system", "user", "assistant"):
                raise _RowError(
                    f"message {i}: unknown role {role!r} (expected system/user/assistant)"
                )
        if content is None:
            raise _RowError(f"message {i}: missing content")
        text = _content(content, i)
        if not text.strip():
            raise _RowError(f"message {i}: empty content")
        messages.append({"role": role, "content": text})
    _check_order(messages)
    return Example(messages=messages, **_common(row))


def _check_order(messages: list[dict[str, str]]) -> None:
    """System turns first, then user/assistant alternating, starting with user."""
    i = 0
    while i < len(messages) and messages[i]["role"] == "system":
        i += 1
    if i == len(messages):
        raise _RowError("conversation has no user message")
    expect = "user"
    for j in range(i, len(messages)):
        role = messages[j]["role"]
        if role != expect:
            raise _RowError(f"message {j}: roles out of order: expected {expect}, got {role}")
        expect = "assistant" if expect == "user" else "user"


# ----------------------------------------------------------------------------- writing


def write_jsonl(examples: Iterable[Example], path: str | Path) -> Path:
    """One :meth:`Example.to_dict` per line (UTF-8), written atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(ex.to_dict(), ensure_ascii=False, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def write_parquet(examples: Iterable[Example], path: str | Path) -> Path:
    """Parquet with ``messages`` as list<struct<role, content>> and ``meta`` as a JSON string."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    exs = list(examples)
    msg_type = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    table = pa.table(
        {
            "id": pa.array([e.id for e in exs], pa.string()),
            "messages": pa.array([e.messages for e in exs], msg_type),
            "category": pa.array([e.category for e in exs], pa.string()),
            "source": pa.array([e.source for e in exs], pa.string()),
            "meta": pa.array(
                [json.dumps(e.meta, ensure_ascii=False, default=str) for e in exs], pa.string()
            ),
        }
    )
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path
