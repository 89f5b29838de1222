"""Encoder-only (BERT), ALiBi (BLOOM) and encoder-decoder (Marian, BART) models against Hugging
Face on the same random weights: logits, per-layer hidden states, attention patterns (self and
cross), padding, greedy generation with and without the key/value cache."""

from __future__ import annotations

import pytest
import torch

from hf_reference import (
    hf_forward,
    hf_seq2seq_forward,
    load_hf_model,
    random_tokens,
    save_random_hf_model,
)
from models.loading import load_pretrained, save_native

ATOL = 1e-4
VOCAB = 300


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    made = {}

    def get(kind, **overrides):
        key = (kind, tuple(sorted(overrides.items())))
        if key not in made:
            made[key] = save_random_hf_model(kind, root / f"{kind}-{len(made)}", **overrides)
        return made[key]

    return get


def close(a, b, atol=ATOL):
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


# ----------------------------------------------------------------------------- encoder-only, ALiBi
@pytest.mark.parametrize("kind", ["bert", "bert_nohead", "bloom"])
def test_single_stack_matches_hf(checkpoints, kind):
    path = checkpoints(kind)
    ours, hf = load_pretrained(path, device="cpu"), load_hf_model(path)
    tokens = random_tokens(VOCAB, 11, batch=2, seed=3, bos=None)
    out, cache = ours.run_with_cache(tokens)
    ref = hf(tokens, output_hidden_states=True, output_attentions=True, return_dict=True)
    if kind == "bert_nohead":
        assert not ours.cfg.has_logits
        assert out.shape == (2, 11, ours.cfg.d_model)
        close(out, ref.last_hidden_state)
    else:
        assert out.shape == (2, 11, VOCAB)
        close(out, ref.logits)
    n = ours.cfg.n_layers
    close(cache["blocks.0.hook_resid_pre"], ref.hidden_states[0])
    for layer in range(n):
        close(cache[f"blocks.{layer}.attn.hook_pattern"], ref.attentions[layer], atol=1e-5)
        if kind != "bloom" or layer < n - 1:  # HF's last hidden state is after ln_f for BLOOM
            close(cache[f"blocks.{layer}.hook_resid_post"], ref.hidden_states[layer + 1])
    if kind == "bloom":
        close(ours.ln_final(cache[f"blocks.{n - 1}.hook_resid_post"]), ref.hidden_states[n])
    else:  # post-LN encoder: the bidirectional pattern is not triangular
        pattern = cache["blocks.0.attn.hook_pattern"]
        assert pattern.triu(1).abs().sum() > 0.1


def test_bert_token_types_change_the_output(checkpoints):
    path = checkpoints("bert")
    ours, hf = load_pretrained(path, device="cpu"), load_hf_model(path)
    tokens = random_tokens(VOCAB, 9, seed=4, bos=None)
    types = torch.tensor([[0] * 4 + [1] * 5])
    with torch.no_grad():
        ref = hf(tokens, token_type_ids=types).logits
    close(ours(tokens, token_type_ids=types), ref)
    assert (ours(tokens) - ref).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["bert", "bloom"])
def test_padded_batch_equals_unpadded_and_hf(checkpoints, kind):
    path = checkpoints(kind)
    ours, hf = load_pretrained(path, device="cpu"), load_hf_model(path)
    short = random_tokens(VOCAB, 6, seed=5, bos=None)
    long = random_tokens(VOCAB, 10, seed=6, bos=None)
    batch = torch.cat([torch.cat([short, torch.ones(1, 4, dtype=torch.long)], 1), long])
    mask = torch.tensor([[1] * 6 + [0] * 4, [1] * 10])
    padded = ours(batch, attention_mask=mask)
    close(padded[:1, :6], ours(short))
    close(padded[1:], ours(long))
    with torch.no_grad():
        ref = hf(batch, attention_mask=mask).logits
    close(padded[:1, :6], ref[:1, :6])


