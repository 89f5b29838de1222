""""Copy as code": short Python snippets that reproduce a view in a notebook with our API.

Each function returns source code; running it defines a variable holding the numbers the view
shows (``pattern``, ``probs``, ``values``). Strings are embedded with ``repr`` so any prompt is
safe to paste. Tests run every snippet and compare its numbers with the view's.
"""

from __future__ import annotations

from typing import Optional


def _load(model_key: str) -> str:
    return f"from models import load_pretrained\n\nmodel = load_pretrained({model_key!r})\n"


def attention_snippet(model_key: str, prompt: str, kind: str, layer: int, head: int,
                      target: Optional[str] = None) -> str:
    """``pattern``: the ``[query, key]`` attention pattern of one head."""
    code = _load(model_key)
    if kind == "self":
        code += f"tokens = model.to_tokens({prompt!r})\n_, cache = model.run_with_cache(tokens)\n"
        hook = f"blocks.{layer}.attn.hook_pattern"
    else:
        code += f"src = model.to_tokens({prompt!r})\n"
        if target and target.strip():
            code += ("from models.tokens import to_target_tokens_and_mask\n\n"
                     f"tgt = to_target_tokens_and_mask(model, {target.strip()!r})[0]\n")
        else:
            code += "tgt = model.generate(src, max_new_tokens=48)  # the model's own greedy output\n"
        code += "_, cache = model.run_with_cache(src, tgt)\n"
        hook = {"encoder": f"encoder.blocks.{layer}.attn.hook_pattern",
                "decoder": f"decoder.blocks.{layer}.attn.hook_pattern",
                "cross": f"decoder.blocks.{layer}.cross_attn.hook_pattern"}[kind]
    code += f"pattern = cache[{hook!r}][0, {head}]  # [query, key]\n"
    return code


def logit_lens_snippet(model_key: str, prompt: str, target: str) -> str:
    """``probs``: ``[layer, position]`` probability of ``target`` after each layer."""
    return _load(model_key) + (
        "from circuits.residual import logit_lens\n\n"
        f"lens = logit_lens(model, model.to_tokens({prompt!r}), k=1, target=model.to_single_token({target!r}))\n"
        "probs = lens.target_prob[:, 0]  # [layer (embed, L0, ...), position]\n"
        "print(lens.layer_labels[int(lens.first_top1_layer()[0, -1])])  # where it first becomes the top token\n"
    )


_SWEEP_CALLS = {
    "resid_pre": ("from circuits.patching import patch_residual",
                  "patch_residual(model, corrupted, clean_cache, metric, 'pre', source_tokens=clean)"),
    "attn_out": ("from circuits.patching import patch_layer_outputs",
                 "patch_layer_outputs(model, corrupted, clean_cache, metric, 'attn', source_tokens=clean)"),
    "mlp_out": ("from circuits.patching import patch_layer_outputs",
                "patch_layer_outputs(model, corrupted, clean_cache, metric, 'mlp', source_tokens=clean)"),
    "head_out": ("from circuits.patching import patch_head_outputs",
                 "patch_head_outputs(model, corrupted, clean_cache, metric, source_tokens=clean)"),
    "attribution_head_out": ("from circuits.attribution import attribution_patching",
                             "attribution_patching(model, clean, corrupted, metric, 'head_out')"),
    "attribution_resid_pre": ("from circuits.attribution import attribution_patching",
                              "attribution_patching(model, clean, corrupted, metric, 'resid_pre')"),
    "path_head_to_logits": ("from circuits.path_patching import path_patching_sweep",
                            "path_patching_sweep(model, clean, corrupted, metric)"),
}


def patching_snippet(model_key: str, clean: str, corrupted: str, answer: str, wrong: str, sweep: str) -> str:
    """``values``: the normalized sweep (1 = clean restored, 0 = corrupted)."""
    imp, call = _SWEEP_CALLS[sweep]
    return _load(model_key) + (
        f"from circuits.metrics import LogitDiff\n{imp}\n\n"
        f"clean = model.to_tokens({clean!r})\n"
        f"corrupted = model.to_tokens({corrupted!r})\n"
        f"metric = LogitDiff(model.to_single_token({answer!r}), model.to_single_token({wrong!r}))\n"
        "_, clean_cache = model.run_with_cache(clean)\n"
        f"result = {call}\n"
        + ("values = (result.baseline - result.values) / (result.baseline - result.source)  # share carried\n"
           if sweep == "path_head_to_logits" else "values = result.normalized()  # [layer, position or head]\n")
    )
