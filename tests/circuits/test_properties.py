"""Property-based tests (hypothesis) of the identities that pin patching, attribution patching,
ablation and path patching, over random prompts (words of the induction model's vocabulary, or
random ids for a random GPT-2 with MLPs and noisy biases), random lengths (2..20 tokens, BOS
included), batch sizes, metrics, layers, heads and positions.

Each property is an identity the API satisfies exactly (up to float32 rounding), read off the
code: which run is the target, which the source, what ``baseline`` and ``source`` are, which
positions a metric reads. Fixed seeds (``derandomize``) keep CI reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuits.ablation import Ablation, ablate, ablation_hooks
from circuits.attribution import attribution_patching
from circuits.metrics import KLDivergence, LogitDiff, LogProb, Loss, normalized
from circuits.path_patching import path_patching, path_patching_sweep
from circuits.patching import patch_head_outputs, patch_head_vectors, patch_layer_outputs, patch_residual
from models import load_pretrained
from tests.hf_reference import save_random_hf_model

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ATOL = 1e-5


@dataclass(repr=False)
class Subject:
    name: str
    model: object
    words: list[int]  # ids a prompt is made of (never a special token)
    bos: int

    def __repr__(self) -> str:  # printed with every falsifying example: keep it short
        return f"<{self.name}>"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one thread is as fast, and far faster on a busy machine (no oversubscription)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=["induction-2l", "gpt2"])
def subject(request, tmp_path_factory) -> Subject:
    """The shipped attention-only induction model (word-level vocabulary), and a random GPT-2 with
    MLPs and noisy biases (random ids): each loaded once for the module."""
    if request.param == "induction-2l":
        model = load_pretrained("induction-2l", device="cpu")
        special = set(model.tokenizer.all_special_ids)
        return Subject("induction-2l", model, [i for i in range(model.cfg.d_vocab) if i not in special],
                       model.tokenizer.bos_token_id)
    model = load_pretrained(save_random_hf_model("gpt2", tmp_path_factory.mktemp("gpt2")), device="cpu")
    return Subject("gpt2", model, list(range(1, model.cfg.d_vocab)), 0)


# ----------------------------------------------------------------------------- strategies
@st.composite
def prompts(draw, s: Subject, batch=(1, 2), length=(2, 20)):
    """[batch, T] ids: BOS then random words."""
    B = draw(st.integers(*batch), label="batch")
    T = draw(st.integers(*length), label="length")
    rows = [[s.bos] + draw(st.lists(st.sampled_from(s.words), min_size=T - 1, max_size=T - 1)) for _ in range(B)]
    return torch.tensor(rows)


@st.composite
def corrupt(draw, s: Subject, clean: torch.Tensor, max_changes: int = 3):
    """``clean`` with the words at 1..max_changes positions (the same in every row, never BOS)
    replaced by other words: (corrupted, sorted changed positions)."""
    T = clean.shape[1]
    where = sorted(draw(st.sets(st.integers(1, T - 1), min_size=1, max_size=min(max_changes, T - 1)), label="changed"))
    index = {w: i for i, w in enumerate(s.words)}
    corrupted = clean.clone()
    for p in where:
        for b in range(clean.shape[0]):
            shift = draw(st.integers(1, len(s.words) - 1))
            corrupted[b, p] = s.words[(index[int(clean[b, p])] + shift) % len(s.words)]
    return corrupted, where


@st.composite
def metrics(draw, s: Subject, tokens: torch.Tensor, reference_logits: torch.Tensor, reads_one_position=False,
            position=None):
    """A metric of every kind the workbench offers, at a random position it reads (or ``position``)."""
    B, T = tokens.shape
    kinds = ["logit_diff", "log_prob", "kl"] + ([] if reads_one_position else ["loss"])
    kind = draw(st.sampled_from(kinds), label="metric")
    if position is None:
        position = draw(st.integers(-T, T - 1), label="metric position")
    ids = st.sampled_from(s.words)
    if kind == "logit_diff":
        return LogitDiff(draw(st.lists(ids, min_size=B, max_size=B)), draw(st.lists(ids, min_size=B, max_size=B)),
                         position=position)
    if kind == "log_prob":
        return LogProb(draw(ids), position=position)
    if kind == "kl":
        return KLDivergence(reference_logits, position=position)
    return Loss(tokens)


def sweeps(s: Subject) -> list[str]:
    kinds = ["pre", "mid", "post", "attn", "head", "head_by_pos", "q", "k", "v", "pattern"]
    return kinds if s.model.cfg.attn_only else kinds + ["mlp"]


def sweep(kind: str, model, tokens, cache, metric, **kw):
    """One exact patching sweep by name (``kind``)."""
    if kind in ("pre", "mid", "post"):
        return patch_residual(model, tokens, cache, metric, kind, **kw)
    if kind in ("attn", "mlp"):
        return patch_layer_outputs(model, tokens, cache, metric, kind, **kw)
    if kind in ("head", "head_by_pos"):
        return patch_head_outputs(model, tokens, cache, metric, by_position=kind == "head_by_pos", **kw)
    return patch_head_vectors(model, tokens, cache, metric, kind, **kw)


def entry(kind: str, l: int, i: int, p: int = 0) -> tuple[tuple, str, tuple]:
    """(index into the sweep's values, hook name, index into the activation) of one patch:
    ``i`` is the position (residual, layer outputs) or the head; ``p`` the position of a head."""
    if kind in ("pre", "mid", "post"):
        return (l, i), f"blocks.{l}.hook_resid_{kind}", (slice(None), i)
    if kind in ("attn", "mlp"):
        return (l, i), f"blocks.{l}.hook_{kind}_out", (slice(None), i)
    if kind == "head":
        return (l, i), f"blocks.{l}.attn.hook_z", (slice(None), slice(None), i)
    if kind == "head_by_pos":
        return (l, p, i), f"blocks.{l}.attn.hook_z", (slice(None), p, i)
    if kind == "pattern":
        return (l, i), f"blocks.{l}.attn.hook_pattern", (slice(None), i)
    return (l, i), f"blocks.{l}.attn.hook_{kind}", (slice(None), slice(None), i)


def n_heads(model, kind: str) -> int:
    return model.cfg.n_key_value_heads if kind in ("k", "v") else model.cfg.n_heads


def run(model, tokens, hooks=(), attention_mask=None) -> torch.Tensor:
    with torch.no_grad(), model.hooks(fwd_hooks=list(hooks)):
        return model(tokens, attention_mask=attention_mask)


def cache_of(model, tokens, attention_mask=None):
    with torch.no_grad():
        return model.run_with_cache(tokens, attention_mask=attention_mask)


def close(a, b, atol=ATOL):
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    torch.testing.assert_close(a, b.expand_as(a), atol=atol, rtol=0)


def same_everywhere(values: torch.Tensor, value: float, atol=ATOL):
    close(values, torch.tensor(value), atol=atol)


# ----------------------------------------------------------------------------- exact patching
@settings(max_examples=25, **SETTINGS)
@given(data=st.data())
def test_patching_a_run_into_itself_changes_nothing(subject, data):
    """Every sweep, source cache = the target run's own (clean into clean, or corrupted into
    corrupted: any prompt): every patched metric is the unpatched one, and ``baseline == source``.
    Batches of two may be right-padded prompts of different lengths (``attention_mask``)."""
    s, model = subject, subject.model
    tokens = data.draw(prompts(s), label="tokens")
    mask = None
    if tokens.shape[0] == 2 and data.draw(st.booleans(), label="padded"):
        cut = data.draw(st.integers(2, tokens.shape[1]), label="second prompt's length")
        mask = torch.ones_like(tokens)
        mask[1, cut:] = 0
        tokens[1, cut:] = s.bos
    logits, cache = cache_of(model, tokens, mask)
    metric = data.draw(metrics(s, tokens, logits), label="metric")
    if isinstance(metric, Loss):
        metric = Loss(tokens, mask)
    kind = data.draw(st.sampled_from(sweeps(s)), label="sweep")
    result = sweep(kind, model, tokens, cache, metric, source_tokens=tokens, attention_mask=mask)
    assert result.baseline == pytest.approx(float(metric(logits)), abs=ATOL)
    assert result.source == pytest.approx(result.baseline, abs=ATOL)
    same_everywhere(result.values, result.baseline)
    assert result.values.ndim == len(result.axes)
    for axis, size in zip(result.axes, result.values.shape):
        assert len(result.labels[axis]) == size


@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_sweep_entry_equals_one_hooked_forward(subject, data):
    """A random entry of a random sweep (layer, position and/or head) equals one plain forward of
    the corrupted prompt with that activation replaced by the clean one: the shared prefix,
    batching and chunking of the sweep change nothing, and its axes are the ones it names."""
    s, model = subject, subject.model
    clean = data.draw(prompts(s), label="clean")
    corrupted, _ = data.draw(corrupt(s, clean), label="corrupted")
    clean_logits, clean_cache = cache_of(model, clean)
    metric = data.draw(metrics(s, corrupted, clean_logits), label="metric")
    kind = data.draw(st.sampled_from(sweeps(s)), label="sweep")
    max_rows = data.draw(st.sampled_from([1, 3, 512]), label="max_rows")
    result = sweep(kind, model, corrupted, clean_cache, metric, max_rows=max_rows)
    T = clean.shape[1]
    l = data.draw(st.integers(0, model.cfg.n_layers - 1), label="layer")
    i = data.draw(st.integers(0, (T if kind in ("pre", "mid", "post", "attn", "mlp") else n_heads(model, kind)) - 1),
                  label="position or head")
    p = data.draw(st.integers(0, T - 1), label="head's position")
    at, hook, index = entry(kind, l, i, p)

    def put(act, hook):
        act = act.clone()
        act[index] = clean_cache[hook.name][index]
        return act

    close(result.values[at], metric(run(model, corrupted, [(hook, put)])))


@settings(max_examples=20, **SETTINGS)
@given(data=st.data())
def test_denoising_identities_of_the_positions(subject, data):
    """Clean -> corrupted (denoising), prompts that differ at a few positions, causal attention:

    * nothing at a position before the first change differs between the runs: patching it (any
      layer, residual, layer output, head by position) leaves the corrupted metric;
    * layer 0's residual depends only on that position's token: patching it at an unchanged
      position leaves the corrupted metric, and when only one position changed, patching it
      there *is* the clean run (normalised 1)."""
    s, model = subject, subject.model
    clean = data.draw(prompts(s), label="clean")
    corrupted, changed = data.draw(corrupt(s, clean), label="corrupted")
    clean_logits, clean_cache = cache_of(model, clean)
    metric = data.draw(metrics(s, corrupted, clean_logits), label="metric")
    kind = data.draw(st.sampled_from([k for k in sweeps(s) if k in ("pre", "mid", "post", "attn", "mlp", "head_by_pos")]),
                     label="sweep")
    result = sweep(kind, model, corrupted, clean_cache, metric, source_tokens=clean)
    with torch.no_grad():
        assert result.baseline == pytest.approx(float(metric(model(corrupted))), abs=ATOL)
        assert result.source == pytest.approx(float(metric(clean_logits)), abs=ATOL)
    same_everywhere(result.values[:, : changed[0]], result.baseline)
    if kind == "pre":
        unchanged = [p for p in range(clean.shape[1]) if p not in changed]
        same_everywhere(result.values[0, unchanged], result.baseline)
        if len(changed) == 1:
            close(result.values[0, changed[0]], result.source)
            if abs(result.source - result.baseline) > 1e-2:
                close(result.normalized()[0, changed[0]], torch.tensor(1.0), atol=1e-3)


@settings(max_examples=20, **SETTINGS)
@given(data=st.data())
def test_final_residual_at_the_metrics_position_restores_the_clean_metric(subject, data):
    """The last layer's ``resid_post`` is all the unembedding reads: patched from the clean run at
    the position the metric reads it gives the clean metric (normalised 1); at any other position
    it changes nothing."""
    s, model = subject, subject.model
    clean = data.draw(prompts(s), label="clean")
    corrupted, _ = data.draw(corrupt(s, clean), label="corrupted")
    clean_logits, clean_cache = cache_of(model, clean)
    T, last = clean.shape[1], model.cfg.n_layers - 1
    position = data.draw(st.integers(-T, T - 1), label="metric position")
    metric = data.draw(metrics(s, corrupted, clean_logits, reads_one_position=True, position=position), label="metric")
    result = patch_residual(model, corrupted, clean_cache, metric, "post", source_tokens=clean)
    read = position % T
    close(result.values[last, read], result.source)
    same_everywhere(result.values[last, [p for p in range(T) if p != read]], result.baseline)
    if abs(result.source - result.baseline) > 1e-2:
        close(result.normalized()[last, read], torch.tensor(1.0), atol=1e-3)
    if isinstance(metric, KLDivergence):  # KL to the clean run: 0 once the clean residual is back
        close(result.values[last, read], torch.tensor(0.0))


@settings(max_examples=10, **SETTINGS)
@given(data=st.data())
def test_sweeps_are_deterministic_and_chunk_and_batch_invariant(subject, data):
    """The same sweep twice gives the same numbers bit for bit; any ``max_rows`` (chunking) gives
    the same numbers; and a batch of two prompts gives the mean of each prompt's sweep (the metric
    is the batch mean and each patch replaces every prompt's own activation)."""
    s, model = subject, subject.model
    clean = data.draw(prompts(s, batch=(2, 2)), label="clean")
    corrupted, _ = data.draw(corrupt(s, clean), label="corrupted")
    _, clean_cache = cache_of(model, clean)
    answer = data.draw(st.lists(st.sampled_from(s.words), min_size=2, max_size=2), label="answers")
    wrong = data.draw(st.lists(st.sampled_from(s.words), min_size=2, max_size=2), label="wrong answers")
    kind = data.draw(st.sampled_from(sweeps(s)), label="sweep")
    metric = LogitDiff(answer, wrong)
    seen = []
    full = sweep(kind, model, corrupted, clean_cache, metric, progress=lambda d, t: seen.append((d, t)))
    assert torch.equal(full.values, sweep(kind, model, corrupted, clean_cache, metric).values)
    rows = data.draw(st.integers(1, 9), label="max_rows")
    close(sweep(kind, model, corrupted, clean_cache, metric, max_rows=rows).values, full.values)
    total = full.values.numel()
    assert seen[-1] == (total, total) and all(a[0] < b[0] for a, b in zip(seen, seen[1:]))
    singles = []
    for b in range(2):
        _, one_cache = cache_of(model, clean[b : b + 1])
        singles.append(sweep(kind, model, corrupted[b : b + 1], one_cache, LogitDiff(answer[b], wrong[b])).values)
    close(full.values, (singles[0] + singles[1]) / 2)
    assert not any(m._forward_hooks for m in model.modules())  # no hook left behind


