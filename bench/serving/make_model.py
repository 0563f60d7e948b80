"""Writes the benchmark's models in the formats the servers load, one request body for each, and measures
in-process predict rates: the most a server can do one row per predict call.

    python make_model.py OUT_DIR

- iris: LogisticRegression on iris (4 features): OUT_DIR/iris.{skops,joblib}, OUT_DIR/iris.body.json
- forest: RandomForestClassifier, 200 trees, on scikit-learn's bundled breast-cancer data (569 rows, 30
  features, fitted on 70%; the request is a held-out row): OUT_DIR/forest.{skops,joblib,body.json}

Prints ``CEILING predict_calls_per_s=N rows_per_s_batch32=N`` for iris with scikit-learn (what the other
scripts read), then per model ``CALLS model=M sklearn_us=N compiled_us=N path=P``: one one-row predict
call with scikit-learn and with modelship-server's compiled path, as the server makes it (assume_finite).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import skops.io
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from modelship_server.compiled import compile_predictor
from modelship_server.predictor import PREDICT, SklearnPredictor

FOREST_TREES = 200


def _rate(call: Callable[[], object], seconds: float = 3.0) -> float:
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(10):
            call()
        done += 10
    return done / elapsed


def _write(out: Path, name: str, model: Any, row: np.ndarray[Any, Any]) -> None:
    skops.io.dump(model, out / f"{name}.skops")
    joblib.dump(model, out / f"{name}.joblib")
    body = {"inputs": [{"name": "input-0", "shape": [1, row.size], "datatype": "FP64", "data": row.tolist()}]}
    (out / f"{name}.body.json").write_text(json.dumps(body))


def _calls(name: str, model: Any, row: np.ndarray[Any, Any]) -> None:
    x = row.reshape(1, -1)
    plain = SklearnPredictor(model)
    compiled = compile_predictor(SklearnPredictor(model), threads=1)
    sklearn_s = 1 / _rate(lambda: plain.predict(x, (PREDICT,), finite=True))
    compiled_s = 1 / _rate(lambda: compiled.predict(x, (PREDICT,), finite=True))
    print(
        f"CALLS model={name} sklearn_us={sklearn_s * 1e6:.1f} compiled_us={compiled_s * 1e6:.1f} "
        f"path={compiled.predict_path}"
    )


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    x, y = load_iris(return_X_y=True)
    iris = LogisticRegression(max_iter=1000).fit(x, y)
    row = np.array([6.1, 2.8, 4.7, 1.2])
    _write(out, "iris", iris, row)
    xc, yc = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, _ = train_test_split(xc, yc, test_size=0.3, random_state=0)
    forest = RandomForestClassifier(n_estimators=FOREST_TREES, random_state=0).fit(x_train, y_train)
    _write(out, "forest", forest, x_test[0])

    one = row.reshape(1, -1)
    batch = np.repeat(one, 32, axis=0)
    single = _rate(lambda: iris.predict(one))
    batched = _rate(lambda: iris.predict(batch)) * 32
    print(f"CEILING predict_calls_per_s={single:.0f} rows_per_s_batch32={batched:.0f}")
    _calls("iris", iris, row)
    _calls("forest", forest, x_test[0])


if __name__ == "__main__":
    main()
