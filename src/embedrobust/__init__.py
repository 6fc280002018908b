"""embedrobust: robustness of vision foundation model embeddings to common and adversarial perturbations."""

# The one place the version lives (pyproject reads it): a checkout run from src/ on PYTHONPATH, as the conda
# route does, has no installed metadata to ask.
__version__ = "0.1.0"
