"""Downstream tasks on stored embeddings: zero-shot (CLIP), linear probe and kNN, evaluated per condition."""

from embedrobust.downstream.evaluate import evaluate_store
from embedrobust.downstream.templates import class_text_embeddings, resolve_templates

__all__ = ["class_text_embeddings", "evaluate_store", "resolve_templates"]
