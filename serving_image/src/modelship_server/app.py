"""Routes: which endpoint a request is for, and the response it gets.

The HTTP layer hands over a complete request and a ``respond`` callback; an endpoint calls it once,
right away or (inference) when its batch has been predicted. Nothing here knows about sockets.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from modelship_server import __version__, metrics
from modelship_server.batching import Batcher, Outputs, Result
from modelship_server.errors import BadRequest, MethodNotAllowed, NotFound, RequestError, Unavailable
from modelship_server.predictor import PREDICT, InputRejected, Predictor
from modelship_server.protocol import (
    InferCall,
    encode_v1_predict,
    encode_v2_infer,
    parse_v1_predict,
    parse_v2_infer,
)

log = logging.getLogger(__name__)

JSON = b"application/json"


@dataclass(slots=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    # The Inference-Header-Content-Length header (binary tensor data extension), when sent.
    header_length: int | None = None


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: bytes = JSON
    # Extra header lines, already formatted ("name: value\r\n").
    headers: bytes = b""


Respond = Callable[[Response], None]
Encode = Callable[[Outputs], Response]  # a prediction's outputs -> the protocol's answer
Handler = Callable[[Request, Respond], None]


def error_response(status: int, message: str, headers: bytes = b"") -> Response:
    return Response(status, orjson.dumps({"error": message}), headers=headers)


def _json(status: int, doc: Any) -> Response:
    return Response(status, orjson.dumps(doc))


class App:
    def __init__(
        self,
        *,
        model_name: str,
        model_version: str,
        predictor: Predictor,
        batcher: Batcher,
        model_metrics: metrics.Metrics,
    ) -> None:
        self.model_name = model_name
        self.model_version = model_version
        self.predictor = predictor
        self.batcher = batcher
        self.metrics = model_metrics
        # Ready once the model is loaded and the socket listens; not ready again once draining starts.
        self.ready = False
        model_paths = (f"/v2/models/{model_name}", f"/v2/models/{model_name}/versions/{model_version}")
        routes: dict[str, dict[str, Handler]] = {
            "/v2": {"GET": self._server_metadata},
            "/v2/health/live": {"GET": self._live},
            "/v2/health/ready": {"GET": self._ready},
            f"/v1/models/{model_name}": {"GET": self._v1_status},
            f"/v1/models/{model_name}:predict": {"POST": self._v1_predict},
            "/v1/models": {"GET": self._v1_models},
            "/metrics": {"GET": self._metrics},
        }
        for path in model_paths:
            routes[path] = {"GET": self._model_metadata}
            routes[f"{path}/ready"] = {"GET": self._model_ready}
            routes[f"{path}/infer"] = {"POST": self._v2_infer}
        for methods in routes.values():
            if "GET" in methods:
                methods["HEAD"] = methods["GET"]
        self._routes = routes
        self._metadata = orjson.dumps(
            {
                "name": model_name,
                "versions": [model_version],
                "platform": predictor.platform,
                "inputs": [predictor.input.metadata()],
                "outputs": [o.metadata() for o in predictor.outputs],
                "parameters": {
                    "predict_path": predictor.predict_path,
                    "predict_path_reason": predictor.predict_path_reason,
                },
            }
        )
        model_metrics.predict_path(predictor.predict_path)

    def handle(self, request: Request, respond: Respond) -> None:
        """Answer ``request`` through ``respond``: a JSON error for anything wrong, never an exception."""
        try:
            methods = self._routes.get(request.path)
            if methods is None:
                methods = self._routes.get(urllib.parse.unquote(request.path))
            if methods is None:
                raise NotFound(self._why_not_found(request.path))
            handler = methods.get(request.method)
            if handler is None:
                allowed = ", ".join(sorted(methods))
                raise _WithHeaders(
                    MethodNotAllowed(f"{request.method} is not allowed on {request.path}; use {allowed}"),
                    f"allow: {allowed}\r\n".encode(),
                )
            handler(request, respond)
        except _WithHeaders as wrapped:
            respond(error_response(wrapped.error.status, wrapped.error.message, wrapped.headers))
        except RequestError as error:
            respond(error_response(error.status, error.message))
        except Exception:
            log.exception("request failed", extra={"path": request.path})
            respond(error_response(500, "internal server error"))

    def _why_not_found(self, raw_path: str) -> str:
        path = urllib.parse.unquote(raw_path)
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[0] in ("v1", "v2") and parts[1] == "models":
            name = parts[2].split(":", 1)[0] if parts[0] == "v1" else parts[2]
            if name != self.model_name:
                return f"model {name!r} not found; this server serves {self.model_name!r}"
            if (
                parts[0] == "v2"
                and len(parts) >= 5
                and parts[3] == "versions"
                and parts[4] != self.model_version
            ):
                return (
                    f"model {name!r} has no version {parts[4]!r}; this server serves version "
                    f"{self.model_version!r}"
                )
        return f"no endpoint at {path}"

    # -- health and metadata -------------------------------------------------------------------------

    def _server_metadata(self, request: Request, respond: Respond) -> None:
        respond(
            _json(
                200,
                {"name": "modelship-server", "version": __version__, "extensions": ["binary_tensor_data"]},
            )
        )

    def _live(self, request: Request, respond: Respond) -> None:
        respond(_json(200, {"live": True}))

    def _ready(self, request: Request, respond: Respond) -> None:
        if not self.ready:
            raise Unavailable("the server is not ready")
        respond(_json(200, {"ready": True}))

    def _model_metadata(self, request: Request, respond: Respond) -> None:
        respond(Response(200, self._metadata))

    def _model_ready(self, request: Request, respond: Respond) -> None:
        if not self.ready:
            raise Unavailable(f"model {self.model_name!r} is not ready")
        respond(_json(200, {"name": self.model_name, "ready": True}))

    def _metrics(self, request: Request, respond: Respond) -> None:
        respond(Response(200, metrics.render(), content_type=metrics.CONTENT_TYPE))

    # -- inference -----------------------------------------------------------------------------------

    def _v2_infer(self, request: Request, respond: Respond) -> None:
        def parse() -> tuple[Any, tuple[str, ...], Encode]:
            call = parse_v2_infer(request.body, self.predictor, request.header_length)
            return call.x, call.outputs, lambda result: self._v2_response(call, result)

        self._infer(respond, "v2", parse)

    def _v2_response(self, call: InferCall, result: Outputs) -> Response:
        body, header_length = encode_v2_infer(call, result, self.model_name, self.model_version)
        if header_length is None:
            return Response(200, body)
        return Response(
            200,
            body,
            content_type=b"application/octet-stream",
            headers=b"inference-header-content-length: %d\r\n" % header_length,
        )

    def _v1_status(self, request: Request, respond: Respond) -> None:
        respond(_json(200, {"name": self.model_name, "ready": self.ready}))

    def _v1_models(self, request: Request, respond: Respond) -> None:
        respond(_json(200, {"models": [self.model_name]}))

    def _v1_predict(self, request: Request, respond: Respond) -> None:
        def parse() -> tuple[Any, tuple[str, ...], Encode]:
            rows = parse_v1_predict(request.body, self.predictor)
            return rows, (PREDICT,), lambda result: Response(200, encode_v1_predict(result[PREDICT]))

        self._infer(respond, "v1", parse)

    def _infer(
        self, respond: Respond, protocol: str, parse: Callable[[], tuple[Any, tuple[str, ...], Encode]]
    ) -> None:
        """Parse, batch, predict, encode: the shared path of V1 and V2. A bad request fails alone;
        an output the protocol cannot encode is a 500 for that request only."""
        answer = self._measured(respond, protocol, time.perf_counter())
        # No readiness check: the socket listens only once the model is loaded, and a draining server
        # (no longer ready) still answers the requests its open connections send until they close.
        try:
            x, outputs, encode = parse()
        except RequestError as error:
            answer(error_response(error.status, error.message))
            return

        def deliver(result: Result) -> None:
            if isinstance(result, BaseException):
                answer(self._failure(result))
                return
            try:
                response = encode(result)
            except (TypeError, ValueError) as error:
                log.error("cannot encode the model's output", exc_info=error)
                answer(error_response(500, f"cannot encode the model's output: {error}"))
                return
            answer(response)

        self.batcher.submit(x, outputs, deliver)

    def _measured(self, respond: Respond, protocol: str, started: float) -> Respond:
        record = self.metrics.request

        def answer(response: Response) -> None:
            record(protocol, response.status, time.perf_counter() - started)
            respond(response)

        return answer

    def _failure(self, error: BaseException) -> Response:
        if isinstance(error, InputRejected):
            return error_response(400, f"the model rejected the input: {error}")
        if isinstance(error, BadRequest):
            return error_response(400, error.message)
        log.error("predict failed", exc_info=error)
        return error_response(500, f"prediction failed: {type(error).__name__}")


class _WithHeaders(Exception):
    def __init__(self, error: RequestError, headers: bytes) -> None:
        super().__init__(error.message)
        self.error = error
        self.headers = headers
