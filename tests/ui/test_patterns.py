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
