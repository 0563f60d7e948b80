"""Modelship's model server: one scikit-learn model behind the Open Inference Protocol."""

__version__ = "0.1.0"
