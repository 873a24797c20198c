"""CancerNet-HF: train, ensemble, publish and serve cancer image classifiers the Hugging Face way."""

from .taxonomy import MULTI_CANCER, SubClass, Taxonomy, load_taxonomy

__version__ = "0.1.0"

__all__ = ["MULTI_CANCER", "SubClass", "Taxonomy", "load_taxonomy", "__version__"]
