"""ui.patterns on the real models package and the tiny random checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import models
from ui.patterns import AttentionPatterns, PromptError, compute_attention_patterns


@pytest.fixture(scope="module")
def tiny_model(tiny_gpt2_dir: Path):
    return models.load_pretrained(str(tiny_gpt2_dir))


def test_patterns_shape_and_softmax(tiny_model) -> None:
    prompt = "The cat sat on the mat. The cat"
    result = compute_attention_patterns(tiny_model, prompt)
    assert isinstance(result, AttentionPatterns)
    n = len(tiny_model.to_str_tokens(prompt))
    assert result.str_tokens == tuple(tiny_model.to_str_tokens(prompt))
    assert result.patterns.shape == (tiny_model.cfg.n_layers, tiny_model.cfg.n_heads, n, n)
    assert result.patterns.dtype == np.float32
    assert (result.n_layers, result.n_heads) == (2, 4)
    np.testing.assert_allclose(result.patterns.sum(-1), 1.0, atol=1e-5)
    upper = np.triu(np.ones((n, n), bool), k=1)
    assert np.all(result.patterns[..., upper] == 0)  # causal
    np.testing.assert_array_equal(result.head(1, 2), result.patterns[1, 2])


def test_no_hooks_stay_on_model(tiny_model) -> None:
    compute_attention_patterns(tiny_model, "no hooks please")
    for name, module in tiny_model.named_modules():
        assert not module._forward_hooks, name
        assert not module._backward_hooks, name


def test_empty_prompt(tiny_model) -> None:
    for prompt in ("", "  \n\t"):
        with pytest.raises(PromptError) as err:
            compute_attention_patterns(tiny_model, prompt)
        assert err.value.code == "empty_prompt"


def test_prompt_too_long(tiny_model) -> None:
    with pytest.raises(PromptError) as err:
        compute_attention_patterns(tiny_model, "cat " * 500)
    assert err.value.code == "prompt_too_long"
    assert err.value.details["n_ctx"] == tiny_model.cfg.n_ctx
    assert err.value.details["n"] > tiny_model.cfg.n_ctx


def test_model_without_tokenizer(tiny_model, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tiny_model, "tokenizer", None)
    with pytest.raises(PromptError) as err:
        compute_attention_patterns(tiny_model, "hello")
    assert err.value.code == "no_tokenizer"


# ----------------------------------------------------------------- encoder and encoder-decoder models
@pytest.fixture(scope="module")
def marian(tmp_path_factory):
    from tests.hf_reference import save_random_hf_model

    return models.load_pretrained(str(save_random_hf_model("marian", tmp_path_factory.mktemp("marian"))))


def test_encoder_decoder_has_three_kinds_of_attention(marian) -> None:
    import torch

    source = "el gato negro"
    result = compute_attention_patterns(marian, source)  # no target: the model's own greedy output
    assert result.kinds == ("encoder", "decoder", "cross") and result.generated
    src = marian.to_tokens(source)
    tgt = marian.generate(src, max_new_tokens=48)
    assert result.target_text == marian.tokenizer.decode(tgt[0].tolist(), skip_special_tokens=True).strip()
    with torch.no_grad():
        _, cache = marian.run_with_cache(src, tgt)
    n_src, n_tgt = src.shape[1], tgt.shape[1]
    shapes = {"encoder": (n_src, n_src), "decoder": (n_tgt, n_tgt), "cross": (n_tgt, n_src)}
    for kind, (q, k) in shapes.items():
        chosen = result[kind]
        assert chosen.patterns.shape == (2, 4, q, k)
        assert (len(chosen.query_tokens), len(chosen.key_tokens)) == (q, k)
        np.testing.assert_allclose(chosen.patterns.sum(-1), 1.0, atol=1e-5)
        for layer in range(2):
            np.testing.assert_allclose(chosen.patterns[layer], cache[chosen.hook_name(layer)][0].numpy(), atol=1e-6)
    assert result["cross"].hook_name(1) == "decoder.blocks.1.cross_attn.hook_pattern"
    assert result["cross"].key_tokens == result["encoder"].query_tokens == tuple(marian.to_str_tokens(src[0]))
    upper = np.triu(np.ones((n_tgt, n_tgt), bool), k=1)
    assert np.all(result["decoder"].patterns[..., upper] == 0)  # the decoder is causal
    assert np.any(result["encoder"].patterns[..., np.triu(np.ones((n_src, n_src), bool), k=1)] > 0.01)  # not


def test_encoder_decoder_with_given_target(marian) -> None:
    from models.tokens import to_target_tokens_and_mask

    result = compute_attention_patterns(marian, "el gato negro", target="the black cat")
    assert not result.generated and result.target_text == "the black cat"
    tgt = to_target_tokens_and_mask(marian, "the black cat")[0]
    assert result["decoder"].query_tokens == tuple(marian.to_str_tokens(tgt[0]))
    assert result["cross"].patterns.shape[2] == tgt.shape[1]
    # a blank target means "generate"
    assert compute_attention_patterns(marian, "el gato negro", target="  ").generated


def test_encoder_attention_is_bidirectional(tmp_path) -> None:
    from tests.hf_reference import save_random_hf_model

    bert = models.load_pretrained(str(save_random_hf_model("bert_nohead", tmp_path / "bert")))
    result = compute_attention_patterns(bert, "the cat sat")
    assert result.kinds == ("self",) and result.target_text is None
    n = len(result.str_tokens)
    assert result.patterns.shape == (2, 4, n, n)
    np.testing.assert_allclose(result.patterns.sum(-1), 1.0, atol=1e-5)
    assert np.all(result.patterns[..., np.triu(np.ones((n, n), bool), k=1)] > 0)  # every later key is seen
