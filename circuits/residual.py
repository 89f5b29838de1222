"""The residual stream as a sum of what each component writes (Elhage et al. 2021, "A Mathematical
Framework for Transformer Circuits", §2), read through the unembedding.

* **Logit lens** (nostalgebraist 2020): the residual after the embeddings and after each block,
  put through the final norm and the unembedding as if it were the last layer. The norm is
  applied *freshly* to each of these residuals (its scale recomputed from that residual, as the
  logit lens does), so the last entry is exactly the model's own logits. Only the top ``k`` tokens
  and the rank of a chosen token are kept, computed a chunk of rows at a time: no
  ``[layers, pos, d_vocab]`` tensor is ever formed.
* **Decomposition**: the final residual (``blocks.{L-1}.hook_resid_post``, before the final norm)
  as a sum of components: ``embed``, ``pos_embed`` (``token_type_embed``), one vector per head
  (``LiHj``: ``z_j W_O^j``; ``Li cross Hj`` for cross-attention), one per MLP (``Li MLP``: its
  neurons' writes ``post W_out``, without ``b_out``) and the constant bias terms of each layer
  (``Li bias``: ``b_O`` and ``b_out``, plus the biases of any norm on the residual path;
  ``embed bias`` for an embedding LayerNorm). A layer without bias parameters has no bias row.
* **Direct logit attribution**: each component's share of one logit (or of a logit difference),
  through the final norm with its *cached* scale, so that the shares add up to the logit.

Norms on the residual path. In a pre-LN model (GPT-2, Llama, NeoX) nothing normalises the
residual between the embedding and the final norm, so the decomposition is the plain sum of the
writes. A post-LN model (Vaswani et al. 2017, BERT, Marian) normalises the residual after every
sub-layer: ``x_mid = LN1(x + attn)``. ``LN(x) = (x - mean(x)) / s(x) * w + b`` is not linear, so
no decomposition exists in general; but with ``s`` frozen at its cached value (``hook_scale``)
it is affine, and the final residual is exactly the sum of each component passed through the
centring, ``1 / s`` and gain ``w`` of every later norm, plus each norm's ``b`` passed through the
norms after it (these join the layer's bias row). That is the same linearisation every direct
logit attribution already makes of the final norm, applied to every norm on the path; we chose it
over refusing post-LN models because it is exact (the parts sum to the residual), it keeps one
definition for both placements, and in a pre-LN model it reduces to the plain sum. It is an
attribution *given this run's scales*: a component's row is not what the residual would be
without the others (removing one changes the scales). An embedding norm (BERT, BART, BLOOM)
is handled the same way.

The constant left over by direct logit attribution, for a token ``t``, is

    constant[t] = b_final . W_U[:, t] + b_U[t]

(the final LayerNorm's bias read by the unembedding, and the unembedding bias; 0 for RMSNorm
without an unembedding bias, as in Llama), and for a logit difference the difference of the two
constants, so that ``sum(attributions) + constant == logit`` up to float rounding.

Conventions: activations are row vectors, weights multiply on the right (``z W_O``, ``x W_U``).
Encoder-decoder models are analysed on the decoder side (``tokens`` is the decoder input, ``src``
the encoder's); encoders with a BERT MLM head get the logit lens (through the whole head) but no
direct logit attribution (the head's dense + activation before the unembedding is non-linear);
models without a head (``cfg.has_logits`` False) get neither, only the decomposition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from models.components.norms import LayerNorm, RMSNorm
from models.tokens import NoTokenizerError, to_target_tokens_and_mask, to_tokens_and_mask

TokenIds = Union[int, str, Sequence[int], Tensor]
Positions = Union[None, int, Sequence[int], Tensor]
Text = Union[str, list[str]]

# ----------------------------------------------------------------------------- model plumbing


def logits_stack(model) -> tuple[str, nn.Module]:
    """(hook-name prefix, module) of the stack whose residual becomes the logits: the decoder of
    an encoder-decoder, else the model itself."""
    return ("decoder.", model.decoder) if model.cfg.family == "encoder-decoder" else ("", model)


def require_logits(model, what: str) -> None:
    if not model.cfg.has_logits:
        raise ValueError(
            f"{what} needs vocabulary logits, but {model.cfg.model_name!r} has no output head "
            "(cfg.head == 'none', e.g. a sentence-embedding encoder such as MiniLM): it returns hidden "
            "states. decompose_residual and the neuron activation functions still work on it."
        )


def require_linear_head(model, what: str) -> None:
    require_logits(model, what)
    if model.cfg.head == "mlm":
        raise ValueError(
            f"{what} is undefined for {model.cfg.model_name!r}: its masked-LM head applies a dense layer, "
            f"an activation ({model.cfg.act_fn}) and a LayerNorm before the unembedding, so logits are not "
            "a linear function of the residual. Use logit_lens, which applies the whole head."
        )


def prepare_inputs(
    model, tokens: Union[Text, Tensor], attention_mask: Optional[Tensor] = None,
    src: Union[Text, Tensor, None] = None, src_attention_mask: Optional[Tensor] = None,
) -> tuple[Tensor, Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """(tokens, mask, src, src_mask) as tensors on the model's device; text is tokenised the way
    the model's forward pass does it (decoder start token first for a target sentence)."""
    device = model.W_E.device
    seq2seq = model.cfg.family == "encoder-decoder"
    if seq2seq and src is None:
        raise ValueError("an encoder-decoder needs the source (src): tokens is the decoder's input")
    if not seq2seq and src is not None:
        raise ValueError(f"src is only for encoder-decoder models, not a {model.cfg.family}")
    if isinstance(tokens, (str, list)):
        tokens, attention_mask = (to_target_tokens_and_mask if seq2seq else to_tokens_and_mask)(model, tokens)
    if isinstance(src, (str, list)):
        src, src_attention_mask = to_tokens_and_mask(model, src)

    def dev(t):
        return None if t is None else t.to(device)

    def all_ones_is_none(mask):
        return None if mask is not None and bool(mask.all()) else mask

    tokens = tokens[None] if tokens.ndim == 1 else tokens
    if src is not None:
        src = src[None] if src.ndim == 1 else src
    return dev(tokens), dev(all_ones_is_none(attention_mask)), dev(src), dev(all_ones_is_none(src_attention_mask))


