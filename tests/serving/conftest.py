"""Fixtures for the model server's tests (the helpers behind them live in support.py)."""

from __future__ import annotations

from tests.serving.support import (  # noqa: F401
    iris,
    iris_server,
    joblib_model,
    models,
    onnx_model,
    servers,
    skops_model,
)
