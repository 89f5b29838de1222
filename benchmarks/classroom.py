"""Classroom load test: N students at once on one server process, each ablating different heads.

    python benchmarks/classroom.py --sessions 30 --browsers 3 [--cold 3] [--json report.json]

**Part A: N Streamlit sessions in threads, one process.** Each simulated student is a
``streamlit.testing.v1.AppTest`` of the real ``app.py`` driven from its own thread, all N at the
same time, in this one process: they share what a server's sessions share (``ui.state.MODEL_POOL``,
``st.cache_data`` / ``st.cache_resource``, the model object, the Streamlit runtime). Every session
opens the *Ablate & patch* page on the shipped ``induction-2l`` in its own language, types its
own prompt, picks its own ablation kind (zero / mean / resample, with its own reference text)
and its own heads (and, for some, a whole attention layer). All N are held open at once
(a barrier), each reads what its page shows, and after everyone has read, each reruns its page
once more (nothing changed: it must show the same). Then every session is run again **alone**
(warm: model already loaded; and, for ``--cold`` of them, cold: caches and model pool emptied
first), and compared with the page's own pure function (``ui.interventions.ablation_predictions``)
on a private copy of the model, without Streamlit. Comparisons are exact: the chart's
probabilities as float64 (full precision of the figure JSON), its token labels, the metrics'
texts, the caption naming what was ablated, the code snippet, every message.

AppTest keeps a few process-wide things per *run* (it installs a mock ``Runtime`` and clears it
afterwards, patches ``config.get_option``, resets ``PagesManager.uses_pages_directory``, gives every
session the id ``"test session id"``), so AppTest runs in threads would break each other (the
first to finish removes the runtime the others use: "Runtime hasn't been created!"). A real server
has one runtime for all its sessions, so :func:`shared_server` makes AppTest do what the server
does: one runtime installed for the whole test, config patched once, the pages flag set once per
process, one script cache (AppTest compiles every page on every run, in every thread, and
Python 3.11's ``ast`` then fails now and then: "SystemError: AST constructor recursion depth
mismatch", CPython gh-106905; a server compiles each script once, under the cache's lock), one
session id per session. Nothing of the app is changed.

Also checked: the model was loaded exactly once during the concurrent phase (``ui.state``'s
``load_pretrained`` wrapped with a counter, pool and caches emptied first), no hook is left on
the shared model (every module's forward/backward hooks, every HookPoint's handles, PyTorch's
global hooks) and its lock is free. A2 (cheap): the same ablations computed by N threads at the
same moment on the shared model, compared bit for bit with each run alone.

**Part B (``--browsers K``, default 3)**: ``streamlit run app.py`` on 127.0.0.1 and K Chromium
pages (Debian's /usr/bin/chromium, never downloaded; one browser, K contexts, driven together
with asyncio), each doing its own ablation on the same page at the same time. Each page must show
no error/traceback and the numbers of the same session run alone (the Plotly figure's data read
from the page at full precision, the metrics, the caption). The server's peak RSS is read from
/proc (VmHWM).

Prints sessions held, errors, mismatches, model loads, hooks left, latency p50/p95 of a
session's actions, peak RSS and wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

APP = ROOT / "app.py"
PAGE = "pages/interventions.py"
MODEL = "induction-2l"
# Words of induction-2l's vocabulary (models/zoo/induction-2l/tokenizer.json): no <unk>, no warning.
WORDS = ("gato azul tren queso perro rojo mesa silla casa sol mar libro flor nube verde lago cielo "
         "luna rio campo arbol piedra fuego agua viento blanco negro leon tigre oso lobo zorro conejo "
         "pato caballo vaca puerta ventana papel escuela").split()
HEADS = [f"L{layer}H{head}" for layer in range(2) for head in range(4)]
KINDS = ("zero", "mean", "resample")
APPTEST_TIMEOUT_S = 600  # per script run; 30 threads on 2 cores are slow, never flaky


# --------------------------------------------------------------------------- one student's session


@dataclass(frozen=True)
class Spec:
    """One student's session, deterministic from its index: a prompt with a repeat (so the
    induction heads matter), a set of heads (distinct for every index below 255), sometimes a
    whole attention layer, an ablation kind with its reference text, and a language."""

    index: int
    lang: str
    prompt: str
    heads: tuple[str, ...]
    layers: tuple[str, ...]
    kind: str
    reference: str


def spec(i: int, lang: Optional[str] = None) -> Spec:
    n = 3 + i % 5
    words = [WORDS[(i * 7 + 3 * k) % len(WORDS)] for k in range(n)]
    prompt = " ".join(words + words[:-1])  # A B C ... A B: the next word should be C
    mask = (i * 97 + 13) % 255 + 1  # a non-empty subset of the 8 heads, distinct for every i < 255
    heads = tuple(h for b, h in enumerate(HEADS) if mask >> b & 1)
    layers = ("ATTN0",) if i % 7 == 6 else ()
    kind = KINDS[i % 3]
    # resample needs as many tokens as the prompt; mean takes any length (here a shorter one)
    m = 2 * n - 1 if kind == "resample" else n + 1
    reference = " ".join(WORDS[(i * 5 + 11 + 2 * k) % len(WORDS)] for k in range(m)) if kind != "zero" else ""
    return Spec(i, lang or ("es" if i % 2 == 0 else "en"), prompt, heads, layers, kind, reference)


@dataclass
class SessionResult:
    index: int
    view: dict = field(default_factory=dict)  # what the page showed once every session was set
    view_after: dict = field(default_factory=dict)  # after a rerun, once everyone else had read theirs
    error: str = ""
    latencies: list = field(default_factory=list)  # seconds per script run (one student's action)


def plotly_array(value) -> list[float]:
    """A figure-JSON number array as float64 values: a plain list, or Plotly's base64 typed array."""
    import base64

    import numpy as np

    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"])).astype(float).tolist()
    return [float(v) for v in value]


