"""Entry point of one worker process started by the supervisor (``python -m modelship_server.worker``).

The worker reports to the supervisor through the pipe MODELSHIP_WORKER_READY_FD: ``1`` once it serves,
or ``E`` and the reason it cannot start, which the supervisor turns into the server's one-line error.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from modelship_server import logs
from modelship_server.cli import threads_per_worker
from modelship_server.errors import StartupError
from modelship_server.settings import parse_settings

log = logging.getLogger("modelship_server")


def main() -> int:
    logs.configure("info")
    ready_fd = int(os.environ["MODELSHIP_WORKER_READY_FD"])

    reported = False

    def report(message: bytes) -> None:
        # Once: after "ready" the pipe is closed, and a later failure is the supervisor's to notice.
        nonlocal reported
        if not reported:
            reported = True
            os.write(ready_fd, message)
            os.close(ready_fd)

    try:
        settings = parse_settings([])
        logs.configure(settings.log_level)
        from modelship_server.artifact import verified_local_copy
        from modelship_server.loading import load_predictor
        from modelship_server.server import serve

        artifact = verified_local_copy(
            Path(os.environ["MODELSHIP_WORKER_MODEL_PATH"]),
            os.environ["MODELSHIP_WORKER_MODEL_SHA256"],
            settings.model_format or "skops",
        )
        predictor = load_predictor(
            artifact,
            trusted_types=settings.trusted_types,
            allow_unsafe_pickle=settings.allow_unsafe_pickle,
            threads=threads_per_worker(settings),
            compile_model=settings.compile == "auto",
        )
        return serve(settings, predictor, reuse_port=True, on_ready=lambda: report(b"1"))
    except StartupError as error:
        message = " ".join(str(error).split())
        log.error("worker cannot start", extra={"reason": message})
        report(b"E" + message.encode())
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        log.exception("unexpected error")
        report(b"E" + f"unexpected {type(error).__name__}: {' '.join(str(error).split())}".encode())
        return 1


if __name__ == "__main__":
    sys.exit(main())