def stop_after(model, layer: int) -> dict:
    """``stop_at_layer`` for a forward pass that needs nothing after block ``layer - 1`` (not
    offered by encoder-decoders): skips the rest, and the unembedding when ``layer`` is the last."""
    return {} if model.cfg.family == "encoder-decoder" else {"stop_at_layer": layer}


def run_cached(model, tokens, mask, src, src_mask, names, **kwargs) -> tuple[Tensor, dict[str, Tensor]]:
    """One forward pass caching only ``names`` (the attention stays on the fused kernel unless a
    pattern is requested). Returns (output, {name: activation})."""
    wanted = set(names)
    with torch.no_grad():
        if model.cfg.family == "encoder-decoder":
            out, cache = model.run_with_cache(
                src, tokens, attention_mask=src_mask, decoder_attention_mask=mask,
                names_filter=wanted.__contains__, return_cache_object=False, **kwargs,
            )
        else:
            out, cache = model.run_with_cache(
                tokens, attention_mask=mask, names_filter=wanted.__contains__, return_cache_object=False, **kwargs
            )
    missing = wanted - set(cache)
    if missing:
        raise RuntimeError(f"the forward pass did not emit hooks {sorted(missing)}")
    return out, cache


def position_index(positions: Positions, tokens: Tensor, mask: Optional[Tensor] = None) -> Int[Tensor, "batch n"]:
    """Positions to analyse, as ``[batch, n]`` indices. None: every position; an int or a list:
    the same positions in every prompt; a ``[batch]`` tensor: one position per prompt;
    ``[batch, n]``: n per prompt. Negative positions count back from the last real token
    (``mask``: 1 = token, 0 = padding, on either side), so -1 is each prompt's last token."""
    batch, seq = tokens.shape
    device = tokens.device
    if positions is None:
        return torch.arange(seq, device=device)[None].expand(batch, seq)
    index = torch.as_tensor(positions, device=device, dtype=torch.long)
    if index.ndim == 0 or not isinstance(positions, Tensor):
        index = index.reshape(1, -1).expand(batch, -1)
    elif index.ndim == 1:
        index = index[:, None]
    if index.shape[0] != batch:
        raise ValueError(f"positions give {index.shape[0]} rows for a batch of {batch}")
    if mask is not None:  # -1 is the last real token, with left or right padding
        last = (mask.to(device).long() * torch.arange(seq, device=device)).amax(-1, keepdim=True)
    else:
        last = torch.full((batch, 1), seq - 1, device=device)
    index = torch.where(index < 0, index + last + 1, index)
    if bool((index < 0).any() or (index >= seq).any()):
        raise ValueError(f"positions {positions} out of range for {seq} tokens")
    return index