def page_view(at) -> dict:
    """Everything the Ablate tab shows that depends on the session: the chart's traces (token
    labels, probabilities as float64 from the figure JSON), metrics, captions, snippet, messages."""
    charts = []
    for element in at.get("plotly_chart"):
        fig = json.loads(element.proto.spec)
        traces = [(t.get("name"), list(t.get("y", [])), plotly_array(t["x"]))
                  for t in fig.get("data", [])]
        charts.append({"title": fig.get("layout", {}).get("title", {}).get("text"), "traces": traces})
    return {
        "titles": [e.value for e in at.title],
        "charts": charts,
        "metrics": [(m.label, m.value, m.proto.delta) for m in at.metric],
        "captions": [e.value for e in at.caption],
        "code": [e.value for e in at.code],
        "errors": [e.value for e in at.error],
        "warnings": [e.value for e in at.warning],
        "infos": [e.value for e in at.info],
        "exceptions": [e.value for e in at.exception],
        "widgets": {"prompt": at.text_area(key="abl_prompt").value,
                    "heads": list(at.multiselect(key="abl_heads").value),
                    "layers": list(at.multiselect(key="abl_layers").value),
                    "kind": at.radio(key="abl_kind").value},
    }


class _Gate:
    """Where concurrent sessions wait for each other (None alone). A session that failed still
    takes part, so the others are never left waiting."""

    def __init__(self, n: int, timeout: float):
        self.barrier = threading.Barrier(n, timeout=timeout) if n > 1 else None

    def wait(self) -> None:
        if self.barrier is not None:
            self.barrier.wait()


class _Counter:
    def __init__(self):
        self.now = self.peak = 0
        self._lock = threading.Lock()

    def __enter__(self):
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc):
        with self._lock:
            self.now -= 1


