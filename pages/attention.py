"""Attention page: one head's attention pattern on a prompt, all heads of a layer, every head of
every layer, and head-detector scores.

Thin on purpose: widgets -> ui.state (cached pure computations) -> ui.figures. Encoder-decoder
models get a target text box and a choice of encoder self-, decoder self- and cross-attention.
"""

import streamlit as st

from ui import state
from ui.figures import attention_heatmap, head_grid, score_heatmap
from ui.i18n import translator
from ui.patterns import attention_kinds
from ui.sidebar import family_label, summary_text
from ui.snippets import attention_snippet, detector_snippet
from ui.widgets import export_buttons, load_warnings, unknown_words_warning
from ui.navigation import leave_legacy_multipage_mode

leave_legacy_multipage_mode()  # first run of a process: back through app.py (ui/navigation.py)

MAX_PANELS = 144  # heads drawn at once in the all-layers view
MAX_GRID_CELLS = 2_000_000  # attention weights drawn in one grid figure (a browser draws ~2M cells well)


def grid_fits(tr, chosen, n_panels: int) -> bool:
    """Whether ``n_panels`` patterns of these texts fit in one grid; if not, say what to do."""
    cells = len(chosen.query_tokens) * len(chosen.key_tokens)
    if n_panels * cells <= MAX_GRID_CELLS:
        return True
    st.info(tr("attention.grid_too_big", n=len(chosen.query_tokens), heads=n_panels))
    return False