def take(x: Tensor, index: Optional[Tensor]) -> Tensor:
    """``x[b, index[b, i], ...]`` -> ``[batch, n, ...]`` (all positions when index is None)."""
    if index is None:
        return x
    idx = index.view(*index.shape, *([1] * (x.ndim - 2))).expand(*index.shape, *x.shape[2:])
    return x.gather(1, idx)


def token_ids(model, ids: TokenIds, batch: int) -> Int[Tensor, "batch"]:
    """One token id per prompt: an id or a single-token string for all, or one per prompt."""
    if isinstance(ids, str):
        ids = model.to_single_token(ids)
    elif isinstance(ids, (list, tuple)) and ids and isinstance(ids[0], str):
        ids = [model.to_single_token(s) for s in ids]
    t = torch.as_tensor(ids, dtype=torch.long, device=model.W_E.device)
    if t.ndim == 0:
        return t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"expected one token id or {batch} (one per prompt), got shape {tuple(t.shape)}")
    return t


def token_strings(model, ids) -> dict[int, str]:
    """{id: token string} for the distinct ids (the id itself without a tokenizer)."""
    unique = sorted({int(i) for i in torch.as_tensor(ids).flatten().tolist()})
    try:
        return dict(zip(unique, model.to_str_tokens(unique)))
    except NoTokenizerError:
        return {i: str(i) for i in unique}


def position_labels(model, tokens: Tensor, index: Tensor) -> list[list[str]]:
    """``"pos: token"`` for each analysed position of each prompt."""
    strings = token_strings(model, tokens)
    return [[f"{p}: {strings[int(tokens[b, p])]}" for p in row.tolist()] for b, row in enumerate(index)]


def _float(x: Tensor) -> Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


# ----------------------------------------------------------------------------- norms on the path


@dataclass(frozen=True)
class PathNorm:
    """A norm on the residual path: its module, the hook caching its scale, and the write site
    it follows (``(layer, order)``: order 0 = embeddings/attention, 1 = cross-attention, 2 = MLP)."""

    module: nn.Module
    hook: str
    site: tuple[int, int]

    @property
    def centers(self) -> bool:
        return isinstance(self.module, LayerNorm)


SITE_ORDER = {"embed": 0, "attn": 0, "cross": 1, "mlp": 2}


def _as_path_norm(module: Optional[nn.Module], hook: str, site: tuple[int, int]) -> list[PathNorm]:
    return [PathNorm(module, hook, site)] if isinstance(module, (LayerNorm, RMSNorm)) else []


def path_norms(prefix: str, stack: nn.Module) -> list[PathNorm]:
    """Every norm the residual stream passes through between the embedding and the final
    residual (the final norm excluded), in order: an embedding norm, and in a post-LN stack the
    norm after each sub-layer (none in a pre-LN stack)."""
    norms = _as_path_norm(getattr(stack, "ln_embed", None), f"{prefix}ln_embed.hook_scale", (-1, 0))
    if stack.cfg.norm_position != "post":
        return norms
    for l, block in enumerate(stack.blocks):
        name = f"{prefix}blocks.{l}"
        norms += _as_path_norm(block.ln1, f"{name}.ln1.hook_scale", (l, 0))
        norms += _as_path_norm(getattr(block, "ln_cross", None), f"{name}.ln_cross.hook_scale", (l, 1))
        norms += _as_path_norm(getattr(block, "ln2", None), f"{name}.ln2.hook_scale", (l, 2))
    return norms


def final_path_norm(prefix: str, stack: nn.Module) -> list[PathNorm]:
    """The final norm (before the unembedding), as a one-element list, or [] without one."""
    return _as_path_norm(getattr(stack, "ln_final", None), f"{prefix}ln_final.hook_scale", (stack.cfg.n_layers, 0))


def downstream(norms: list[PathNorm], layer: int, site: str) -> list[PathNorm]:
    """The norms a vector written at ``(layer, site)`` passes through."""
    key = (layer, SITE_ORDER[site])
    return [n for n in norms if n.site >= key]


