"""Session state, model loading and caching for the Streamlit app.

This is the only module that caches:

* the model, loaded once per process per model (``MODEL_POOL``, a ``ui.model_pool.ModelPool``
  holding at most ``max_models`` of them, least recently used unloaded first);
* the attention patterns of a prompt, computed once per (model, prompt)
  (``st.cache_data``), so changing layer or head never reruns the model.
  Only CPU numpy arrays are cached, never tensors on the model's device.

The model object is shared by every browser session, so no hook may stay on
it: forwards go through ``run_with_cache(..., names_filter=...)``, which adds
and removes its hooks itself; the model's own lock (``Transformer.hooks`` and
``forward``) keeps two sessions from running it, and its hooks, at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import streamlit as st

from models import ModelLoadError, list_models, load_pretrained
from ui.i18n import DEFAULT_LANG, LANGUAGES
from ui.byte_cache import ByteBudgetCache
from ui.model_pool import ModelPool
from ui.settings import Settings, activate, read_settings
from ui.patterns import AttentionPatterns, PromptError, compute_attention_patterns, detector_scores

# Widget keys (also used by the tests).
LANG_KEY = "lang"
MODEL_NAME_KEY = "model_name"
MODEL_FOLDER_KEY = "model_folder"
PROMPT_KEY = "prompt"
TARGET_KEY = "target"  # decoder text of an encoder-decoder (empty: the model's own output)
ATTN_KIND_KEY = "attention_kind"  # self | encoder | decoder | cross
ATTN_VIEW_KEY = "attention_view"  # head | layer | all | detectors
ATTN_LAYERS_KEY = "attention_layers"  # (first, last): the layers of the all-layers view of a deep model
DETECTOR_KEY = "detector"
DEVICE_KEY = "device"  # auto | cpu | cuda
DTYPE_KEY = "dtype"  # float32 | bfloat16 | float16
LAYER_KEY = "layer"
HEAD_KEY = "head"


# --------------------------------------------------------------------------- language


def current_lang() -> str:
    """The session's language. A link may choose it for a new session (``?lang=en``: a teacher
    hands out the English link); the sidebar's choice wins from then on."""
    if LANG_KEY not in st.session_state:
        asked = st.query_params.get("lang")
        if asked in LANGUAGES:
            st.session_state[LANG_KEY] = asked
    lang = st.session_state.get(LANG_KEY, DEFAULT_LANG)
    return lang if lang in LANGUAGES else DEFAULT_LANG


_DEFAULTS = "_widget_defaults"  # key -> the default this session last placed in that widget


def set_default(key: str, value: Any) -> None:
    """Give a keyed widget its default (instead of ``value=``, which would conflict with the key
    once the user has typed something). A value the user never changed (still the default placed
    before) follows a new default, e.g. another model's demo text or the other language; a value
    of the user's own is never replaced."""
    ss = st.session_state
    placed = ss.setdefault(_DEFAULTS, {})
    if key not in ss or (key in placed and ss[key] == placed[key]):
        ss[key] = value
    placed[key] = value


def set_text_default(key: str, tr: Callable[..., str], tr_key: Optional[str], model_name: Optional[str]) -> None:
    """:func:`set_default` with the model's own demo text for this box (``ui.prompts.DEMO_TEXTS``:
    words the model knows, a behaviour it shows), else the translated ``tr_key`` (None: empty)."""
    from ui.prompts import demo_text

    demo = demo_text(model_name, key)
    set_default(key, demo if demo is not None else (tr(tr_key) if tr_key else ""))


