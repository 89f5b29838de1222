"""Residual-stream page: the logit lens (what the residual stream would predict after each
layer), the residual stream's decomposition, and direct logit attribution (how much each layer,
head and neuron writes towards an answer). An encoder-decoder: its decoder's residual stream on
the translation so far, with the source read by the encoder.

Thin: widgets -> ui.residual_view (pure, on circuits.residual) -> ui.figures.
"""

import streamlit as st

from ui import state
from ui.figures import display_token, layer_bars, logit_lens_heatmap, rank_lines, ranked_bars, sweep_heatmap
from ui.i18n import translator
from ui.interventions import has_mlp
from ui.snippets import (
    attribution_snippet,
    decomposition_snippet,
    logit_lens_snippet,
    neuron_attribution_snippet,
)
from ui.widgets import error_message, export_buttons, page_header, unknown_words_warning
from ui.navigation import leave_legacy_multipage_mode

leave_legacy_multipage_mode()  # first run of a process: back through app.py (ui/navigation.py)

R_PROMPT, R_TARGET, R_ANSWER, R_WRONG = "res_prompt", "res_target", "res_answer", "res_wrong"
R_NEURON_LAYER, R_NEURON_K = "res_neuron_layer", "res_neuron_k"
R_POSITION, R_GROUP = "res_position", "res_group"
R_DECODER = "res_decoder_text"  # an encoder-decoder: the translation so far, read by the decoder
MAX_NEURONS_SHOWN = 50


def neuron_section(tr, choice, model, prompt: str, answer: str, wrong: str, view, decoder) -> None:
    """Per-neuron direct logit attribution of one MLP layer (top-k by |attribution|)."""
    st.subheader(tr("residual.neurons_header"))
    cfg = model.cfg
    if not has_mlp(cfg) or view.mlp is None:
        st.info(tr("residual.no_neurons", name=choice.label))
        return
    layers = list(range(cfg.n_layers))
    state.keep_in_options(R_NEURON_LAYER, layers)
    top = min(MAX_NEURONS_SHOWN, cfg.d_mlp)
    state.set_default(R_NEURON_K, min(10, top))
    if not 1 <= st.session_state[R_NEURON_K] <= top:  # a model with fewer neurons was picked
        st.session_state[R_NEURON_K] = min(10, top)
    a, b = st.columns(2)
    layer = a.selectbox(tr("residual.neuron_layer"), layers, key=R_NEURON_LAYER)
    k = int(b.number_input(tr("residual.neuron_k"), min_value=1, max_value=top, step=1, key=R_NEURON_K))
    try:
        neurons = state.residual_view(choice.key, "neurons", prompt, answer, wrong, layer, k, decoder or "")
    except Exception as err:  # noqa: BLE001
        st.error(error_message(tr, err, choice.label))
        return
    st.caption(tr("residual.neuron_identity", n=neurons.d_mlp, layer=layer, total=neurons.total,
                  mlp=float(view.mlp[layer])))
    fig = ranked_bars(neurons.values, neurons.labels, title=tr("residual.neurons_title", k=k, layer=layer),
                      item_label=tr("residual.neuron"), value_label=tr("residual.attribution"))
    st.plotly_chart(fig, width="stretch", key="dla_neurons")
    export_buttons(fig, f"dla_neurons_L{layer}", tr)
    with st.expander(tr("code.title")):
        st.code(neuron_attribution_snippet(choice.name, prompt, answer, wrong, layer, k, decoder), language="python")


def decomposition_section(tr, choice, model, prompt: str, decoder) -> None:
    """The final residual at one position as the sum of what the embeddings, each head, each
    MLP and the biases wrote (or summed per layer): each one's share along the residual."""
    from ui.residual_view import _inputs

    try:
        tokens = model.to_str_tokens(_inputs(model, prompt, decoder or "")[0][0])
    except Exception as err:  # noqa: BLE001 - a message, never a traceback
        st.error(error_message(tr, err, choice.label))
        return
    positions = [-1] + list(range(len(tokens)))  # -1: the last token, whatever the prompt's length
    if st.session_state.get(R_POSITION) not in positions:
        st.session_state[R_POSITION] = -1  # the prompt got shorter than the chosen position
    a, b = st.columns(2)
    position = a.selectbox(tr("interventions.position"), positions, key=R_POSITION,
                           format_func=lambda i: tr("residual.last_position", position=f"{len(tokens) - 1}: "
                                                    f"{tokens[-1]!r}") if i < 0 else f"{i}: {tokens[i]!r}")
    state.set_default(R_GROUP, "component")
    group = b.radio(tr("residual.group"), ["component", "layer"], key=R_GROUP, horizontal=True,
                    format_func=lambda g: tr(f"residual.group.{g}"))
    try:
        view = state.residual_view(choice.key, "decomposition", prompt, position, group == "layer", decoder or "")
    except Exception as err:  # noqa: BLE001
        st.error(error_message(tr, err, choice.label))
        return
    st.caption(tr("residual.decomposition_identity", total=float(view.shares.sum()), norm=view.residual_norm,
                  error=view.error))
    fig = layer_bars(view.shares, view.labels, title=tr("residual.decomposition_title", position=display_token(view.position_label)),
                     value_label=tr("residual.share"))
    st.plotly_chart(fig, width="stretch", key="decomposition_chart")
    export_buttons(fig, f"decomposition_pos{view.position}", tr)
    with st.expander(tr("code.title")):
        st.code(decomposition_snippet(choice.name, prompt, view.position, group == "layer", decoder),
                language="python")