def through_norms(x: Float[Tensor, "... d_model"], norms: Sequence[PathNorm], scales: Optional[dict] = None) -> Tensor:
    """Apply the linear part of each norm with its scale frozen: centre (LayerNorm), divide by
    the cached scale (``scales[hook]``, broadcastable to ``x``; 1 when ``scales`` is None) and
    multiply by the gain ``w``. The norms' biases are not added (they are constants)."""
    for n in norms:
        if n.centers:
            x = x - x.mean(-1, keepdim=True)
        if scales is not None:
            x = x / scales[n.hook]
        x = x * _float(n.module.w)
    return x


# ----------------------------------------------------------------------------- decomposition


@dataclass
class Decomposition:
    """``components.sum(0) == residual`` (the final residual, before the final norm), at the
    analysed ``positions``. ``layers[i]`` is the block that wrote component ``i`` (-1 for the
    embeddings); ``kinds[i]`` one of embed, pos_embed, token_type_embed, head, cross_head, mlp,
    bias."""

    components: Float[Tensor, "component batch pos d_model"]
    labels: list[str]
    layers: list[int]
    kinds: list[str]
    residual: Float[Tensor, "batch pos d_model"]
    positions: Int[Tensor, "batch pos"]
    position_labels: list[list[str]]
    final_scale: Optional[Float[Tensor, "batch pos 1"]]  # cached final-norm scale (None: no final norm)
    n_layers: int

    def by_layer(self) -> tuple[Float[Tensor, "layer batch pos d_model"], list[str]]:
        """Components summed per writing layer: ``embed``, ``L0`` ... ``L{n-1}``."""
        return group_by_layer(self.components, self.layers, self.n_layers)


def group_by_layer(values: Tensor, layers: list[int], n_layers: int) -> tuple[Tensor, list[str]]:
    groups = torch.tensor([l + 1 for l in layers], device=values.device)
    out = values.new_zeros((n_layers + 1, *values.shape[1:]))
    out.index_add_(0, groups, values)
    return out, ["embed"] + [f"L{l}" for l in range(n_layers)]


def decomposition_hooks(prefix: str, stack: nn.Module) -> list[str]:
    """Hook names a decomposition of ``stack``'s final residual reads."""
    names = [f"{prefix}hook_embed", f"{prefix}blocks.{stack.cfg.n_layers - 1}.hook_resid_post"]
    names += [f"{prefix}{h}" for h in ("hook_pos_embed", "hook_token_type_embed") if hasattr(stack, h)]
    for l, block in enumerate(stack.blocks):
        names.append(f"{prefix}blocks.{l}.attn.hook_z")
        if hasattr(block, "cross_attn"):
            names.append(f"{prefix}blocks.{l}.cross_attn.hook_z")
        if hasattr(block, "mlp"):
            names.append(f"{prefix}blocks.{l}.hook_mlp_out")
    names += [n.hook for n in path_norms(prefix, stack) + final_path_norm(prefix, stack)]
    return names


