"""Timing helpers shared by the benchmarks: interleaved rounds, medians, ratios in one run.

Machines are noisy, so every benchmark times all contenders in the same process, alternating
them round by round, and reports medians and ratios against the reference measured alongside.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved_medians(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 2, device: str = "cpu") -> dict[str, float]:
    """Median seconds per call of each function, timed round-robin so drift hits all equally."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        for _ in range(rounds):
            for name, fn in fns.items():
                sync(device)
                start = time.perf_counter()
                fn()
                sync(device)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def gpt2_small_checkpoint(folder: Path | None = None, seed: int = 0, **overrides) -> Path:
    """A random-weight GPT-2-small-shaped HF checkpoint (12 layers, 12 heads, d_model 768, vocab 50257)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = Path(folder or tempfile.mkdtemp(prefix="gpt2_small_"))
    torch.manual_seed(seed)
    GPT2LMHeadModel(GPT2Config(**overrides)).save_pretrained(folder)
    return folder


def boot_bridge(folder: Path, device: str = "cpu"):
    """TransformerLens's TransformerBridge on the same local checkpoint (eager attention), offline."""
    from transformers import AutoModelForCausalLM
    from transformer_lens.model_bridge import TransformerBridge

    hf = AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation="eager", local_files_only=True)
    return TransformerBridge.boot_transformers(str(folder), hf_model=hf.to(device).eval(), device=device)