def render() -> None:
    tr = translator(state.current_lang())
    st.title(tr("attention.title"))

    with st.spinner(tr("attention.loading_model")):
        loaded = state.load_selected_model(tr)
    if loaded.error:
        st.error(loaded.error)
        state.set_default(state.PROMPT_KEY, tr("attention.default_prompt"))  # no model: nothing to fit
        # keep the prompt box (and what the user typed) while they fix the model choice
        st.text_area(tr("attention.prompt"), key=state.PROMPT_KEY, help=tr("attention.prompt_help"), height=100)
        return
    choice, model = loaded.value
    load_warnings(tr, model)
    cfg = model.cfg
    seq2seq = cfg.family == "encoder-decoder"
    st.caption(tr({"decoder": "attention.intro", "encoder": "attention.intro_encoder"}.get(cfg.family,
                                                                                          "attention.intro_seq2seq")))
    st.caption(
        tr(
            "sidebar.model_info",
            name=getattr(cfg, "model_name", None) or choice.label,
            family=family_label(tr, cfg.family),
            summary=summary_text(tr, cfg.summary()),
            n_ctx=cfg.n_ctx,
            device=cfg.device,
        )
    )

    state.set_text_default(state.PROMPT_KEY, tr, "attention.default_source" if seq2seq else "attention.default_prompt",
                           choice.name)
    prompt_label = "attention.source" if seq2seq else "attention.prompt"
    prompt = st.text_area(tr(prompt_label), key=state.PROMPT_KEY, help=tr("attention.prompt_help"), height=100)
    target = None
    if seq2seq:
        target = st.text_input(
            tr("attention.target"), key=state.TARGET_KEY, placeholder=tr("attention.target_placeholder"),
            help=tr("attention.target_help"),
        )

    with st.spinner(tr("attention.running")):
        result = state.attention_patterns(choice, prompt, tr, target=target)
    if result.error:
        st.error(result.error)
        return
    patterns = result.value
    unknown_words_warning(tr, model, prompt)
    if seq2seq and patterns.target_text is not None:
        key = "attention.generated" if patterns.generated else "attention.given_target"
        st.info(tr(key, text=patterns.target_text or "∅"))

    kinds = list(attention_kinds(cfg))
    state.keep_in_options(state.ATTN_KIND_KEY, kinds)
    if len(kinds) > 1:
        kind = st.radio(tr("attention.kind"), kinds, key=state.ATTN_KIND_KEY, horizontal=True,
                        format_func=lambda k: tr(f"attention.kind.{k}"))
    else:
        kind = kinds[0]
    chosen = patterns[kind]

    views = ["head", "layer", "all"] + (["detectors"] if kind == "self" else [])
    state.keep_in_options(state.ATTN_VIEW_KEY, views)
    view = st.radio(tr("attention.view"), views, key=state.ATTN_VIEW_KEY, horizontal=True,
                    format_func=lambda v: tr(f"attention.view.{v}"))
    if view == "detectors":
        detectors_view(tr, choice, prompt)
        return

    if view == "all":
        all_layers_view(tr, choice, chosen, kind, prompt, target)
        return

    layer_col, head_col = st.columns(2)
    layers, heads = list(range(chosen.n_layers)), list(range(chosen.n_heads))
    state.keep_in_options(state.LAYER_KEY, layers)
    state.keep_in_options(state.HEAD_KEY, heads)
    layer = layer_col.selectbox(tr("attention.layer"), layers, key=state.LAYER_KEY)
    if view == "layer":
        if not grid_fits(tr, chosen, chosen.n_heads):
            return
        title_key = "figure.grid_title" if kind == "self" else f"figure.grid_title.{kind}"
        fig = head_grid(chosen.patterns[layer], chosen.query_tokens, chosen.key_tokens,
                        titles=[tr("attention.head_short", head=h) for h in heads], title=tr(title_key, layer=layer),
                        query_label=tr("figure.query"), key_label=tr("figure.key"), weight_label=tr("figure.weight"))
        st.plotly_chart(fig, width="stretch", key="attention_grid")
        export_buttons(fig, f"attention_{kind}_L{layer}_all_heads", tr)
        with st.expander(tr("code.title")):
            st.code(attention_snippet(choice.name, prompt, kind, layer, None, target), language="python")
        return
    head = head_col.selectbox(tr("attention.head"), heads, key=state.HEAD_KEY)

    st.caption(tr("attention.n_tokens", n=len(chosen.query_tokens)) + f" · `{chosen.hook_name(layer)}`")
    title_key = "figure.title" if kind == "self" else f"figure.title.{kind}"
    fig = attention_heatmap(
        chosen.head(layer, head),
        chosen.query_tokens,
        key_tokens=chosen.key_tokens,
        title=tr(title_key, layer=layer, head=head),
        query_label=tr("figure.query"),
        key_label=tr("figure.key"),
        weight_label=tr("figure.weight"),
    )
    st.plotly_chart(fig, width="stretch", key="attention_heatmap")
    export_buttons(fig, f"attention_{kind}_L{layer}H{head}", tr)
    with st.expander(tr("code.title")):
        st.code(attention_snippet(choice.name, prompt, kind, layer, head, target), language="python")


