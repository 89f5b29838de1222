"""Shared test fixtures.

``tiny_gpt2_dir``: a tiny random-weight GPT-2 checkpoint folder in Hugging Face
format (config.json, model.safetensors, tokenizer.json, ...), built in code
once per test session: no downloads. Any test can use it as a local
checkpoint, e.g. ``models.load_pretrained(str(tiny_gpt2_dir))``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

TINY_GPT2 = dict(n_layer=2, n_head=4, n_embd=64, n_positions=128)

_CORPUS = [
    "The cat sat on the mat. The dog sat on the log.",
    "When Mary and John went to the store, John gave a drink to Mary.",
    "El gato se sentó en la alfombra. La cabeza de atención mira al token anterior.",
    "one two three four five six seven eight nine ten",
]


def build_tiny_gpt2_checkpoint(folder: Path, seed: int = 0) -> Path:
    """Write a random-weight GPT-2 (2 layers, 4 heads, d_model 64, context 128)
    and a byte-level BPE tokenizer (trained here on a few sentences) to ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers import models as tok_models
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tokenizer = Tokenizer(tok_models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer)
    hf_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )

    torch.manual_seed(seed)
    config = GPT2Config(
        **TINY_GPT2,
        vocab_size=len(hf_tokenizer),
        bos_token_id=hf_tokenizer.bos_token_id,
        eos_token_id=hf_tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    hf_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny random GPT-2 checkpoint (HF format), built once per session."""
    return build_tiny_gpt2_checkpoint(tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
