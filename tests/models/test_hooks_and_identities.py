"""Hook names and the analytic identities of the residual stream, on natively built models."""

import pytest
import torch
from transformer_lens import ActivationCache, FactoredMatrix

from models import ModelConfig, Transformer

# One full ordered list, written out by hand: a renamed or reordered hook fails here.
EXPECTED_GPT2_STYLE_HOOKS = [
    "hook_embed", "hook_pos_embed",
    *[
        f"blocks.{l}.{name}"
        for l in range(2)
        for name in [
            "hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized",
            "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_attn_scores", "attn.hook_pattern",
            "attn.hook_z", "attn.hook_result", "hook_attn_out", "hook_resid_mid",
            "ln2.hook_scale", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out",
            "hook_resid_post",
        ]
    ],
    "ln_final.hook_scale", "ln_final.hook_normalized",
]


def make(seed=0, **kw):
    base = dict(n_layers=2, d_model=48, n_heads=4, d_vocab=61, n_ctx=32)
    base.update(kw)
    return Transformer(ModelConfig(**base)).init_weights(seed, std=0.1).eval()


@pytest.fixture
def tokens():
    return torch.randint(0, 61, (3, 11), generator=torch.Generator().manual_seed(1))


def test_full_ordered_hook_names_gpt2_style(tokens):
    model = make()
    assert list(model.hook_dict) == EXPECTED_GPT2_STYLE_HOOKS
    _, cache = model.run_with_cache(tokens)
    assert list(cache.keys()) == EXPECTED_GPT2_STYLE_HOOKS  # execution order == module order


def test_hook_shapes(tokens):
    model = make(n_key_value_heads=2, positional_embedding_type="rotary", normalization_type="RMS", gated_mlp=True, act_fn="silu")
    _, cache = model.run_with_cache(tokens)
    b, p = tokens.shape
    assert cache["blocks.0.attn.hook_q"].shape == (b, p, 4, 12)
    assert cache["blocks.0.attn.hook_k"].shape == (b, p, 2, 12)  # K/V heads, not query heads
    assert cache["blocks.0.attn.hook_rot_k"].shape == (b, p, 2, 12)
    assert cache["blocks.0.attn.hook_pattern"].shape == (b, 4, p, p)
    assert cache["blocks.0.attn.hook_result"].shape == (b, p, 4, 48)
    assert cache["blocks.0.mlp.hook_pre_linear"].shape == (b, p, 4 * 48)
    assert cache["blocks.1.ln2.hook_scale"].shape == (b, p, 1)
    assert "hook_pos_embed" not in cache  # rotary models add no position vector to the stream


ARCHS = {
    "gpt2": {},
    "neox_parallel": dict(positional_embedding_type="rotary", rotary_dim=6, parallel_attn_mlp=True, act_fn="gelu"),
    "llama_gqa": dict(positional_embedding_type="rotary", normalization_type="RMS", gated_mlp=True, act_fn="silu",
                      n_key_value_heads=2, attn_bias=False, mlp_bias=False),
    "mqa_alibi": dict(positional_embedding_type="alibi", n_key_value_heads=1),
    "post_ln_sinusoidal": dict(positional_embedding_type="sinusoidal", norm_position="post", final_norm=False, act_fn="relu"),
}


@pytest.mark.parametrize("arch", ARCHS)
def test_residual_identities(arch, tokens):
    model = make(**ARCHS[arch])
    cfg = model.cfg
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    for l in range(cfg.n_layers - 1):
        torch.testing.assert_close(cache[f"blocks.{l}.hook_resid_post"], cache[f"blocks.{l + 1}.hook_resid_pre"], rtol=0, atol=0)
    for l in range(cfg.n_layers):
        pre, attn_out = cache[f"blocks.{l}.hook_resid_pre"], cache[f"blocks.{l}.hook_attn_out"]
        # sum over heads of z_h W_O^h is the attention output minus b_O
        b_O = model.blocks[l].attn.b_O
        heads = cache[f"blocks.{l}.attn.hook_result"].sum(dim=2)
        torch.testing.assert_close(heads, attn_out - (b_O if b_O is not None else 0), atol=1e-5, rtol=1e-5)
        if cfg.norm_position == "pre" and not cfg.parallel_attn_mlp:
            torch.testing.assert_close(cache[f"blocks.{l}.hook_resid_mid"], pre + attn_out, atol=1e-6, rtol=0)
        if cfg.parallel_attn_mlp:
            assert f"blocks.{l}.hook_resid_mid" not in cache
            torch.testing.assert_close(
                cache[f"blocks.{l}.hook_resid_post"], pre + attn_out + cache[f"blocks.{l}.hook_mlp_out"], atol=1e-6, rtol=0
            )


