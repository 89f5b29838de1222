"""Reading a local Hugging Face checkpoint folder, offline and without unpickling.

A folder holds ``config.json``, weights as ``model.safetensors`` (or sharded with
``model.safetensors.index.json``; a ``pytorch_model.bin`` only through
``torch.load(weights_only=True)``, which refuses pickled code) and optionally ``tokenizer.json``.
Every problem becomes one ``ModelLoadError`` that names the file and what to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import torch

# Never reach a hub: every read below is from the local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class ModelLoadError(Exception):
    """A checkpoint could not be loaded; the message says why and what to do."""


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise ModelLoadError(f"{folder} has no config.json: a Hugging Face checkpoint folder needs one.")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{path} is not valid JSON ({e}); re-save the checkpoint with save_pretrained.") from e
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} must hold a JSON object, not {type(config).__name__}.")
    return config


def hf_config(folder: Path, config: dict):
    """The transformers config object, so class defaults fill fields config.json omits."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:  # unknown model_type, malformed values ...
        raise ModelLoadError(f"could not read {folder / 'config.json'} as a {config.get('model_type')!r} config: {e}") from e


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError) as e:
            raise ModelLoadError(f"{index} is malformed ({e}).") from e
        files = [folder / n for n in names]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ModelLoadError(f"shards listed in {index.name} are missing: {missing}")
    if files:
        state: dict[str, torch.Tensor] = {}
        for f in files:
            try:
                state.update(load_file(str(f)))
            except (SafetensorError, OSError, ValueError) as e:
                raise ModelLoadError(f"{f} is corrupt or truncated ({e}); copy the file again.") from e
        return state
    for name in ("pytorch_model.bin", "model.bin"):
        f = folder / name
        if f.is_file():
            try:
                return torch.load(str(f), map_location="cpu", weights_only=True)
            except Exception as e:
                raise ModelLoadError(
                    f"{f} could not be loaded with torch.load(weights_only=True) ({type(e).__name__}: {e}). "
                    "Pickled code is never run: convert the checkpoint to safetensors."
                ) from e
    raise ModelLoadError(f"{folder} has no weights: expected model.safetensors (or pytorch_model.bin).")


def read_tokenizer(folder: Path) -> Optional[object]:
    """A fast HF tokenizer from tokenizer.json (+ tokenizer_config.json), or None if absent."""
    if not (folder / "tokenizer.json").is_file():
        return None
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # our own config.json ("model_type": "workbench") is not HF's: not an error
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception:
        try:
            return PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
        except Exception as e:
            raise ModelLoadError(f"{folder / 'tokenizer.json'} could not be read ({e}).") from e
    finally:
        hf_logging.set_verbosity(verbosity)
