"""The only module that knows kopf: watches, start-up settings, and hand-off to the controller.

Every handler is an event handler. Kopf keeps no per-object state for those (no finalizers, no
progress annotations), so all rollout state lives in the ModelDeployment's status and the
operator can be killed at any moment.

Kopf watches ModelDeployments only. The children (Deployments, Pods, Services, HTTPRoutes) are
watched by the controller's own informers: kopf's watches would stream every pod in scope and
filter by label in the operator, where the informers ask the apiserver for labelled ones only.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from modelship import api
from modelship.controller import Controller
from modelship.settings import Settings
from modelship.watch_probe import watch_opens

log = logging.getLogger(__name__)


def controller_of(memo: Any) -> Controller:
    controller: Controller = memo.controller
    return controller


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    ours: Settings = memo.settings
    # No finalizer, progress or diff-base storage names: event handlers never write any of them
    # (and kopf's thread pool runs sync handlers only; these are async, and the Controller's own
    # pool of --max-workers threads runs the API calls).
    settings.watching.server_timeout = ours.watch_server_timeout
    settings.watching.client_timeout = ours.watch_client_timeout
    settings.watching.connect_timeout = ours.watch_connect_timeout
    # One operator replica (the chart uses the Recreate strategy): no peering objects needed.
    settings.peering.standalone = True
    # Namespaces are named explicitly or the operator is cluster-wide: no need to list CRDs or
    # namespaces, which keeps the RBAC small.
    settings.scanning.disabled = True
    # The operator posts its own Events on each transition; kopf's are noise at INFO.
    settings.posting.level = logging.WARNING


@kopf.on.startup()
async def start_informers(memo: Any, **_: Any) -> None:
    # Async, so it runs on the operator's event loop: the informers deliver into it.
    controller_of(memo).start()


@kopf.on.cleanup()
def stop_informers(memo: Any, **_: Any) -> None:
    controller_of(memo).stop()


# How long the liveness probe waits for the apiserver to answer a new watch (the chart's probe
# gives the endpoint 5 s).
WATCH_PROBE_SECONDS = 3.0


@kopf.on.probe(id="watch", errors=kopf.ErrorsMode.PERMANENT)
async def watch_can_be_opened(memo: Any, **_: Any) -> str:
    """The liveness endpoint fails (HTTP 500) while a watch cannot be opened (watch_probe.py)."""
    ours: Settings = memo.settings
    api_client = controller_of(memo).cluster.api_client
    namespace = ours.namespaces[0] if ours.namespaces else None
    try:
        await asyncio.wait_for(
            asyncio.to_thread(watch_opens, api_client, namespace, WATCH_PROBE_SECONDS),
            WATCH_PROBE_SECONDS + 1,
        )
    except Exception as exc:
        raise kopf.PermanentError(f"cannot open a watch: {exc!r}"[:300]) from None
    return "ok"


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL)
async def on_model_deployment(
    event: kopf.RawEvent, body: kopf.Body, name: str, namespace: str | None, memo: Any, **_: Any
) -> None:
    if namespace is None:  # a namespaced resource always has one; this satisfies the type
        return
    controller = controller_of(memo)
    if event.get("type") == "DELETED":
        controller.forget(namespace, name)
        return
    controller.seen(namespace, name, dict(event.get("object") or body))
    await controller.request(namespace, name)
