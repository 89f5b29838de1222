"""Ablations: identities that pin each kind, and the induction model's heads."""

from __future__ import annotations

import pytest
import torch

from circuits.ablation import Ablation, ablate, ablation_hooks
from circuits.metrics import LogitDiff
from models import load_pretrained
from tests.hf_reference import random_tokens, save_random_hf_model


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    return load_pretrained(save_random_hf_model("gpt2", tmp_path_factory.mktemp("gpt2")), device="cpu")


def run_with(model, tokens, ablations, names, **kw):
    hooks = ablation_hooks(model, tokens, ablations, **kw)
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        return model.run_with_cache(tokens, names_filter=lambda n: n in names)


def test_zero_all_heads_equals_zero_attention_layer(gpt2):
    tokens = random_tokens(gpt2.cfg.d_vocab, 9, batch=2, seed=1)
    heads = [Ablation("head", 1, h) for h in range(gpt2.cfg.n_heads)]
    a = ablate(gpt2, tokens, heads)
    b = ablate(gpt2, tokens, [Ablation("attn", 1)])
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)
    # the layer's output is removed, bias included: the same as zeroing hook_attn_out by hand
    _, cache = run_with(gpt2, tokens, heads, {"blocks.1.hook_attn_out"})
    assert (cache["blocks.1.hook_attn_out"] == 0).all()
    with torch.no_grad(), gpt2.hooks(fwd_hooks=[("blocks.1.hook_attn_out", lambda x, hook: torch.zeros_like(x))]):
        torch.testing.assert_close(gpt2(tokens), a.logits, atol=1e-5, rtol=0)
    # all heads but one: the bias stays (TransformerLens's convention for head ablation)
    _, cache = run_with(gpt2, tokens, heads[1:], {"blocks.1.hook_attn_out", "blocks.1.attn.hook_z"})
    z0 = cache["blocks.1.attn.hook_z"][:, :, 0]
    expected = z0 @ gpt2.blocks[1].attn.W_O[0] + gpt2.blocks[1].attn.b_O
    torch.testing.assert_close(cache["blocks.1.hook_attn_out"], expected, atol=1e-5, rtol=0)
    assert (a.logits - a.clean_logits).abs().max() > 1e-3


def test_ablating_nothing_and_mean_of_itself(gpt2):
    tokens = random_tokens(gpt2.cfg.d_vocab, 9, batch=2, seed=1)
    r = ablate(gpt2, tokens, [])
    torch.testing.assert_close(r.logits, r.clean_logits)
    # mean over a reference batch made of the prompt itself, per position, of a batch of one = the same run
    one = tokens[:1]
    r = ablate(gpt2, one, [Ablation("head", 0, 2, "mean"), Ablation("neuron", 1, 5, "mean")], reference=one)
    torch.testing.assert_close(r.logits, r.clean_logits, atol=1e-5, rtol=0)
    # resample from a reference made of copies of the prompt: unchanged too
    r = ablate(gpt2, tokens, [Ablation("mlp", 0, kind="resample")], reference=tokens[[0, 0]])
    torch.testing.assert_close(r.logits[0], r.clean_logits[0], atol=1e-5, rtol=0)
    assert (r.logits[1] - r.clean_logits[1]).abs().max() > 1e-4  # row 1 got row 0's MLP output


def test_position_and_neuron_selectors(gpt2):
    tokens = random_tokens(gpt2.cfg.d_vocab, 9, batch=2, seed=1)
    names = {"blocks.0.attn.hook_z", "blocks.1.mlp.hook_post"}
    _, clean = run_with(gpt2, tokens, [], names)
    _, cache = run_with(gpt2, tokens, [Ablation("head", 0, 3, position=4), Ablation("neuron", 1, 7)], names)
    z, zc = cache["blocks.0.attn.hook_z"], clean["blocks.0.attn.hook_z"]
    assert (z[:, 4, 3] == 0).all() and torch.equal(z[:, 3], zc[:, 3]) and torch.equal(z[:, 4, 2], zc[:, 4, 2])
    post = cache["blocks.1.mlp.hook_post"]
    assert (post[..., 7] == 0).all() and (post[..., 6] != 0).any()


def test_bad_ablations_say_what_to_do(gpt2):
    tokens = random_tokens(gpt2.cfg.d_vocab, 9, batch=1, seed=1)
    with pytest.raises(ValueError, match="out of range"):
        ablate(gpt2, tokens, [Ablation("head", 0, 99)])
    with pytest.raises(ValueError, match="reference tokens"):
        ablate(gpt2, tokens, [Ablation("head", 0, 1, "mean")])
    with pytest.raises(ValueError, match="same token length"):
        ablate(gpt2, tokens, [Ablation("head", 0, 1, "resample")], reference=tokens[:, :5])
    with pytest.raises(ValueError):
        Ablation("head", 0, None)


def test_metric_next_to_normal_run(gpt2):
    tokens = random_tokens(gpt2.cfg.d_vocab, 9, batch=2, seed=1)
    metric = LogitDiff(3, 4)
    r = ablate(gpt2, tokens, [Ablation("attn", 0)], metric=metric)
    with torch.no_grad():
        assert r.clean_metric == pytest.approx(float(metric(gpt2(tokens))), abs=1e-5)
    assert r.metric != pytest.approx(r.clean_metric, abs=1e-4) and r.loss != r.clean_loss


def test_mean_ablation_ranks_the_induction_models_heads():
    """Mean-ablating each head (reference: random, non-repeating sequences) on [BOS] + R + R:
    the heads the model card names raise the second copy's loss more than every other head."""
    import json
    from pathlib import Path

    from scripts.induction_metrics import repeated_sequences, word_ids

    model = load_pretrained("induction-2l", device="cpu")
    card = json.loads((Path(__file__).resolve().parents[2] / "models/zoo/induction-2l/heads.json").read_text())
    named = set(card["induction_heads"]) | set(card["previous_token_heads"])
    words = word_ids(model.tokenizer, model.cfg.d_vocab)
    bos, R = model.tokenizer.bos_token_id, 20
    tokens = repeated_sequences(bos, words, R, 32, seed=1)
    gen = torch.Generator().manual_seed(5)
    w = torch.tensor(words)
    reference = torch.cat([torch.full((32, 1), bos), w[torch.randint(len(w), (32, 2 * R), generator=gen)]], 1)

    def second_copy_loss(logits):
        logp = torch.log_softmax(logits[:, R + 1 : -1].float(), -1)
        return float(-logp.gather(-1, tokens[:, R + 2 :, None])[..., 0].mean())

    effect = {}
    for l in range(model.cfg.n_layers):
        for h in range(model.cfg.n_heads):
            r = ablate(model, tokens, [Ablation("head", l, h, "mean")], reference=reference)
            effect[f"L{l}H{h}"] = second_copy_loss(r.logits) - second_copy_loss(r.clean_logits)
    others = [v for k, v in effect.items() if k not in named]
    assert others and min(effect[k] for k in named) > max(others), effect