def _decompose(
    prefix: str, stack: nn.Module, cache: dict, index: Tensor
) -> tuple[Tensor, list[str], list[int], list[str]]:
    """Walk the stack's residual path in order, adding each write as a row and applying each
    frozen norm to every row so far (see the module docstring)."""
    rows: list[Tensor] = []
    labels: list[str] = []
    layers: list[int] = []
    kinds: list[str] = []

    def add(x: Tensor, label: str, layer: int, kind: str) -> int:
        rows.append(x)
        labels.append(label)
        layers.append(layer)
        kinds.append(kind)
        return len(rows) - 1

    def get(name: str) -> Tensor:
        return _float(take(cache[f"{prefix}{name}"], index))

    def normalise(norm: PathNorm, bias_row: Optional[int]) -> None:
        scaled = through_norms(torch.stack(rows), [norm], {norm.hook: _float(take(cache[norm.hook], index))})
        rows[:] = list(scaled.unbind(0))
        if norm.centers:
            rows[bias_row] = rows[bias_row] + _float(norm.module.b)

    add(get("hook_embed"), "embed", -1, "embed")
    for hook, label in (("hook_pos_embed", "pos_embed"), ("hook_token_type_embed", "token_type_embed")):
        if hasattr(stack, hook):
            add(get(hook), label, -1, label)
    norms = path_norms(prefix, stack)
    for norm in [n for n in norms if n.site[0] == -1]:
        bias = add(torch.zeros_like(rows[0]), "embed bias", -1, "bias") if norm.centers else None
        normalise(norm, bias)

    post = stack.cfg.norm_position == "post"
    for l, block in enumerate(stack.blocks):
        at = {n.site: n for n in norms if n.site[0] == l}
        has_bias = any(getattr(m, b, None) is not None for m, b in (
            (block.attn, "b_O"), (getattr(block, "cross_attn", None), "b_O"), (getattr(block, "mlp", None), "b_out")
        )) or any(n.centers for n in at.values())
        bias = add(torch.zeros_like(rows[0]), f"L{l} bias", l, "bias") if has_bias else None
        attns = [("attn", block.attn, "", "head", 0)]
        if hasattr(block, "cross_attn"):
            attns.append(("cross_attn", block.cross_attn, " cross", "cross_head", 1))
        for name, attn, tag, kind, order in attns:
            z = get(f"blocks.{l}.{name}.hook_z")
            heads = torch.einsum("bphd,hdm->hbpm", z, _float(attn.W_O))
            for h in range(heads.shape[0]):
                add(heads[h], f"L{l}{tag} H{h}" if tag else f"L{l}H{h}", l, kind)
            if attn.b_O is not None:
                rows[bias] = rows[bias] + _float(attn.b_O)
            if post and (l, order) in at:
                normalise(at[(l, order)], bias)
        if hasattr(block, "mlp"):
            out = get(f"blocks.{l}.hook_mlp_out")
            if block.mlp.b_out is not None:
                out = out - _float(block.mlp.b_out)
                rows[bias] = rows[bias] + _float(block.mlp.b_out)
            add(out, f"L{l} MLP", l, "mlp")
            if post and (l, 2) in at:
                normalise(at[(l, 2)], bias)
        if bias is not None:  # listed after the layer's heads and MLP
            for column in (rows, labels, layers, kinds):
                column.append(column.pop(bias))
    return torch.stack(rows), labels, layers, kinds


@torch.no_grad()
def decompose_residual(
    model,
    tokens: Union[Text, Int[Tensor, "batch pos"]],
    *,
    positions: Positions = None,
    attention_mask: Optional[Int[Tensor, "batch pos"]] = None,
    src: Union[Text, Int[Tensor, "batch src_pos"], None] = None,
    src_attention_mask: Optional[Int[Tensor, "batch src_pos"]] = None,
) -> Decomposition:
    """The final residual (``blocks.{L-1}.hook_resid_post``) as a sum of embeddings, heads, MLPs
    and per-layer biases, at ``positions`` (all by default; see :func:`position_index`). Exact for
    pre-LN models; post-LN models are decomposed with their norms' scales frozen at the cached
    values (module docstring). Encoder-decoders: the decoder's residual, ``src`` its source.
    Memory: ``components x batch x positions x d_model`` floats; pass ``positions`` to keep few."""
    tokens, mask, src, src_mask = prepare_inputs(model, tokens, attention_mask, src, src_attention_mask)
    prefix, stack = logits_stack(model)
    _, cache = run_cached(model, tokens, mask, src, src_mask, decomposition_hooks(prefix, stack))
    index = position_index(positions, tokens, mask)
    return _decomposition(model, prefix, stack, cache, tokens, index)


def _decomposition(model, prefix, stack, cache, tokens, index) -> Decomposition:
    components, labels, layers, kinds = _decompose(prefix, stack, cache, index)
    L = stack.cfg.n_layers
    final = final_path_norm(prefix, stack)
    return Decomposition(
        components=components,
        labels=labels,
        layers=layers,
        kinds=kinds,
        residual=_float(take(cache[f"{prefix}blocks.{L - 1}.hook_resid_post"], index)),
        positions=index,
        position_labels=position_labels(model, tokens, index),
        final_scale=_float(take(cache[final[0].hook], index)) if final else None,
        n_layers=L,
    )


# ----------------------------------------------------------------------------- direct logit attribution


