"""Model loading, chat formatting and generation backends."""

from brittle.models.load import DEFAULT_MODEL, load_model, model_info

__all__ = ["DEFAULT_MODEL", "load_model", "model_info"]
