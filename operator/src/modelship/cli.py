"""`modelship run`: the operator's entry point, for a pod and for a laptop alike."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from modelship.children import DEFAULT_SERVING_IMAGE
from modelship.settings import Settings


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MODELSHIP_{name}", default)


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _http_url(text: str) -> str:
    if text and not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"not an http:// or https:// URL: {text!r}")
    return text


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="modelship", description="Modelship: ships ML models to Kubernetes."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator against the current kubeconfig (or in-cluster)")
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[n for n in _env("NAMESPACES", "").split(",") if n],
        help="watch this namespace (repeatable; env MODELSHIP_NAMESPACES, comma-separated). "
        "Default: every namespace.",
    )
    run.add_argument("--serving-image", default=_env("SERVING_IMAGE", DEFAULT_SERVING_IMAGE))
    run.add_argument("--log-format", choices=["text", "json"], default=_env("LOG_FORMAT", "text"))
    run.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"))
    run.add_argument("--metrics-port", type=int, default=int(_env("METRICS_PORT", "8080")))
    run.add_argument("--liveness-port", type=int, default=int(_env("LIVENESS_PORT", "8081")))
    run.add_argument("--watch-server-timeout", type=int, default=int(_env("WATCH_SERVER_TIMEOUT", "300")))
    run.add_argument("--watch-client-timeout", type=int, default=int(_env("WATCH_CLIENT_TIMEOUT", "330")))
    run.add_argument(
        "--max-workers",
        type=_at_least_one,
        default=_env("MAX_WORKERS", "20"),
        help="how many Kubernetes API calls the operator makes at once, over all objects "
        "(env MODELSHIP_MAX_WORKERS)",
    )
    run.add_argument(
        "--prometheus-url",
        type=_http_url,
        default=_env("PROMETHEUS_URL", ""),
        help="the Prometheus that canary analyses query, e.g. http://prometheus.monitoring:9090 "
        "(env MODELSHIP_PROMETHEUS_URL). Unset: analyses hold the rollout with an error.",
    )
    run.add_argument(
        "--kube-api-qps",
        type=_positive,
        default=float(_env("KUBE_API_QPS", "50")),
        help="Kubernetes API requests a second the operator may send, after a burst (env MODELSHIP_KUBE_API_QPS)",
    )
    run.add_argument(
        "--kube-api-burst",
        type=_at_least_one,
        default=_env("KUBE_API_BURST", "100"),
        help="requests the operator may send at once before --kube-api-qps applies (env MODELSHIP_KUBE_API_BURST)",
    )
    args = parser.parse_args(argv)
    return Settings(
        namespaces=tuple(dict.fromkeys(args.namespace)),
        default_serving_image=args.serving_image,
        log_format=args.log_format,
        log_level=args.log_level.upper(),
        metrics_port=args.metrics_port,
        liveness_port=args.liveness_port,
        watch_server_timeout=args.watch_server_timeout,
        watch_client_timeout=args.watch_client_timeout,
        max_workers=args.max_workers,
        kube_api_qps=args.kube_api_qps,
        kube_api_burst=args.kube_api_burst,
        prometheus_url=args.prometheus_url,
    )


def run(settings: Settings) -> None:
    # Imported here so `modelship --help` stays fast and free of kopf's import-time registry.
    import kopf
    from prometheus_client import start_http_server

    from modelship import handlers  # noqa: F401  (registers the handlers)
    from modelship.cluster import Cluster, load_kube_config, make_api_client
    from modelship.controller import Controller

    kopf.configure(
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.PLAIN,
        verbose=settings.log_level == "DEBUG",
    )
    logging.getLogger().setLevel(settings.log_level)
    # kopf logs every handler call at INFO; our own log lines say what changed.
    logging.getLogger("kopf.objects").setLevel(max(logging.WARNING, logging.getLogger().level))
    load_kube_config()
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    controller = Controller(
        Cluster(make_api_client(settings.kube_api_qps, settings.kube_api_burst)), settings
    )
    kopf.run(
        standalone=True,
        clusterwide=settings.clusterwide,
        namespaces=list(settings.namespaces),
        liveness_endpoint=f"http://0.0.0.0:{settings.liveness_port}/healthz"
        if settings.liveness_port
        else None,
        memo=kopf.Memo(settings=settings, controller=controller),
    )


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_args(argv)
    run(settings)
    sys.exit(0)


if __name__ == "__main__":
    main()
