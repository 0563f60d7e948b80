"""The server's settings: one frozen object built at start-up from the command line and the environment.

Every option can be given as a flag or as an environment variable (the operator uses the variables);
a flag wins over the variable. Bad values are reported as one line, like every start-up failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelship_server import __version__
from modelship_server.errors import StartupError

FORMATS = ("skops", "onnx", "joblib")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~+-]{0,252}")


@dataclass(frozen=True)
class Settings:
    model_uri: str
    model_name: str
    model_version: str
    model_format: str | None = None
    sha256: str | None = None
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    trusted_types: tuple[str, ...] = ()
    allow_unsafe_pickle: bool = False
    max_batch_size: int = 64
    max_batch_wait_ms: float = 0.0
    predict_thread: str = "auto"
    compile: str = "auto"
    max_body_bytes: int = 8 * 1024 * 1024
    max_model_bytes: int = 2 * 1024 * 1024 * 1024
    download_timeout_s: float = 60.0
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_addressing_style: str = "auto"
    drain_timeout_s: float = 25.0
    keepalive_timeout_s: float = 75.0
    max_header_bytes: int = 64 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_pipelined: int = 64
    max_connections: int = 1024
    access_log: bool = False
    log_level: str = "info"

    def to_env(self) -> dict[str, str]:
        """The settings as the environment variables that rebuild them (how worker processes get them)."""
        env: dict[str, str] = {}
        for option in OPTIONS:
            value = getattr(self, option.field)
            if value is None:
                continue
            if isinstance(value, tuple):
                env[option.env] = ",".join(value)
            elif isinstance(value, bool):
                env[option.env] = "true" if value else "false"
            else:
                env[option.env] = str(value)
        return env


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a finite number >= 0")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a finite number > 0")
    return value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _workers(text: str) -> int:
    return usable_cpus() if text.strip().lower() == "auto" else _positive_int(text)


def _format(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in FORMATS:
        raise ValueError(f"unsupported model format {text!r} (supported: {', '.join(FORMATS)})")
    return lowered


def _sha256(text: str) -> str:
    digest = text.strip().lower().removeprefix("sha256:")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("must be 64 hexadecimal digits")
    return digest


def _types(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.replace(",", " ").split() if part)


def _predict_thread(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in ("auto", "always", "never"):
        raise ValueError("must be auto, always or never")
    return lowered


def _compile(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in ("auto", "off"):
        raise ValueError("must be auto or off")
    return lowered


def _endpoint(text: str) -> str:
    parts = urllib.parse.urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return text.strip()


def _addressing_style(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in ("auto", "path", "virtual"):
        raise ValueError("must be auto, path or virtual")
    return lowered


def _log_level(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in ("debug", "info", "warning", "error"):
        raise ValueError("must be debug, info, warning or error")
    return lowered


@dataclass(frozen=True)
class Option:
    flag: str
    env: str
    field: str
    parse: Callable[[str], Any]
    help: str
    required: bool = False
    is_switch: bool = False
    repeatable: bool = False


OPTIONS: tuple[Option, ...] = (
    Option(
        "--model-uri",
        "MODELSHIP_MODEL_URI",
        "model_uri",
        str,
        "file:// path, plain path, http(s):// URL or s3://bucket/key of the model file, or "
        "s3://bucket/prefix/ of a model directory",
        required=True,
    ),
    Option(
        "--model-name",
        "MODELSHIP_MODEL_NAME",
        "model_name",
        str,
        "the name clients use in /v2/models/{name}",
        required=True,
    ),
    Option(
        "--model-version",
        "MODELSHIP_MODEL_VERSION",
        "model_version",
        str,
        "the version reported in every response",
        required=True,
    ),
    Option(
        "--format",
        "MODELSHIP_MODEL_FORMAT",
        "model_format",
        _format,
        "skops, onnx or joblib (default: from the file extension)",
    ),
    Option(
        "--sha256",
        "MODELSHIP_MODEL_SHA256",
        "sha256",
        _sha256,
        "expected SHA-256 of the model file (of a directory: of its sorted sha256sum lines), checked "
        "before anything is deserialized",
    ),
    Option("--host", "MODELSHIP_HOST", "host", str, "address to listen on (default 0.0.0.0)"),
    Option("--port", "MODELSHIP_PORT", "port", _port, "port to listen on (default 8080)"),
    Option(
        "--workers",
        "MODELSHIP_WORKERS",
        "workers",
        _workers,
        "worker processes, or 'auto': one per CPU of the pod's CPU limit, at most 4 without a limit "
        "(default auto)",
    ),
    Option(
        "--trusted-type",
        "MODELSHIP_TRUSTED_TYPES",
        "trusted_types",
        _types,
        "a type a skops file may contain beyond scikit-learn's and numpy's (repeatable; the "
        "variable takes a comma-separated list)",
        repeatable=True,
    ),
    Option(
        "--allow-unsafe-pickle",
        "MODELSHIP_ALLOW_UNSAFE_PICKLE",
        "allow_unsafe_pickle",
        _bool,
        "allow joblib/pickle files, which run code when loaded",
        is_switch=True,
    ),
    Option(
        "--max-batch-size",
        "MODELSHIP_MAX_BATCH_SIZE",
        "max_batch_size",
        _positive_int,
        "most requests merged into one predict call (default 64)",
    ),
    Option(
        "--max-batch-wait-ms",
        "MODELSHIP_MAX_BATCH_WAIT_MS",
        "max_batch_wait_ms",
        _non_negative_float,
        "longest a request waits for others to join its batch, only while others are queued "
        "(default 0: batch whatever arrived together)",
    ),
    Option(
        "--predict-thread",
        "MODELSHIP_PREDICT_THREAD",
        "predict_thread",
        _predict_thread,
        "where predict runs: 'auto' (on the event loop while predicts take under 2 ms, else on a "
        "helper thread), 'always' (helper thread) or 'never' (event loop)",
    ),
    Option(
        "--compile",
        "MODELSHIP_COMPILE",
        "compile",
        _compile,
        "'auto': serve a scikit-learn model from an ONNX graph compiled at load, once verified to give "
        "scikit-learn's answers (else scikit-learn serves); 'off': always scikit-learn (default auto)",
    ),
    Option(
        "--max-body-bytes",
        "MODELSHIP_MAX_BODY_BYTES",
        "max_body_bytes",
        _positive_int,
        "largest request body accepted; larger ones get 413 (default 8 MiB)",
    ),
    Option(
        "--max-model-bytes",
        "MODELSHIP_MAX_MODEL_BYTES",
        "max_model_bytes",
        _positive_int,
        "largest model file downloaded over http(s) or from S3 (default 2 GiB)",
    ),
    Option(
        "--download-timeout",
        "MODELSHIP_DOWNLOAD_TIMEOUT",
        "download_timeout_s",
        _non_negative_float,
        "seconds to wait for the model server to connect or send data (default 60)",
    ),
    Option(
        "--s3-endpoint",
        "MODELSHIP_S3_ENDPOINT",
        "s3_endpoint",
        _endpoint,
        "URL of an S3-compatible API for s3:// model URIs (default: AWS); credentials come from the AWS "
        "variables or web identity",
    ),
    Option("--s3-region", "MODELSHIP_S3_REGION", "s3_region", str, "S3 region (default: AWS_REGION)"),
    Option(
        "--s3-addressing-style",
        "MODELSHIP_S3_ADDRESSING_STYLE",
        "s3_addressing_style",
        _addressing_style,
        "'path' (endpoint/bucket/key, most S3-compatible stores), 'virtual' (bucket.endpoint/key) or "
        "'auto' (default)",
    ),
    Option(
        "--drain-timeout",
        "MODELSHIP_DRAIN_TIMEOUT",
        "drain_timeout_s",
        _non_negative_float,
        "seconds to finish in-flight requests after SIGTERM (default 25)",
    ),
    Option(
        "--keepalive-timeout",
        "MODELSHIP_KEEPALIVE_TIMEOUT",
        "keepalive_timeout_s",
        _non_negative_float,
        "seconds a connection with no request in progress stays open; only a complete request resets "
        "the clock (default 75)",
    ),
    Option(
        "--max-header-bytes",
        "MODELSHIP_MAX_HEADER_BYTES",
        "max_header_bytes",
        _positive_int,
        "largest request line plus headers, counted as bytes arrive; larger ones get 431 (default 64 KiB)",
    ),
    Option(
        "--header-timeout",
        "MODELSHIP_HEADER_TIMEOUT",
        "header_timeout_s",
        _positive_float,
        "seconds for a request's headers to arrive, from its first byte (a new connection: from when it "
        "opened); then 408 and close (default 10)",
    ),
    Option(
        "--body-timeout",
        "MODELSHIP_BODY_TIMEOUT",
        "body_timeout_s",
        _positive_float,
        "seconds for a request body to arrive after its headers, and for a client to take its answers "
        "once the socket buffer is full; then 408 (or a reset) and close (default 30)",
    ),
    Option(
        "--max-pipelined",
        "MODELSHIP_MAX_PIPELINED",
        "max_pipelined",
        _positive_int,
        "requests a connection may have waiting for their answers before the server stops reading it "
        "(default 64)",
    ),
    Option(
        "--max-connections",
        "MODELSHIP_MAX_CONNECTIONS",
        "max_connections",
        _positive_int,
        "open connections per worker; new ones beyond it get 503 and are closed (default 1024)",
    ),
    Option(
        "--access-log",
        "MODELSHIP_ACCESS_LOG",
        "access_log",
        _bool,
        "log every request (off by default: it costs throughput)",
        is_switch=True,
    ),
    Option("--log-level", "MODELSHIP_LOG_LEVEL", "log_level", _log_level, "debug, info, warning or error"),
)

_DEFAULTS: Mapping[str, Any] = {
    field.name: field.default
    for field in dataclasses.fields(Settings)
    if field.default is not dataclasses.MISSING
}


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus an error; a start-up failure here is always one line."""

    def error(self, message: str) -> Any:
        raise StartupError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="modelship-server",
        description="Serve one scikit-learn model over the Open Inference Protocol (KServe V2) and KServe V1.",
        epilog="Every option can also be set with the environment variable shown in brackets.",
    )
    parser.add_argument("--version", action="version", version=f"modelship-server {__version__}")
    for option in OPTIONS:
        help_text = f"{option.help} [{option.env}]"
        if option.is_switch:
            parser.add_argument(
                option.flag,
                dest=option.field,
                action="store_const",
                const="true",
                default=None,
                help=help_text,
            )
        elif option.repeatable:
            parser.add_argument(
                option.flag, dest=option.field, action="append", default=None, metavar="NAME", help=help_text
            )
        else:
            parser.add_argument(option.flag, dest=option.field, default=None, help=help_text)
    return parser