# ----------------------------------------------------------------------------- attribution patching
ATTRIBUTION = ["resid_pre", "resid_mid", "attn_out", "head_out", "head_out_by_pos", "q", "k", "v", "pattern"]


@settings(max_examples=20, **SETTINGS)
@given(data=st.data())
def test_attribution_patching_identities(subject, data):
    """Attribution patching estimates ``(clean - corrupted) . grad``: exactly zero (values ==
    baseline, bit for bit) when clean == corrupted; otherwise exactly zero at layer 0's residual of
    every unchanged position, zero before the first change, with the exact sweep's shape and axes,
    baseline = the corrupted metric and source = the clean one."""
    s, model = subject, subject.model
    clean = data.draw(prompts(s), label="clean")
    clean_logits = cache_of(model, clean)[0]
    metric = data.draw(metrics(s, clean, clean_logits), label="metric")
    sweep_name = data.draw(st.sampled_from(ATTRIBUTION + ([] if model.cfg.attn_only else ["mlp_out"])), label="sweep")
    same = attribution_patching(model, clean, clean, metric, sweep_name)
    assert same.source == same.baseline
    assert torch.equal(same.values - same.baseline, torch.zeros_like(same.values))

    corrupted, changed = data.draw(corrupt(s, clean), label="corrupted")
    if isinstance(metric, Loss):
        metric = Loss(corrupted)
    est = attribution_patching(model, clean, corrupted, metric, sweep_name)
    with torch.no_grad():
        assert est.baseline == pytest.approx(float(metric(model(corrupted))), abs=ATOL)
        assert est.source == pytest.approx(float(metric(clean_logits)), abs=ATOL)
    if sweep_name in ("resid_pre", "resid_mid", "attn_out", "mlp_out", "head_out_by_pos"):
        same_everywhere(est.values[:, : changed[0]], est.baseline)
    if sweep_name == "resid_pre":
        unchanged = [p for p in range(clean.shape[1]) if p not in changed]
        assert torch.equal(est.values[0, unchanged] - est.baseline, torch.zeros(len(unchanged)))
    kind = {"resid_pre": "pre", "resid_mid": "mid", "attn_out": "attn", "mlp_out": "mlp", "head_out": "head",
            "head_out_by_pos": "head_by_pos"}.get(sweep_name, sweep_name)
    exact = sweep(kind, model, corrupted, cache_of(model, clean)[1], metric, source_tokens=clean)
    assert est.values.shape == exact.values.shape and est.axes == exact.axes and est.labels == exact.labels


