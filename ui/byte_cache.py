"""A least-recently-used cache of computed results bounded by their size in bytes.

``st.cache_data`` bounds the number of entries, not their size: the attention patterns of one
long text on a deep model are hundreds of MiB (SmolLM2, 1024 tokens: 30 layers x 9 heads x
1024 x 1024 float32 = 1.1 GiB), so sixteen of them could take a class server's memory. This
cache keeps results while their total stays within a budget (``pattern_cache_mb``), drops the
least recently used first, and does not keep a result larger than the whole budget (it is
returned, and computed again when asked again).

Shared by every session of a server: values are read, never written, by the pages. Two
sessions asking for the same missing key at once may both compute it (the results are equal).
Pure: no Streamlit here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable


class ByteBudgetCache:
    def __init__(self, budget_bytes: int, size: Callable[[Any], int]):
        self.budget = max(0, int(budget_bytes))
        self._size = size
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()  # least recent first
        self._lock = threading.Lock()
        self.computed = 0  # results computed (hits are not counted)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(n for _, n in self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, or ``compute()`` (an exception propagates, nothing is kept)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        value = compute()
        n = int(self._size(value))
        with self._lock:
            self.computed += 1
            if n <= self.budget:
                self._items[key] = (value, n)
                self._items.move_to_end(key)
                total = sum(size for _, size in self._items.values())
                while total > self.budget:
                    _, (_, dropped) = self._items.popitem(last=False)
                    total -= dropped
        return value

    def resize(self, budget_bytes: int) -> None:
        with self._lock:
            self.budget = max(0, int(budget_bytes))
            total = sum(size for _, size in self._items.values())
            while self._items and total > self.budget:
                _, (_, dropped) = self._items.popitem(last=False)
                total -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
