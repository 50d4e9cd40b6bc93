"""Response format detectors: list, numbered steps, math, code, short answer.

Regex based and deliberately simple, so a report can say *why* a text got a tag.
Thresholds (all documented in docs/data.md):

- ``list``     : >= 3 lines that start with a bullet (``-``, ``*``, ``+``, ``•``) and text.
- ``numbered`` : >= 3 lines that start with ``1.`` / ``2)`` / ``Step 3:`` and text.
- ``math``     : a GSM8K answer marker ``####``, a GSM8K calculator annotation ``<<…>>``,
                 LaTeX (``\\frac``, ``\\sqrt``, ``\\(…\\)``, ``\\[…\\]``, ``$…$`` containing
                 ``=``, ``^``, ``_`` or a backslash, so ``$5 and $6`` is not math), or an
                 equation ``<number> <op> <number> = <number>``.
- ``code``     : a fenced block (three backticks or tildes), or >= 2 lines that look like code
                 (``def``/``class``/``import``/``#include``/``function``/``return``/``print(``…, or
                 lines that end in ``;``, ``{`` or consist of ``}``).
- ``short``    : fewer than 20 whitespace-separated words.
"""

from __future__ import annotations

import re

FORMAT_TAGS = ("list", "numbered", "math", "code", "short")

MIN_LIST_LINES = 3
MIN_NUMBERED_LINES = 3
MIN_CODE_LINES = 2
SHORT_WORDS = 20

_BULLET = re.compile(r"^[ \t]*[-*+•][ \t]+\S", re.MULTILINE)
_NUMBERED = re.compile(
    r"^[ \t]*(?:\d{1,3}[.)]|step[ \t]+\d{1,3}[:.)])[ \t]+\S", re.MULTILINE | re.IGNORECASE
)
_NUM = r"\d+(?:[.,]\d+)?"
_EQUATION = re.compile(
    rf"{_NUM}[ \t]*[-+*/×÷^x][ \t]*{_NUM}(?:[ \t]*[-+*/×÷^][ \t]*{_NUM})*[ \t]*=[ \t]*\$?-?{_NUM}"
)
_LATEX = re.compile(
    r"\\(?:frac|sqrt|sum|int|cdot|times|div|le|ge|neq|pi|alpha|beta|theta)\b"
    r"|\\\(.+?\\\)|\\\[.+?\\\]|\$[^$\n]*[=^_\\][^$\n]*\$",
    re.DOTALL,
)
_GSM8K = re.compile(r"^####[ \t]*\S|<<[^<>\n]+>>", re.MULTILINE)
_FENCE = re.compile(r"^[ \t]*(?:```|~~~)", re.MULTILINE)
_CODE_LINE = re.compile(
    r"^[ \t]*(?:def[ \t]+\w+[ \t]*\(|class[ \t]+\w+[\w(), \t]*:|import[ \t]+[\w.]+|"
    r"from[ \t]+[\w.]+[ \t]+import\b|#include\b|function[ \t]+\w*[ \t]*\(|return\b.*;?$|"
    r"(?:const|let|var)[ \t]+\w+[ \t]*=|(?:public|private|static)[ \t]+\w+|"
    r"print[ \t]*\(|console\.\w+\(|(?:for|while|if)[ \t]*\(.*\)[ \t]*\{?$|"
    r"SELECT\b.+\bFROM\b|\w+[ \t]*=[ \t]*\w+\(.*\)$)"
    r"|[;{][ \t]*$|^[ \t]*\}[ \t;]*$",
    re.MULTILINE,
)


def detect_formats(text: str) -> set[str]:
    """Format tags of ``text`` (a subset of :data:`FORMAT_TAGS`); see module doc for rules."""
    tags: set[str] = set()
    if len(_BULLET.findall(text)) >= MIN_LIST_LINES:
        tags.add("list")
    if len(_NUMBERED.findall(text)) >= MIN_NUMBERED_LINES:
        tags.add("numbered")
    if _GSM8K.search(text) or _LATEX.search(text) or _EQUATION.search(text):
        tags.add("math")
    if _FENCE.search(text) or _count_code_lines(text) >= MIN_CODE_LINES:
        tags.add("code")
    if len(text.split()) < SHORT_WORDS:
        tags.add("short")
    return tags


def _count_code_lines(text: str) -> int:
    """Number of distinct lines containing at least one code-looking match."""
    lines = set()
    for m in _CODE_LINE.finditer(text):
        lines.add(text.count("\n", 0, m.start()))
    return len(lines)
