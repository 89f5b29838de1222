"""MLP neurons: activations are ``mlp.hook_post`` (the gated product for SwiGLU), top positions are
the batch's largest, per-neuron direct logit attributions add up to the layer's MLP row of the
residual DLA, and a neuron's logit weights predict the model's own response to a change of its
activation when the final norm's scale is frozen.

Tolerance 1e-4 (absolute), as in test_residual.py: float32 rearrangements of O(1) sums."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from circuits import residual as R
from circuits.neurons import (
    neuron_activations,
    neuron_direct_logit_attribution,
    neuron_logit_effect,
    neuron_logit_weights,
    top_activating_positions,
)
from models import load_pretrained
from tests.hf_reference import random_tokens, save_random_hf_model

ATOL = 1e-4


def close(a, b, atol=ATOL):
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    cache = {}

    def get(kind):
        if kind not in cache:
            if kind in ("induction-2l", "translator-es-en"):
                cache[kind] = load_pretrained(kind, device="cpu")
            else:
                cache[kind] = load_pretrained(save_random_hf_model(kind, tmp_path_factory.mktemp(kind)), device="cpu")
        return cache[kind]

    return get


def inputs(model, seed=1):
    tokens = random_tokens(model.cfg.d_vocab, 8, batch=2, seed=seed)
    src = random_tokens(model.cfg.d_vocab, 6, batch=2, seed=seed + 1) if model.cfg.family == "encoder-decoder" else None
    return tokens, src


def cached(model, tokens, src, names):
    with torch.no_grad():
        args = (src, tokens) if src is not None else (tokens,)
        return model.run_with_cache(*args, names_filter=lambda n: n in names)


KINDS = ["gpt2", "llama_gqa", "neox", "marian", "bart"]


@pytest.mark.parametrize("kind", KINDS)
def test_neuron_dla_sums_to_the_mlp_row(zoo, kind):
    """Summed over every neuron of a layer, the neurons' direct effects are the layer's MLP row
    of the residual DLA (an independent path: the decomposition's sequential frozen norms)."""
    model = zoo(kind)
    tokens, src = inputs(model)
    attr = R.direct_logit_attribution(model, tokens, answer=5, wrong=[7, 8], src=src)
    per_position = [[], []]
    for layer in range(2):
        per_neuron = neuron_direct_logit_attribution(model, tokens, layer, 5, [7, 8], positions=[-1], src=src)
        d_mlp = R.logits_stack(model)[1].cfg.d_mlp
        assert per_neuron.shape == (2, 1, d_mlp)
        row = attr.values[attr.labels.index(f"L{layer} MLP")]
        close(per_neuron.sum(-1)[:, 0], row)
        assert row.abs().max() > 1e-2  # the MLP matters: the equality is not 0 == 0
        per_position[layer] = per_neuron
    # negative control: the other layer's neurons do not sum to this layer's row
    assert (per_position[0].sum(-1)[:, 0] - attr.values[attr.labels.index("L1 MLP")]).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["gpt2", "llama_gqa"])
def test_neuron_dla_is_activation_times_logit_weight_over_scale(zoo, kind):
    """Pre-LN: direct effect = post_n * (logit weight[a] - logit weight[w]) / final-norm scale,
    with post and scale from a separate cached run."""
    model = zoo(kind)
    tokens, _ = inputs(model)
    neurons = [0, 17, 33]
    nd = neuron_direct_logit_attribution(model, tokens, 1, 4, 9, neurons=neurons)
    assert nd.shape == (2, 8, 3)
    _, cache = cached(model, tokens, None, ["blocks.1.mlp.hook_post", "ln_final.hook_scale"])
    weights = neuron_logit_weights(model, 1, neurons)
    post, scale = cache["blocks.1.mlp.hook_post"][..., neurons], cache["ln_final.hook_scale"]
    expected = post * (weights[:, 4] - weights[:, 9]) / scale
    close(nd, expected)


@pytest.mark.parametrize("kind", ["gpt2", "llama_gqa", "neox"])
def test_logit_weights_predict_the_models_response(zoo, kind):
    """Raise one last-layer neuron's activation by delta at one position with the final norm's
    scale frozen: the model's logits move by delta * logit_weights / scale."""
    model = zoo(kind)
    tokens, _ = inputs(model)
    layer, neuron, delta = model.cfg.n_layers - 1, 21, 0.5
    with torch.no_grad():
        base, cache = model.run_with_cache(tokens, names_filter=["ln_final.hook_scale"])

    def bump(act, hook):
        act = act.clone()
        act[:, 3, neuron] += delta
        return act

    hooks = [(f"blocks.{layer}.mlp.hook_post", bump), ("ln_final.hook_scale", lambda act, hook: cache[hook.name])]
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        bumped = model(tokens)
    effect = neuron_logit_effect(model, layer, neuron, k=5)
    expected = delta * effect.logit_weights / cache["ln_final.hook_scale"][:, 3]
    close(bumped[:, 3] - base[:, 3], expected)
    # and the weights are the hand formula: centred output row (LayerNorm) times the gain, unembedded
    w_out = model.blocks[layer].mlp.W_out[neuron]
    if model.cfg.normalization_type == "LN":
        w_out = w_out - w_out.mean()
    close(effect.logit_weights, (w_out * model.ln_final.w) @ model.W_U, atol=1e-5)
    assert torch.equal(effect.promoted_ids, effect.logit_weights.topk(5).indices)
    assert torch.equal(effect.suppressed_ids, effect.logit_weights.topk(5, largest=False).indices)
    assert effect.promoted_values[0] > 0 > effect.suppressed_values[0]
    assert effect.promoted_tokens == model.to_str_tokens(effect.promoted_ids)


