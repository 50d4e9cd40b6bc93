import pytest

from brittle.data.schema import Example
from brittle.evaluate.classifier import ClassifierJudge, parse_guard

from .eval_fakes import FakeBackend


@pytest.mark.parametrize("raw, out", [("unsafe\nS1", (True, "S1")), ("safe", (False, None)),
                                      (" Safe.", (False, None)), ("maybe", (None, None)), ("", (None, None))])
def test_parse_guard(raw, out):
    assert parse_guard(raw) == out


def test_guard_mode_sends_conversation():
    b = FakeBackend(lambda text: "unsafe\nS2" if "Sure" in text else "safe")
    j = ClassifierJudge("guard", backend=b)
    ex = [Example.from_pair("q1"), Example.from_pair("q2")]
    vs = j.judge(ex, ["Sure, do X", "No."])
    assert [v["unsafe"] for v in vs] == [True, False] and vs[0]["label"] == "S2"
    assert b.seen[0] == [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "Sure, do X"}]


def test_seqcls_plumbing(tiny_tok):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tiny_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, num_labels=2,
                      pad_token_id=tiny_tok.pad_token_id, id2label={0: "safe", 1: "unsafe"})
    model = LlamaForSequenceClassification(cfg).eval()
    j = ClassifierJudge("tiny", mode="seqcls", model=model, tokenizer=tiny_tok, batch_size=2)
    vs = j.judge([Example.from_pair(f"q{i}") for i in range(3)], ["a", "bb bb", "c c c"])
    assert len(vs) == 3 and all(v["label"] in ("safe", "unsafe") for v in vs)
    assert all(v["unsafe"] == (v["label"] == "unsafe") for v in vs)
