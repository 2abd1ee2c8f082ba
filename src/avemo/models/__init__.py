"""Models: shared blocks, encoders, fusion, the reviewed systems, and the registry of all of them."""

from avemo.models.registry import Bundle, create_model, list_models, load, register_model

__all__ = ["Bundle", "create_model", "list_models", "load", "register_model"]
