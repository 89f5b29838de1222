"""Forward-pass cost of our hookable transformer against Hugging Face and TransformerBridge.

On a GPT-2-small-shaped model (random weights), in one run: our forward with hooks present but
none active, and a full ``run_with_cache``, as ratios to HF's forward and to TransformerBridge's
forward / ``run_with_cache`` on the same checkpoint. Targets (issue 2): <= 1.03x HF with no
active hooks, <= 1.10x HF for a full cache.

    python benchmarks/forward.py [--seq 128] [--batch 1] [--rounds 15] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.common import boot_bridge, gpt2_small_checkpoint, interleaved_medians  # noqa: E402
from models import load_pretrained  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-bridge", action="store_true", help="skip TransformerBridge")
    args = ap.parse_args(argv)

    from transformers import AutoModelForCausalLM

    folder = gpt2_small_checkpoint()
    hf = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True).to(args.device).eval()
    ours = load_pretrained(folder, device=args.device)
    tokens = torch.randint(0, 50257, (args.batch, args.seq), generator=torch.Generator().manual_seed(0)).to(args.device)
    with torch.inference_mode():
        diff = (hf(tokens).logits - ours(tokens)).abs().max().item()

    fns = {
        "hf": lambda: hf(tokens),
        "ours": lambda: ours(tokens),
        "ours_cache": lambda: ours.run_with_cache(tokens),
    }
    if not args.no_bridge:
        bridge = boot_bridge(folder, args.device)
        fns["bridge"] = lambda: bridge(tokens)
        fns["bridge_cache"] = lambda: bridge.run_with_cache(tokens)
    t = interleaved_medians(fns, args.rounds, device=args.device)

    print(f"GPT-2-small shape, batch {args.batch} x {args.seq} tokens, {args.device}, "
          f"{torch.get_num_threads()} threads, {args.rounds} interleaved rounds (medians)")
    print(f"max |ours - HF| logits: {diff:.2e}")
    for name, sec in t.items():
        print(f"  {name:13s} {sec * 1e3:8.1f} ms")
    print(f"ours / HF forward              {t['ours'] / t['hf']:.3f}x   (target <= 1.03)")
    print(f"ours run_with_cache / HF       {t['ours_cache'] / t['hf']:.3f}x   (target <= 1.10)")
    if "bridge" in t:
        print(f"bridge / HF forward            {t['bridge'] / t['hf']:.3f}x")
        print(f"bridge run_with_cache / HF     {t['bridge_cache'] / t['hf']:.3f}x")
        print(f"ours / bridge forward          {t['ours'] / t['bridge']:.3f}x")
        print(f"ours cache / bridge cache      {t['ours_cache'] / t['bridge_cache']:.3f}x")
    return t


if __name__ == "__main__":
    main()
