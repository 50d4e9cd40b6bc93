from brittle.models.chat import IGNORE, collate, encode, length_sorted_batches


def _decoded_labels(tok, enc):
    return tok.decode([i for i, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE])


def test_label_mask_covers_only_last_assistant_turn(tiny_tok):
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How to kill a process?"},
        {"role": "assistant", "content": "Use kill 42."},
    ]
    enc = encode(tiny_tok, msgs)
    assert _decoded_labels(tiny_tok, enc) == "Use kill 42.<|im_end|>"
    # labels equal input ids where set
    assert all(lab in (IGNORE, i) for i, lab in zip(enc.input_ids, enc.labels))
    # the mask is a contiguous suffix (minus the trailing newline)
    first = next(k for k, lab in enumerate(enc.labels) if lab != IGNORE)
    assert all(lab != IGNORE for lab in enc.labels[first:-1]) and enc.labels[-1] == IGNORE


def test_multi_turn_last_vs_all(tiny_tok):
    msgs = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "second answer"},
    ]
    assert _decoded_labels(tiny_tok, encode(tiny_tok, msgs)) == "second answer<|im_end|>"
    both = _decoded_labels(tiny_tok, encode(tiny_tok, msgs, train_on="all"))
    assert both == "first answer<|im_end|>second answer<|im_end|>"


def test_truncation_and_response_cutoff(tiny_tok):
    msgs = [{"role": "user", "content": "list steps"}, {"role": "assistant", "content": "one two three four five six"}]
    full = encode(tiny_tok, msgs)
    cut = encode(tiny_tok, msgs, max_response_tokens=3)
    assert cut.n_response_tokens == 3
    assert cut.input_ids == full.input_ids[: len(cut.input_ids)]
    assert cut.labels[-1] != IGNORE  # sequence ends at the 3rd response token
    prompt_len = full.labels.index(next(lab for lab in full.labels if lab != IGNORE))
    short = encode(tiny_tok, msgs, max_length=prompt_len)
    assert len(short.input_ids) == prompt_len and short.n_response_tokens == 0
    mid = encode(tiny_tok, msgs, max_length=prompt_len + 2)
    assert mid.n_response_tokens == 2


def test_collate_right_and_left_padding(tiny_tok):
    a = encode(tiny_tok, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    b = encode(tiny_tok, [{"role": "user", "content": "hello there friend"}, {"role": "assistant", "content": "hello"}])
    pad = tiny_tok.pad_token_id
    r = collate([a, b], pad)
    n = len(a.input_ids)
    assert r["attention_mask"][0].tolist() == [1] * n + [0] * (r["input_ids"].shape[1] - n)
    assert (r["labels"][0, n:] == IGNORE).all()
    left = collate([a, b], pad, padding_side="left")
    assert left["input_ids"][0, -n:].tolist() == a.input_ids
    assert left["attention_mask"][0, : -n].sum() == 0


def test_length_sorted_batches():
    batches = length_sorted_batches([3, 9, 1, 7, 5], 2)
    assert batches == [[1, 3], [4, 0], [2]]


def test_token_budget_batches_bound_padded_tokens_and_keep_every_index():
    from brittle.models.chat import token_budget_batches

    lengths = [500, 20, 30, 480, 10, 25, 40, 35]
    batches = token_budget_batches(lengths, batch_size=4, max_tokens=1000)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 4 and (len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 1000)
    assert batches[0] == [0, 3]  # the two long ones together: 2 x 500 tokens
    assert token_budget_batches([5000, 10], batch_size=8, max_tokens=100) == [[0], [1]]  # one row at least
