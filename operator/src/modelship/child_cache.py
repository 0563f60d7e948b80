"""The operator's in-memory view of its children: Deployments, Pods, Services and HTTPRoutes.

Informers (one per kind and watched namespace, or one per kind cluster-wide) list and watch only
objects labelled `modelship.dev/model-deployment`, and every change lands here, on the event loop's
thread, indexed by the ModelDeployment it belongs to. A reconcile reads its children from here: no
LIST and no GET per pass. Each change also asks the controller to look at the owner again.

Until every informer covering a namespace has delivered its first list, `observe()` answers None
and `wait_synced()` blocks: an empty cache at start-up would look like "no Deployments" and a
decision made from it could scale a serving version to zero.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from kubernetes import client

from modelship import api, children
from modelship.informer import Informer, Resource, WatchTimeouts
from modelship.observation import Observed, essentials, observe_children

Obj = dict[str, Any]
Owner = tuple[str, str]  # (namespace, ModelDeployment name)
OnChange = Callable[[str, str], None]

DEPLOYMENTS = Resource("Deployment", "apps", "v1", "deployments")
PODS = Resource("Pod", "", "v1", "pods")
SERVICES = Resource("Service", "", "v1", "services")
HTTPROUTES = Resource("HTTPRoute", "gateway.networking.k8s.io", "v1", "httproutes")
KINDS = (DEPLOYMENTS, PODS, SERVICES, HTTPROUTES)
SELECTOR = children.LABEL_MODEL_DEPLOYMENT  # "has the label": the server filters, not us


class ChildCache:
    """Call its methods on the event loop's thread only (`ThreadSafeSink` gets informers there)."""

    def __init__(self, namespaces: Iterable[str], on_change: OnChange) -> None:
        # Empty: one cluster-wide scope (None).
        self.scopes: tuple[str | None, ...] = tuple(namespaces) or (None,)
        self.on_change = on_change
        self._objects: dict[str, dict[Owner, dict[str, Obj]]] = {r.kind: {} for r in KINDS}
        self._listed: set[tuple[str, str | None]] = set()
        self._synced_events: dict[str | None, asyncio.Event] = {}
        self._informers: list[Informer] = []

    # -- running the informers -----------------------------------------------------------------
    def start(self, api_client: client.ApiClient, timeouts: WatchTimeouts) -> None:
        sink = ThreadSafeSink(self, asyncio.get_running_loop())
        for scope in self.scopes:
            for resource in KINDS:
                informer = Informer(
                    api_client,
                    resource,
                    scope,
                    SELECTOR,
                    sink,
                    transform=_slimmer(resource.kind),
                    timeouts=timeouts,
                )
                self._informers.append(informer)
                informer.start()

    def stop(self) -> None:
        for informer in self._informers:
            informer.stop()

    # -- reading -------------------------------------------------------------------------------
    def synced(self, namespace: str) -> bool:
        scope = self._scope_of(namespace)
        return all((r.kind, scope) in self._listed for r in KINDS)

    async def wait_synced(self, namespace: str) -> None:
        if self.synced(namespace):
            return
        scope = self._scope_of(namespace)
        await self._synced_events.setdefault(scope, asyncio.Event()).wait()

    def observe(self, md: api.ModelDeployment) -> Observed | None:
        """What `Cluster.observe` used to LIST, from memory; None until the cache is synced."""
        ns, name, uid = md.metadata.namespace, md.metadata.name, md.metadata.uid
        if not self.synced(ns):
            return None

        def owned(kind: str) -> list[Obj]:
            found = self._objects[kind].get((ns, name), {}).values()
            return [o for o in found if any(r.get("uid") == uid for r in o["metadata"]["ownerReferences"])]

        pods = list(self._objects[PODS.kind].get((ns, name), {}).values())
        return observe_children(owned(DEPLOYMENTS.kind), pods, owned(SERVICES.kind) + owned(HTTPROUTES.kind))

    def size(self) -> dict[str, int]:
        return {
            kind: sum(len(objs) for objs in by_owner.values()) for kind, by_owner in self._objects.items()
        }

    # -- the informers' sink (on the loop's thread) ----------------------------------------------
    def replace(self, resource: Resource, namespace: str | None, items: list[Obj]) -> None:
        by_owner = self._objects[resource.kind]
        fresh: dict[Owner, dict[str, Obj]] = {}
        for obj in items:
            owner = _owner(obj)
            if owner:
                fresh.setdefault(owner, {})[obj["metadata"]["name"]] = obj
        in_scope = [o for o in by_owner if namespace is None or o[0] == namespace]
        changed = {o for o in in_scope if _versions(by_owner.get(o)) != _versions(fresh.get(o))}
        changed |= {o for o in fresh if _versions(by_owner.get(o)) != _versions(fresh.get(o))}
        for owner in in_scope:
            del by_owner[owner]
        by_owner.update(fresh)
        self._mark_listed(resource, namespace)
        for owner in changed:
            self.on_change(*owner)

    def upsert(self, resource: Resource, obj: Obj) -> None:
        owner = _owner(obj)
        if owner:
            objs = self._objects[resource.kind].setdefault(owner, {})
            old = objs.get(obj["metadata"]["name"])
            objs[obj["metadata"]["name"]] = obj
            # A pass reads only what `essentials` kept: an update that changed none of it (a pod's
            # conditions, a Deployment's availableReplicas) cannot change a decision, and each pod
            # and Deployment gets several of those on its way to Ready.
            if old is None or _content(old) != _content(obj):
                self.on_change(*owner)

    def delete(self, resource: Resource, obj: Obj) -> None:
        owner = _owner(obj)
        if not owner:
            return
        objs = self._objects[resource.kind].get(owner, {})
        objs.pop(obj["metadata"]["name"], None)
        if not objs:
            self._objects[resource.kind].pop(owner, None)
        self.on_change(*owner)

    def absent(self, resource: Resource, namespace: str | None) -> None:
        self._mark_listed(resource, namespace)

    def _mark_listed(self, resource: Resource, namespace: str | None) -> None:
        self._listed.add((resource.kind, namespace))
        if all((r.kind, namespace) in self._listed for r in KINDS):
            self._synced_events.setdefault(namespace, asyncio.Event()).set()

    def _scope_of(self, namespace: str) -> str | None:
        return namespace if namespace in self.scopes else None