def render() -> None:
    tr = translator(state.current_lang())
    header = page_header(tr, "residual")
    if header is None:
        return
    choice, model = header
    seq2seq = model.cfg.family == "encoder-decoder"
    if model.cfg.family == "encoder" or not model.cfg.has_logits:
        st.info(tr("error.decoder_only", name=choice.label))
        return
    state.set_text_default(R_PROMPT, tr, "attention.default_source" if seq2seq else "residual.default_prompt",
                           choice.name)
    prompt = st.text_area(tr("attention.source" if seq2seq else "attention.prompt"), key=R_PROMPT, height=80)
    unknown_words_warning(tr, model, prompt)
    decoder = None  # a decoder model: None; an encoder-decoder: the translation so far (may be "")
    if seq2seq:
        state.set_text_default(R_DECODER, tr, None, choice.name)
        decoder = st.text_input(tr("residual.decoder_text"), key=R_DECODER, help=tr("residual.decoder_text_help"))
        unknown_words_warning(tr, model, decoder)
    lens_tab, decomp_tab, dla_tab = st.tabs([tr("residual.tab_lens"), tr("residual.tab_decomposition"),
                                             tr("residual.tab_dla")])
    with lens_tab:
        target = st.text_input(tr("residual.target"), key=R_TARGET, help=tr("residual.target_help"))
        try:
            view = state.residual_view(choice.key, "lens", prompt, target, decoder or "")
        except Exception as err:  # noqa: BLE001 - a message, never a traceback
            st.error(error_message(tr, err, choice.label))
        else:
            first = view.first_top1_last or tr("residual.never")
            st.info(tr("residual.first_top1", token=view.target, layer=first))
            fig = logit_lens_heatmap(
                view.top_tokens, view.target_probs, view.layer_labels, view.position_labels,
                title=tr("residual.lens_title", token=view.target), layer_label=tr("attention.layer"),
                position_label=tr("interventions.position"), value_label=tr("residual.target_prob", token=view.target),
            )
            st.plotly_chart(fig, width="stretch", key="lens_chart")
            export_buttons(fig, "logit_lens", tr)
            ranks = rank_lines(view.layer_labels, view.target_rank_last,
                               title=tr("residual.rank_title", token=view.target), layer_label=tr("attention.layer"),
                               rank_label=tr("residual.rank"))
            st.plotly_chart(ranks, width="stretch", key="rank_chart")
            export_buttons(ranks, "logit_lens_rank", tr)
            with st.expander(tr("code.title")):
                st.code(logit_lens_snippet(choice.name, prompt, view.target, decoder), language="python")
    with decomp_tab:
        decomposition_section(tr, choice, model, prompt, decoder)
    with dla_tab:
        state.set_text_default(R_ANSWER, tr, "residual.default_answer", choice.name)
        state.set_text_default(R_WRONG, tr, None, choice.name)
        a, w = st.columns(2)
        answer = a.text_input(tr("interventions.answer"), key=R_ANSWER, help=tr("interventions.token_help"))
        wrong = w.text_input(tr("residual.wrong_optional"), key=R_WRONG, help=tr("interventions.token_help"))
        try:
            view = state.residual_view(choice.key, "attribution", prompt, answer, wrong, decoder or "")
        except Exception as err:  # noqa: BLE001
            st.error(error_message(tr, err, choice.label))
            return
        st.caption(tr("residual.identity", total=view.total, constant=view.constant, logit=view.logit))
        fig = layer_bars(view.per_layer, view.layer_labels, title=tr("residual.dla_layers"),
                         value_label=tr("residual.attribution"))
        st.plotly_chart(fig, width="stretch", key="dla_layers")
        export_buttons(fig, "dla_layers", tr)
        for values, stem in ((view.heads, "dla_heads"), (view.cross, "dla_cross_heads")):
            if values is None:  # no cross-attention: a decoder-only model
                continue
            heads = sweep_heatmap(values, [str(l) for l in range(values.shape[0])],
                                  [str(h) for h in range(values.shape[1])], title=tr(f"residual.{stem}"),
                                  row_label=tr("attention.layer"), column_label=tr("attention.head"),
                                  value_label=tr("residual.attribution"))
            st.plotly_chart(heads, width="stretch", key=stem)
            export_buttons(heads, stem, tr)
        with st.expander(tr("code.title")):
            st.code(attribution_snippet(choice.name, prompt, answer, wrong, decoder), language="python")
        neuron_section(tr, choice, model, prompt, answer, wrong, view, decoder)


render()
