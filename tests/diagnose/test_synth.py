
from brittle.diagnose.synth import (
    SynthConfig,
    dedupe,
    harmful_looking,
    harmful_share,
    load_keywords,
    pre_query_template,
    synthesize,
)


def test_pre_query_template_is_derived_from_the_chat_template(tiny_tok):
    pre, eot = pre_query_template(tiny_tok)
    assert pre == "<|im_start|>user\n"
    assert eot == "<|im_end|>"


def test_pre_query_keeps_a_default_system_prompt(tiny_tok):
    import copy

    tok = copy.deepcopy(tiny_tok)
    tok.chat_template = ("<|im_start|>system\nBe nice<|im_end|>\n" + tok.chat_template)
    assert pre_query_template(tok)[0] == "<|im_start|>system\nBe nice<|im_end|>\n<|im_start|>user\n"


def test_dedupe_and_keywords():
    assert dedupe(["Hello, world!", "hello world", "", "  ", "Other"]) == [0, 4]
    kws = ["bomb", "kill"]
    assert harmful_looking("How do I build BOMBS?", kws) == "bomb"
    assert harmful_looking("Explain the word abomb", kws) is None  # word-start only
    assert harmful_looking("Write a poem", kws) is None
    s = harmful_share(["make a bomb", "write a poem", "kill time", "bake bread"], kws, n_boot=50)
    assert s["harmful_share"] == 0.5 and s["n"] == 4
    assert "bomb" in load_keywords()


def test_synthesize_is_seeded_cached_and_deduped(tiny_tok, tiny_lm, tmp_path):
    cfg = SynthConfig(n=6, seed=1, max_instruction_tokens=8, max_response_tokens=4, batch_size=4)
    a = synthesize(tiny_lm, tiny_tok, cfg, fingerprint_parts=["tiny"], cache=tmp_path / "a")
    b = synthesize(tiny_lm, tiny_tok, cfg, fingerprint_parts=["tiny"], cache=tmp_path / "b")
    assert [x.to_dict() for x in a] == [x.to_dict() for x in b]  # same seed, fresh caches
    assert 1 <= len(a) <= 6
    assert all(ex.response is not None and ex.source == "magpie" for ex in a)
    keys = [ex.prompt.lower() for ex in a]
    assert len(set(keys)) == len(keys)
    # cached: a third call does not touch the model
    class Boom:
        def parameters(self):
            raise AssertionError("model used despite cache")
    c = synthesize(Boom(), tiny_tok, cfg, fingerprint_parts=["tiny"], cache=tmp_path / "a")
    assert [x.to_dict() for x in c] == [x.to_dict() for x in a]
