"""The PDF report."""

from .build import build_report

__all__ = ["build_report"]
