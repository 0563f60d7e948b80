"""The same server core behind other HTTP stacks, to choose ours by measurement (see RESULTS.md).

Not part of the product: ``compare_stacks.sh`` runs ``uvicorn stacks:asgi_app`` and
``granian --interface rsgi stacks:rsgi_app`` (and ``--interface asgi``) against the same model and load as
modelship-server's own httptools protocol. The model comes from MODELSHIP_MODEL_URI and friends.
"""

from __future__ import annotations

import asyncio
from typing import Any

from modelship_server.app import App, Request, Response
from modelship_server.artifact import fetch
from modelship_server.loading import load_predictor
from modelship_server.server import build_app
from modelship_server.settings import parse_settings

_core: App | None = None


def _build_core(loop: asyncio.AbstractEventLoop) -> App:
    settings = parse_settings([])
    artifact = fetch(
        settings.model_uri,
        model_format=settings.model_format,
        expected_sha256=settings.sha256,
        max_bytes=settings.max_model_bytes,
        timeout_s=settings.download_timeout_s,
    )
    predictor = load_predictor(artifact, trusted_types=settings.trusted_types)
    app = build_app(settings, predictor, loop)
    app.ready = True
    return app


def _header_length(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _core
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _core = _build_core(asyncio.get_running_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert _core is not None
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    header_length = None
    for name, value in scope["headers"]:
        if name == b"inference-header-content-length":
            header_length = _header_length(value.decode())
    done: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    _core.handle(Request(scope["method"], scope["path"], body, header_length), done.set_result)
    response = await done
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [
                (b"content-type", response.content_type),
                (b"modelship-model-version", _core.model_version.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": response.body})


class _Rsgi:
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        global _core
        _core = _build_core(loop)

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        assert _core is not None
        body = await protocol()
        header_length = _header_length(scope.headers.get("inference-header-content-length"))
        done: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        _core.handle(Request(scope.method, scope.path, body, header_length), done.set_result)
        response = await done
        protocol.response_bytes(
            response.status,
            [
                ("content-type", response.content_type.decode()),
                ("modelship-model-version", _core.model_version),
            ],
            response.body,
        )


rsgi_app = _Rsgi()
