"""Modelship: a Kubernetes operator that ships machine-learning models to production."""

__version__ = "0.1.0"