def run_session(s: Spec, gate: Optional[_Gate] = None, held: Optional[_Counter] = None,
                in_flight: Optional[_Counter] = None) -> SessionResult:
    """One student: open the app, go to the Ablate & patch page, set the prompt, the kind (and
    its reference), the layers, the heads; read the page; (everyone waits); rerun and read again."""
    from streamlit.testing.v1 import AppTest

    from ui import state

    gate = gate or _Gate(1, 0)
    in_flight = in_flight or _Counter()
    out = SessionResult(s.index)
    _SESSION.id = f"classroom-session-{s.index}"
    at = AppTest.from_file(str(APP), default_timeout=APPTEST_TIMEOUT_S)
    at.session_state[state.LANG_KEY] = s.lang
    at.session_state[state.MODEL_NAME_KEY] = MODEL

    def act(step) -> None:
        t0 = time.perf_counter()
        with in_flight:
            step()
        out.latencies.append(time.perf_counter() - t0)
        if at.exception:
            raise RuntimeError(f"exception in the page: {[e.value for e in at.exception]}")

    def steps() -> None:
        act(lambda: at.run())
        act(lambda: at.switch_page(PAGE).run())
        act(lambda: at.text_area(key="abl_prompt").input(s.prompt).run())
        if s.kind != "zero":  # before any head is picked: no reference needed yet, never an error
            act(lambda: at.radio(key="abl_kind").set_value(s.kind).run())
            act(lambda: at.text_input(key="abl_reference").input(s.reference).run())
        if s.layers:
            act(lambda: at.multiselect(key="abl_layers").set_value(list(s.layers)).run())
        select = at.multiselect(key="abl_heads")
        for h in s.heads:
            select = select.select(h)
        act(lambda: select.run())

    def attempt(fn) -> None:
        if out.error:
            return
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - counted and reported
            out.error = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=4)}"

    try:
        with held or contextlib.nullcontext():
            attempt(steps)
            gate.wait()  # every session is open and set: all held at once
            attempt(lambda: out.view.update(page_view(at)))
            gate.wait()  # everyone has read
            attempt(lambda: act(lambda: at.run()))  # a rerun, nothing changed: the same page
            attempt(lambda: out.view_after.update(page_view(at)))
    except threading.BrokenBarrierError as err:
        out.error = out.error or f"BrokenBarrierError: {err}"
    if not out.error and (out.view["errors"] or out.view["exceptions"]):
        out.error = "; ".join(out.view["errors"] + out.view["exceptions"])
    return out


# --------------------------------------------------------------------------- AppTest as one server

_SESSION = threading.local()  # the id of the session driven by this thread


@contextlib.contextmanager
def shared_server():
    """Let AppTest sessions run in threads of this process as a server's sessions do: one
    Streamlit runtime for all (AppTest installs a mock one per run and removes it after, under
    the feet of the other threads), the config patched once (AppTest patches ``config.get_option``
    per run, and nested patches from threads do not unwind), the legacy-pages flag of
    ``PagesManager`` set once per process as by a server start (AppTest resets it every run), one
    script cache for all sessions (AppTest compiles every page on every run, and Python 3.11's
    ``ast`` is not safe from threads at once: "AST constructor recursion depth mismatch", CPython
    gh-106905), and one session id per session (AppTest gives all the same). The app is not
    touched."""
    from unittest.mock import MagicMock

    import streamlit.testing.v1.app_test as app_test
    from streamlit.components.v2.component_manager import BidiComponentManager
    from streamlit.runtime import Runtime
    from streamlit.runtime.caching.storage.dummy_cache_storage import MemoryCacheStorageManager
    from streamlit.runtime.dataframe_source_manager import DataframeSourceManager
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1.local_script_runner import LocalScriptRunner
    from streamlit.testing.v1.util import patch_config_options

    class RuntimeName(Runtime):  # AppTest's per-run writes of ``Runtime._instance`` land here
        pass

    class PagesManagerName(PagesManager):  # AppTest's per-run reset of the flag lands here
        pass

    script_cache = ScriptCache()  # the server's: each script compiled once, under its lock

    class SessionScriptRunner(LocalScriptRunner):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._session_id = getattr(_SESSION, "id", self._session_id)
            self._script_cache = script_cache

    runtime = MagicMock(spec=Runtime)
    runtime.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
    runtime.dataframe_source_mgr = DataframeSourceManager()
    runtime.cache_storage_manager = MemoryCacheStorageManager()
    bidi = BidiComponentManager()
    bidi.discover_and_register_components(start_file_watching=False)
    runtime.bidi_component_registry = bidi

    saved = {name: getattr(app_test, name) for name in ("Runtime", "PagesManager", "LocalScriptRunner",
                                                         "patch_config_options", "ScriptCache")}
    saved_instance, saved_flag = Runtime._instance, PagesManager.uses_pages_directory
    app_test.Runtime, app_test.PagesManager = RuntimeName, PagesManagerName
    app_test.LocalScriptRunner = SessionScriptRunner
    app_test.patch_config_options = lambda _overrides: contextlib.nullcontext()
    app_test.ScriptCache = lambda: script_cache
    Runtime._instance = runtime
    PagesManager.uses_pages_directory = None  # a fresh server: the first session finds pages/ there
    try:
        with patch_config_options({"global.appTest": True}):
            yield runtime
    finally:
        for name, value in saved.items():
            setattr(app_test, name, value)
        Runtime._instance, PagesManager.uses_pages_directory = saved_instance, saved_flag