# ----------------------------------------------------------------------------- ablation
TARGETS, MLP_TARGETS = ["head", "q", "k", "v", "pattern", "attn", "resid"], ["neuron", "mlp"]


def ablations(s: Subject, T: int, kinds=("zero",), targets=None):
    model = s.model
    cfg = model.cfg
    if targets is None:
        targets = TARGETS + ([] if cfg.attn_only else MLP_TARGETS)

    @st.composite
    def one(draw):
        target = draw(st.sampled_from(targets))
        layer = draw(st.integers(0, cfg.n_layers - 1))
        limit = {"neuron": cfg.d_mlp, "k": cfg.n_key_value_heads, "v": cfg.n_key_value_heads}.get(target, cfg.n_heads)
        index = draw(st.integers(0, limit - 1)) if target not in ("attn", "mlp", "resid") else None
        position = draw(st.one_of(st.none(), st.integers(0, T - 1)))
        return Ablation(target, layer, index, draw(st.sampled_from(kinds)), position)

    return one()


@settings(max_examples=20, **SETTINGS)
@given(data=st.data())
def test_ablation_identities(subject, data):
    """Ablating nothing changes nothing (bit for bit); zero-ablating every head of a layer (in any
    order, among other ablations) is zero-ablating the layer's attention, i.e. its
    ``hook_attn_out`` set to 0 by hand; zero ablations commute; an ablation at one position never
    changes the logits before it (causal attention); a zero ablation of any target sets exactly
    the entries it names (query position, head, neuron) to 0 and leaves the rest of that
    activation as it was."""
    s, model = subject, subject.model
    tokens = data.draw(prompts(s), label="tokens")
    T = tokens.shape[1]
    none = ablate(model, tokens, [])
    assert torch.equal(none.logits, none.clean_logits) and none.loss == none.clean_loss

    layer = data.draw(st.integers(0, model.cfg.n_layers - 1), label="layer")
    heads = data.draw(st.permutations(range(model.cfg.n_heads)), label="head order")
    others = data.draw(st.lists(ablations(s, T), max_size=3), label="other ablations")
    all_heads = ablate(model, tokens, [Ablation("head", layer, h) for h in heads] + others).logits
    layer_off = ablate(model, tokens, [Ablation("attn", layer)] + others).logits
    close(all_heads, layer_off)
    shuffled = data.draw(st.permutations(others + [Ablation("attn", layer)]), label="shuffled")
    assert torch.equal(ablate(model, tokens, shuffled).logits, layer_off)
    if not others:
        hand = run(model, tokens, [(f"blocks.{layer}.hook_attn_out", lambda x, hook: torch.zeros_like(x))])
        close(all_heads, hand)

    p = data.draw(st.integers(0, T - 1), label="position")
    one = data.draw(ablations(s, T, kinds=("zero",)), label="ablation at the position")
    one = Ablation(one.target, one.layer, one.index, "zero", p)
    r = ablate(model, tokens, [one])
    close(r.logits[:, :p], r.clean_logits[:, :p])

    # exactly the entries named are zeroed: (query) position, head or neuron; nothing else moves
    _, clean_cache = cache_of(model, tokens)
    for target in TARGETS + ([] if model.cfg.attn_only else MLP_TARGETS):
        one = data.draw(ablations(s, T, targets=[target]), label=f"one {target} ablation")
        with torch.no_grad(), model.hooks(fwd_hooks=ablation_hooks(model, tokens, [one])):
            _, cache = model.run_with_cache(tokens, names_filter=lambda n: n == one.hook)
        act, before = cache[one.hook], clean_cache[one.hook]
        pos = slice(None) if one.position is None else one.position
        named = torch.zeros(act.shape, dtype=torch.bool)
        if one.target == "pattern":  # [batch, head, query, key]
            named[:, one.index, pos] = True
        elif one.index is None:  # attn, mlp, resid: [batch, pos, d_model]
            named[:, pos] = True
        else:  # [batch, pos, head, d_head] or [batch, pos, d_mlp]
            named[:, pos, one.index] = True
        assert (act[named] == 0).all()
        close(act[~named], before[~named])