def test_bloom_alibi_scores_have_the_formula(checkpoints):
    """hook_attn_scores = q.k/sqrt(d) + slope_h (k - q) below the diagonal, -inf above."""
    model = load_pretrained(checkpoints("bloom"), device="cpu")
    _, cache = model.run_with_cache(random_tokens(VOCAB, 8, seed=7, bos=None))
    q, k = cache["blocks.1.attn.hook_q"], cache["blocks.1.attn.hook_k"]
    plain = torch.einsum("bqhd,bkhd->bhqk", q, k) / model.cfg.d_head**0.5
    rel = torch.arange(8)[None, :] - torch.arange(8)[:, None]
    H = model.cfg.n_heads
    slopes = torch.tensor([2 ** (-8 * (h + 1) / H) for h in range(H)])
    expected = plain + slopes[:, None, None] * rel
    causal = torch.ones(8, 8, dtype=torch.bool).tril()
    scores = cache["blocks.1.attn.hook_attn_scores"]
    close(scores[..., causal], expected[..., causal], atol=1e-5)
    assert torch.isinf(scores[..., ~causal]).all()


# ----------------------------------------------------------------------------- encoder-decoder
@pytest.mark.parametrize("kind", ["marian", "bart"])
def test_seq2seq_matches_hf(checkpoints, kind):
    path = checkpoints(kind)
    ours, hf = load_pretrained(path, device="cpu"), load_hf_model(path)
    assert ours.cfg.family == "encoder-decoder"
    src = random_tokens(VOCAB, 12, batch=2, seed=8, bos=None)
    tgt = random_tokens(VOCAB, 7, batch=2, seed=9, bos=None)
    ref = hf_seq2seq_forward(hf, src, tgt)
    logits, cache = ours.run_with_cache(src, tgt)
    close(logits, ref["logits"])
    close(cache["encoder.blocks.0.hook_resid_pre"], ref["encoder_hidden_states"][0])
    close(cache["decoder.blocks.0.hook_resid_pre"], ref["decoder_hidden_states"][0])
    for layer in range(ours.cfg.n_layers):
        close(cache[f"encoder.blocks.{layer}.hook_resid_post"], ref["encoder_hidden_states"][layer + 1])
        close(cache[f"encoder.blocks.{layer}.attn.hook_pattern"], ref["encoder_attentions"][layer], atol=1e-5)
    for layer in range(ours.cfg.n_decoder_layers):
        close(cache[f"decoder.blocks.{layer}.hook_resid_post"], ref["decoder_hidden_states"][layer + 1])
        close(cache[f"decoder.blocks.{layer}.attn.hook_pattern"], ref["decoder_attentions"][layer], atol=1e-5)
        cross = cache[f"decoder.blocks.{layer}.cross_attn.hook_pattern"]
        assert cross.shape == (2, 4, 7, 12)
        close(cross, ref["cross_attentions"][layer], atol=1e-5)
        # cross-attention keys/values are read from the encoder output
        enc_out = cache[f"encoder.blocks.{ours.cfg.n_layers - 1}.hook_resid_post"]
        attn = ours.decoder.blocks[layer].cross_attn
        close(cache[f"decoder.blocks.{layer}.cross_attn.hook_k"],
              torch.einsum("bsm,hmd->bshd", enc_out, attn.W_K) + attn.b_K, atol=1e-5)


def test_seq2seq_source_padding(checkpoints):
    path = checkpoints("marian")
    ours, hf = load_pretrained(path, device="cpu"), load_hf_model(path)
    src = random_tokens(VOCAB, 10, batch=2, seed=10, bos=None)
    mask = torch.tensor([[1] * 6 + [0] * 4, [1] * 10])
    src[0, 6:] = 1
    tgt = random_tokens(VOCAB, 5, batch=2, seed=11, bos=None)
    ref = hf_seq2seq_forward(hf, src, tgt, src_mask=mask)
    out = ours(src, tgt, attention_mask=mask)
    close(out, ref["logits"])
    close(out[:1], ours(src[:1, :6], tgt[:1]))