@dataclass
class LogitAttribution:
    """``values.sum(0) + constant == logit`` (per prompt), with ``values[i]`` component ``i``'s
    direct effect on the logit (or logit difference) at ``positions``, through the final norm
    with its cached scale. ``constant = b_final . u + b_U . t`` where ``u`` is the unembedding
    direction (``W_U[:, answer]`` minus ``W_U[:, wrong]``) and ``t`` the same one-hot difference."""

    values: Float[Tensor, "component batch"]
    labels: list[str]
    layers: list[int]
    kinds: list[str]
    logit: Float[Tensor, "batch"]  # the model's own logit (or difference) in the same forward pass
    constant: Float[Tensor, "batch"]
    answer: Int[Tensor, "batch"]
    wrong: Optional[Int[Tensor, "batch"]]
    positions: Int[Tensor, "batch"]
    n_layers: int
    n_heads: int

    def by_layer(self) -> tuple[Float[Tensor, "layer batch"], list[str]]:
        """Attributions summed per writing layer: ``embed``, ``L0`` ... (heads, MLP, bias)."""
        return group_by_layer(self.values, self.layers, self.n_layers)

    def accumulated(self) -> tuple[Float[Tensor, "layer batch"], list[str]]:
        """Running sum over layers: entry ``l`` is the direct effect of the residual after the
        embeddings (``embed``) or after block ``l`` (``L{l}``), with the final norm's cached scale;
        the last entry is ``logit - constant``."""
        per_layer, labels = self.by_layer()
        return per_layer.cumsum(0), labels

    def heads(self, cross: bool = False) -> Float[Tensor, "layer head batch"]:
        """Per-head attributions as a ``[n_layers, n_heads, batch]`` grid (cross-attention heads
        with ``cross``)."""
        kind = "cross_head" if cross else "head"
        rows = [i for i, k in enumerate(self.kinds) if k == kind]
        if not rows:
            raise ValueError(f"this model has no {kind.replace('_', '-')}s")
        return self.values[rows].view(self.n_layers, self.n_heads, -1)


@torch.no_grad()
def direct_logit_attribution(
    model,
    tokens: Union[Text, Int[Tensor, "batch pos"]],
    answer: TokenIds,
    wrong: Optional[TokenIds] = None,
    *,
    position: Union[int, Int[Tensor, "batch"]] = -1,
    attention_mask: Optional[Int[Tensor, "batch pos"]] = None,
    src: Union[Text, Int[Tensor, "batch src_pos"], None] = None,
    src_attention_mask: Optional[Int[Tensor, "batch src_pos"]] = None,
) -> LogitAttribution:
    """Each component's direct effect on ``logit[answer]`` (minus ``logit[wrong]`` when given) at
    ``position`` (one per prompt; -1 = the last real token): the component, passed through any
    later norms (post-LN) and the final norm with their cached scales, dotted with the
    unembedding direction. ``answer``/``wrong``: a token id or single-token string, or one per
    prompt."""
    require_linear_head(model, "direct logit attribution")
    tokens, mask, src, src_mask = prepare_inputs(model, tokens, attention_mask, src, src_attention_mask)
    prefix, stack = logits_stack(model)
    logits, cache = run_cached(model, tokens, mask, src, src_mask, decomposition_hooks(prefix, stack))
    index = position_index(position if isinstance(position, Tensor) else [position], tokens, mask)[:, :1]
    dec = _decomposition(model, prefix, stack, cache, tokens, index)
    batch = tokens.shape[0]
    a = token_ids(model, answer, batch)
    w = token_ids(model, wrong, batch) if wrong is not None else None
    direction = unembed_direction(model, a, w)  # [batch, d_model]

    final = final_path_norm(prefix, stack)
    comps = dec.components[:, :, 0]  # [component, batch, d_model]
    if final:
        comps = through_norms(comps, final, {final[0].hook: dec.final_scale[:, 0]})
    values = torch.einsum("cbd,bd->cb", comps, direction)

    picked = take(logits, index)[:, 0].float()  # [batch, d_vocab]
    rows = torch.arange(batch, device=picked.device)
    logit = picked[rows, a] - (picked[rows, w] if w is not None else 0)
    return LogitAttribution(
        values=values, labels=dec.labels, layers=dec.layers, kinds=dec.kinds, logit=logit,
        constant=logit_constant(model, a, w), answer=a, wrong=w, positions=index[:, 0],
        n_layers=dec.n_layers, n_heads=stack.cfg.n_heads,
    )


@torch.no_grad()
def unembed_direction(model, answer: Tensor, wrong: Optional[Tensor] = None) -> Float[Tensor, "batch d_model"]:
    """``W_U[:, answer] - W_U[:, wrong]``, one row per prompt."""
    W_U = _float(model.W_U)
    u = W_U[:, answer].T
    return u - W_U[:, wrong].T if wrong is not None else u


