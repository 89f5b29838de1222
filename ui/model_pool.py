"""The loaded models of one server process, shared by every browser session.

* **Loaded once.** Thirty students asking for the same model at the same moment get one load:
  the first caller loads under that model's own lock, the others wait for it and share the
  result. Different models load in parallel.
* **At most ``capacity`` at once**, least recently used unloaded first. The pool drops its
  reference, collects garbage and empties the CUDA cache, so the memory (GPU memory included)
  is returned once no running page still holds the model.
* **Failures are not kept**: the next request tries again (the folder may have been fixed).

Pure: no Streamlit here (``ui.state`` owns the process-wide instance).
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from typing import Any, Callable


def release_memory() -> None:
    """Return freed tensors' memory: Python garbage first, then PyTorch's CUDA cache."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - best effort, never fails a page
        pass


class ModelPool:
    def __init__(self, capacity: int = 2, on_evict: Callable[[str], None] | None = None):
        self.capacity = max(1, int(capacity))
        self._models: OrderedDict[str, Any] = OrderedDict()  # key -> model, least recent first
        self._lock = threading.Lock()  # guards _models, _key_locks, counters
        self._key_locks: dict[str, threading.Lock] = {}
        self._on_evict = on_evict
        self.loads: dict[str, int] = {}  # key -> number of completed loads (1 per residency)
        self.evictions: list[str] = []

    def get(self, key: str, load: Callable[[], Any]) -> Any:
        """The model for ``key``, calling ``load()`` only if it is not resident."""
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one loader per key; the others wait here
            with self._lock:
                if key in self._models:  # loaded while we waited
                    self._models.move_to_end(key)
                    return self._models[key]
            model = load()  # an exception propagates and nothing is kept
            with self._lock:
                self._models[key] = model
                self.loads[key] = self.loads.get(key, 0) + 1
                evicted = self._evict_locked()
        if evicted:
            for old in evicted:
                if self._on_evict is not None:
                    self._on_evict(old)
            release_memory()
        return model

    def _evict_locked(self) -> list[str]:
        evicted = []
        while len(self._models) > self.capacity:
            old, _ = self._models.popitem(last=False)
            self.evictions.append(old)
            evicted.append(old)
        return evicted

    def resize(self, capacity: int) -> None:
        """Change the capacity (a teacher's setting); unloads the oldest models if now too many."""
        with self._lock:
            self.capacity = max(1, int(capacity))
            evicted = self._evict_locked()
        if evicted:
            release_memory()

    def keys(self) -> list[str]:
        """Resident keys, least recently used first."""
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self.loads.clear()
            self.evictions.clear()
        release_memory()