@pytest.mark.parametrize("arch", ARCHS)
def test_fused_and_materialised_attention_agree(arch, tokens):
    model = make(**ARCHS[arch])
    with torch.no_grad():
        fused = model(tokens)  # no hook on scores/pattern: scaled_dot_product_attention
        materialised, cache = model.run_with_cache(tokens)  # caching the pattern forces explicit softmax
    assert "blocks.0.attn.hook_pattern" in cache
    torch.testing.assert_close(fused, materialised, atol=2e-5, rtol=1e-5)
    # the pattern is a distribution over allowed keys
    pattern = cache["blocks.1.attn.hook_pattern"]
    torch.testing.assert_close(pattern.sum(-1), torch.ones_like(pattern[..., 0]))
    if model.cfg.is_causal:
        assert pattern.triu(1).abs().max() == 0


def test_padding_gives_the_same_numbers(tokens):
    model = make(positional_embedding_type="rotary", normalization_type="RMS")
    short = tokens[:1, :7]
    padded = torch.cat([short, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 7 + [0] * 4])
    with torch.no_grad():
        torch.testing.assert_close(model(padded, attention_mask=mask)[:, :7], model(short), atol=1e-5, rtol=1e-5)
        left = torch.cat([torch.zeros(1, 4, dtype=torch.long), short], dim=1)
        left_mask = torch.tensor([[0] * 4 + [1] * 7])
        torch.testing.assert_close(model(left, attention_mask=left_mask)[:, 4:], model(short), atol=1e-5, rtol=1e-5)


def test_hooks_never_stay_on_the_model(tokens):
    model = make()
    model.run_with_cache(tokens)
    with pytest.raises(RuntimeError):
        def boom(x, hook):
            raise RuntimeError("hook failed")
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_pattern", boom)])
    assert not any(hp.fwd_hooks or hp._forward_hooks for hp in model.hook_dict.values())


def test_qk_ov_factored_equal_dense():
    model = make(n_key_value_heads=2)
    attn = model.blocks[1].attn
    assert isinstance(attn.QK, FactoredMatrix) and attn.QK.shape == (4, 48, 48)
    for h in range(4):
        kv = h // 2  # query heads 0,1 share K/V head 0; 2,3 share 1
        torch.testing.assert_close(attn.QK.AB[h], attn.W_Q[h] @ attn.W_K[kv].T)
        torch.testing.assert_close(attn.OV.AB[h], attn.W_V[kv] @ attn.W_O[h])
    # W_Q etc. are views of the stored tensor, not copies
    assert attn.W_Q.data_ptr() == attn.w_qkv.data_ptr()
    assert model.QK.shape == (2, 4, 48, 48)
    torch.testing.assert_close(model.OV.AB[1], attn.OV.AB)


def test_scores_match_lecture_formula(tokens):
    """A = softmax(q k^T / sqrt(d_head)) on the cached q, k: the pattern is what the lecture says."""
    model = make()
    _, cache = model.run_with_cache(tokens)
    q, k = cache["blocks.1.attn.hook_q"], cache["blocks.1.attn.hook_k"]
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / model.cfg.d_head**0.5
    scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(torch.softmax(scores, -1), cache["blocks.1.attn.hook_pattern"])


def test_activation_cache_tools(tokens):
    model = make()
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    assert isinstance(cache, ActivationCache)
    resid, labels = cache.accumulated_resid(incl_mid=True, return_labels=True)
    assert labels[0] == "0_pre" and resid.shape[0] == model.cfg.n_layers * 2 + 1
    torch.testing.assert_close(resid[-1], cache["blocks.1.hook_resid_post"])
    parts = cache.decompose_resid()
    torch.testing.assert_close(parts.sum(0), cache["blocks.1.hook_resid_post"], atol=1e-5, rtol=1e-5)
    heads = cache.stack_head_results(layer=-1)
    assert heads.shape == (2 * 4, *tokens.shape, 48)
    # final-layer-normed accumulated residual through the unembedding reproduces the logits
    final = cache.apply_ln_to_stack(resid[-1:], layer=-1)
    torch.testing.assert_close(model.unembed(final[0]), logits, atol=1e-4, rtol=1e-4)
