"""The Model page's content (no Streamlit): the architecture as the lecture draws it, each stage
with its equation, its hook name and the live shape of its tensor on the current prompt.

``stages(model, prompt)`` runs one forward pass that caches only one representative hook per
stage (layer 0 for the blocks) and returns :class:`Stage` rows; ``architecture_dot`` draws them
as a Graphviz diagram (``st.graphviz_chart`` renders it in the browser, no system graphviz).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ui.patterns import PromptError

# stage key -> equation in the lecture's notation (Arriola-Rios; Vaswani et al. 2017; Elhage et al. 2021)
EQUATIONS = {
    "embed": "X_E = W^E · tokens",
    "pos_sinusoidal": "PE(pos,2i) = sin(pos/10000^(2i/d_m)),  PE(pos,2i+1) = cos(…);  X = X_E + PE",
    "pos_standard": "X = X_E + W^pos[pos]  (learned positions)",
    "pos_rotary": "q, k rotated by pos·θ_i  (rotary: q·k depends on i − j)",
    "pos_alibi": "A = softmax(QKᵀ/√d_k − m_h·|i − j|)  (ALiBi)",
    "pos_none": "X = X_E  (no positions)",
    "resid": "X  (residual stream, d_m = {d_model})",
    "q": "Q = W_Q X",
    "k": "K = W_K X",
    "v": "V = W_V X",
    "pattern": "A = softmax(QKᵀ / √d_k)",
    "z": "H = A V",
    "attn_out": "X = X + Σ_h Z_h,  Z_h = H_h W^O_h",
    "cross_pattern": "A = softmax(Q_dec K_encᵀ / √d_k)  (K, V from the encoder)",
    "mlp_post": "FFN(X) = act(X W_1 + b_1) W_2 + b_2",
    "mlp_out": "X = X + FFN(X)",
    "final": "LN(X)",
    "logits": "logits = X W^U,   Y = softmax(logits)",
}


@dataclass(frozen=True)
class Stage:
    key: str  # EQUATIONS key, also the i18n key suffix of the stage's name
    hook: str  # TransformerLens-style hook name ("" for the model's output)
    shape: tuple[int, ...]
    equation: str
    stack: str = ""  # "", "encoder." or "decoder."


def _hooks(model) -> list[tuple[str, str, str]]:
    """(stage key, hook name, stack prefix) of every stage, in the order of the forward pass."""
    cfg = model.cfg
    stacks = ["encoder.", "decoder."] if cfg.family == "encoder-decoder" else [""]
    out = []
    for p in stacks:
        out.append(("embed", f"{p}hook_embed", p))
        pos = cfg.positional_embedding_type
        if pos in ("standard", "sinusoidal"):
            out.append((f"pos_{pos}", f"{p}hook_pos_embed", p))
        else:
            out.append((f"pos_{pos}", "", p))
        b = f"{p}blocks.0."
        out += [("resid", f"{b}hook_resid_pre", p), ("q", f"{b}attn.hook_q", p), ("k", f"{b}attn.hook_k", p),
                ("v", f"{b}attn.hook_v", p), ("pattern", f"{b}attn.hook_pattern", p), ("z", f"{b}attn.hook_z", p),
                ("attn_out", f"{b}hook_attn_out", p)]
        if p == "decoder.":
            out.append(("cross_pattern", f"{b}cross_attn.hook_pattern", p))
        if not cfg.attn_only:
            out += [("mlp_post", f"{b}mlp.hook_post", p), ("mlp_out", f"{b}hook_mlp_out", p)]
        stack = getattr(model, p.rstrip("."), model) if p else model
        if hasattr(stack, "ln_final"):
            out.append(("final", f"{p}ln_final.hook_normalized", p))
    if cfg.has_logits:
        out.append(("logits", "", ""))
    return out


def stages(model, prompt: str, target: Optional[str] = None) -> list[Stage]:
    """Every stage of the forward pass with its live shape on ``prompt`` (block stages: layer 0).
    An encoder-decoder's decoder reads ``target``, or (blank) the model's own greedy output, as
    on the attention page."""
    from ui.prompts import prompt_tokens

    tokens = prompt_tokens(model, prompt)
    rows = _hooks(model)
    wanted = {h for _, h, _ in rows if h}
    args = (tokens,)
    if model.cfg.family == "encoder-decoder":
        from models.tokens import to_target_tokens_and_mask

        if target and target.strip():
            tgt = to_target_tokens_and_mask(model, target)[0]
        else:
            with torch.no_grad():
                tgt = model.generate(tokens, max_new_tokens=model.cfg.n_ctx)
        args = (tokens, tgt)
    with torch.no_grad():
        out, cache = model.run_with_cache(*args, names_filter=lambda n: n in wanted)
    result = []
    for key, hook, prefix in rows:
        shape = tuple(out.shape) if key == "logits" else (tuple(cache[hook].shape) if hook in cache else ())
        result.append(Stage(key, hook, shape, EQUATIONS[key].format(d_model=model.cfg.d_model), prefix))
    return result


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def architecture_dot(stages_: list[Stage], names: Callable[[str], str], n_layers: str) -> str:
    """A Graphviz (DOT) diagram: one box per stage (name, equation, hook, shape), the blocks
    grouped in a cluster marked with the number of layers, encoder and decoder side by side."""
    lines = ['digraph G {', '  rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#eef4fb", '
             'fontname="Helvetica", fontsize=10]; edge [color="#7a8aa0"];']
    block_keys = {"resid", "q", "k", "v", "pattern", "z", "attn_out", "cross_pattern", "mlp_post", "mlp_out"}
    previous: dict[str, str] = {}
    clusters: dict[str, list[str]] = {}
    for i, s in enumerate(stages_):
        node = f"n{i}"
        shape = "[" + ", ".join(str(d) for d in s.shape) + "]" if s.shape else ""
        label = "\\n".join(_esc(x) for x in (names(s.key), s.equation, s.hook, shape) if x)  # DOT line breaks
        lines.append(f'  {node} [label="{label}"];')
        if s.key in block_keys:
            clusters.setdefault(s.stack, []).append(node)
        if s.stack in previous:
            lines.append(f"  {previous[s.stack]} -> {node};")
        elif s.key == "logits" and previous:
            lines.append(f"  {list(previous.values())[-1]} -> {node};")
        previous[s.stack or ""] = node
    enc_last = next((f"n{i}" for i in range(len(stages_) - 1, -1, -1) if stages_[i].stack == "encoder."), None)
    cross = next((f"n{i}" for i, st_ in enumerate(stages_) if st_.key == "cross_pattern"), None)
    if enc_last and cross:  # cross-attention reads keys and values from the encoder's output
        lines.append(f'  {enc_last} -> {cross} [style=dashed, label="K, V"];')
    for j, (stack, nodes) in enumerate(clusters.items()):
        title = f"{stack.rstrip('.')} · {n_layers}" if stack else n_layers  # "encoder · × 2 layers ..."
        lines.append(f'  subgraph cluster_{j} {{ label="{_esc(title)}"; style="dashed"; {" ".join(nodes)}; }}')
    lines.append("}")
    return "\n".join(lines)
