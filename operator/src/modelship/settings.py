"""The operator's settings: set once at start-up from the command line, passed to handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from modelship.children import DEFAULT_SERVING_IMAGE


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = field(default_factory=tuple)  # empty: every namespace
    default_serving_image: str = DEFAULT_SERVING_IMAGE
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    metrics_port: int = 8080  # also serves /healthz
    liveness_port: int = 8081
    # Watch requests: the apiserver ends a watch after server_timeout; the client gives up after
    # client_timeout, so a silently dropped connection is noticed (kopf's defaults never time out).
    watch_server_timeout: int = 300
    watch_client_timeout: int = 330
    watch_connect_timeout: int = 30
    max_workers: int = 20  # threads for Kubernetes API calls: at most this many in flight at once
    # Client-side flow control, as client-go's QPS/Burst: bounds what a thousand objects changing at
    # once can ask of the apiserver (controller-runtime defaults to 20/30; ours sends fewer requests
    # per object than most, and writes come in bursts at a rollout's steps).
    kube_api_qps: float = 50.0
    kube_api_burst: int = 100
    # Where canary analyses query metrics. Empty: analyses measure nothing and hold the rollout with
    # an Error saying how to set it (the operator still runs rollouts without analysis steps).
    prometheus_url: str = ""

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces
