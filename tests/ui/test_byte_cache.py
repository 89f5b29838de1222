"""ui.byte_cache: results kept while their total size fits the budget, least recently used
dropped first; a result larger than the budget is returned but not kept."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ui.byte_cache import ByteBudgetCache


def array(n_bytes: int) -> np.ndarray:
    return np.zeros(n_bytes, dtype=np.uint8)


def test_budget_and_least_recently_used_order():
    cache = ByteBudgetCache(100, size=lambda a: a.nbytes)
    a = cache.get("a", lambda: array(40))
    cache.get("b", lambda: array(40))
    assert cache.get("a", lambda: pytest.fail("a is cached")) is a  # a hit, and now the most recent
    cache.get("c", lambda: array(40))  # 120 > 100: b (least recent) goes
    assert len(cache) == 2 and cache.nbytes == 80 and cache.computed == 3
    recomputed = []
    cache.get("b", lambda: recomputed.append(1) or array(40))
    assert recomputed == [1]


def test_a_result_larger_than_the_budget_is_returned_not_kept():
    cache = ByteBudgetCache(100, size=lambda a: a.nbytes)
    cache.get("small", lambda: array(10))
    big = cache.get("big", lambda: array(500))
    assert big.nbytes == 500 and len(cache) == 1 and cache.nbytes == 10  # the small one stays


def test_errors_are_not_kept_and_resize_drops_the_oldest():
    cache = ByteBudgetCache(100, size=lambda a: a.nbytes)
    with pytest.raises(ValueError):
        cache.get("x", lambda: (_ for _ in ()).throw(ValueError("bad prompt")))
    assert len(cache) == 0
    for key in "abc":
        cache.get(key, lambda: array(30))
    cache.resize(50)
    assert len(cache) == 1 and cache.get("c", lambda: pytest.fail("c is the newest")) is not None
    cache.resize(0)
    assert len(cache) == 0


def test_threads_share_one_cache():
    cache = ByteBudgetCache(10_000, size=lambda a: a.nbytes)
    results = []

    def work(i):
        results.append(cache.get(i % 5, lambda: array(100) + i % 5)[0])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(40)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(set(results)) == [0, 1, 2, 3, 4] and len(cache) == 5 and cache.nbytes == 500


def test_the_app_counts_the_patterns_bytes(monkeypatch):
    """The server setting bounds the app's pattern cache: 0 keeps nothing (every request
    computes), the default keeps a small result."""
    import models
    from ui import state
    from ui.patterns import compute_attention_patterns

    model = models.load_pretrained("induction-2l")
    patterns = compute_attention_patterns(model, "gato azul tren gato azul tren")
    assert patterns.nbytes == 2 * 4 * 7 * 7 * 4  # layers x heads x tokens^2 x float32
    state.PATTERN_CACHE.clear()
    monkeypatch.setenv("WORKBENCH_PATTERN_CACHE_MB", "0")
    first = state._cached_patterns("induction-2l", "gato azul", None)
    assert len(state.PATTERN_CACHE) == 0
    again = state._cached_patterns("induction-2l", "gato azul", None)
    assert again is not first
    np.testing.assert_array_equal(first.patterns, again.patterns)
    monkeypatch.delenv("WORKBENCH_PATTERN_CACHE_MB")
    kept = state._cached_patterns("induction-2l", "gato azul", None)
    assert len(state.PATTERN_CACHE) == 1 and state._cached_patterns("induction-2l", "gato azul", None) is kept