def test_swiglu_activation_is_the_gated_product(zoo):
    model = zoo("llama_gqa")
    tokens, _ = inputs(model)
    acts = neuron_activations(model, tokens, 1)
    _, cache = cached(model, tokens, None, ["blocks.1.ln2.hook_normalized", "blocks.1.mlp.hook_post"])
    x, mlp = cache["blocks.1.ln2.hook_normalized"], model.blocks[1].mlp
    close(acts, F.silu(x @ mlp.W_gate) * (x @ mlp.W_in), atol=1e-5)
    assert (acts - F.silu(x @ mlp.W_gate)).abs().max() > 1e-2  # not the gate alone


@pytest.mark.parametrize("kind", ["gpt2", "marian"])
def test_activations_equal_a_full_run(zoo, kind):
    """A decoder-only model stops after the neuron's layer; values equal a full cached run."""
    model = zoo(kind)
    tokens, src = inputs(model)
    prefix = R.logits_stack(model)[0]
    name = f"{prefix}blocks.0.mlp.hook_post"
    _, cache = cached(model, tokens, src, [name])
    close(neuron_activations(model, tokens, 0, [3, 4], src=src), cache[name][..., [3, 4]], atol=1e-6)


def test_top_activating_positions(zoo):
    model = zoo("gpt2")
    tokens, _ = inputs(model)
    mask = torch.ones_like(tokens)
    mask[1, 5:] = 0
    acts = neuron_activations(model, tokens, 1, [7], attention_mask=mask)[..., 0]
    acts[1, 5:] = float("-inf")  # padding never ranks
    top = top_activating_positions(model, tokens, 1, 7, k=4, attention_mask=mask)
    expected = acts.flatten().topk(4)
    close(top.values, expected.values)
    assert (top.batch_index * 8 + top.positions).tolist() == expected.indices.tolist()
    assert top.tokens == [model.to_str_tokens(tokens[b, p : p + 1])[0] for b, p in zip(top.batch_index, top.positions)]
    assert top.activations[1, 5:].isnan().all() and not top.activations[:, :5].isnan().any()
    bottom = top_activating_positions(model, tokens, 1, 7, k=2, largest=False, attention_mask=mask)
    assert bottom.values[0] == acts.masked_fill(acts == float("-inf"), float("inf")).min()
    assert bottom.values[0] < top.values[-1]
    everything = top_activating_positions(model, tokens, 1, 7, k=100, attention_mask=mask)
    assert len(everything.values) == 8 + 5  # k is capped at the real positions


def test_text_prompts(zoo):
    """Text prompts (padded batch) go through the model's tokenizer."""
    model = zoo("llama_gqa")
    top = top_activating_positions(model, ["the cat sat", "a dog"], 0, 5, k=3)
    assert len(top.tokens) == 3 and top.values[0] >= top.values[-1]


def test_models_without_neurons_or_logits(zoo, tmp_path):
    with pytest.raises(ValueError, match="attention-only"):
        neuron_activations(zoo("induction-2l"), torch.tensor([[1, 2, 3]]), 0)
    encoder = load_pretrained(save_random_hf_model("bert_nohead", tmp_path / "b"), device="cpu")
    tokens = random_tokens(encoder.cfg.d_vocab, 6)
    assert neuron_activations(encoder, tokens, 1, 0).shape == (1, 6, 1)
    with pytest.raises(ValueError, match="no output head"):
        neuron_logit_effect(encoder, 1, 0)
    with pytest.raises(ValueError, match="masked-LM head"):
        neuron_direct_logit_attribution(zoo("bert"), tokens, 1, 3)
    with pytest.raises(ValueError, match="out of range"):
        neuron_logit_weights(zoo("gpt2"), 1, [10_000])


def test_translator_neuron(zoo):
    """Encoder-decoder: decoder neurons, with text in; the per-neuron sum identity holds."""
    model = zoo("translator-es-en")
    src, tgt = "el gato negro come el pescado", "the black"
    cat = model.to_single_token("cat")
    nd = neuron_direct_logit_attribution(model, tgt, 1, cat, src=src, positions=[-1])
    attr = R.direct_logit_attribution(model, tgt, cat, src=src)
    close(nd.sum(-1)[:, 0], attr.values[attr.labels.index("L1 MLP")])
    top = top_activating_positions(model, tgt, 1, int(nd[0, 0].argmax()), k=2, src=src)
    decoder_tokens = R.prepare_inputs(model, tgt, src=src)[0][0]
    assert len(top.tokens) == 2 and set(top.tokens) <= set(model.to_str_tokens(decoder_tokens))