def keep_in_options(key: str, options: list) -> None:
    """Forget a widget's stored value that is no longer one of its options
    (e.g. a model with fewer layers was picked, or a shipped model vanished).
    Must run before the widget is drawn."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]


# --------------------------------------------------------------------------- model choice


DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ModelChoice:
    """What to load: a shipped model name, or an absolute checkpoint folder (or .gguf file), on a
    device and in a dtype. ``key`` identifies the loaded model in every cache: the source alone for
    the defaults (auto device, float32), else ``source|device|dtype``."""

    key: str  # the cache key (see above)
    label: str  # shown to the user
    is_folder: bool
    source: str = ""  # what load_pretrained reads (name or path); "" = key
    device: str = "auto"
    dtype: str = "float32"

    @property
    def name(self) -> str:
        return self.source or self.key


def _spec_key(source: str, device: str, dtype: str) -> str:
    return source if (device, dtype) == ("auto", "float32") else f"{source}|{device}|{dtype}"


def _parse_key(key: str) -> tuple[str, Optional[str], Optional[str]]:
    """(source, device, dtype) of a cache key (device/dtype None for the defaults)."""
    parts = key.rsplit("|", 2)
    if len(parts) == 3 and parts[1] in DEVICES and parts[2] in DTYPES:
        return parts[0], (None if parts[1] == "auto" else parts[1]), parts[2]
    return key, None, None


class ModelChoiceError(Exception):
    """The sidebar selection cannot be loaded; ``code`` names the UI message."""

    def __init__(self, code: str, **details: object):
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


def resolve_model_choice(name: str | None, folder: str | None, device: str = "auto",
                         dtype: str = "float32", allowed_dirs=None) -> ModelChoice:
    """The folder path (or a .gguf file) wins when filled in; otherwise the shipped model name.
    With ``allowed_dirs`` (the server's ``model_dirs``), a path outside them is refused before
    anything about it is looked at (so nobody can probe which files exist elsewhere)."""
    folder = (folder or "").strip()
    if folder:
        if allowed_dirs is not None:
            from models.loading.safety import ModelPathRefused, check_model_path

            try:
                check_model_path(folder, allowed_dirs)
            except ModelPathRefused:
                shown = ", ".join(str(d) for d in allowed_dirs) or "—"
                raise ModelChoiceError("path_refused", path=folder, dirs=shown) from None
        path = Path(folder).expanduser()
        if not path.exists():
            raise ModelChoiceError("folder_missing", path=folder)
        if not path.is_dir() and path.suffix.lower() != ".gguf":
            raise ModelChoiceError("not_a_folder", path=folder)
        resolved = str(path.resolve())
        return ModelChoice(_spec_key(resolved, device, dtype), resolved, True, resolved, device, dtype)
    if name:
        return ModelChoice(_spec_key(name, device, dtype), name, False, name, device, dtype)
    raise ModelChoiceError("no_model")


@st.cache_data(ttl=30, show_spinner=False)
def shipped_models() -> dict[str, tuple[str, str]]:
    """name -> (family, one-line architecture summary) of every listed model."""
    return {info.name: (info.family, info.summary) for info in list_models()}


# --------------------------------------------------------------------------- loading


@dataclass
class LoadedModel:
    model: Any


def settings() -> Settings:
    """The server's settings (environment variables over ``.streamlit/secrets.toml``)."""
    try:
        secrets = dict(st.secrets) if st.secrets else {}
    except Exception:  # noqa: BLE001 - no secrets file, or a malformed one: environment only
        secrets = {}
    return activate(read_settings(secrets=secrets))


# The models of this process, shared by every session (see ui/model_pool.py): loaded once,
# at most ``max_models`` at once, least recently used unloaded first.
MODEL_POOL = ModelPool(capacity=read_settings().max_models)


def _load_model(key: str, config: Optional[Settings] = None) -> LoadedModel:
    """The model of a ModelChoice key, from the shared pool (loading it if needed). Pass
    ``config`` when calling from a worker thread (settings read secrets in the script thread)."""
    config = config or settings()
    MODEL_POOL.resize(config.max_models)
    source, device, dtype = _parse_key(key)

    def load() -> LoadedModel:
        kwargs = {} if config.model_dirs is None else {"allowed_dirs": list(config.model_dirs)}
        return LoadedModel(model=load_pretrained(source, device=device, dtype=dtype, **kwargs))

    return MODEL_POOL.get(key, load)


_load_model.clear = MODEL_POOL.clear  # type: ignore[attr-defined]  # like a Streamlit cache


SLOW_LOAD_AFTER_S = 1.0  # a load still running after this shows a progress bar
EXPECTED_SLOW_LOAD_S = 25.0  # the bar's time scale: a first GGUF conversion on a laptop


def _load_with_progress(key: str, tr: Callable[..., str], progress: bool) -> LoadedModel:
    """``_load_model(key)`` in a worker thread while this script thread draws a progress bar (the
    bar approaches but never reaches the end until the load is done). Streamlit may stop this
    thread (the user clicked elsewhere): the load carries on and the pool keeps its result."""
    config = settings()
    if not progress or key in MODEL_POOL.keys():
        return _load_model(key, config)
    import concurrent.futures
    import math
    import time

    worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-load")
    future = worker.submit(_load_model, key, config)
    worker.shutdown(wait=False)
    start, bar = time.monotonic(), None
    try:
        while True:
            try:
                return future.result(timeout=0.25)
            except concurrent.futures.TimeoutError:
                elapsed = time.monotonic() - start
                if elapsed < SLOW_LOAD_AFTER_S:
                    continue
                fraction = min(0.95, 1 - math.exp(-elapsed / EXPECTED_SLOW_LOAD_S))
                text = tr("loading.progress", seconds=int(elapsed))
                if bar is None:
                    bar = st.progress(fraction, text=text)
                else:
                    bar.progress(fraction, text=text)
    finally:
        if bar is not None:
            bar.empty()


@dataclass
class Outcome:
    """A value or a translated error message, never both."""

    value: Any = None
    error: str | None = None


def load_selected_model(tr: Callable[..., str], progress: bool = True) -> Outcome:
    """Load the model picked in the sidebar; errors come back as messages. A load that takes
    longer than a moment (a first GGUF conversion takes ~20 s) shows a progress bar with the
    elapsed time (``progress``)."""
    try:
        choice = resolve_model_choice(
            st.session_state.get(MODEL_NAME_KEY), st.session_state.get(MODEL_FOLDER_KEY),
            st.session_state.get(DEVICE_KEY) or "auto", st.session_state.get(DTYPE_KEY) or "float32",
            allowed_dirs=settings().model_dirs,
        )
    except ModelChoiceError as err:
        return Outcome(error=tr(f"error.{err.code}", **err.details))
    try:
        loaded = _load_with_progress(choice.key, tr, progress)
    except ModelLoadError as err:
        return Outcome(error=tr("error.model_load", name=choice.label, detail=_sentence(err)))
    except Exception as err:  # noqa: BLE001 - any load failure is shown, never raised
        detail = _sentence(f"{type(err).__name__}: {err}")
        return Outcome(error=tr("error.model_load", name=choice.label, detail=detail))
    return Outcome(value=(choice, loaded.model))


# --------------------------------------------------------------------------- patterns


# Attention patterns of every session, bounded by their size (ui/byte_cache.py): a long text on a
# deep model is hundreds of MiB, too much for st.cache_data's count-only bound.
PATTERN_CACHE = ByteBudgetCache(read_settings().pattern_cache_mb * 2**20, size=lambda p: p.nbytes)


def _cached_patterns(model_key: str, prompt: str, target: str | None) -> AttentionPatterns:
    PATTERN_CACHE.resize(settings().pattern_cache_mb * 2**20)
    return PATTERN_CACHE.get((model_key, prompt, target),
                             lambda: compute_attention_patterns(_load_model(model_key).model, prompt, target=target))


def attention_patterns(choice: ModelChoice, prompt: str, tr: Callable[..., str], target: str | None = None) -> Outcome:
    """Attention patterns of ``prompt`` (and, for an encoder-decoder, of the decoder's
    ``target``; None or blank: the model's own output), cached per model, prompt and target."""
    target = (target or "").strip() or None
    try:
        return Outcome(value=_cached_patterns(choice.key, prompt, target))
    except PromptError as err:
        return Outcome(error=tr(f"error.{err.code}", name=choice.label, **err.details))
    except Exception as err:  # noqa: BLE001 - shown to the user, never raised
        return Outcome(error=tr("error.forward", detail=_sentence(f"{type(err).__name__}: {err}")))


def _sentence(err: object) -> str:
    text = str(err).strip() or type(err).__name__
    return text if text.endswith((".", "!", "?")) else text + "."


@st.cache_data(max_entries=16, show_spinner=False)
def _cached_detectors(model_key: str, prompt: str) -> dict:
    return detector_scores(_load_model(model_key).model, prompt)


def head_detectors(choice: ModelChoice, prompt: str, tr: Callable[..., str]) -> Outcome:
    """Head-detector scores of ``prompt`` (cached per model and prompt)."""
    try:
        return Outcome(value=_cached_detectors(choice.key, prompt))
    except PromptError as err:
        return Outcome(error=tr(f"error.{err.code}", name=choice.label, **err.details))
    except Exception as err:  # noqa: BLE001 - shown to the user, never raised
        return Outcome(error=tr("error.forward", detail=_sentence(f"{type(err).__name__}: {err}")))


# --------------------------------------------------------------------------- weight-only circuits


@st.cache_data(max_entries=8, show_spinner=False)
def cached_copying(model_key: str, kind: str = "self"):
    """Copying scores of every head (weights only: one computation per model and kind)."""
    from ui.circuits_view import copying_view

    return copying_view(_load_model(model_key).model, kind)


@st.cache_data(max_entries=12, show_spinner=False)
def cached_composition(model_key: str, mode: str, kind: str = "self"):
    """Q/K/V composition scores with their random baseline (weights only)."""
    from ui.circuits_view import composition_view

    return composition_view(_load_model(model_key).model, mode, kind)


# --------------------------------------------------------------------------- residual stream


@st.cache_data(max_entries=32, show_spinner=False)
def residual_view(model_key: str, view: str, *args):
    """One view of the Residual-stream page (``ui.residual_view``: ``lens``, ``attribution``,
    ``neurons`` or ``decomposition``) of the normal forward pass, cached across sessions by the
    model key and every input, so that changing another widget redraws without a forward. (No
    intervention runs here: the same inputs give the same numbers to everyone.)"""
    from ui import residual_view as views

    functions = {"lens": views.lens_view, "attribution": views.attribution_view,
                 "neurons": views.neuron_attribution_view, "decomposition": views.decomposition_view}
    return functions[view](_load_model(model_key).model, *args)


def clear_result_caches() -> None:
    """Empty every cache of computed results shared by the sessions (not the model pool)."""
    st.cache_data.clear()
    PATTERN_CACHE.clear()
