"""``load_pretrained`` and ``list_models``: local checkpoints and the workbench's named models, offline."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Iterable, Optional, Union

import torch

from models.config import ModelConfig
from models.loading.checkpoint import ModelLoadError, hf_config, read_config, read_state_dict, read_tokenizer
from models.loading.gguf import cached_checkpoint, gguf_source
from models.loading.hf import CONVERTERS, supported_model_types
from models.loading.registry import ModelInfo, list_models, resolve
from models.loading.safety import ModelPathRefused, allowed_model_dirs, check_model_path
from models.transformer import Transformer

__all__ = ["ModelLoadError", "ModelPathRefused", "ModelWeightsWarning", "ModelInfo", "load_pretrained", "list_models",
           "best_device", "supported_model_types", "allowed_model_dirs", "check_model_path"]

class ModelWeightsWarning(UserWarning):
    """The checkpoint loaded, but some of its weights are NaN or Inf."""


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
    allowed_dirs: Optional[Iterable[Union[str, Path]]] = None,
) -> Transformer:
    """Load a listed model by name, a local Hugging Face checkpoint folder or a .gguf file, with no network.

    Returns a ``Transformer`` in eval mode with ``.cfg``, ``.tokenizer`` (None when the folder has
    no tokenizer.json) and ``.to_tokens``. Raises ``ModelLoadError`` with a message that names the
    problem (unknown name, missing file, unsupported architecture, corrupt file, wrong shapes).

    ``allowed_dirs`` (a shared server's allow-list, see ``models.loading.safety``): a path is
    refused with ``ModelPathRefused`` unless it lies in one of them, before anything is read;
    names of listed models are always allowed. NaN/Inf weights load with a
    ``ModelWeightsWarning``, also kept in ``model.load_warnings``.
    """
    if allowed_dirs is not None and str(path_or_name).strip() not in {i.name for i in list_models()}:
        check_model_path(path_or_name, allowed_dirs)
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
        checkpoint_layers = _layers_in_checkpoint(state)
        try:
            cfg, state = CONVERTERS[model_type](hf, state)
        except ModelLoadError:
            raise
        except (RuntimeError, ValueError) as e:  # a reshape that config.json's sizes don't allow
            raise ModelLoadError(f"{folder}: tensor shapes do not match config.json ({e}).") from e
        except (KeyError, TypeError, AttributeError) as e:  # e.g. an activation function we do not know
            raise ModelLoadError(
                f"{folder}: config.json has a value this workbench does not support ({type(e).__name__}: {e}). "
                "Check config.json against the model's original one."
            ) from e
    else:
        raise ModelLoadError(
            f"{folder}: model_type {model_type!r} is not supported. "
            f"Supported: {', '.join(supported_model_types() + [NATIVE_MODEL_TYPE])}."
        )
    _check_sizes(cfg, folder)
    if model_type != NATIVE_MODEL_TYPE:
        _check_layer_count(cfg, checkpoint_layers, folder)
    cfg.model_name = name
    cfg.dtype = dtype
    cfg.device = device
    cfg.extra.setdefault("source", str(folder))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ModelWeightsWarning)
        model = _build(cfg, state, folder)
    model.load_warnings = []
    for w in caught:
        if issubclass(w.category, ModelWeightsWarning):
            model.load_warnings.append(str(w.message))
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)  # re-raise for the caller
    model.tokenizer = read_tokenizer(folder)
    _check_tokenizer(model, folder)
    return model.to(device).eval()


_LAYER_INDEX = re.compile(r"(?:^|\.)(?:h|layers|layer|blocks)\.(\d+)\.")


def _layers_in_checkpoint(state: dict) -> dict[str, int]:
    """Number of layers the weights hold per stack ("encoder", "decoder" or "" for one stack),
    from Hugging Face tensor names such as ``transformer.h.11.mlp...`` or ``model.decoder.layers.5...``."""
    counts: dict[str, int] = {}
    for key in state:
        match = _LAYER_INDEX.search(key)
        if match:
            stack = "decoder" if "decoder." in key else ("encoder" if "encoder." in key else "")
            counts[stack] = max(counts.get(stack, 0), int(match.group(1)) + 1)
    return counts


def _check_layer_count(cfg: ModelConfig, counts: dict[str, int], folder: Path) -> None:
    """config.json must describe every layer the weights hold (a converter reads only the layers
    the config names, so a smaller n_layer would silently drop the rest)."""
    if cfg.family == "encoder-decoder":
        wanted = {"encoder": cfg.n_layers, "decoder": cfg.n_decoder_layers}
    else:
        wanted = {stack: cfg.n_layers for stack in counts}
    for stack, n in counts.items():
        if stack in wanted and n > wanted[stack]:
            where = f"the {stack}" if stack else "the model"
            raise ModelLoadError(
                f"{folder}: the weights hold {n} layers for {where} but config.json says {wanted[stack]}: "
                "config.json does not account for every tensor (config and weights belong to different models)."
            )


def _check_sizes(cfg: ModelConfig, folder: Path) -> None:
    """Sizes that must be positive integers (config.json could say 0, -1 or 2.5)."""
    fields = {"n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "d_model": cfg.d_model, "d_head": cfg.d_head,
              "d_vocab": cfg.d_vocab, "n_ctx": cfg.n_ctx}
    if cfg.family == "encoder-decoder":
        fields["n_decoder_layers"] = cfg.n_decoder_layers
    bad = [f"{k}={v!r}" for k, v in fields.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1]
    if bad:
        raise ModelLoadError(
            f"{folder}: config.json gives impossible sizes ({', '.join(bad)}); each must be a positive integer. "
            "Fix config.json (compare it with the model's original one)."
        )


def _build(cfg: ModelConfig, state: dict, folder: Path) -> Transformer:
    try:
        model = Transformer(cfg)  # parameters are uninitialised torch.empty: cheap, and all replaced below
    except (KeyError, ValueError, TypeError) as e:  # e.g. an activation function we do not implement
        raise ModelLoadError(
            f"{folder}: config.json asks for something this workbench does not implement ({type(e).__name__}: {e}). "
            "Check config.json against the model's original one."
        ) from e
    for alias, source in model.tied_parameters().items():
        if state.get(alias) is None:
            state[alias] = state.get(source)
    expected = model.state_dict()
    missing = sorted(k for k in expected if state.get(k) is None)
    if missing:
        raise ModelLoadError(f"{folder}: the checkpoint lacks {len(missing)} tensors, e.g. {missing[:3]}.")
    unexpected = sorted(k for k in state if k not in expected and state[k] is not None)
    if unexpected:  # e.g. config.json says fewer layers than the weights have
        raise ModelLoadError(
            f"{folder}: the checkpoint has {len(unexpected)} tensors that config.json does not account for, e.g. "
            f"{unexpected[:3]}: config.json and the weights belong to different models."
        )
    bad = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if tuple(state[k].shape) != tuple(v.shape)
    ]
    if bad:
        raise ModelLoadError(f"{folder}: tensor shapes do not match config.json: " + "; ".join(bad[:3]))
    nonfinite = {k: int((~torch.isfinite(state[k])).sum()) for k in expected
                 if state[k].is_floating_point() and not torch.isfinite(state[k]).all()}
    if nonfinite:
        shown = ", ".join(f"{k} ({n})" for k, n in list(nonfinite.items())[:3])
        warnings.warn(
            f"{len(nonfinite)} weight tensors contain NaN or Inf values, e.g. {shown}: outputs that depend on them "
            "will be NaN. Check how the checkpoint was trained or saved.", ModelWeightsWarning, stacklevel=2)
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
