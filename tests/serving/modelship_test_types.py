"""A model type that is not scikit-learn's, for the tests: skops refuses it unless it is trusted.

The server process imports it by name (the tests put this directory on its PYTHONPATH).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression


class SlowClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A logistic regression whose every predict call first touches ``marker`` and then sleeps ``delay_s``.

    The marker file tells a test that a request has reached the model; the sleep keeps it in flight.
    """

    def __init__(self, delay_s: float = 1.0, marker: str = "") -> None:
        self.delay_s = delay_s
        self.marker = marker

    def fit(self, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> SlowClassifier:
        self.inner_ = LogisticRegression(max_iter=1000).fit(x, y)
        self.classes_ = self.inner_.classes_
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if self.marker:
            with Path(self.marker).open("a") as marker:
                marker.write(f"{len(x)}\n")
        time.sleep(self.delay_s)
        return np.asarray(self.inner_.predict(x))