def parse_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags, then environment variables, then defaults; StartupError names a bad value."""
    environ = os.environ if environ is None else environ
    namespace = _build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    for option in OPTIONS:
        given = getattr(namespace, option.field)
        source = option.flag
        if isinstance(given, list):
            given = ",".join(given)
        if given is None and environ.get(option.env, "").strip():
            given, source = environ[option.env], option.env
        if given is None:
            if option.required:
                raise StartupError(f"{option.flag} is required (or set {option.env})")
            if option.field == "workers":
                values["workers"] = usable_cpus()
            continue
        try:
            values[option.field] = option.parse(given)
        except ValueError as error:
            raise StartupError(f"invalid {source} {given!r}: {error}") from None
    if not values["model_uri"].strip():
        raise StartupError("--model-uri must not be empty")
    for field in ("model_name", "model_version"):
        # Both appear in URL paths and in a response header: no room for spaces, slashes or line breaks.
        if not _NAME.fullmatch(values[field]):
            raise StartupError(
                f"invalid --{field.replace('_', '-')} {values[field]!r}: use 1 to 253 letters, "
                "digits and . _ ~ + -, starting with a letter or digit"
            )
    return Settings(**{**_DEFAULTS, **values})


# Without a CPU limit a pod sees every CPU of its node; one worker each (each holding a copy of the model)
# would be too many on a large node, so 'auto' stops here unless a limit says otherwise.
AUTO_WORKERS_WITHOUT_LIMIT = 4


def usable_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota (a pod's CPU limit), or
    by AUTO_WORKERS_WITHOUT_LIMIT when there is no quota."""
    count = len(os.sched_getaffinity(0))
    quota_cpus = None
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as cpu_max:
            quota, period = cpu_max.read().split()
        if quota != "max":
            quota_cpus = max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, min(count, quota_cpus if quota_cpus is not None else AUTO_WORKERS_WITHOUT_LIMIT))
