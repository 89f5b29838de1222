"""Which checkpoint paths a shared server may open.

A workbench served to a class lets students type a checkpoint folder. With an allow-list
(``WORKBENCH_MODEL_DIRS``, or the app's ``model_dirs`` setting), a path is opened only if its
real location (``~``, symlinks and ``..`` resolved) is one of the allowed folders or inside one.
The check looks at nothing but the path's text and the allowed folders' own resolution: a
refused path is refused whether or not it exists, so nobody can probe which files exist
elsewhere. Names of listed models (``list_models()``) are not paths and are always allowed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Union

from models.loading.checkpoint import ModelLoadError

MODEL_DIRS_ENV = "WORKBENCH_MODEL_DIRS"


class ModelPathRefused(ModelLoadError):
    """A checkpoint path outside the folders this server allows."""


def allowed_model_dirs(value: Optional[str] = None) -> Optional[list[Path]]:
    """The allowed folders from ``value`` (an ``os.pathsep``-separated list) or, when None, from
    ``$WORKBENCH_MODEL_DIRS``; None when unset (no restriction: one user on their own machine).
    Blank entries are ignored; a folder that does not exist is kept (it matches nothing until it
    is created)."""
    if value is None:
        value = os.environ.get(MODEL_DIRS_ENV)
    if value is None or not value.strip():
        return None
    return [Path(p.strip()).expanduser().resolve() for p in value.split(os.pathsep) if p.strip()]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_model_path(path: Union[str, Path], allowed_dirs: Iterable[Union[str, Path]]) -> Path:
    """``path`` resolved, if it lies in one of ``allowed_dirs``; else :class:`ModelPathRefused`."""
    folders = [Path(d).expanduser().resolve() for d in allowed_dirs]
    real = Path(str(path).strip()).expanduser().resolve()  # strict=False: never fails on a missing path
    if any(_inside(real, folder) for folder in folders):
        return real
    shown = ", ".join(str(f) for f in folders) or "none"
    raise ModelPathRefused(
        f"{str(path).strip()!r} is outside the folders this server allows ({shown}). Pick a listed model or a "
        f"folder inside those; the server's administrator adds folders with {MODEL_DIRS_ENV} (or `model_dirs` "
        "in the app's .streamlit/secrets.toml)."
    )
