"""Train ``translator-es-en``: a toy Spanish -> English encoder-decoder of Vaswani et al.'s kind.

Architecture as in "Attention Is All You Need" (2017), small: an encoder of bidirectional
self-attention blocks, a decoder of causal self-attention + cross-attention blocks, sinusoidal
positions, post-LN residual blocks, ReLU MLPs, embeddings scaled by sqrt(d_model) and shared by
encoder, decoder and the pre-softmax projection.

Data: a synthetic parallel corpus drawn on the fly from the bilingual grammar of
``scripts/translation_grammar.py`` (adjective-noun reordering, gender/number agreement,
a/an, personal "a", do-support; ~700 words). Held-out sentences are drawn first with their
own seed, written next to the model (``heldout.tsv``) and never used in training.

Loss: next-token cross-entropy, plus an *alignment loss* on the last decoder layer's
cross-attention (guided alignment, Garg et al. 2019, "Jointly Learning to Align and Translate
with Transformer Models"): the head-averaged attention from each English word's row to the
Spanish word it translates, as the grammar aligns them (-log of that weight). Without it the
last layer is free to look anywhere useful for the *next* word; with it, the attention page
shows the word alignment a class expects (row "black" -> column "negro"), while layer 0 keeps
the attention it learned on its own (see the card).

Usage (from the repository root):
    python scripts/train_translator.py                        # writes models/zoo/translator-es-en
    python scripts/train_translator.py --quick --out /tmp/x   # a few steps, for tests

Deterministic on CPU: fixed seeds, torch.use_deterministic_algorithms(True) and a fixed number
of threads (--threads), so the same arguments on the same machine give the same model.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from scripts.translation_grammar import ADJECTIVES, NOUNS, VERBS, Example, Grammar, write_examples  # noqa: E402
from scripts.translator_metrics import (  # noqa: E402
    ALIGNMENT_THRESHOLD,
    EXACT_MATCH_THRESHOLD,
    alignment,
    exact_match,
)

MODEL_NAME = "translator-es-en"
DEFAULT_OUT = REPO_ROOT / "models" / "zoo" / MODEL_NAME
SPECIAL_TOKENS = ["<pad>", "</s>", "<s>", "<unk>"]  # ids 0..3
PAD, EOS, START, UNK = range(4)
HELDOUT_FILE = "heldout.tsv"
HELDOUT_SEED_OFFSET = 1_000_003  # held-out sentences come from their own generator


# ---------------------------------------------------------------------- tokenizer
def build_tokenizer(words: list[str]):
    """Word-level tokenizer over both languages' words: lowercases, drops punctuation
    (``¿El gato come?`` reads as ``el gato come``), appends ``</s>`` to a source sentence."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers import models as tok_models
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIAL_TOKENS + words)}
    tok = Tokenizer(tok_models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Lowercase(), normalizers.Replace(Regex(r"[.,;:!?¡¿\"()«»]"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", EOS)])
    tok.add_special_tokens(SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", bos_token="<s>", unk_token="<unk>"
    )


# ---------------------------------------------------------------------- data
def heldout_examples(seed: int, n: int) -> list[Example]:
    """``n`` distinct sentences from the held-out generator."""
    rng, grammar, seen, out = random.Random(seed + HELDOUT_SEED_OFFSET), Grammar(), set(), []
    while len(out) < n:
        ex = grammar.sample(rng)
        if ex.source not in seen:
            seen.add(ex.source)
            out.append(ex)
    return out


def encode_batch(tokenizer, examples: list[Example]):
    """Padded source ids + mask, decoder input (<s> + words), labels (words + </s>, -100 on padding),
    and the alignment target of each decoder row (source position, -100 where none)."""
    src = [tokenizer.encode(e.source) for e in examples]  # words + </s>
    tgt = [tokenizer.encode(e.target, add_special_tokens=False) for e in examples]
    S, T = max(map(len, src)), max(map(len, tgt)) + 1
    B = len(examples)
    src_ids = torch.full((B, S), PAD, dtype=torch.long)
    src_mask = torch.zeros((B, S), dtype=torch.long)
    tgt_in = torch.full((B, T), PAD, dtype=torch.long)
    labels = torch.full((B, T), -100, dtype=torch.long)
    align = torch.full((B, T), -100, dtype=torch.long)
    for b, (s, t, ex) in enumerate(zip(src, tgt, examples)):
        src_ids[b, : len(s)], src_mask[b, : len(s)] = torch.tensor(s), 1
        tgt_in[b, : len(t) + 1] = torch.tensor([START] + t)
        labels[b, : len(t) + 1] = torch.tensor(t + [EOS])
        for j, i in ex.target_to_source().items():  # English word j is decoder input j + 1
            align[b, j + 1] = i
    tgt_mask = (labels != -100).long()
    return src_ids, src_mask, tgt_in, tgt_mask, labels, align


# ---------------------------------------------------------------------- model
def build_model(args, tokenizer):
    from models import ModelConfig, Transformer

    cfg = ModelConfig(
        family="encoder-decoder",
        n_layers=args.layers,
        n_decoder_layers=args.layers,
        d_model=args.d_model,
        n_heads=args.n_heads,
        d_mlp=4 * args.d_model,
        d_vocab=len(tokenizer),
        n_ctx=args.n_ctx,
        positional_embedding_type="sinusoidal",
        sinusoidal_layout="interleaved",
        normalization_type="LN",
        norm_position="post",
        final_norm=False,
        act_fn="relu",
        tie_word_embeddings=True,
        share_embeddings=True,
        embed_scale=math.sqrt(args.d_model),
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=START,
        default_prepend_bos=False,
        model_name=MODEL_NAME,
        original_architecture="workbench encoder-decoder (Vaswani et al. 2017)",
    )
    model = Transformer(cfg, tokenizer=tokenizer).init_weights(seed=args.seed, std=0.02)
    with torch.no_grad():  # Vaswani: embeddings ~ N(0, 1/d_model), so sqrt(d_model) * W_E has unit scale
        gen = torch.Generator().manual_seed(args.seed + 1)
        model.W_E.copy_(torch.randn(model.W_E.shape, generator=gen) / math.sqrt(args.d_model))
    return model


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(args, tokenizer, heldout_sources: set[str]):
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)
    from tqdm import tqdm

    model = build_model(args, tokenizer)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.98),
    )
    grammar, rng = Grammar(), random.Random(args.seed)
    last = model.cfg.n_decoder_layers - 1
    captured: dict[str, torch.Tensor] = {}

    def keep_pattern(pattern, hook):
        captured["cross"] = pattern
        return pattern

    hook_name = f"decoder.blocks.{last}.cross_attn.hook_pattern"
    model.train()
    history: list[tuple[float, float]] = []
    skipped = 0
    start = time.perf_counter()
    bar = tqdm(range(args.steps), desc=f"train {MODEL_NAME}", disable=args.no_progress, mininterval=1.0)
    with model.hooks(fwd_hooks=[(hook_name, keep_pattern)]):
        for step in bar:
            for group in opt.param_groups:
                group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
            batch = []
            while len(batch) < args.batch:
                ex = grammar.sample(rng)
                if ex.source in heldout_sources:
                    skipped += 1
                    continue
                batch.append(ex)
            src, src_mask, tgt_in, tgt_mask, labels, align = encode_batch(tokenizer, batch)
            logits = model(src, tgt_in, attention_mask=src_mask, decoder_attention_mask=tgt_mask)
            ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
            attn = captured.pop("cross").mean(1)  # [batch, tgt, src], head average
            rows = align != -100
            weight = attn[rows].gather(-1, align[rows][:, None])[:, 0]
            align_loss = -(weight + 1e-6).log().mean()
            loss = ce + args.align_weight * align_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            history.append((ce.item(), align_loss.item()))
            if step % 50 == 0 or step == args.steps - 1:
                recent = np.mean(history[-50:], axis=0)
                bar.set_postfix(ce=f"{recent[0]:.3f}", align=f"{recent[1]:.3f}")
    model.eval()
    return model, history, time.perf_counter() - start, skipped