# --------------------------------------------------------------------------- checks


def hooks_left(model) -> list[str]:
    """Names of modules of ``model`` with a hook still attached, plus PyTorch's global hooks."""
    import torch.nn.modules.module as module_mod

    left = []
    for name, m in model.named_modules():
        if (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                or getattr(m, "_backward_pre_hooks", None) or getattr(m, "fwd_hooks", None)
                or getattr(m, "bwd_hooks", None)):
            left.append(name or "<root>")
    for glob in ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks"):
        if getattr(module_mod, glob, None):
            left.append(f"torch {glob}")
    return left


def lock_free(model) -> bool:
    lock = getattr(model, "_lock", None)
    if lock is None:
        return True
    if lock.acquire(blocking=False):
        lock.release()
        return True
    return False


def pure_view(model, s: Spec) -> dict:
    """What the page must show for ``s``, from ``ui.interventions.ablation_predictions`` and the
    page's own formatting, without Streamlit: chart traces (labels, probabilities) and metric texts."""
    from ui.figures import display_token
    from ui.interventions import ablation_predictions

    out = ablation_predictions(model, s.prompt, list(s.heads), s.kind, s.reference, layers=list(s.layers))
    series = [[f"'{display_token(t)}'" for t in run.tokens] for run in (out.clean, out.ablated)]
    probs = [[float(p) for p in run.probs] for run in (out.clean, out.ablated)]
    return {"labels": series, "probs": probs,
            "metrics": [f"{out.clean_loss:.3f}", f"{out.ablated_loss:.3f}", f"{out.kl:.3f}"],
            "delta": f"{out.ablated_loss - out.clean_loss:+.3f}", "ablated": list(out.ablated_names)}


def view_matches_pure(view: dict, expected: dict) -> list[str]:
    """Differences between what a page showed and the pure function's numbers (empty: none)."""
    diffs = []
    if len(view["charts"]) != 1 or len(view["charts"][0]["traces"]) != 2:
        return [f"expected one chart with 2 traces, got {view['charts']!r:.200}"]
    for (_, labels, probs), want_labels, want_probs in zip(view["charts"][0]["traces"], expected["labels"],
                                                           expected["probs"]):
        if labels != want_labels:
            diffs.append(f"labels {labels} != {want_labels}")
        if probs != want_probs:
            diffs.append(f"probs {probs} != {want_probs}")
    values = [m[1] for m in view["metrics"]]
    if values != expected["metrics"]:
        diffs.append(f"metrics {values} != {expected['metrics']}")
    if view["metrics"] and view["metrics"][1][2] != expected["delta"]:
        diffs.append(f"delta {view['metrics'][1][2]} != {expected['delta']}")
    named = ", ".join(expected["ablated"])
    if not any(named in c for c in view["captions"]):
        diffs.append(f"no caption names {named!r}: {view['captions']}")
    return diffs


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1])."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(-(-q * len(ordered) // 1)) - 1))]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --------------------------------------------------------------------------- part A


def _clear_shared_caches() -> None:
    import streamlit as st

    from ui import state

    state.MODEL_POOL.clear()
    state.clear_result_caches()
    st.cache_resource.clear()


