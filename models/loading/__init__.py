"""``load_pretrained`` and ``list_models``: local checkpoints and the workbench's named models, offline."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional, Union

import torch

from models.config import ModelConfig
from models.loading.checkpoint import ModelLoadError, hf_config, read_config, read_state_dict, read_tokenizer
from models.loading.gguf import cached_checkpoint, gguf_source
from models.loading.hf import CONVERTERS, supported_model_types
from models.loading.registry import ModelInfo, list_models, resolve
from models.transformer import Transformer

__all__ = ["ModelLoadError", "ModelInfo", "load_pretrained", "list_models", "best_device", "supported_model_types"]

NATIVE_MODEL_TYPE = "workbench"  # config.json written by our own training scripts


def best_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _dtype(dtype: Union[None, str, torch.dtype]) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use one of float32, bfloat16, float16.")
    return names[dtype]


def load_pretrained(
    path_or_name: Union[str, Path],
    device: Optional[str] = None,
    dtype: Union[None, str, torch.dtype] = None,
) -> Transformer:
    """Load a listed model by name, a local Hugging Face checkpoint folder or a .gguf file, with no network.

    Returns a ``Transformer`` in eval mode with ``.cfg``, ``.tokenizer`` (None when the folder has
    no tokenizer.json) and ``.to_tokens``. Raises ``ModelLoadError`` with a message that names the
    problem (unknown name, missing file, unsupported architecture, corrupt file, wrong shapes).
    """
    folder, name = resolve(path_or_name)
    gguf_file = gguf_source(folder)
    if gguf_file is not None:  # GGUF: converted once to a cached native checkpoint folder (gguf.py)
        folder = cached_checkpoint(gguf_file, name)
    dtype = _dtype(dtype)
    device = device or best_device()
    config = read_config(folder)
    model_type = config.get("model_type")
    if model_type == NATIVE_MODEL_TYPE:
        cfg = ModelConfig.from_dict(config["workbench"])
        state = read_state_dict(folder)
    elif model_type in CONVERTERS:
        hf = hf_config(folder, config)
        state = read_state_dict(folder)
        try:
            cfg, state = CONVERTERS[model_type](hf, state)
        except (RuntimeError, ValueError) as e:  # a reshape that config.json's sizes don't allow
            raise ModelLoadError(f"{folder}: tensor shapes do not match config.json ({e}).") from e
    else:
        raise ModelLoadError(
            f"{folder}: model_type {model_type!r} is not supported. "
            f"Supported: {', '.join(supported_model_types() + [NATIVE_MODEL_TYPE])}."
        )
    cfg.model_name = name
    cfg.dtype = dtype
    cfg.device = device
    cfg.extra.setdefault("source", str(folder))
    model = _build(cfg, state, folder)
    model.tokenizer = read_tokenizer(folder)
    _check_tokenizer(model, folder)
    return model.to(device).eval()


def _build(cfg: ModelConfig, state: dict, folder: Path) -> Transformer:
    model = Transformer(cfg)  # parameters are uninitialised torch.empty: cheap, and all replaced below
    for alias, source in model.tied_parameters().items():
        if state.get(alias) is None:
            state[alias] = state.get(source)
    expected = model.state_dict()
    missing = sorted(k for k in expected if state.get(k) is None)
    if missing:
        raise ModelLoadError(f"{folder}: the checkpoint lacks {len(missing)} tensors, e.g. {missing[:3]}.")
    bad = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if tuple(state[k].shape) != tuple(v.shape)
    ]
    if bad:
        raise ModelLoadError(f"{folder}: tensor shapes do not match config.json: " + "; ".join(bad[:3]))
    nonfinite = [k for k in expected if state[k].is_floating_point() and not torch.isfinite(state[k]).all()]
    if nonfinite:
        warnings.warn(f"{folder}: weights contain NaN or Inf in {nonfinite[:3]}; outputs will be meaningless.")
    model.load_state_dict({k: state[k].to(cfg.dtype).contiguous() for k in expected}, strict=True, assign=True)
    model.tie_weights()  # assign=True replaced tied parameters separately; share one tensor again
    return model


def _check_tokenizer(model: Transformer, folder: Path) -> None:
    tok = model.tokenizer
    if tok is not None and len(tok) > model.cfg.d_vocab:
        raise ModelLoadError(
            f"{folder}: tokenizer.json has {len(tok)} tokens but the model's vocabulary is {model.cfg.d_vocab}: "
            "the tokenizer belongs to another model."
        )


def save_native(model: Transformer, folder: Union[str, Path], card: Optional[str] = None) -> Path:
    """Write a natively built model as a checkpoint folder that ``load_pretrained`` reads."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg.to_dict()
    cfg.pop("device", None)
    (folder / "config.json").write_text(json.dumps({"model_type": NATIVE_MODEL_TYPE, "workbench": cfg}, indent=2))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for alias in model.tied_parameters():
        state.pop(alias, None)
    save_file(state, str(folder / "model.safetensors"))
    if card is not None:
        (folder / "README.md").write_text(card)
    return folder