# ---------------------------------------------------------------------- card
def model_card(args, command, n_words, heldout, em, misses, report, history, seconds, n_params) -> str:
    ce, al = np.mean(history[-100:], axis=0)
    layers = "\n".join(
        f"| {l} | {report.target_word[l]:.3f} | {report.predicting_step[l]:.3f} |"
        for l in range(len(report.target_word))
    )
    miss_lines = "\n".join(f"* `{s}` -> `{o}` (reference `{t}`)" for s, t, o in misses[:10]) or "* none"
    return f"""# {MODEL_NAME}

A toy **Spanish -> English translator**: a small encoder-decoder of the kind of Vaswani et al.
(2017), trained on a synthetic parallel corpus. Its cross-attention shows the **word alignment**
between the two sentences, including the adjective-noun swap: in `el gato negro` ->
`the black cat`, the row of `black` attends to `negro` and the row of `cat` to `gato`.

Try on the attention page (leave the target empty: the model writes its own translation), then
pick *cross-attention*, layer {args.layers - 1}:

* `el gato negro come el pescado` -> `the black cat eats the fish`
* `la niña pequeña ve al perro blanco` -> `the small girl sees the white dog`
* `los profesores no beben la leche` -> `the teachers do not drink the milk`
* `una vaca muy grande duerme cerca del río` -> `a very big cow sleeps near the river`

## Architecture

Encoder {args.layers} layers + decoder {args.layers} layers, {args.n_heads} heads, d_model {args.d_model}
(d_head {args.d_model // args.n_heads}), MLP {4 * args.d_model} with ReLU, **post-LN** (as in the
lecture and the paper: `x = LN(x + sublayer(x))`), **sinusoidal positions** (sin on even, cos on
odd features), token embeddings scaled by sqrt(d_model) and shared by the encoder, the decoder
and the output projection (tied). {n_params:,} parameters; context {args.n_ctx} tokens.
Vocabulary: {n_words + len(SPECIAL_TOKENS)} tokens, one per word of either language
(`tokenizer.json`, word level: lowercased, punctuation dropped, accents kept) and
`<pad>`, `</s>` (end of sentence, appended to the source), `<s>` (decoder start), `<unk>`.

## Data

Generated on the fly by `scripts/translation_grammar.py` (seed {args.seed}): subject, verb
and object or place phrase; determiners (`el/la/los/las`, `un/una/unos/unas`, `este`, `ese`,
`mi`, `nuestro` with their agreement), an adjective after the noun in 55% of noun phrases
(sometimes with `muy`), plural nouns, negation (`no` -> `does not` / `do not`), coordinated
subjects, Spanish personal `a` (`al`), `cerca de` / `del`, English `a` / `an` and irregular
plurals. {len(NOUNS)} nouns, {len(ADJECTIVES)} adjectives, {len(VERBS)} verbs, {n_words} word forms in both
languages.

**Held-out test set**: `{HELDOUT_FILE}` next to the weights, {len(heldout)} distinct sentences drawn
first from their own generator (seed {args.seed} + {HELDOUT_SEED_OFFSET}); training skipped every
sentence equal to one of them. Columns: source, reference, word alignment (Pharaoh format,
`source-target` 0-based word indices) and the adjective-noun swaps
(`source adjective-source noun-target adjective-target noun`).

## Training

* Command: `{command}`
* Seed {args.seed}; deterministic on CPU (`torch.use_deterministic_algorithms(True)`,
  `torch.set_num_threads({args.threads})`)
* {args.steps} steps of {args.batch} sentence pairs, AdamW (betas 0.9, 0.98), peak lr {args.lr},
  {args.warmup} warmup steps then cosine decay to 10%, weight decay {args.weight_decay}, clipping 1.0
* Loss: cross-entropy + {args.align_weight} x alignment loss on the last decoder layer's
  cross-attention (guided alignment, Garg et al. 2019): -log of the head-averaged attention
  from each English word's row to the Spanish word the grammar aligns it with. Layer 0 is not
  guided.
* Final losses (mean of the last 100 steps): cross-entropy {ce:.4f}, alignment {al:.4f}
* Training time: {seconds:.0f} s on CPU ({args.threads} threads)

## Measured metrics (held-out set, hooks only: `scripts/translator_metrics.py`)

* **Greedy exact match**: {em:.4f} ({round(em * len(heldout))}/{len(heldout)}; criterion >= {EXACT_MATCH_THRESHOLD})
* **Alignment of swapped adjective-noun pairs**: the maximum of the cross-attention averaged over
  the last decoder layer's heads is on the aligned Spanish word for {report.last_layer:.4f} of
  the {report.n_words} swapped words (each swap's adjective and noun; criterion >= {ALIGNMENT_THRESHOLD}).

The row of an English word is the decoder position whose *input* is that word (the row the
attention page labels with it). The "predicting step" column reads instead the row before it,
the step that *emits* the word:

| decoder layer | word's own row | predicting step |
|---|---|---|
{layers}

Layer 0, not guided, looks ahead: at the step that emits a word it already attends to the Spanish
word being translated. Layer {args.layers - 1}, guided, shows the alignment on the word's own row.

Misses (at most 10):

{miss_lines}
"""


