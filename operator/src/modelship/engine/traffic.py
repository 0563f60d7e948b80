"""Giving the canary a weight: one interface, two ways (the Ready-pod ratio, a Gateway API route).

A router says how many pods each version runs for a weight, which version the Service selects,
what the HTTPRoute carries, and whether the weight already holds. It decides; it writes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from modelship import api, children
from modelship.engine.context import RolloutContext


def canary_pods(replicas: int, weight: int) -> int:
    """How many of `replicas` pods give the canary `weight` percent of Ready pods: at least one
    for any weight above zero, so a small canary still sees traffic."""
    if weight <= 0 or replicas <= 0:
        return 0
    if weight >= 100:
        return replicas
    return min(replicas, max(1, math.floor(replicas * weight / 100 + 0.5)))


def hash_of(obj: dict[str, Any]) -> str | None:
    annotations: dict[str, str] = obj["metadata"].get("annotations", {})
    return annotations.get(children.ANNOTATION_SPEC_HASH)


@dataclass(frozen=True)
class Sizing:
    replicas: dict[str, int]
    serving_version: str | None  # None: the Service selects every version's Ready pods
    route_weight: int
    holds: bool  # the weight is in effect and every pod it needs is Ready


class Router(Protocol):
    def size(self, ctx: RolloutContext, status: api.ModelDeploymentStatus, weight: int) -> Sizing: ...


class ReadyPodRatio:
    """Without a router the weight is the canary's share of Ready pods behind the Service. Stable
    shrinks only as canary pods become Ready, and the surge bounds how many pods run above
    spec.replicas meanwhile."""

    def size(self, ctx: RolloutContext, status: api.ModelDeploymentStatus, weight: int) -> Sizing:
        n, target = ctx.n, ctx.target
        stable = status.stable_version or ""
        canary_want = canary_pods(n, weight)
        stable_want = n - canary_want
        canary_ready = min(ctx.ready(target), canary_want)
        stable_now = max(stable_want, n - canary_ready)
        percent = ctx.spec.rollout.canary.max_surge_percent if ctx.spec.rollout.canary else 25
        surge = max(1, math.ceil(n * percent / 100))
        canary_now = max(min(canary_want, n + surge - stable_now), canary_ready)
        stable_state = ctx.state(stable)
        stable_done = (stable_want == 0 and stable_state is None) or (
            stable_state is not None and stable_state.replicas == stable_want
        )
        return Sizing(
            replicas={stable: stable_now, target: canary_now},
            serving_version=None if canary_want > 0 else stable,
            route_weight=0,
            holds=ctx.fully_ready(target, canary_want) and stable_done and canary_now == canary_want,
        )


class GatewayRoute:
    """The HTTPRoute splits traffic exactly, so stable keeps its full size and the canary runs
    just enough pods for its share. The weight moves only once those pods are Ready, and holds
    once the observed route carries it."""

    def __init__(self, routing: api.GatewayAPIRouting) -> None:
        self.routing = routing

    def size(self, ctx: RolloutContext, status: api.ModelDeploymentStatus, weight: int) -> Sizing:
        stable = status.stable_version or ""
        canary_want = canary_pods(ctx.n, weight)
        replicas = {stable: ctx.n, ctx.target: canary_want}
        if not ctx.fully_ready(ctx.target, canary_want):
            # Keep the weight the route already carries: no flapping while pods come up.
            return Sizing(replicas, stable, _achieved_weight(ctx, status), holds=False)
        route = children.build_http_route(ctx.md, self.routing, weight)
        observed = ctx.observed.hashes.get(f"HTTPRoute/{ctx.md.metadata.name}")
        return Sizing(replicas, stable, weight, holds=observed == hash_of(route))


def _achieved_weight(ctx: RolloutContext, status: api.ModelDeploymentStatus) -> int:
    """The weight of the last setWeight step already passed (weights never decrease)."""
    index = status.current_step_index or 0
    passed = [s.set_weight for s in ctx.steps[:index] if s.set_weight is not None]
    return max(passed, default=0)


def router_for(ctx: RolloutContext) -> Router:
    return GatewayRoute(ctx.routing) if ctx.routing is not None else ReadyPodRatio()