@settings(max_examples=20, **SETTINGS)
@given(data=st.data())
def test_mean_and_resample_of_the_prompt_itself_change_nothing(subject, data):
    """Mean ablation with the prompt itself as reference (one prompt, or copies of it: the mean is
    per position), and resample ablation from copies of the prompt, with any seed, are no-ops; and
    zero-ablating layer 0's residual everywhere makes the logits independent of the tokens."""
    s, model = subject, subject.model
    tokens = data.draw(prompts(s, batch=(1, 1)), label="tokens")
    T = tokens.shape[1]
    chosen = data.draw(st.lists(ablations(s, T, kinds=("mean", "resample")), min_size=1, max_size=4), label="ablations")
    copies = data.draw(st.integers(1, 3), label="copies")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    r = ablate(model, tokens, chosen, reference=tokens.repeat(copies, 1), seed=seed)
    close(r.logits, r.clean_logits)

    other = data.draw(prompts(s, batch=(1, 1), length=(T, T)), label="other prompt")
    both = torch.cat([tokens, other])
    blind = ablate(model, both, [Ablation("resid", 0)]).logits
    close(blind[0], blind[1])


# ----------------------------------------------------------------------------- path patching
@settings(max_examples=15, **SETTINGS)
@given(data=st.data())
def test_path_patching_identities(subject, data):
    """No senders, or corrupted == clean: the clean metric, for any receivers. A last-layer sender
    to the final residual with the MLPs recomputed is noising activation patching of that head.
    The sweep: baseline = clean metric, source = corrupted, NaN exactly for the heads at or after
    the last receiver's layer."""
    s, model = subject, subject.model
    L, H = model.cfg.n_layers, model.cfg.n_heads
    clean = data.draw(prompts(s), label="clean")
    corrupted, _ = data.draw(corrupt(s, clean), label="corrupted")
    clean_logits, clean_cache = cache_of(model, clean)
    metric = data.draw(metrics(s, clean, clean_logits), label="metric")
    clean_value = float(metric(clean_logits))
    heads = st.tuples(st.integers(0, L - 1), st.integers(0, H - 1))
    senders = data.draw(st.lists(heads, min_size=1, max_size=3), label="senders")
    receiver = data.draw(st.one_of(st.just("resid"), st.tuples(st.sampled_from(["q", "k", "v"]),
                                                               st.integers(1, L - 1), st.integers(0, H - 1))),
                         label="receiver")
    receivers = [receiver] if receiver != "resid" else ["resid"]
    assert path_patching(model, clean, corrupted, metric, [], receivers) == pytest.approx(clean_value, abs=ATOL)
    assert path_patching(model, clean, clean, metric, senders, receivers) == pytest.approx(clean_value, abs=ATOL)

    _, corrupted_cache = cache_of(model, corrupted)
    head = data.draw(st.integers(0, H - 1), label="last-layer head")
    noising = patch_head_outputs(model, clean, corrupted_cache, metric)
    value = path_patching(model, clean, corrupted, metric, [(L - 1, head)], freeze_mlps=False)
    assert value == pytest.approx(float(noising.values[L - 1, head]), abs=1e-4)

    result = path_patching_sweep(model, clean, corrupted, metric, receivers)
    assert result.baseline == pytest.approx(clean_value, abs=ATOL)
    with torch.no_grad():
        assert result.source == pytest.approx(float(metric(model(corrupted))), abs=ATOL)
    last = L if receiver == "resid" else receiver[1]
    assert torch.isfinite(result.values[:last]).all() and torch.isnan(result.values[last:]).all()
    l, h = data.draw(heads.filter(lambda x: x[0] < last), label="one sender")
    assert float(result.values[l, h]) == pytest.approx(
        path_patching(model, clean, corrupted, metric, [(l, h)], receivers), abs=ATOL)


