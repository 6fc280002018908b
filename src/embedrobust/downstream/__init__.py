"""Downstream tasks on stored embeddings: zero-shot (CLIP), linear probe and kNN, evaluated per condition."""

from embedrobust._lazy import lazy_exports

__all__ = ["class_text_embeddings", "evaluate_store", "resolve_templates"]

# Loaded on first use: scoring stored embeddings needs numpy and scikit-learn, the text templates need torch.
__getattr__, __dir__ = lazy_exports(__name__, {"evaluate_store": "evaluate", "class_text_embeddings": "templates",
                                              "resolve_templates": "templates"})