@torch.no_grad()
def logit_constant(model, answer: Tensor, wrong: Optional[Tensor] = None) -> Float[Tensor, "batch"]:
    """What no component writes: ``b_final . u + b_U[answer] (- b_U[wrong])``, with ``u`` the
    unembedding direction; ``b_final`` is the final LayerNorm's bias (absent for RMSNorm)."""
    prefix, stack = logits_stack(model)
    final = final_path_norm(prefix, stack)
    b_U = _float(model.b_U)
    const = b_U[answer] - (b_U[wrong] if wrong is not None else 0)
    if final and final[0].centers:
        const = const + unembed_direction(model, answer, wrong) @ _float(final[0].module.b)
    return const


# ----------------------------------------------------------------------------- logit lens


@dataclass
class LogitLens:
    """Top tokens of the residual read as logits after each layer. The layer axis follows
    ``layer_labels``: ``embed`` (the residual entering block 0), then ``L{l}`` (after block l);
    the last entry is the model's own output."""

    layer_labels: list[str]
    positions: Int[Tensor, "batch pos"]
    position_labels: list[list[str]]
    top_ids: Int[Tensor, "layer batch pos k"]
    top_logits: Float[Tensor, "layer batch pos k"]
    top_probs: Float[Tensor, "layer batch pos k"]
    target: Optional[Int[Tensor, "batch pos"]]
    target_rank: Optional[Int[Tensor, "layer batch pos"]]  # 1 = the top token
    target_logit: Optional[Float[Tensor, "layer batch pos"]]
    target_prob: Optional[Float[Tensor, "layer batch pos"]]
    token_strings: dict[int, str]

    def top_tokens(self, layer: int, batch: int = 0, pos: int = -1) -> list[str]:
        """The top-k token strings at ``layer`` (index into ``layer_labels``) and analysed
        position ``pos`` (index into ``positions[batch]``)."""
        return [self.token_strings[int(i)] for i in self.top_ids[layer, batch, pos]]

    def first_top1_layer(self) -> Int[Tensor, "batch pos"]:
        """Index into ``layer_labels`` of the first layer where the target is the top token
        (-1 where it never is)."""
        if self.target_rank is None:
            raise ValueError("the logit lens was run without a target token")
        top1 = self.target_rank == 1
        first = top1.int().argmax(0)
        return torch.where(top1.any(0), first, torch.full_like(first, -1))


def accumulated_hooks(prefix: str, stack: nn.Module) -> list[str]:
    post = [f"{prefix}blocks.{l}.hook_resid_post" for l in range(stack.cfg.n_layers)]
    return [f"{prefix}blocks.0.hook_resid_pre"] + post


@torch.no_grad()
def accumulated_residual(
    model,
    tokens: Union[Text, Int[Tensor, "batch pos"]],
    *,
    positions: Positions = None,
    attention_mask: Optional[Int[Tensor, "batch pos"]] = None,
    src: Union[Text, Int[Tensor, "batch src_pos"], None] = None,
    src_attention_mask: Optional[Int[Tensor, "batch src_pos"]] = None,
) -> tuple[Float[Tensor, "layer batch pos d_model"], list[str]]:
    """The residual entering block 0 (``embed``) and after each block (``L{l}``), at ``positions``."""
    tokens, mask, src, src_mask = prepare_inputs(model, tokens, attention_mask, src, src_attention_mask)
    prefix, stack = logits_stack(model)
    names = accumulated_hooks(prefix, stack)
    _, cache = run_cached(model, tokens, mask, src, src_mask, names, **stop_after(model, stack.cfg.n_layers))
    index = position_index(positions, tokens, mask)
    return torch.stack([take(cache[n], index) for n in names]), ["embed"] + [f"L{l}" for l in range(stack.cfg.n_layers)]


