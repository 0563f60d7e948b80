"""``modelship-server``: settings, fetch and verify the model, load it, then serve.

Every start-up failure (bad option, unreachable URI, digest mismatch, refused format or type, busy port)
ends the process with exit code 1 and one line on stderr; logs go to stdout as JSON.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from modelship_server import logs
from modelship_server.errors import StartupError
from modelship_server.settings import Settings, parse_settings, usable_cpus

log = logging.getLogger("modelship_server")

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def main(argv: Sequence[str] | None = None) -> int:
    logs.configure("info")
    try:
        settings = parse_settings(argv)
    except StartupError as error:
        return fail(error)
    logs.configure(settings.log_level)
    limit_threads(settings)
    try:
        return run(settings)
    except StartupError as error:
        return fail(error)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        # A bug, not a bad input: the traceback goes to the JSON log, stderr still gets one line.
        log.exception("unexpected error")
        return fail(StartupError(f"unexpected {type(error).__name__}: {error}"))


def run(settings: Settings) -> int:
    from modelship_server.artifact import fetch
    from modelship_server.loading import load_predictor
    from modelship_server.s3 import S3Options

    log.info(
        "loading model",
        extra={
            "model_name": settings.model_name,
            "model_version": settings.model_version,
            "workers": settings.workers,
        },
    )
    artifact = fetch(
        settings.model_uri,
        model_format=settings.model_format,
        expected_sha256=settings.sha256,
        max_bytes=settings.max_model_bytes,
        timeout_s=settings.download_timeout_s,
        s3=S3Options(
            endpoint=settings.s3_endpoint,
            region=settings.s3_region,
            addressing_style=settings.s3_addressing_style,
        ),
    )
    try:
        predictor = load_predictor(
            artifact,
            trusted_types=settings.trusted_types,
            allow_unsafe_pickle=settings.allow_unsafe_pickle,
            threads=threads_per_worker(settings),
            # With several workers this copy only proves the file loads; each worker compiles its own.
            compile_model=settings.compile == "auto" and settings.workers == 1,
        )
        log.info(
            "model loaded",
            extra={
                "format": artifact.format,
                "sha256": artifact.sha256,
                "bytes": artifact.size,
                "platform": predictor.platform,
            },
        )
        if settings.workers == 1:
            from modelship_server.server import serve

            return serve(settings, predictor, reuse_port=False)
        # The workers load their own copy; this one only proved that the file loads.
        del predictor
        from modelship_server.supervisor import Supervisor

        return Supervisor(settings, artifact).run()
    finally:
        artifact.remove_scratch()


def threads_per_worker(settings: Settings) -> int:
    return max(1, usable_cpus() // settings.workers)


def limit_threads(settings: Settings) -> None:
    """Give each worker its share of CPUs for BLAS/OpenMP, unless the operator set it (before numpy loads)."""
    for name in _THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads_per_worker(settings)))


def fail(error: StartupError) -> int:
    message = " ".join(str(error).split())
    log.error("cannot start", extra={"reason": message})
    print(f"modelship-server: error: {message}", file=sys.stderr, flush=True)
    return 1