# ----------------------------------------------------------------------------- metrics
@settings(max_examples=20, **SETTINGS)
@given(data=st.data())
def test_metric_identities(subject, data):
    """A metric of a batch is the mean of its prompts' metrics; the KL divergence to a run is 0 on
    that run and >= 0 on any other; a logit difference is antisymmetric and 0 for answer == wrong;
    ``normalized`` maps clean to 1 and corrupted to 0."""
    s, model = subject, subject.model
    tokens = data.draw(prompts(s, batch=(2, 3)), label="tokens")
    other = data.draw(prompts(s, batch=(tokens.shape[0],) * 2, length=(tokens.shape[1],) * 2), label="other")
    with torch.no_grad():
        logits, other_logits = model(tokens), model(other)
    T = tokens.shape[1]
    at = data.draw(st.integers(-T, T - 1), label="metric position")
    metric = data.draw(metrics(s, tokens, other_logits, position=at), label="metric")
    if isinstance(metric, Loss):
        per = [Loss(tokens[b : b + 1])(logits[b : b + 1]) for b in range(tokens.shape[0])]
    elif isinstance(metric, LogitDiff):
        per = [LogitDiff(metric.answer[b], metric.wrong[b], at)(logits[b : b + 1]) for b in range(tokens.shape[0])]
    elif isinstance(metric, KLDivergence):
        per = [KLDivergence(other_logits[b : b + 1], at)(logits[b : b + 1]) for b in range(tokens.shape[0])]
    else:
        per = [metric(logits[b : b + 1]) for b in range(tokens.shape[0])]
    close(metric(logits), torch.stack(per).mean())
    if isinstance(metric, LogitDiff):  # read at the position it was given, by hand
        close(metric(logits), torch.stack([logits[b, at, a] - logits[b, at, w] for b, (a, w)
                                           in enumerate(zip(metric.answer, metric.wrong))]).mean())

    position = data.draw(st.integers(-tokens.shape[1], tokens.shape[1] - 1), label="position")
    kl = KLDivergence(logits, position)
    close(kl(logits), torch.tensor(0.0))
    assert float(kl(other_logits)) >= -ATOL
    a, w = data.draw(st.sampled_from(s.words)), data.draw(st.sampled_from(s.words))
    close(LogitDiff(a, w, position)(logits), -LogitDiff(w, a, position)(logits))
    close(LogitDiff(a, a, position)(logits), torch.tensor(0.0))
    c, x = float(metric(logits)), float(metric(other_logits))
    if abs(c - x) > 1e-3:
        close(normalized(torch.tensor([c, x]), c, x), torch.tensor([1.0, 0.0]), atol=1e-4)