def part_a(n: int, cold: int = 1, threads_check: bool = True) -> dict:
    """N sessions at once (threads, one process), then each alone (warm; ``cold`` of them cold),
    then the pure function; see the module docstring."""
    import models
    from ui import state

    specs = [spec(i) for i in range(n)]
    loads: list[str] = []
    real_load = state.load_pretrained

    def counting_load(source, *args, **kwargs):
        loads.append(source)
        return real_load(source, *args, **kwargs)

    report: dict[str, Any] = {"sessions": n}
    state.load_pretrained = counting_load
    try:
        with shared_server():
            _clear_shared_caches()
            gate, held, in_flight = _Gate(n, APPTEST_TIMEOUT_S), _Counter(), _Counter()
            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=n, thread_name_prefix="student") as pool:
                together = list(pool.map(lambda s: run_session(s, gate, held, in_flight), specs))
            report["wall_s"] = time.perf_counter() - t0
            report["peak_rss_mib"] = peak_rss_mib()
            report["model_loads"] = len(loads)
            report["pool_loads"] = dict(state.MODEL_POOL.loads)
            shared = state.MODEL_POOL.get(MODEL, _no_load).model
            report["hooks_left"] = hooks_left(shared)
            report["lock_free"] = lock_free(shared)
            report["held"], report["runs_in_flight_peak"] = held.peak, in_flight.peak

            # alone, warm (the model stays loaded), one after the other
            t1 = time.perf_counter()
            alone = [run_session(s) for s in specs]
            report["alone_wall_s"] = time.perf_counter() - t1
            report["model_loads_after_alone"] = len(loads)
            # alone, cold: caches and pool emptied before each (each loads the model again)
            cold_runs = []
            for s in specs[:cold]:
                _clear_shared_caches()
                cold_runs.append(run_session(s))
            report["cold_loads"] = len(loads) - report["model_loads_after_alone"]
            report["hooks_left"] += [f"after alone: {h}" for h in hooks_left(state.MODEL_POOL.get(MODEL, _no_load).model)]
            if threads_check:
                report.update(part_a2(state.MODEL_POOL.get(MODEL, _no_load).model, specs))
    finally:
        state.load_pretrained = real_load

    private = models.load_pretrained(MODEL)  # not the pool's: no Streamlit, nobody else's
    pure = [pure_view(private, s) for s in specs]
    errors = [r for r in together + alone + cold_runs if r.error]
    mismatch: dict[int, list[str]] = {}

    def differ(i: int, what: str) -> None:
        mismatch.setdefault(i, []).append(what)

    for s, r, a in zip(specs, together, alone):
        if r.error or a.error:
            continue
        if r.view != a.view:
            differ(s.index, "concurrent != alone")
        if r.view_after != r.view:
            differ(s.index, "rerun after the others != first read")
        for d in view_matches_pure(r.view, pure[s.index]):
            differ(s.index, f"page != pure function: {d}")
    for c in cold_runs:
        if not c.error and not together[c.index].error and c.view != together[c.index].view:
            differ(c.index, "concurrent != alone cold")
    latencies = [x for r in together for x in r.latencies]
    report.update({
        "errors": len(errors),
        "error_samples": [f"session {r.index}: {r.error[:400]}" for r in errors[:3]],
        "mismatches": len(mismatch),
        "mismatch_samples": {i: m[:3] for i, m in list(mismatch.items())[:5]},
        "cold_sessions": len(cold_runs),
        "distinct_views": len({json.dumps(r.view, sort_keys=True) for r in together}),
        "actions": len(latencies),
        "p50_s": percentile(latencies, 0.50),
        "p95_s": percentile(latencies, 0.95),
        "alone_p50_s": percentile([x for r in alone for x in r.latencies], 0.50),
        "peak_rss_mib": max(report["peak_rss_mib"], peak_rss_mib()),
    })
    return report


def _no_load():  # never called: the model must be in the pool
    raise AssertionError(f"{MODEL} is not in the model pool any more: it would be loaded again")


def part_a2(model, specs: list[Spec]) -> dict:
    """The same ablations by N threads released at the same moment on the shared model, each
    compared bit for bit with the same ablation computed alone."""
    from ui.interventions import ablation_predictions

    def compute(s: Spec):
        try:
            out = ablation_predictions(model, s.prompt, list(s.heads), s.kind, s.reference, layers=list(s.layers))
        except Exception as err:  # noqa: BLE001 - counted and reported
            return f"error: {type(err).__name__}: {err}"
        return out.clean, out.ablated, out.clean_loss, out.ablated_loss, out.kl, out.ablated_names

    start = threading.Barrier(len(specs))

    def together(s: Spec):
        start.wait()
        t = time.perf_counter()
        return compute(s), time.perf_counter() - t

    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        results = list(pool.map(together, specs))
    alone = [compute(s) for s in specs]
    times = [t for _, t in results]
    failed = [r for r, _ in results if isinstance(r, str)] + [a for a in alone if isinstance(a, str)]
    return {"a2_errors": len(failed), "a2_error_samples": failed[:3],
            "a2_mismatches": sum(r != a for (r, _), a in zip(results, alone) if not isinstance(r, str)),
            "a2_p50_s": percentile(times, 0.5), "a2_p95_s": percentile(times, 0.95),
            "a2_hooks_left": hooks_left(model)}


