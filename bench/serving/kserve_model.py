"""KServe's Python ModelServer serving a joblib scikit-learn model the way KServe's sklearnserver does:
a ``kserve.Model`` whose ``predict`` turns the V2 request into an array (``get_predict_input``), calls
the estimator's ``predict`` and builds the V2 response (``get_predict_response``).

    python kserve_model.py --model_name NAME --model_path FILE [ModelServer flags: --http_port, --workers ...]

KServe logs two lines per request by default (uvicorn's access log and its timing trace); MLServer and
modelship-server run without per-request logs in the benchmark, so lib.sh starts this with
--log_config_file kserve_logging.json, which keeps KServe's other logs and drops those two.

Runs in KServe's own venv (lib.sh), not the repo's: it is a peer in the benchmark, not part of
modelship.
"""

from __future__ import annotations

import argparse
from typing import Any

import joblib
from kserve import Model, ModelServer, model_server
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnModel(Model):  # type: ignore[misc]
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.estimator: Any = None

    def load(self) -> bool:
        self.estimator = joblib.load(self.path)
        self.ready = True
        return True

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        instances = get_predict_input(payload)
        return get_predict_response(payload, self.estimator.predict(instances), self.name)


def main() -> None:
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_path", required=True)
    args, _ = parser.parse_known_args()
    model = SKLearnModel(args.model_name, args.model_path)
    model.load()
    ModelServer().start([model])


if __name__ == "__main__":
    main()