def test_cross_attention_circuits_are_factored_products(checkpoints):
    model = load_pretrained(checkpoints("bart"), device="cpu")
    attn = model.decoder.blocks[1].cross_attn
    h = 2
    close(attn.QK[h].AB, attn.W_Q[h] @ attn.W_K[h].T, atol=1e-6)
    close(attn.OV[h].AB, attn.W_V[h] @ attn.W_O[h], atol=1e-6)
    assert attn.QK.AB.shape == (4, 64, 64)


@pytest.mark.parametrize("kind", ["marian", "bart"])
def test_greedy_generate_equals_hf_and_cache_equals_no_cache(checkpoints, kind):
    path = checkpoints(kind, initializer_range=0.3)
    ours, hf = load_pretrained(path, device="cpu"), load_hf_model(path)
    src = random_tokens(VOCAB, 12, batch=3, seed=12, bos=None)
    expected = hf.generate(src, max_new_tokens=12, num_beams=1, do_sample=False)
    got = ours.generate(src, max_new_tokens=12)
    assert torch.equal(got, expected), (got, expected)
    assert torch.equal(ours.generate(src, max_new_tokens=12, use_cache=False), got)
    assert len(set(got[:, 1:-1].flatten().tolist())) > 1  # not a degenerate case


@pytest.mark.parametrize("kind", ["gpt2", "llama_gqa", "bloom"])
def test_decoder_only_generate_equals_hf(checkpoints, kind):
    path = checkpoints(kind)
    ours, hf = load_pretrained(path, device="cpu"), load_hf_model(path)
    prompt = random_tokens(VOCAB, 6, batch=2, seed=13)
    expected = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, num_beams=1,
                           do_sample=False, eos_token_id=None, pad_token_id=0)
    got = ours.generate(prompt, max_new_tokens=8, eos_token_id=None)
    assert torch.equal(got, expected)
    assert torch.equal(ours.generate(prompt, max_new_tokens=8, eos_token_id=None, use_cache=False), got)
    # left-padded batch: the short prompt continues exactly as it does alone
    short = prompt[:1, 2:]
    batch = torch.cat([torch.cat([torch.zeros(1, 2, dtype=torch.long), short], 1), prompt[1:]])
    mask = torch.tensor([[0, 0] + [1] * 4, [1] * 6])
    padded = ours.generate(batch, max_new_tokens=5, attention_mask=mask, eos_token_id=None)
    alone = ours.generate(short, max_new_tokens=5, eos_token_id=None)
    assert torch.equal(padded[0, 2:], alone[0])


def test_seq2seq_save_native_round_trip(checkpoints, tmp_path):
    model = load_pretrained(checkpoints("bart"), device="cpu")
    assert model.decoder.embed.W_E is model.encoder.embed.W_E is model.unembed.weight
    save_native(model, tmp_path / "copy")
    again = load_pretrained(tmp_path / "copy", device="cpu")
    assert again.decoder.embed.W_E is again.encoder.embed.W_E
    src, tgt = random_tokens(VOCAB, 5, seed=14, bos=None), random_tokens(VOCAB, 3, seed=15, bos=None)
    close(again(src, tgt), model(src, tgt), atol=0)
    assert "encoder-decoder, 2+2 layers" in again.cfg.summary()


def test_generate_stops_at_the_context_length():
    """An output that never says EOS (here: every cross-attention head zeroed, so the decoder
    cannot read the source) stops at the decoder's context instead of running off its
    position table."""
    import models

    model = models.load_pretrained("translator-es-en")
    src = model.to_tokens("el gato negro come el pescado")

    def zero(z, hook):
        return torch.zeros_like(z)

    hooks = [(f"decoder.blocks.{l}.cross_attn.hook_z", zero) for l in range(2)]
    with model.hooks(fwd_hooks=hooks):
        out = model.generate(src, max_new_tokens=500)
    assert out.shape[1] == model.cfg.n_ctx
    assert model.generate(src, max_new_tokens=500).shape[1] < model.cfg.n_ctx  # the normal one ends early
