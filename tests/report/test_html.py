from brittle.report.html import Section, redact, table, write_report


def test_report_escapes_untrusted_text(tmp_path):
    evil = '<script>alert("x")</script>'
    page = write_report(tmp_path, evil, [Section(evil, table([{"prompt": evil}]))]).read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_redact_keeps_first_words_and_escapes():
    out = redact("Step 1: <b>mix</b> the chemicals then heat them slowly", keep_words=3)
    assert out.startswith("Step 1: &lt;b&gt;mix&lt;/b&gt;") and "redacted" in out
    assert "heat" not in out
    assert redact("short <i>", enabled=True) == "short &lt;i&gt;"
