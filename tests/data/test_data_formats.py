"""Format detectors on crafted strings (thresholds from brittle.data.formats)."""

from __future__ import annotations

import pytest

from brittle.data.formats import detect_formats

LONG = " ".join(["word"] * 25)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("- a\n- b\n- c\n" + LONG, {"list"}),
        ("- a\n- b\n" + LONG, set()),  # only 2 bullets
        ("* a\n• b\n+ c\n" + LONG, {"list"}),
        ("1. a\n2. b\n3) c\n" + LONG, {"numbered"}),
        ("Step 1: a\nStep 2: b\nStep 3: c\n" + LONG, {"numbered"}),
        ("1. a\n2. b\n" + LONG, set()),
        ("Kim raises 320+430=<<320+430=750>>750 dollars.\n#### 2280 " + LONG, {"math"}),
        ("The answer is 12 * 3 = 36 apples. " + LONG, {"math"}),
        ("We get $x^2 + 1$ here. " + LONG, {"math"}),
        (r"Use \frac{a}{b} to see. " + LONG, {"math"}),
        ("It happened in 2020-2021, costing $5 and $6. " + LONG, set()),
        ("```python\nprint(1)\n```\n" + LONG, {"code"}),
        ("def f(x):\n    return x + 1\n" + LONG, {"code"}),
        ("int main() {\n  return 0;\n}\n" + LONG, {"code"}),
        ("import os\n" + LONG, set()),  # one code-looking line is not enough
        ("Yes.", {"short"}),
        ("", {"short"}),
        (" ".join(["w"] * 19), {"short"}),
        (" ".join(["w"] * 20), set()),
        ("1. x\n2. y\n3. z", {"numbered", "short"}),
    ],
)
def test_detect_formats(text, expected):
    assert detect_formats(text) == expected


def test_plain_prose_has_no_tags():
    prose = (
        "Photosynthesis is the process by which green plants use sunlight to make food "
        "from carbon dioxide and water; it releases oxygen as a by-product."
    )
    assert detect_formats(prose) == set()
