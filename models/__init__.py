"""Hookable transformers (TransformerLens hook names) and offline checkpoint loading."""

from models.config import ModelConfig
from models.loading import (
    ModelInfo, ModelLoadError, ModelPathRefused, ModelWeightsWarning, best_device, list_models, load_pretrained,
    save_native,
)
from models.transformer import Transformer

__all__ = [
    "ModelConfig", "Transformer", "ModelInfo", "ModelLoadError", "ModelPathRefused", "ModelWeightsWarning",
    "best_device", "list_models",
    "load_pretrained", "save_native",
]
