"""Parity with Hugging Face (the reference nobody here wrote) and TransformerLens's tools on TransformerBridge.

Tolerance 1e-4 on logits in float32: the two implementations order floating-point sums
differently (fused vs separate QKV products, SDPA vs eager softmax), which moves logits by ~1e-6.
"""

import pytest
import torch
from transformer_lens import patching

from models import load_pretrained
from tests.hf_reference import LM_KINDS, boot_bridge, hf_forward, random_tokens, save_random_hf_model


# bert_nohead, marian and bart: tests/models/test_encoders_seq2seq.py
@pytest.fixture(scope="module", params=LM_KINDS)
def checkpoint(request, tmp_path_factory):
    return request.param, save_random_hf_model(request.param, tmp_path_factory.mktemp(request.param))


def test_logits_hidden_states_and_patterns_match_hf(checkpoint):
    kind, path = checkpoint
    model = load_pretrained(path, device="cpu")
    tokens = random_tokens(model.cfg.d_vocab, 12, batch=2, seed=1)
    logits_hf, hidden, attentions = hf_forward(path, tokens)
    with torch.no_grad():
        fused = model(tokens)
        logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(fused, logits_hf, atol=1e-4, rtol=0)
    torch.testing.assert_close(logits, logits_hf, atol=1e-4, rtol=0)
    for l in range(model.cfg.n_layers - 1):  # HF's last hidden state already has the final norm applied
        torch.testing.assert_close(cache[f"blocks.{l}.hook_resid_post"], hidden[l + 1], atol=1e-4, rtol=0)
    for l in range(model.cfg.n_layers):
        torch.testing.assert_close(cache[f"blocks.{l}.attn.hook_pattern"], attentions[l], atol=1e-5, rtol=0)
    assert (fused.argmax(-1) == logits_hf.argmax(-1)).all()


@pytest.mark.parametrize("kind", ["gpt2", "llama_gqa"])
def test_tl_patching_equals_bridge(kind, tmp_path):
    path = save_random_hf_model(kind, tmp_path / kind)
    ours, bridge = load_pretrained(path, device="cpu"), boot_bridge(path)
    clean = random_tokens(ours.cfg.d_vocab, 9, batch=2, seed=2)
    corrupted = clean.clone()
    corrupted[:, 3] = (corrupted[:, 3] + 17) % ours.cfg.d_vocab

    def metric(logits):
        return (logits[:, -1, 5] - logits[:, -1, 9]).mean()

    results = []
    for model in (ours, bridge):
        _, cache = model.run_with_cache(clean)
        results.append([
            patching.get_act_patch_attn_head_out_all_pos(model, corrupted, cache, metric),
            patching.get_act_patch_resid_pre(model, corrupted, cache, metric),
        ])
    for a, b in zip(*results):
        a, b = torch.as_tensor(getattr(a, "tensor", a)), torch.as_tensor(getattr(b, "tensor", b))
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
        assert a.abs().max() > 0  # the corruption matters, so equality is not vacuous
