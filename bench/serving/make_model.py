"""Writes the benchmark's model (iris, logistic regression) in the two formats the servers load, and
measures the in-process predict rate: the most a server can do one row per predict call.

    python make_model.py OUT_DIR        # writes OUT_DIR/iris.skops and OUT_DIR/iris.joblib
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import joblib
import numpy as np
import skops.io
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def _rate(call: object, seconds: float = 3.0) -> float:
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            call()  # type: ignore[operator]
        done += 100
    return done / elapsed


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    skops.io.dump(model, out / "iris.skops")
    joblib.dump(model, out / "iris.joblib")
    row = np.array([[6.1, 2.8, 4.7, 1.2]])
    batch = np.repeat(row, 32, axis=0)
    single = _rate(lambda: model.predict(row))
    batched = _rate(lambda: model.predict(batch)) * 32
    print(f"CEILING predict_calls_per_s={single:.0f} rows_per_s_batch32={batched:.0f}")


if __name__ == "__main__":
    main()