# ---------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=None, help="training steps (default 2500; 20 with --quick)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--quick", action="store_true", help="a few steps and a small held-out set, for tests")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--align-weight", type=float, default=0.5)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--n-ctx", type=int, default=32)
    p.add_argument("--heldout", type=int, default=None, help="held-out sentences (default 1000; 50 with --quick)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (fixed, for reproducibility)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--allow-fail", action="store_true", help="write the model even if it misses the criteria")
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = 20 if args.quick else 2500
    if args.heldout is None:
        args.heldout = 50 if args.quick else 1000
    args.warmup = min(args.warmup, max(1, args.steps // 10))
    return args


def main(argv=None) -> int:
    raw = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(raw)
    command = "python scripts/train_translator.py" + ("" if not raw else " " + shlex.join(raw))
    words = sorted(set(Grammar.spanish_words()) | set(Grammar.english_words()))
    tokenizer = build_tokenizer(words)
    heldout = heldout_examples(args.seed, args.heldout)
    model, history, seconds, skipped = train(args, tokenizer, {e.source for e in heldout})
    print(f"trained {args.steps} steps in {seconds:.1f} s (skipped {skipped} held-out sentences); "
          f"final ce {np.mean([h[0] for h in history[-100:]]):.4f}")

    em, misses = exact_match(model, heldout)
    report = alignment(model, heldout)
    print(f"exact match {em:.4f}; alignment (last layer, word rows) {report.last_layer:.4f} "
          f"per layer {report.target_word}, predicting step {report.predicting_step}")
    for s, t, o in misses[:5]:
        print(f"  miss: {s!r} -> {o!r} (reference {t!r})")
    problems = []
    if em < EXACT_MATCH_THRESHOLD:
        problems.append(f"exact match {em:.3f} < {EXACT_MATCH_THRESHOLD}")
    if report.last_layer < ALIGNMENT_THRESHOLD:
        problems.append(f"alignment {report.last_layer:.3f} < {ALIGNMENT_THRESHOLD}")
    if problems and not (args.quick or args.allow_fail):
        print("NOT WRITTEN: the model misses the criteria: " + "; ".join(problems), file=sys.stderr)
        return 1

    metrics = {
        "exact_match": round(em, 4),
        "alignment_last_layer": round(report.last_layer, 4),
        "alignment_word_row_per_layer": [round(x, 4) for x in report.target_word],
        "alignment_predicting_step_per_layer": [round(x, 4) for x in report.predicting_step],
        "swapped_words": report.n_words,
        "heldout_sentences": len(heldout),
    }
    model.cfg.extra = {"trained_with": "scripts/train_translator.py", "command": command, "seed": args.seed,
                       "steps": args.steps, "heldout_file": HELDOUT_FILE, "metrics": metrics}
    from models import save_native

    n_params = sum(p.numel() for p in model.parameters())
    card = model_card(args, command, len(words), heldout, em, misses, report, history, seconds, n_params)
    out = save_native(model, args.out, card)
    tokenizer.save_pretrained(out)
    write_examples(out / HELDOUT_FILE, heldout)
    (out / "metrics.json").write_text(json.dumps(
        {**metrics, "train_seconds": round(seconds, 1), "command": command, "seed": args.seed,
         "final_cross_entropy": round(float(np.mean([h[0] for h in history[-100:]])), 5)}, indent=2) + "\n")
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    print(f"wrote {out} ({size / 1024:.0f} KiB)" + (f"; criteria missed: {problems}" if problems else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