def all_layers_view(tr, choice, chosen, kind: str, prompt: str, target) -> None:
    """Every head of every layer (rows = layers), or of a range of layers when there are more
    than ``MAX_PANELS`` heads in all (a deep model: the browser would draw hundreds of heatmaps)."""
    n_layers, n_heads = chosen.n_layers, chosen.n_heads
    if not grid_fits(tr, chosen, n_heads):
        return
    cells = len(chosen.query_tokens) * len(chosen.key_tokens)
    per_view = max(1, min(MAX_PANELS, MAX_GRID_CELLS // cells) // n_heads)
    first, last = 0, n_layers - 1
    if n_layers > per_view:
        value = st.session_state.get(state.ATTN_LAYERS_KEY)
        if value is not None and not (isinstance(value, (tuple, list)) and len(value) == 2
                                      and 0 <= value[0] <= value[1] < n_layers):
            del st.session_state[state.ATTN_LAYERS_KEY]  # a range of another model: back to the default
        # value= (not a preset session state) makes it a range slider
        first, last = st.select_slider(tr("attention.layer_range"), options=list(range(n_layers)),
                                       value=(0, per_view - 1), key=state.ATTN_LAYERS_KEY,
                                       help=tr("attention.layer_range_help", n=per_view))
        if last - first + 1 > per_view:
            st.info(tr("attention.layer_range_clipped", n=per_view, first=first, last=first + per_view - 1))
            last = first + per_view - 1
    shown = range(first, last + 1)
    panels = chosen.patterns[first:last + 1].reshape(-1, *chosen.patterns.shape[2:])
    title_key = "figure.all_title" if kind == "self" else f"figure.all_title.{kind}"
    fig = head_grid(panels, chosen.query_tokens, chosen.key_tokens,
                    titles=[f"L{layer}H{head}" for layer in shown for head in range(n_heads)],
                    title=tr(title_key, first=first, last=last), columns=n_heads,
                    query_label=tr("figure.query"), key_label=tr("figure.key"), weight_label=tr("figure.weight"))
    st.caption(tr("attention.all_caption", n=len(shown) * n_heads))
    st.plotly_chart(fig, width="stretch", key="attention_all")
    export_buttons(fig, f"attention_{kind}_L{first}-L{last}_all_heads", tr)
    with st.expander(tr("code.title")):
        st.code(attention_snippet(choice.name, prompt, kind, None, None, target), language="python")


def _open_clicked_head() -> None:
    """Callback of a click on the detector heatmap: show the clicked head's pattern."""
    event = st.session_state.get("detector_heatmap") or {}
    points = (event.get("selection") or {}).get("points") or []
    if points:
        st.session_state[state.LAYER_KEY] = int(points[0]["y"])
        st.session_state[state.HEAD_KEY] = int(points[0]["x"])
        st.session_state[state.ATTN_VIEW_KEY] = "head"


def _go_to_head() -> None:
    """Callback of the detector page's head picker: show that head's pattern."""
    label = st.session_state.get("detector_goto")
    if label:
        layer, head = (int(x) for x in label[1:].split("H"))
        st.session_state[state.LAYER_KEY], st.session_state[state.HEAD_KEY] = layer, head
        st.session_state[state.ATTN_VIEW_KEY] = "head"
        st.session_state["detector_goto"] = None


def detectors_view(tr, choice, prompt: str) -> None:
    """Detector scores of every head as a layer x head heatmap, and a picker that opens a head."""
    result = state.head_detectors(choice, prompt, tr)
    if result.error:
        st.error(result.error)
        return
    scores = result.value
    names = list(scores)
    state.keep_in_options(state.DETECTOR_KEY, names)
    detector = st.selectbox(tr("attention.detector"), names, key=state.DETECTOR_KEY,
                            format_func=lambda d: tr(f"attention.detector.{d}"), help=tr("attention.detector_help"))
    values = scores[detector]
    labels = dict(title=tr("attention.detector_title", detector=tr(f"attention.detector.{detector}")),
                  row_label=tr("attention.layer"), column_label=tr("attention.head"), value_label=tr("attention.score"))
    st.caption(tr("attention.detector_click"))
    st.plotly_chart(score_heatmap(values, clickable=True, **labels), width="stretch", key="detector_heatmap",
                    on_select=_open_clicked_head, selection_mode="points")
    export_buttons(score_heatmap(values, **labels), f"detector_{detector}", tr)
    with st.expander(tr("code.title")):
        st.code(detector_snippet(choice.name, prompt, detector), language="python")
    order = sorted(((float(values[l, h]), l, h) for l in range(values.shape[0]) for h in range(values.shape[1])),
                   reverse=True)
    options = [f"L{l}H{h}" for _, l, h in order[:10]]
    st.selectbox(tr("attention.goto"), options, index=None, key="detector_goto", on_change=_go_to_head,
                 format_func=lambda o: f"{o} ({values[int(o[1:].split('H')[0]), int(o.split('H')[1])]:.2f})",
                 placeholder=tr("attention.goto_placeholder"))

render()