def read_out(model, residual: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
    """Logits of a residual as if it were the last layer's: the final norm, applied freshly (its
    scale recomputed from ``residual``), then the output head. Holds the model's lock, so another
    session's temporary hooks never see these calls."""
    _, stack = logits_stack(model)
    with torch.no_grad(), model.hooks():
        return model.head_output(stack.final_norm(residual))


@torch.no_grad()
def lens_logits(
    model,
    tokens: Union[Text, Int[Tensor, "batch pos"]],
    layer: int = -1,
    *,
    positions: Positions = None,
    attention_mask: Optional[Int[Tensor, "batch pos"]] = None,
    src: Union[Text, Int[Tensor, "batch src_pos"], None] = None,
    src_attention_mask: Optional[Int[Tensor, "batch src_pos"]] = None,
) -> Float[Tensor, "batch pos d_vocab"]:
    """Full logit-lens logits of one layer (index into the lens's layers: 0 = ``embed``, ``l+1``
    = after block ``l``, -1 = the last) at ``positions``."""
    require_logits(model, "the logit lens")
    tokens, mask, src, src_mask = prepare_inputs(model, tokens, attention_mask, src, src_attention_mask)
    prefix, stack = logits_stack(model)
    name = accumulated_hooks(prefix, stack)[layer]
    _, cache = run_cached(model, tokens, mask, src, src_mask, [name], **stop_after(model, stack.cfg.n_layers))
    return read_out(model, take(cache[name], position_index(positions, tokens, mask)))


@torch.no_grad()
def logit_lens(
    model,
    tokens: Union[Text, Int[Tensor, "batch pos"]],
    *,
    target: Optional[TokenIds] = None,
    k: int = 10,
    positions: Positions = None,
    attention_mask: Optional[Int[Tensor, "batch pos"]] = None,
    src: Union[Text, Int[Tensor, "batch src_pos"], None] = None,
    src_attention_mask: Optional[Int[Tensor, "batch src_pos"]] = None,
    chunk_elements: int = 1 << 22,
) -> LogitLens:
    """The logit lens at ``positions`` (all by default): top-``k`` tokens, their logits and
    probabilities after each layer, and the rank, logit and probability of ``target`` (an id or
    single-token string; one per prompt ``[batch]``; or one per analysed position ``[batch, n]``).

    Memory: logits exist for at most ``chunk_elements / d_vocab`` rows (position x layer) at a
    time; only the top ``k`` and the target's statistics are kept."""
    require_logits(model, "the logit lens")
    tokens, mask, src, src_mask = prepare_inputs(model, tokens, attention_mask, src, src_attention_mask)
    prefix, stack = logits_stack(model)
    names = accumulated_hooks(prefix, stack)
    _, cache = run_cached(model, tokens, mask, src, src_mask, names, **stop_after(model, stack.cfg.n_layers))
    index = position_index(positions, tokens, mask)
    batch, n = index.shape
    residual = torch.stack([take(cache[name], index) for name in names]).flatten(0, 2)  # [layer*batch*n, d]
    tgt = None
    if target is not None:
        if isinstance(target, Tensor) and target.ndim == 2:
            tgt = target.to(index.device).long()
        else:
            tgt = token_ids(model, target, batch)[:, None].expand(batch, n)
        if tgt.shape != (batch, n):
            raise ValueError(f"target shape {tuple(tgt.shape)} does not match the analysed positions {(batch, n)}")
    tgt_rows = tgt.reshape(1, -1).expand(len(names), -1).flatten() if tgt is not None else None

    rows = max(1, chunk_elements // model.cfg.d_vocab)
    k = min(k, model.cfg.d_vocab)
    top_ids, top_logits, top_probs, t_rank, t_logit, t_prob = [], [], [], [], [], []
    for start in range(0, residual.shape[0], rows):
        logits = read_out(model, residual[start : start + rows]).float()  # [rows, d_vocab]
        lse = logits.logsumexp(-1, keepdim=True)
        values, ids = logits.topk(k, dim=-1)
        top_ids.append(ids)
        top_logits.append(values)
        top_probs.append((values - lse).exp())
        if tgt_rows is not None:
            tl = logits.gather(-1, tgt_rows[start : start + rows, None])
            t_rank.append((logits > tl).sum(-1) + 1)
            t_logit.append(tl[:, 0])
            t_prob.append((tl - lse)[:, 0].exp())
        del logits

    def shaped(parts: list[Tensor]) -> Optional[Tensor]:
        return torch.cat(parts).view(len(names), batch, n, *parts[0].shape[1:]) if parts else None

    ids = shaped(top_ids)
    return LogitLens(
        layer_labels=["embed"] + [f"L{l}" for l in range(stack.cfg.n_layers)],
        positions=index,
        position_labels=position_labels(model, tokens, index),
        top_ids=ids,
        top_logits=shaped(top_logits),
        top_probs=shaped(top_probs),
        target=tgt,
        target_rank=shaped(t_rank),
        target_logit=shaped(t_logit),
        target_prob=shaped(t_prob),
        token_strings=token_strings(model, ids if tgt is None else torch.cat([ids.flatten(), tgt.flatten()])),
    )
