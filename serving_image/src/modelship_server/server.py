"""One serving process: the event loop, the batcher and the HTTP server around a loaded model.

Readiness: the socket listens only once the model is loaded, and ``/v2/health/ready`` answers 200 from
then until SIGTERM. On SIGTERM (or SIGINT) the process stops accepting connections, finishes the
requests in flight (up to the drain timeout), and returns 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable

import uvloop

from modelship_server.app import App
from modelship_server.batching import Batcher
from modelship_server.http import HttpServer, listen_socket
from modelship_server.limits import Limits
from modelship_server.metrics import Metrics
from modelship_server.predictor import Predictor
from modelship_server.settings import Settings

log = logging.getLogger(__name__)


def serve(
    settings: Settings, predictor: Predictor, *, reuse_port: bool, on_ready: Callable[[], None] | None = None
) -> int:
    """Serve until SIGTERM; StartupError when the port cannot be bound."""
    sock = listen_socket(settings.host, settings.port, reuse_port=reuse_port)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(settings, predictor, sock, on_ready))
    return 0


def build_app(settings: Settings, predictor: Predictor, loop: asyncio.AbstractEventLoop) -> App:
    """The protocol core (routes, batching, metrics) for one loaded model, not yet ready."""
    model_metrics = Metrics(settings.model_name, settings.model_version)
    batcher = Batcher(
        predictor,
        loop,
        max_batch_size=settings.max_batch_size,
        max_wait_s=settings.max_batch_wait_ms / 1000.0,
        on_batch=model_metrics.batch,
        offload=settings.predict_thread,
    )
    return App(
        model_name=settings.model_name,
        model_version=settings.model_version,
        predictor=predictor,
        batcher=batcher,
        model_metrics=model_metrics,
    )


async def _serve(
    settings: Settings, predictor: Predictor, sock: socket.socket, on_ready: Callable[[], None] | None
) -> None:
    loop = asyncio.get_running_loop()
    app = build_app(settings, predictor, loop)
    http = HttpServer(app, limits=Limits.from_settings(settings), access_log=settings.access_log)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await http.start(sock)
    app.ready = True
    log.info(
        "ready",
        extra={
            "model_name": settings.model_name,
            "model_version": settings.model_version,
            "address": f"{settings.host}:{sock.getsockname()[1]}",
        },
    )
    if on_ready is not None:
        on_ready()
    await stop.wait()
    # From here on the process is on its way out: a second SIGTERM must neither cut the drain short nor,
    # arriving after the loop closed, turn a clean exit into death by signal.
    loop.remove_signal_handler(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    app.ready = False
    log.info("draining", extra={"connections": len(http.connections)})
    await http.drain(settings.drain_timeout_s)
    app.batcher.close()
    log.info("stopped")
