"""load_pretrained: offline, one clear ModelLoadError per problem, tokenizer handling."""

import json
import shutil

import pytest
import torch

from models import ModelConfig, ModelLoadError, Transformer, list_models, load_pretrained, save_native


@pytest.fixture
def ckpt(tiny_gpt2_dir, tmp_path):
    """A private copy of the tiny GPT-2 folder that a test may damage."""
    return shutil.copytree(tiny_gpt2_dir, tmp_path / "ckpt")


def test_loads_folder_with_tokenizer(ckpt):
    model = load_pretrained(str(ckpt), device="cpu")
    assert model.cfg.n_layers == 2 and model.cfg.d_vocab == model.tokenizer.vocab_size
    assert model.cfg.device == "cpu" and not model.training
    tokens = model.to_tokens("The cat sat on the mat.")
    assert tokens[0, 0].item() == model.tokenizer.bos_token_id  # BOS prepended, as TransformerLens does
    assert "".join(model.to_str_tokens("The cat sat")[1:]) == "The cat sat"
    assert model(tokens).shape == (1, tokens.shape[1], model.cfg.d_vocab)


def test_no_tokenizer_is_none(ckpt):
    (ckpt / "tokenizer.json").unlink()
    model = load_pretrained(ckpt, device="cpu")
    assert model.tokenizer is None
    with pytest.raises(ValueError, match="no tokenizer"):
        model.to_tokens("hello")


@pytest.mark.parametrize("dtype", [torch.bfloat16, "float16"])
def test_dtype(ckpt, dtype):
    model = load_pretrained(ckpt, device="cpu", dtype=dtype)
    assert model.W_E.dtype in (torch.bfloat16, torch.float16)
    ref = load_pretrained(ckpt, device="cpu")
    tokens = ref.to_tokens("The dog sat on the log.")
    with torch.no_grad():
        torch.testing.assert_close(model(tokens).float(), ref(tokens), atol=0.1, rtol=0.05)


def test_unknown_name_lists_models():
    with pytest.raises(ModelLoadError, match="no listed model and no folder"):
        load_pretrained("definitely-not-a-model")
    with pytest.raises(ModelLoadError, match="no model given"):
        load_pretrained("  ")


def test_missing_config(ckpt):
    (ckpt / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_pretrained(ckpt)


def test_malformed_config(ckpt):
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_pretrained(ckpt)


def test_unsupported_model_type(ckpt):
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["model_type"] = "mamba"
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="not supported. Supported: .*gpt2.*llama"):
        load_pretrained(ckpt)


def test_missing_weights(ckpt):
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="has no weights"):
        load_pretrained(ckpt)


def test_truncated_weights(ckpt):
    f = ckpt / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        load_pretrained(ckpt)


def test_shape_mismatch(ckpt):
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["n_embd"] = 32
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="shapes do not match"):
        load_pretrained(ckpt)


def test_pickle_bin_only_with_weights_only(ckpt, tmp_path):
    from safetensors.torch import load_file

    state = load_file(str(ckpt / "model.safetensors"))
    (ckpt / "model.safetensors").unlink()
    torch.save(state, ckpt / "pytorch_model.bin")  # plain tensors: loads with weights_only=True
    assert load_pretrained(ckpt, device="cpu").cfg.n_layers == 2

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, ckpt / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="weights_only=True"):
        load_pretrained(ckpt)


def test_tokenizer_of_another_model(ckpt):
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["vocab_size"] = 50
    (ckpt / "config.json").write_text(json.dumps(cfg))
    from safetensors.torch import load_file, save_file

    state = load_file(str(ckpt / "model.safetensors"))
    for k in list(state):
        if state[k].shape[0] == len(state) or k.endswith("wte.weight") or k.endswith("lm_head.weight"):
            state[k] = state[k][:50].clone()
    save_file(state, str(ckpt / "model.safetensors"))
    with pytest.raises(ModelLoadError, match="tokenizer"):
        load_pretrained(ckpt)


def test_native_roundtrip(tmp_path):
    cfg = ModelConfig(n_layers=1, d_model=32, n_heads=2, d_vocab=40, n_ctx=16, tie_word_embeddings=True,
                      positional_embedding_type="alibi", normalization_type="RMS")
    model = Transformer(cfg).init_weights(3).eval()
    save_native(model, tmp_path / "m", card="# test")
    loaded = load_pretrained(tmp_path / "m", device="cpu")
    tokens = torch.randint(0, 40, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens), model(tokens))
    assert loaded.unembed.weight is loaded.embed.W_E


def test_list_models_entries_load():
    for info in list_models():
        assert info.family and info.summary and info.path.is_dir()
