"""Server settings for a workbench shared by a class: limits, and the folders students may open.

A teacher sets them as environment variables or in ``.streamlit/secrets.toml`` next to
``app.py`` (an environment variable wins over the secrets file)::

    # .streamlit/secrets.toml
    model_dirs = ["/srv/models", "/home/teacher/checkpoints"]  # folders the sidebar may open
    max_prompt_tokens = 256    # longest prompt (tokens) any page runs
    max_sweep_runs = 2048      # most patched forward passes one patching sweep may take
    sweep_batch_rows = 256     # patched runs batched in one forward (lower it if memory runs out)
    max_models = 2             # models kept loaded at once (least recently used is unloaded)
    pattern_cache_mb = 512     # attention patterns kept for every session (least recently used dropped)

    WORKBENCH_MODEL_DIRS=/srv/models:/home/teacher/checkpoints   # os.pathsep-separated
    WORKBENCH_MAX_PROMPT_TOKENS=256  WORKBENCH_MAX_SWEEP_RUNS=2048
    WORKBENCH_SWEEP_BATCH_ROWS=256   WORKBENCH_MAX_MODELS=2   WORKBENCH_PATTERN_CACHE_MB=512

Without ``model_dirs`` any local folder can be opened (one user on their own machine); with it,
a path whose real location (symlinks and ``..`` resolved) is outside those folders is refused,
while the shipped and packaged models stay available by name. Pure: no Streamlit here;
``ui.state`` passes ``st.secrets`` in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

# setting -> (environment variable, default, smallest allowed value)
INT_SETTINGS: dict[str, tuple[str, int, int]] = {
    "max_prompt_tokens": ("WORKBENCH_MAX_PROMPT_TOKENS", 1024, 2),
    "max_sweep_runs": ("WORKBENCH_MAX_SWEEP_RUNS", 8192, 1),
    "sweep_batch_rows": ("WORKBENCH_SWEEP_BATCH_ROWS", 512, 1),
    "max_models": ("WORKBENCH_MAX_MODELS", 2, 1),
    "pattern_cache_mb": ("WORKBENCH_PATTERN_CACHE_MB", 512, 0),
}
MODEL_DIRS_ENV = "WORKBENCH_MODEL_DIRS"


@dataclass(frozen=True)
class Settings:
    model_dirs: Optional[tuple[Path, ...]] = None  # None: any folder may be opened
    max_prompt_tokens: int = INT_SETTINGS["max_prompt_tokens"][1]
    max_sweep_runs: int = INT_SETTINGS["max_sweep_runs"][1]
    sweep_batch_rows: int = INT_SETTINGS["sweep_batch_rows"][1]
    max_models: int = INT_SETTINGS["max_models"][1]
    pattern_cache_mb: int = INT_SETTINGS["pattern_cache_mb"][1]  # attention patterns kept for all sessions
    # (setting, bad value) pairs that were ignored (their default is used); shown to the teacher
    problems: tuple[tuple[str, str], ...] = field(default=())


def _dirs(value: Any) -> tuple[Path, ...]:
    items = value.split(os.pathsep) if isinstance(value, str) else list(value)
    out = []
    for item in items:
        text = str(item).strip()
        if text:
            out.append(Path(text).expanduser().resolve())
    return tuple(out)


def read_settings(env: Optional[Mapping[str, str]] = None, secrets: Optional[Mapping[str, Any]] = None) -> Settings:
    """Settings from ``env`` (default ``os.environ``) over ``secrets`` (a mapping like
    ``st.secrets``). A malformed value is reported in ``problems`` and its default is used, so a
    typo never stops the server."""
    env = os.environ if env is None else env
    secrets = secrets or {}
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for name, (var, default, smallest) in INT_SETTINGS.items():
        raw = env.get(var) if env.get(var, "").strip() else secrets.get(name)
        if raw is None:
            continue
        try:
            number = int(str(raw).strip())
        except ValueError:
            problems.append((name, str(raw)))
            continue
        if number < smallest:
            problems.append((name, str(raw)))
            continue
        values[name] = number
    raw_dirs = env.get(MODEL_DIRS_ENV) if env.get(MODEL_DIRS_ENV, "").strip() else secrets.get("model_dirs")
    if raw_dirs is not None:
        if isinstance(raw_dirs, (str, list, tuple)):
            values["model_dirs"] = _dirs(raw_dirs)
        else:
            problems.append(("model_dirs", str(raw_dirs)))
            values["model_dirs"] = ()  # malformed: open nothing rather than everything
    return Settings(**values, problems=tuple(problems))


_current: Optional[Settings] = None


def activate(value: Settings) -> Settings:
    """Make ``value`` the settings the pure ``ui`` functions apply (``ui.state`` calls this with
    the environment + secrets of the running server on every script run)."""
    global _current
    _current = value
    return value


def current() -> Settings:
    """The active settings (the environment's alone until ``activate`` is called)."""
    return _current if _current is not None else read_settings()
