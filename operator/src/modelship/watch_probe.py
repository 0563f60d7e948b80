"""Whether a watch on ModelDeployments can be opened now: the operator's liveness question.

kopf re-establishes a silent or broken watch by itself (a watch that delivers nothing is dropped
after `--watch-client-timeout` seconds at most, or kopf's inactivity timeout of 70 s) but swallows
the errors while it cannot; a liveness endpoint that asks this question lets a kubelet restart an
operator cut off for good.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from modelship import api


def watch_opens(api_client: client.ApiClient, namespace: str | None, timeout: float) -> None:
    """Opens a watch on ModelDeployments (where the operator watches them) and closes it as soon
    as the apiserver has answered; raises when no answer comes within `timeout` seconds."""
    # Loosely typed: the client's signatures differ between the two scopes, and the watch variant
    # returns the raw response.
    custom: Any = client.CustomObjectsApi(api_client)
    if namespace:
        scope: tuple[str, ...] = (api.GROUP, api.VERSION, namespace, api.PLURAL)
        lister = custom.list_namespaced_custom_object
    else:
        scope, lister = (api.GROUP, api.VERSION, api.PLURAL), custom.list_cluster_custom_object
    deadline = {"_request_timeout": (timeout, timeout)}
    listed = lister(*scope, limit=1, **deadline)
    # From the list's version: only changes from now on, not every object again.
    response = lister(
        *scope,
        watch=True,
        resource_version=listed["metadata"]["resourceVersion"],
        timeout_seconds=1,
        _preload_content=False,
        **deadline,
    )
    response.close()  # the status line and headers came: the watch is established
