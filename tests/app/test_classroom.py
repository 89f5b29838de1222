"""Classroom: 30 students on one server process at once, each ablating different heads
(``benchmarks/classroom.py``, part A, at the acceptance size).

30 AppTest sessions of ``app.py`` run in threads of this one process, sharing what a server's
sessions share (model pool, Streamlit caches, the model object), all held open at once, each with
its own prompt, heads, ablation kind and language on the *Ablate & patch* page. Each must show
exactly (float64, every label and text) what the same session shows when run alone, warm and
cold, and what the page's pure function computes without Streamlit; the model must be loaded
once, and no hook may be left on it. No timing is asserted (the numbers are printed).
"""

from __future__ import annotations

import pytest

from benchmarks import classroom

SESSIONS = 30  # the acceptance size


@pytest.fixture(scope="module")
def report() -> dict:
    result = classroom.part_a(SESSIONS, cold=1)
    classroom._print_report(result, None)
    return result


@pytest.mark.slow
def test_thirty_sessions_at_once_without_errors(report: dict) -> None:
    assert report["errors"] == 0, report["error_samples"]
    assert report["held"] == SESSIONS  # all open at the same time (a barrier), not one after another
    assert report["runs_in_flight_peak"] > 1  # and their script runs overlapped


@pytest.mark.slow
def test_each_session_shows_what_it_shows_alone(report: dict) -> None:
    """Concurrent == alone (warm) == alone (cold) == a rerun after everyone else acted == the
    pure function, for every session; and the sessions really differ from each other."""
    assert report["mismatches"] == 0, report["mismatch_samples"]
    assert report["distinct_views"] == SESSIONS
    assert report["cold_sessions"] == 1


@pytest.mark.slow
def test_model_loaded_once_and_left_clean(report: dict) -> None:
    assert report["model_loads"] == 1
    assert report["pool_loads"] == {classroom.MODEL: 1}
    assert report["model_loads_after_alone"] == 1  # the alone (warm) runs reused it too
    assert report["hooks_left"] == []
    assert report["lock_free"]


@pytest.mark.slow
def test_parallel_ablations_on_the_shared_model(report: dict) -> None:
    """The page's computation in 30 threads released at once on the one model: bit-for-bit equal
    to each computed alone (the model's lock keeps one session's hooks out of another's run)."""
    assert report["a2_errors"] == 0, report["a2_error_samples"]
    assert report["a2_mismatches"] == 0
    assert report["a2_hooks_left"] == []


def test_specs_differ_and_fit_the_model() -> None:
    """Every session's ablation is its own, and its words are in the model's vocabulary."""
    import models

    specs = [classroom.spec(i) for i in range(SESSIONS)]
    assert len({(s.heads, s.layers, s.kind, s.prompt) for s in specs}) == SESSIONS
    assert len({s.heads for s in specs}) == SESSIONS
    assert {s.kind for s in specs} == set(classroom.KINDS) and {s.lang for s in specs} == {"es", "en"}
    model = models.load_pretrained(classroom.MODEL)
    for s in specs:
        tokens = model.to_str_tokens(s.prompt + " " + s.reference)
        assert "<unk>" not in tokens, s
        if s.kind == "resample":
            assert len(model.to_str_tokens(s.reference)) == len(model.to_str_tokens(s.prompt))
