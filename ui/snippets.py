""""Copy as code": short Python snippets that reproduce a view in a notebook with our API.

Each function returns source code; running it defines a variable holding the numbers the view
shows (``pattern``, ``probs``, ``values``). Strings are embedded with ``repr`` so any prompt is
safe to paste. Tests run every snippet and compare its numbers with the view's.
"""

from __future__ import annotations

from typing import Optional


def _load(model_key: str) -> str:
    return f"from models import load_pretrained\n\nmodel = load_pretrained({model_key!r})\n"


def attention_snippet(model_key: str, prompt: str, kind: str, layer: Optional[int], head: Optional[int],
                      target: Optional[str] = None) -> str:
    """``pattern``: the ``[query, key]`` attention pattern of one head; with ``head`` None,
    ``patterns``: every head of ``layer`` ``[head, query, key]``; with ``layer`` None too,
    ``patterns``: every head of every layer ``[layer, head, query, key]``."""
    code = _load(model_key)
    if kind == "self":
        code += f"tokens = model.to_tokens({prompt!r})\n_, cache = model.run_with_cache(tokens)\n"
        hook = "blocks.{layer}.attn.hook_pattern"
    else:
        code += f"src = model.to_tokens({prompt!r})\n"
        if target and target.strip():
            code += ("from models.tokens import to_target_tokens_and_mask\n\n"
                     f"tgt = to_target_tokens_and_mask(model, {target.strip()!r})[0]\n")
        else:
            code += "tgt = model.generate(src, max_new_tokens=48)  # the model's own greedy output\n"
        code += "_, cache = model.run_with_cache(src, tgt)\n"
        hook = {"encoder": "encoder.blocks.{layer}.attn.hook_pattern",
                "decoder": "decoder.blocks.{layer}.attn.hook_pattern",
                "cross": "decoder.blocks.{layer}.cross_attn.hook_pattern"}[kind]
    if layer is None:
        blocks = {"self": "model.blocks", "encoder": "model.encoder.blocks"}.get(kind, "model.decoder.blocks")
        code += ("import torch\n\n"
                 f"patterns = torch.stack([cache[f{hook!r}][0] for layer in range(len({blocks}))])  "
                 "# [layer, head, query, key]\n")
    elif head is None:
        code += f"patterns = cache[{hook.format(layer=layer)!r}][0]  # [head, query, key]\n"
    else:
        code += f"pattern = cache[{hook.format(layer=layer)!r}][0, {head}]  # [query, key]\n"
    return code


def _read_on(prompt: str, decoder_text: Optional[str]) -> tuple[str, str]:
    """(code that defines ``tokens`` (and ``src``), the extra call argument): a decoder reads
    ``prompt``; an encoder-decoder (``decoder_text`` not None) reads ``prompt`` as its source and
    the translation so far in its decoder, whose residual stream is analysed."""
    if decoder_text is None:
        return f"tokens = model.to_tokens({prompt!r})\n", ""
    return ("from models.tokens import to_target_tokens_and_mask\n\n"
            f"src = model.to_tokens({prompt!r})  # the source, read by the encoder\n"
            f"tokens = to_target_tokens_and_mask(model, {decoder_text.strip()!r})[0]  # the decoder: start token + "
            "the translation so far\n"), ", src=src"