class ThreadSafeSink:
    """Hands what an informer's thread receives to the cache on the event loop's thread, in order."""

    def __init__(self, cache: ChildCache, loop: asyncio.AbstractEventLoop) -> None:
        self.cache = cache
        self.loop = loop

    def replace(self, resource: Resource, namespace: str | None, items: list[Obj]) -> None:
        self.loop.call_soon_threadsafe(self.cache.replace, resource, namespace, items)

    def upsert(self, resource: Resource, obj: Obj) -> None:
        self.loop.call_soon_threadsafe(self.cache.upsert, resource, obj)

    def delete(self, resource: Resource, obj: Obj) -> None:
        self.loop.call_soon_threadsafe(self.cache.delete, resource, obj)

    def absent(self, resource: Resource, namespace: str | None) -> None:
        self.loop.call_soon_threadsafe(self.cache.absent, resource, namespace)


def _slimmer(kind: str) -> Callable[[Obj], Obj]:
    def slim(obj: Obj) -> Obj:
        return essentials(kind, obj)

    return slim


def _owner(obj: Obj) -> Owner | None:
    meta = obj.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SELECTOR)
    return (meta.get("namespace") or "", name) if name else None


def _content(obj: Obj) -> Obj:
    """The object without its resourceVersion, which changes on every write."""
    meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return {**obj, "metadata": meta}


def _versions(objs: dict[str, Obj] | None) -> dict[str, str]:
    return {name: o["metadata"].get("resourceVersion", "") for name, o in (objs or {}).items()}