# --------------------------------------------------------------------------- part B


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
BROWSER_TIMEOUT_MS = 120_000

_FIGURES_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => ({
    title: (p.layout && p.layout.title && p.layout.title.text) || null,
    traces: (p.data || []).map(t => [t.name, Array.from(t.y || []), Array.from(t.x || []).map(Number)])}))"""


class _DriverError(Exception):
    """The browser driver did not manage to make its clicks (not an error of the app)."""


async def _settled_figures(page, tries: int = 60) -> list:
    """The page's Plotly figures once two reads 250 ms apart agree and the first has both runs
    (Plotly redraws a chart now and then, e.g. when the page's width changes)."""
    last = None
    for _ in range(tries):
        figs = await page.evaluate(_FIGURES_JS)
        if figs and len(figs[0]["traces"]) == 2 and figs == last:
            return figs
        last = figs
        await page.wait_for_timeout(250)
    return last


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _vm_hwm_mib(pid: int) -> float:
    """Peak resident memory of a process (Linux /proc VmHWM), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def _browser_session(context, url: str, s: Spec, tr, out: dict) -> None:
    page = await context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    lat = out["latencies"]

    async def idle() -> None:
        await page.wait_for_timeout(300)
        await page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=BROWSER_TIMEOUT_MS)

    async def act(coro_fn) -> None:
        t0 = time.perf_counter()
        await coro_fn()
        await idle()
        lat.append(time.perf_counter() - t0)

    async def read() -> dict:
        # Settled: the page names every item this student ablated and draws both runs (a page that
        # never gets there is read as it is after a minute, and then differs from the solo run).
        named = ", ".join(list(s.heads) + list(s.layers))
        captions = page.locator('[data-testid="stCaptionContainer"]')
        for _ in range(240):
            figs = await page.evaluate(_FIGURES_JS)
            if (figs and len(figs[0]["traces"]) == 2
                    and any(text.endswith(named) for text in await captions.all_inner_texts())):
                break
            await page.wait_for_timeout(250)
        await idle()
        figs = await _settled_figures(page)
        body = await page.locator("body").inner_text()
        return {
            "charts": figs,
            "metrics": await page.locator('[data-testid="stMetricValue"]').all_inner_texts(),
            "captions": await page.locator('[data-testid="stCaptionContainer"]').all_inner_texts(),
            "errors": await page.locator('[data-testid="stAlertContentError"]').all_inner_texts(),
            "exceptions": await page.locator('[data-testid="stException"]').all_inner_texts(),
            "traceback": "Traceback" in body,
        }

    try:
        await act(lambda: page.goto(f"{url}/interventions"))
        await page.get_by_role("heading", name=tr("interventions.title")).wait_for()
        prompt = page.get_by_label(tr("attention.prompt"), exact=True)

        async def type_prompt():
            await prompt.fill(s.prompt)
            await prompt.press("Control+Enter")

        await act(type_prompt)
        if s.kind != "zero":
            await act(lambda: page.get_by_text(tr(f"interventions.kind.{s.kind}"), exact=True).click())
            ref = page.get_by_label(tr("interventions.reference"), exact=True)

            async def type_reference():
                await ref.fill(s.reference)
                await ref.press("Enter")

            await act(type_reference)
        for box, items in ((1, s.layers), (0, s.heads)):
            select = page.locator('[data-testid="stMultiSelect"]').nth(box)
            for n, item in enumerate(items):
                async def pick(select=select, item=item):  # filter by the name, click that option
                    await select.locator("input").click()
                    await select.locator("input").fill(item)
                    await page.get_by_role("option", name=item, exact=True).click()
                    await page.keyboard.press("Escape")

                await act(pick)
                # what this browser has picked so far, as its multiselect shows it: a wrong chip here
                # is the driver's mistake (counted apart), not something the server sent
                want, chips = list(items[: n + 1]), []
                for _ in range(120):
                    chips = await select.locator('[data-baseweb="tag"]').all_inner_texts()
                    if [c.strip() for c in chips] == want:
                        break
                    await page.wait_for_timeout(250)
                else:
                    raise _DriverError(f"picked {want}, the multiselect shows {chips}")
        out["view"] = await read()
    except _DriverError as err:
        out["driver_error"] = str(err)
    except Exception as err:  # noqa: BLE001 - counted and reported
        out["error"] = f"{type(err).__name__}: {err}"[:500]
        with contextlib.suppress(Exception):
            await page.screenshot(path=f"/tmp/classroom_browser_{s.index}.png", full_page=True)


def _browser_expected(view: dict) -> dict:
    chart = view["charts"][0] if view["charts"] else {"traces": []}
    return {"traces": [[name, labels, probs] for name, labels, probs in chart["traces"]],
            "metrics": [m[1] for m in view["metrics"]]}


def part_b(k: int, lang: str = "es") -> dict:
    """K Chromium pages on one ``streamlit run`` server, each with its own ablation, at once."""
    import asyncio
    import subprocess
    import tempfile
    import urllib.request

    from playwright.async_api import async_playwright

    from ui.i18n import translator

    tr = translator(lang)  # the app's default language: what a fresh browser sees
    specs = [spec(i, lang=lang) for i in range(k)]
    # the solo expectation: each browser's session run alone in AppTest, in this process
    with shared_server():
        solo = [run_session(s) for s in specs]
    port = _free_port()
    log_path = Path(tempfile.mkdtemp(prefix="classroom_server_")) / "server.log"
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--server.fileWatcherType", "none"]
    with open(log_path, "wb") as log:
        server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    outs = [{"index": s.index, "latencies": [], "error": "", "driver_error": "", "view": None} for s in specs]
    report: dict[str, Any] = {"browsers": k}
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"streamlit exited with {server.returncode}: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start: {log_path.read_text()[-2000:]}") from None
                time.sleep(0.5)

        async def drive():
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    contexts = [await browser.new_context(viewport={"width": 1300, "height": 1000}) for _ in specs]
                    await asyncio.gather(*(_browser_session(c, url, s, tr, o) for c, s, o in zip(contexts, specs, outs)))
                    # everyone done: every page still shows its own numbers
                    for c, o in zip(contexts, outs):
                        if c.pages and not o["error"]:
                            o["view_after"] = {"charts": await _settled_figures(c.pages[0])}
                finally:
                    await browser.close()

        t0 = time.perf_counter()
        asyncio.run(drive())
        report["wall_s"] = time.perf_counter() - t0
        report["server_peak_rss_mib"] = _vm_hwm_mib(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
    log_text = log_path.read_text(errors="replace")
    errors, mismatches = [], []
    driver_errors = [f"browser {o['index']}: {o['driver_error']}" for o in outs if o["driver_error"]]
    for s, o, alone in zip(specs, outs, solo):
        v = o["view"]
        if o["driver_error"]:
            continue
        if o["error"] or alone.error:
            errors.append(f"browser {s.index}: {o['error'] or 'solo: ' + alone.error[:300]}")
            continue
        if v["traceback"] or v["errors"] or v["exceptions"]:
            errors.append(f"browser {s.index}: {v['errors'] + v['exceptions']} traceback={v['traceback']}")
            continue
        want = _browser_expected(alone.view)
        got = {"traces": v["charts"][0]["traces"] if v["charts"] else [], "metrics": v["metrics"]}
        named = ", ".join(list(s.heads) + list(s.layers))
        diffs = [] if got == want else [f"page {got!r:.300} != alone {want!r:.300}"]
        if not any(named in c for c in v["captions"]):
            diffs.append(f"caption does not name {named!r}: {v['captions']}")
        if o.get("view_after", {}).get("charts") != v["charts"]:
            diffs.append(f"the chart changed after the other pages acted: {o.get('view_after')!r:.600} "
                         f"(was {v['charts']!r:.600})")
        if diffs:
            mismatches.append((s.index, diffs))
    lat = [x for o in outs for x in o["latencies"]]
    report.update({
        "errors": len(errors) + ("Traceback" in log_text),
        "error_samples": errors[:3] + (["server log has a Traceback"] if "Traceback" in log_text else []),
        "mismatches": len(mismatches),
        "mismatch_samples": mismatches[:3],
        "driver_errors": len(driver_errors),
        "driver_error_samples": driver_errors[:3],
        "actions": len(lat),
        "p50_s": percentile(lat, 0.50),
        "p95_s": percentile(lat, 0.95),
        "server_log": str(log_path),
    })
    return report


# --------------------------------------------------------------------------- CLI


def _print_report(a: dict, b: Optional[dict]) -> None:
    rows = [("sessions held at once", f"{a['held']} of {a['sessions']} (script runs in flight at once, peak: "
                                       f"{a['runs_in_flight_peak']})"),
            ("errors", a["errors"]),
            ("mismatches (concurrent vs alone, rerun, cold, pure)", a["mismatches"]),
            ("distinct views among sessions", a["distinct_views"]),
            ("model loads during the concurrent phase", f"{a['model_loads']} (pool: {a['pool_loads']})"),
            ("model loads by the alone runs (warm)", a["model_loads_after_alone"] - a["model_loads"]),
            ("cold alone sessions / their loads", f"{a['cold_sessions']} / {a['cold_loads']}"),
            ("hooks left on the shared model", a["hooks_left"] or "none"),
            ("model lock free afterwards", a["lock_free"]),
            ("latency per action p50 / p95 (concurrent)", f"{a['p50_s']:.2f} s / {a['p95_s']:.2f} s "
                                                          f"over {a['actions']} actions"),
            ("latency per action p50 (alone)", f"{a['alone_p50_s']:.2f} s"),
            ("wall, concurrent phase / alone runs", f"{a['wall_s']:.1f} s / {a['alone_wall_s']:.1f} s"),
            ("peak RSS (this process)", f"{a['peak_rss_mib']:.0f} MiB")]
    if "a2_mismatches" in a:
        rows += [("A2: threads on the shared model, errors", f"{a['a2_errors']} {a['a2_error_samples'][:1]}"),
                 ("A2: threads on the shared model, mismatches", a["a2_mismatches"]),
                 ("A2: latency p50 / p95", f"{a['a2_p50_s'] * 1e3:.1f} ms / {a['a2_p95_s'] * 1e3:.1f} ms"),
                 ("A2: hooks left", a["a2_hooks_left"] or "none")]
    print(f"Part A: {a['sessions']} AppTest sessions of app.py in threads of one process, {MODEL}")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    for sample in a["error_samples"]:
        print("  error:", sample)
    for i, m in a["mismatch_samples"].items():
        print(f"  mismatch, session {i}:", m)
    if b is None:
        return
    print(f"Part B: {b['browsers']} Chromium pages at once on one `streamlit run` server (127.0.0.1)")
    rows = [("errors", b["errors"]), ("mismatches (vs the same session alone)", b["mismatches"]),
            ("latency per action p50 / p95", f"{b['p50_s']:.2f} s / {b['p95_s']:.2f} s over {b['actions']} actions"),
            ("server peak RSS", f"{b['server_peak_rss_mib']:.0f} MiB"), ("wall", f"{b['wall_s']:.1f} s")]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    for sample in b["error_samples"] + b["mismatch_samples"]:
        print("  problem:", sample)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=30, help="simulated sessions at once (part A)")
    parser.add_argument("--cold", type=int, default=3, help="sessions also run alone with empty caches")
    parser.add_argument("--browsers", type=int, default=3, help="Chromium pages on a live server (0: skip part B)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    import streamlit.logger

    streamlit.logger.set_log_level("error")  # AppTest's "missing ScriptRunContext" notes, one per session
    started = time.perf_counter()
    a = part_a(args.sessions, cold=args.cold)
    b = part_b(args.browsers) if args.browsers > 0 else None
    _print_report(a, b)
    print(f"total wall {time.perf_counter() - started:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"part_a": a, "part_b": b}, indent=2, default=str))
    ok = (a["errors"] == 0 and a["mismatches"] == 0 and a["model_loads"] == 1 and not a["hooks_left"]
          and a.get("a2_mismatches", 0) == 0 and a.get("a2_errors", 0) == 0 and (b is None or (b["errors"] == 0 and b["mismatches"] == 0)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