def logit_lens_snippet(model_key: str, prompt: str, target: str, decoder_text: Optional[str] = None) -> str:
    """``probs``: ``[layer, position]`` probability of ``target`` after each layer."""
    read, src = _read_on(prompt, decoder_text)
    return _load(model_key) + read + (
        "from circuits.residual import logit_lens\n\n"
        f"lens = logit_lens(model, tokens, k=1, target=model.to_single_token({target!r}){src})\n"
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


def ablation_snippet(model_key: str, prompt: str, ablations, reference: str = "", k: int = 8) -> str:
    """``clean_probs`` / ``ablated_probs``: the top-``k`` next-token probabilities of both runs
    (and their tokens); ``ablations``: ``circuits.ablation.Ablation`` objects (their ``repr`` is
    valid code)."""
    items = "".join(f"    {ab!r},\n" for ab in ablations)
    needs_reference = any(ab.kind != "zero" for ab in ablations)
    code = _load(model_key) + (
        "import torch\n"
        "from circuits.ablation import Ablation, ablate\n\n"
        f"tokens = model.to_tokens({prompt!r})\n"
        + (f"ablations = [\n{items}]\n" if items else "ablations = []  # nothing ablated: both runs are normal\n")
    )
    if needs_reference:
        code += f"reference = model.to_tokens({reference!r})\n"
        code += "result = ablate(model, tokens, ablations, reference=reference)\n"
    else:
        code += "result = ablate(model, tokens, ablations)\n"
    code += (
        f"clean_probs, clean_ids = torch.softmax(result.clean_logits[0, -1].float(), -1).topk({k})\n"
        f"ablated_probs, ablated_ids = torch.softmax(result.logits[0, -1].float(), -1).topk({k})\n"
        "print(model.to_str_tokens(clean_ids), model.to_str_tokens(ablated_ids))\n"
        "print(result.clean_loss, result.loss)  # next-token loss of the normal and the ablated run\n"
    )
    return code


def neuron_attribution_snippet(model_key: str, prompt: str, answer: str, wrong: str, layer: int, k: int,
                               decoder_text: Optional[str] = None) -> str:
    """``values``: the top-``k`` neurons of ``layer`` by |direct logit attribution| at the last
    position (``neurons``: their indices); ``total``: the sum over every neuron of the layer."""
    wrong_arg = f", model.to_single_token({wrong!r})" if wrong and wrong.strip() else ""
    read, src = _read_on(prompt, decoder_text)
    return _load(model_key) + read + (
        "from circuits.neurons import neuron_direct_logit_attribution\n\n"
        f"attribution = neuron_direct_logit_attribution(model, tokens, {layer}, model.to_single_token({answer!r})"
        f"{wrong_arg}, positions=[-1]{src})[0, 0]  # [d_mlp]\n"
        f"neurons = attribution.abs().topk({k}).indices\n"
        "values = attribution[neurons]\n"
        "total = attribution.sum()  # = the MLP row of circuits.residual.direct_logit_attribution\n"
    )


def _causal_blank(attention: str) -> str:
    """Code that blanks the keys a causal query never sees (decoder self-attention)."""
    blank = "values = values.masked_fill(torch.ones_like(values).triu(1).bool(), float('nan'))\n"
    if attention == "self":
        return "if model.cfg.attention_mask == 'causal':  # a query never sees later keys: left blank\n    " + blank
    if attention == "decoder":
        return "# decoder self-attention is causal: a query never sees later keys, left blank\n" + blank
    return ""  # encoder and cross-attention see every position


def positional_snippet(model_key: str, layer: int, head: int, kind: str, n_positions: int, probe: str = "",
                       attention: str = "self") -> str:
    """``values``: what the positional view shows for ``kind`` (``table``: ``[query, key]``
    positional QK circuit, future keys NaN in a causal model; ``rotary``: score by offset;
    ``alibi``: bias by offset)."""
    code = _load(model_key)
    if kind == "table":
        code += (
            "import torch\n"
            "from circuits.qk_ov import positional_qk_circuit\n\n"
            f"circuit = positional_qk_circuit(model, {layer}, head={head}, query_positions=range({n_positions}), "
            f"scaled=True{_kind_arg(attention)})\n"
            "values = circuit.values.float()  # [query position, key position]\n"
            + _causal_blank(attention)
        )
    elif kind == "rotary":
        code += (
            "from circuits.qk_ov import rotary_qk_by_offset\n\n"
            f"scores = rotary_qk_by_offset(model, {layer}, model.to_tokens({probe!r}), head=[{head}], "
            f"offsets=range({n_positions}))\n"
            "values = scores.mean_qk[0]  # [offset]; scores.observed[0]: the probe's own mean score\n"
        )
    elif kind == "alibi":
        code += (
            "import torch\n"
            "from models.components.positions import alibi_bias\n\n"
            f"slopes = model.blocks[{layer}].attn.alibi_slopes\n"
            f"offsets = torch.arange({n_positions})\n"
            f"values = alibi_bias(slopes, offsets[None], torch.zeros(1, 1, dtype=torch.long))[0, {head}, :, 0]\n"
            f"print(float(slopes[{head}]))  # the head's slope m: bias = -m * offset\n"
        )
    else:
        raise ValueError(f"no positional snippet for {kind!r}")
    return code


def svd_snippet(model_key: str, layer: int, head: int, n_directions: int, k: int, kind: str = "self") -> str:
    """``S``: the singular values of one head's OV matrix; ``svd.read_top_labels[i]`` /
    ``svd.write_top_labels[i]``: the tokens direction ``i`` reads and writes."""
    return _load(model_key) + (
        "from circuits.qk_ov import ov_singular_directions\n\n"
        f"svd = ov_singular_directions(model, {layer}, {head}, n_directions={n_directions}, k={k}{_kind_arg(kind)})\n"
        "S = svd.S  # every singular value of W_V W_O\n"
        "for i in range(svd.U.shape[1]):\n"
        "    print(i, float(S[i]), svd.read_top_labels[i], '->', svd.write_top_labels[i])\n"
    )


def _answer_args(answer: str, wrong: str) -> str:
    wrong_arg = f", model.to_single_token({wrong!r})" if wrong and wrong.strip() else ""
    return f"model.to_single_token({answer!r}){wrong_arg}"


def attribution_snippet(model_key: str, prompt: str, answer: str, wrong: str = "",
                        decoder_text: Optional[str] = None) -> str:
    """``per_layer``: the direct logit attribution of each layer's writes (embeddings first) at
    the last position; ``heads``: ``[layer, head]``; the identity the page prints."""
    read, src = _read_on(prompt, decoder_text)
    return _load(model_key) + read + (
        "from circuits.residual import direct_logit_attribution\n\n"
        f"dla = direct_logit_attribution(model, tokens, {_answer_args(answer, wrong)}{src})\n"
        "per_layer, labels = dla.by_layer()\n"
        "per_layer = per_layer[:, 0]  # [embed, L0, L1, ...]\n"
        "heads = dla.heads()[..., 0]  # [layer, head]\n"
        + ("cross = dla.heads(cross=True)[..., 0]  # [layer, head]: the cross-attention heads\n" if src else "") +
        "print(float(dla.values[:, 0].sum()), float(dla.constant[0]), float(dla.logit[0]))  # sum + constant = logit\n"
    )


def decomposition_snippet(model_key: str, prompt: str, position: int, by_layer: bool,
                          decoder_text: Optional[str] = None) -> str:
    """``shares``: each component's (or layer's) part of the final residual along its own
    direction at ``position`` (they sum to 1); ``norms``: the norm of what each wrote."""
    grouped = ("components, labels = d.by_layer()  # summed per writing layer\n" if by_layer else
               "components, labels = d.components, d.labels  # embeddings, each head, each MLP, biases\n")
    read, src = _read_on(prompt, decoder_text)
    return _load(model_key) + read + (
        "from circuits.residual import decompose_residual\n\n"
        f"d = decompose_residual(model, tokens, positions=[{position}]{src})\n"
        + grouped +
        "c, r = components[:, 0, 0].double(), d.residual[0, 0].double()  # sum(c) == r\n"
        "shares = c @ r / r.dot(r)\n"
        "norms = c.norm(dim=-1)\n"
    )


def detector_snippet(model_key: str, prompt: str, detector: str) -> str:
    """``scores``: ``[layer, head]`` scores of one head detector on ``prompt``."""
    return _load(model_key) + (
        "from circuits.heads import head_detector_scores\n\n"
        f"result = head_detector_scores(model, model.to_tokens({prompt!r}))\n"
        f"scores = result.scores[{detector!r}]  # [layer, head]\n"
    )


def _kind_arg(kind: str) -> str:
    return "" if kind == "self" else f", kind={kind!r}"


def head_circuits_snippet(model_key: str, layer: int, head: int, text: str, kind: str = "self",
                          target_text: str = "") -> str:
    """``qk``: the full QK circuit ``[query token, key token]`` (scaled to attention logits) and
    ``ov``: the full OV circuit ``[attended token, output logit]`` of one head, on the distinct
    tokens of ``text`` (an encoder-decoder: source ``text``, target ``target_text``; cross-attention
    queries are target tokens, its keys source tokens)."""
    code = _load(model_key) + (
        "from circuits.qk_ov import ov_circuit, token_qk_circuit\n\n"
        "special = set(model.tokenizer.all_special_ids)\n\n\n"
        "def distinct(text):  # the distinct tokens of a text, as the page shows them (at most 40)\n"
        "    ids = model.to_tokens(text, prepend_bos=False)[0].tolist()\n"
        "    return [i for i in dict.fromkeys(ids) if i not in special][:40]\n\n\n"
    )
    if kind == "self":
        code += f"queries = keys = outputs = distinct({text!r})\n"
    else:
        code += f"src, tgt = distinct({text!r}), distinct({target_text!r})\n"
        code += {"encoder": "queries, keys = src, src\n", "decoder": "queries, keys = tgt, tgt\n",
                 "cross": "queries, keys = tgt, src  # target words look at source words\n"}[kind]
        code += "outputs = tgt  # the decoder's logits\n"
    k = _kind_arg(kind)
    code += (f"qk = token_qk_circuit(model, {layer}, head={head}, query_tokens=queries, key_tokens=keys{k}, "
             "scaled=True).values\n")
    code += "if model.cfg.has_logits:  # an encoder without a head has no OV circuit (it ends at W_U)\n"
    code += f"    ov = ov_circuit(model, {layer}, head={head}, src_tokens=keys, out_tokens=outputs{k}).values\n"
    return code


def copying_snippet(model_key: str, kind: str = "self") -> str:
    """``scores``: the eigenvalue copying score of every head, ``[layer, head]``."""
    kind_arg = "" if kind == "self" else f"kind={kind!r}"
    return _load(model_key) + (
        "from circuits.qk_ov import copying_scores\n\n"
        f"scores = copying_scores(model{', ' + kind_arg if kind_arg else ''})  "
        "# Re(sum of eigenvalues) / sum of |eigenvalues| of W_E W_OV W_U\n"
    )


def composition_snippet(model_key: str, mode: str, kind: str = "self") -> str:
    """``scores``: ``mode``-composition of every earlier head into every later one, with the
    random baseline it is compared with."""
    return _load(model_key) + (
        "import torch\n"
        "from circuits.composition import composition_scores\n\n"
        f"result = composition_scores(model, {mode!r}{_kind_arg(kind)})\n"
        "scores = torch.where(result.valid, result.scores, torch.nan)  # [layer, head, layer, head]: writer, reader\n"
        "print(result.baseline.mean, result.baseline.std)  # random matrices of the same shapes\n"
        "print(result.top(5))\n"
    )


def translation_ablation_snippet(model_key: str, source: str, heads) -> str:
    """``normal`` / ``ablated``: the greedy translations without and with the heads zeroed;
    ``probs`` / ``ablated_probs``: each token of the normal translation's probability in both runs."""
    return _load(model_key) + (
        "import torch\n"
        "from ui.seq2seq_ablation import ablation_hooks\n\n"
        f"src = model.to_tokens({source!r})\n"
        f"hooks = ablation_hooks(model, {list(heads)!r})  # zero each head's z (EL = encoder, DL = decoder, CL = cross)\n"
        "\n\n@torch.no_grad()\n"
        "def token_probs(tgt):  # p(next token of the normal translation), teacher-forced\n"
        "    logits = model(src, tgt)[0, :-1].double()\n"
        "    return torch.softmax(logits, -1).gather(-1, tgt[0, 1:, None])[:, 0]\n\n\n"
        "normal_ids = model.generate(src, max_new_tokens=48)\n"
        "probs = token_probs(normal_ids)\n"
        "with model.hooks(fwd_hooks=hooks):\n"
        "    ablated_ids = model.generate(src, max_new_tokens=48)\n"
        "    ablated_probs = token_probs(normal_ids)\n"
        "normal = model.tokenizer.decode(normal_ids[0].tolist(), skip_special_tokens=True)\n"
        "ablated = model.tokenizer.decode(ablated_ids[0].tolist(), skip_special_tokens=True)\n"
        "print(normal, '->', ablated)\n"
    )
