"""The pure core: from (spec, status, observed children, now) to the desired children and next status.

Nothing here does I/O. Every decision is made from the object's status and what was observed, so
an operator that restarts at any point picks up exactly where the last one stopped: the step
index, when the step began, which version failed, and which user actions were already handled
all live in status.

A rollout walks a fixed pipeline each reconcile, each part returning early when it is not done:
user actions, failure checks, the canary steps, then promotion.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from modelship import api, children, conditions
from modelship.api import Outcome, Phase, Revision
from modelship.observation import Observed, VersionState

ACTION_PREFIX = f"{children.PREFIX}/"
# Annotation-driven actions (set by `kubectl modelship`). Each holds a token; the operator acts
# when the token differs from the last one it handled (recorded in status.handledActions), so
# an action happens once, and nothing the user keeps in git is ever written.
ACTIONS = ("promote", "promote-full", "abort", "retry")
ANNOTATION_PAUSED = f"{children.PREFIX}/paused"

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass
class Plan:
    """What to write. `apply` holds whole objects whose content changed (server-side apply);
    `scale` holds Deployments whose content is unchanged but whose replica count is not."""

    apply: list[dict[str, Any]] = field(default_factory=list)
    scale: dict[str, int] = field(default_factory=dict)
    delete: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    status: api.ModelDeploymentStatus = field(default_factory=api.ModelDeploymentStatus)
    events: list[Event] = field(default_factory=list)
    wake_at: datetime | None = None


def parse_duration(text: str) -> timedelta:
    """'1h30m', '90s', '250ms' -> timedelta (the CRD pattern guarantees the shape)."""
    seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def steps_hash(steps: Iterable[api.Step]) -> str:
    return children.content_hash([s.wire() for s in steps])


def canary_pods(replicas: int, weight: int) -> int:
    """How many of `replicas` pods give the canary `weight` percent of Ready pods: at least one
    for any weight above zero, so a small canary still sees traffic."""
    if weight <= 0 or replicas <= 0:
        return 0
    if weight >= 100:
        return replicas
    return min(replicas, max(1, math.floor(replicas * weight / 100 + 0.5)))


class _Reconcile:
    def __init__(self, md: api.ModelDeployment, observed: Observed, now: datetime, default_image: str):
        self.md = md
        self.spec = md.spec
        self.obs = observed
        self.now = now
        self.default_image = default_image
        self.status = md.status.model_copy(deep=True)
        self.target = md.spec.model.version
        self.events: list[Event] = []
        self.wake: list[datetime] = []
        self.replicas: dict[str, int] = {}
        self.serving_version: str | None = None  # None: every version's Ready pods take traffic
        self.route_weight = 0  # the canary's share in the HTTPRoute, with Gateway API routing
        self.phase = Phase.PROGRESSING
        self.reason = "RolloutInProgress"
        self.message = ""
        self.actions: set[str] = set()
        self.used: set[str] = set()

    # -- helpers -------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.spec.replicas

    @property
    def deadline(self) -> timedelta:
        return timedelta(seconds=self.spec.rollout.progress_deadline_seconds)

    @property
    def steps(self) -> list[api.Step]:
        canary = self.spec.rollout.canary
        return list(canary.steps) if canary else []

    @property
    def routing(self) -> api.GatewayAPIRouting | None:
        canary = self.spec.rollout.canary
        return canary.traffic_routing.gateway_api if canary and canary.traffic_routing else None

    @property
    def paused_by_user(self) -> bool:
        return self.md.metadata.annotations.get(ANNOTATION_PAUSED, "").lower() == "true"

    def state(self, version: str | None) -> VersionState | None:
        return self.obs.versions.get(version or "")

    def fully_ready(self, version: str, want: int) -> bool:
        state = self.state(version)
        if want == 0:
            return state is None or state.replicas == 0
        return state is not None and state.fully_ready(want)

    def take_action(self, action: str) -> bool:
        """True once for a new `action` annotation: an action acts at most once."""
        if action in self.actions and action not in self.used:
            self.used.add(action)
            return True
        return False

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event("Warning" if warning else "Normal", reason, message))

    def revision_of(self, version: str | None) -> Revision | None:
        return next((r for r in reversed(self.status.revisions) if r.version == version), None)

    def finish_revision(
        self, version: str | None, outcome: Outcome, message: str | None = None, reason: str | None = None
    ) -> None:
        rev = self.revision_of(version)
        if rev is None:
            return
        # A running revision ends once; a promoted one can later only be superseded.
        if rev.outcome == Outcome.PROGRESSING or (outcome, rev.outcome) == (
            Outcome.SUPERSEDED,
            Outcome.PROMOTED,
        ):
            rev.outcome = outcome
            rev.finished_at = self.now
            if message:
                rev.message = message[:1024]
            if reason:
                rev.reason = reason

    def new_revision(self) -> None:
        number = max((r.revision for r in self.status.revisions), default=0) + 1
        model = self.spec.model
        self.status.revisions.append(
            Revision(
                revision=number,
                version=model.version,
                uri=model.uri,
                format=model.format,
                sha256=model.sha256,
                deployed_at=self.now,
            )
        )

    def clear_rollout(self) -> None:
        s = self.status
        s.canary_version = s.canary_weight = s.current_step_index = None
        s.steps_hash = None
        s.progress_started_at = s.step_started_at = None

    # -- the pipeline --------------------------------------------------------------------------
    def run(self) -> Plan:
        self.read_actions()
        if self.status.failed_version and self.status.failed_version != self.target:
            self.status.failed_version = None  # the spec moved on; that failure no longer applies
        if self.status.stable_version is None:
            self.first_rollout()
        elif self.target == self.status.stable_version:
            self.steady()
        elif self.target == self.status.failed_version and "retry" not in self.actions:
            self.hold_failed()
        else:
            self.progress()
        for action in sorted(self.actions - self.used):
            # Recorded as handled all the same: a stale token must never fire later by surprise.
            self.event(
                "ActionIgnored",
                f"modelship.dev/{action} ignored: nothing to {action} now ({self.phase}: {self.message})",
                warning=True,
            )
        return self.plan()

    def read_actions(self) -> None:
        handled = self.status.handled_actions
        for action in ACTIONS:
            token = self.md.metadata.annotations.get(ACTION_PREFIX + action)
            if token and handled.get(action) != token:
                self.actions.add(action)
                handled[action] = token

    def first_rollout(self) -> None:
        """Nothing serves yet: run the version at full size; it becomes stable once Ready. There
        is nothing to roll back to, so a failure leaves it running and reports Degraded."""
        latest = self.status.revisions[-1] if self.status.revisions else None
        if latest is None or latest.version != self.target or latest.outcome != Outcome.PROGRESSING:
            if latest is not None:
                self.finish_revision(latest.version, Outcome.SUPERSEDED, "replaced before it became Ready")
            self.new_revision()
            self.status.progress_started_at = self.now
            self.event("RolloutStarted", f"deploying version {self.target}")
        self.replicas[self.target] = self.n
        self.serving_version = self.target
        state = self.state(self.target)
        if self.fully_ready(self.target, self.n):
            self.status.stable_version = self.target
            self.finish_revision(self.target, Outcome.PROMOTED)
            self.clear_rollout()
            self.event("VersionPromoted", f"version {self.target} is Ready and serving")
            self.healthy()
            return
        if state is not None and state.crash_looping:
            self.degraded(
                "CrashLooping", f"version {self.target}: {state.crash_looping} pod(s) crash-looping"
            )
        elif late := self.overdue(self.target, self.n, self.status.progress_started_at or self.now):
            self.degraded("ProgressDeadlineExceeded", late)
        else:
            self.progressing(
                f"deploying version {self.target}: {self.obs.ready(self.target)}/{self.n} pods Ready"
            )

    def steady(self) -> None:
        stable = self.target
        if self.status.canary_version:
            # The spec went back to the stable version mid-rollout: the GitOps way to roll back.
            canary = self.status.canary_version
            self.finish_revision(canary, Outcome.ROLLED_BACK, f"spec.model.version set back to {stable}")
            self.event("RolledBack", f"rollout of version {canary} stopped: spec is back on version {stable}")
            self.clear_rollout()
        self.replicas[stable] = self.n
        self.serving_version = stable
        if self.fully_ready(stable, self.n):
            self.status.progress_started_at = None
            self.healthy()
            return
        # Scaling, a template change, or pods lost at rest: give it the progress deadline, then
        # say Degraded rather than Progressing forever.
        started = self.status.progress_started_at = self.status.progress_started_at or self.now
        if late := self.overdue(stable, self.n, started):
            self.degraded("ProgressDeadlineExceeded", late)
        else:
            self.progressing(f"version {stable}: {self.obs.ready(stable)}/{self.n} pods Ready")

    def hold_failed(self) -> None:
        stable = self.status.stable_version
        assert stable is not None
        self.replicas[stable] = self.n
        self.replicas[self.target] = 0
        self.serving_version = stable
        rev = self.revision_of(self.target)
        why = rev.message if rev and rev.message else "the rollout failed"
        verb = "aborted" if rev and rev.outcome == Outcome.ABORTED else "rolled back"
        self.degraded(
            rev.reason if rev and rev.reason else "RolloutAborted",
            f"version {self.target} {verb}: {why}; version {stable} keeps serving. "
            "Change spec.model or run `kubectl modelship retry` to try again",
        )

    def progress(self) -> None:
        stable = self.status.stable_version
        assert stable is not None
        if self.status.failed_version == self.target and self.take_action("retry"):
            self.status.failed_version = None
            self.event("RetryRequested", f"retrying the rollout of version {self.target}")
        if self.status.canary_version != self.target:
            self.start_rollout()
        if self.take_action("abort"):
            self.abort("AbortedByUser", "aborted by user", Outcome.ABORTED)
            return
        state = self.state(self.target)
        if state is not None and state.crash_looping:
            self.abort(
                "CanaryCrashLooping",
                f"{state.crash_looping} pod(s) of version {self.target} are crash-looping",
                Outcome.ROLLED_BACK,
            )
            return
        steps = [] if self.is_rollback() else self.steps
        self.check_steps_edited(steps)
        if self.take_action("promote-full"):
            self.enter_step(len(steps), steps, "promoted in full by user")
        self.walk_steps(steps)

    def is_rollback(self) -> bool:
        """Going back to a version that served before skips the steps: it is already proven."""
        earlier = self.status.revisions[:-1]
        kept = self.state(self.target) is not None
        return kept and any(
            r.version == self.target and r.outcome in (Outcome.PROMOTED, Outcome.SUPERSEDED) for r in earlier
        )

    def start_rollout(self) -> None:
        previous = self.status.canary_version
        if previous:
            self.finish_revision(previous, Outcome.SUPERSEDED, f"replaced by version {self.target}")
            self.event(
                "RolloutSuperseded", f"rollout of version {previous} replaced by version {self.target}"
            )
        self.new_revision()
        s = self.status
        s.canary_version = self.target
        s.canary_weight = 0
        s.current_step_index = 0
        s.steps_hash = steps_hash(self.steps)
        s.progress_started_at = s.step_started_at = self.now
        kind = "rollback" if self.is_rollback() else "rollout"
        self.event(
            "RolloutStarted", f"{kind} of version {self.target} started; version {s.stable_version} serves"
        )

    def check_steps_edited(self, steps: list[api.Step]) -> None:
        new_hash = steps_hash(self.steps)
        if self.status.steps_hash == new_hash:
            return
        # Steps edited mid-rollout: never take traffic away abruptly; resume at the first new
        # step whose weight is at least the current one.
        weight = self.status.canary_weight or 0
        index = next(
            (i for i, s in enumerate(steps) if s.set_weight is not None and s.set_weight >= weight),
            len(steps),
        )
        self.status.steps_hash = new_hash
        self.status.current_step_index = index
        self.status.step_started_at = self.now
        self.event("StepsChanged", f"canary steps changed mid-rollout; continuing at step {index + 1}")

    def enter_step(self, index: int, steps: list[api.Step], why: str = "") -> None:
        self.status.current_step_index = index
        self.status.step_started_at = self.now
        if index < len(steps):
            self.event("StepStarted", f"step {index + 1}/{len(steps)}: {describe(steps[index])}")
        elif steps:
            self.event("StepsCompleted", why or "all canary steps completed; promoting")

    def walk_steps(self, steps: list[api.Step]) -> None:
        for _ in range(len(steps) + 1):
            index = self.status.current_step_index or 0
            if index >= len(steps):
                self.finish(steps)
                return
            step = steps[index]
            if step.set_weight is not None:
                self.status.canary_weight = step.set_weight
                if not self.hold_weight(step.set_weight):
                    return
            else:
                self.size_for_weight(self.status.canary_weight or 0)
                indefinite = step.pause is not None and step.pause.duration is None
                if indefinite and self.take_action("promote"):
                    self.enter_step(index + 1, steps)  # an explicit promote wins over a user pause
                    continue
                if not self.pause_over(step):
                    return
            if self.paused_by_user:
                self.paused("paused by user; run `kubectl modelship resume` to continue")
                return
            self.enter_step(index + 1, steps)

    def size_for_weight(self, weight: int) -> bool:
        """Sizes stable and canary for `weight`; True once the weight holds."""
        if self.routing is not None:
            return self.size_for_route(self.routing, weight)
        # Without a router the weight is the canary's share of Ready pods behind the Service.
        # Stable is scaled down only as canary pods become Ready, and the surge bounds how many
        # pods run above spec.replicas meanwhile.
        stable = self.status.stable_version or ""
        canary_want = canary_pods(self.n, weight)
        stable_want = self.n - canary_want
        canary_ready = min(self.obs.ready(self.target), canary_want)
        stable_now = max(stable_want, self.n - canary_ready)
        percent = self.spec.rollout.canary.max_surge_percent if self.spec.rollout.canary else 25
        surge = max(1, math.ceil(self.n * percent / 100))
        canary_now = max(min(canary_want, self.n + surge - stable_now), canary_ready)
        self.replicas[stable] = stable_now
        self.replicas[self.target] = canary_now
        self.serving_version = None if canary_want > 0 else stable
        stable_state = self.state(stable)
        stable_done = (stable_want == 0 and stable_state is None) or (
            stable_state is not None and stable_state.replicas == stable_want
        )
        return self.fully_ready(self.target, canary_want) and stable_done and canary_now == canary_want

    def size_for_route(self, routing: api.GatewayAPIRouting, weight: int) -> bool:
        """With Gateway API routing the HTTPRoute splits traffic exactly, so stable keeps its full
        size and the canary runs just enough pods for its share. The weight moves only once
        those pods are Ready, and the step holds once the route says so."""
        stable = self.status.stable_version or ""
        canary_want = canary_pods(self.n, weight)
        self.replicas[stable] = self.n
        self.replicas[self.target] = canary_want
        self.serving_version = stable
        if not self.fully_ready(self.target, canary_want):
            # Keep the weight the route already carries: no flapping while pods come up.
            self.route_weight = self.achieved_weight()
            return False
        self.route_weight = weight
        route = children.build_http_route(self.md, routing, weight)
        return self.obs.hashes.get(f"HTTPRoute/{self.md.metadata.name}") == _hash_of(route)

    def achieved_weight(self) -> int:
        """The weight of the last setWeight step already passed (weights never decrease)."""
        index = self.status.current_step_index or 0
        passed = [s.set_weight for s in self.steps[:index] if s.set_weight is not None]
        return max(passed, default=0)

    def hold_weight(self, weight: int) -> bool:
        if self.size_for_weight(weight):
            return True
        self.await_ready(f"step: canary weight {weight}%")
        return False

    def await_ready(self, what: str) -> None:
        """Waits for the canary's pods, within the progress deadline counted from the step start."""
        want = self.replicas.get(self.target, 0)
        if self.paused_by_user:
            self.paused(f"paused by user at {what}")
        elif late := self.overdue(self.target, want, self.status.step_started_at or self.now):
            self.abort("ProgressDeadlineExceeded", late, Outcome.ROLLED_BACK)
        else:
            ready = self.obs.ready(self.target)
            self.progressing(f"rolling out version {self.target} ({what}): {ready}/{want} canary pods Ready")

    def overdue(self, version: str, want: int, since: datetime) -> str | None:
        """Why `version` is late, once the progress deadline counted from `since` has passed;
        until then None, with a wake-up set for the deadline."""
        if self.now < since + self.deadline:
            self.wake.append(since + self.deadline)
            return None
        return (
            f"version {version} had {self.obs.ready(version)}/{want} Ready pods after "
            f"{self.spec.rollout.progress_deadline_seconds}s"
        )

    def pause_over(self, step: api.Step) -> bool:
        assert step.pause is not None
        index = (self.status.current_step_index or 0) + 1
        if step.pause.duration is None:
            self.paused(f"step {index}: waiting for `kubectl modelship promote`")
            return False
        ends = (self.status.step_started_at or self.now) + parse_duration(step.pause.duration)
        if self.now >= ends:
            return True
        self.wake.append(ends)
        # An absolute end stays true for as long as status is read; a countdown would go stale.
        until = ends.astimezone(UTC).strftime("%H:%M:%SZ")
        self.paused(f"step {index}: pause {step.pause.duration}, until {until}")
        return False

    def finish(self, steps: list[api.Step]) -> None:
        """Past the last step: the canary takes all traffic, then becomes stable. Without steps it
        is a blue-green switch: the new version runs at full size beside the old one and the
        Service moves only once it is fully Ready."""
        stable = self.status.stable_version
        assert stable is not None
        if steps:
            self.status.canary_weight = 100
            done = self.size_for_weight(100)
        else:
            self.replicas[stable] = self.n
            self.replicas[self.target] = self.n
            self.serving_version = stable
            done = self.fully_ready(self.target, self.n)
        if not done:
            self.await_ready("promotion")
            return
        self.finish_revision(stable, Outcome.SUPERSEDED, f"replaced by version {self.target}")
        self.finish_revision(self.target, Outcome.PROMOTED)
        self.status.stable_version = self.target
        self.clear_rollout()
        self.replicas[stable] = 0
        self.replicas[self.target] = self.n
        self.serving_version = self.target
        self.event(
            "VersionPromoted", f"version {self.target} promoted to stable; version {stable} scaled to 0"
        )
        self.healthy()

    def abort(self, reason: str, why: str, outcome: Outcome) -> None:
        self.finish_revision(self.target, outcome, why, reason)
        self.status.failed_version = self.target
        self.clear_rollout()
        verb = "aborted" if outcome == Outcome.ABORTED else "rolled back"
        self.event(reason, f"rollout of version {self.target} {verb}: {why}", warning=True)
        self.hold_failed()

    # -- phases --------------------------------------------------------------------------------
    def healthy(self) -> None:
        self.phase, self.reason = Phase.HEALTHY, "RolloutComplete"
        self.message = f"version {self.target} serves with {self.n} replica(s)"

    def progressing(self, message: str) -> None:
        self.phase, self.reason, self.message = Phase.PROGRESSING, "RolloutInProgress", message

    def paused(self, message: str) -> None:
        self.phase, self.reason, self.message = Phase.PAUSED, "RolloutPaused", message

    def degraded(self, reason: str, message: str) -> None:
        self.phase, self.reason, self.message = Phase.DEGRADED, reason, message

    # -- output --------------------------------------------------------------------------------
    def kept_versions(self) -> list[str]:
        """Stable, the version in spec, and the most recent `revisionHistoryLimit` others."""
        keep = [v for v in (self.status.stable_version, self.target) if v]
        history: list[str] = []
        for rev in reversed(self.status.revisions):
            if rev.version not in keep and rev.version not in history:
                history.append(rev.version)
        return keep + history[: self.spec.revision_history_limit]

    def plan(self) -> Plan:
        plan = Plan(events=self.events)
        kept = self.kept_versions()
        self.status.revisions = [r for r in self.status.revisions if r.version in kept][
            -(self.spec.revision_history_limit + 2) :
        ]
        for version in kept:
            self.plan_version(plan, version, self.replicas.get(version, 0))
        for version in sorted(set(self.obs.versions) - set(kept)):
            plan.delete.append(("Deployment", children.deployment_name(self.md.metadata.name, version)))
        self.plan_traffic(plan)
        plan.status = self.final_status()
        plan.wake_at = min(self.wake) if self.wake else None
        return plan

    def plan_traffic(self, plan: Plan) -> None:
        name = self.md.metadata.name
        wanted = [children.build_service(self.md, name, self.serving_version)]
        if self.routing is not None:
            stable = self.status.stable_version or self.target
            canary = self.status.canary_version or stable
            wanted += [
                children.build_service(self.md, children.stable_service_name(name), stable, "stable"),
                children.build_service(self.md, children.canary_service_name(name), canary, "canary"),
                children.build_http_route(self.md, self.routing, self.route_weight),
            ]
        for obj in wanted:
            if self.obs.hashes.get(f"{obj['kind']}/{obj['metadata']['name']}") != _hash_of(obj):
                plan.apply.append(obj)
        keep = {f"{o['kind']}/{o['metadata']['name']}" for o in wanted}
        for key in sorted(set(self.obs.hashes) - keep):  # routing was switched off
            kind, _, obj_name = key.partition("/")
            plan.delete.append((kind, obj_name))

    def plan_version(self, plan: Plan, version: str, replicas: int) -> None:
        state = self.state(version)
        if version == self.target:
            model: api.Model | None = self.spec.model
        elif state is None and replicas > 0:
            rev = self.revision_of(version)  # recreate a deleted kept version from its record
            model = (
                api.Model(version=version, uri=rev.uri, format=rev.format, sha256=rev.sha256) if rev else None
            )
        else:
            model = None
        if model is not None:
            desired = children.build_serving_deployment(self.md, model, replicas, self.default_image)
            if state is None or state.spec_hash != _hash_of(desired):
                plan.apply.append(desired)
                return
        if state is not None and state.replicas != replicas:
            plan.scale[children.deployment_name(self.md.metadata.name, version)] = replicas

    def final_status(self) -> api.ModelDeploymentStatus:
        s = self.status
        generation = self.md.metadata.generation
        s.observed_generation = generation
        s.phase, s.message = self.phase, self.message
        s.replicas = self.n
        serving = [self.serving_version] if self.serving_version else [s.stable_version, s.canary_version]
        s.ready_replicas = sum(self.obs.ready(v) for v in set(serving) if v)
        rolling = self.phase in (Phase.PROGRESSING, Phase.PAUSED)
        progressing_status: conditions.Status = "True" if rolling else "False"
        conds = conditions.set_condition(
            s.conditions,
            conditions.PROGRESSING,
            progressing_status,
            self.reason,
            self.message,
            generation,
            self.now,
        )
        available = s.ready_replicas > 0 or self.n == 0
        conds = conditions.set_condition(
            conds,
            conditions.AVAILABLE,
            "True" if available else "False",
            "MinimumReplicasAvailable" if available else "NoReadyReplicas",
            f"{s.ready_replicas}/{self.n} serving pods Ready",
            generation,
            self.now,
        )
        healthy = self.phase == Phase.HEALTHY
        s.conditions = conditions.set_condition(
            conds,
            conditions.READY,
            "True" if healthy else "False",
            self.reason,
            self.message,
            generation,
            self.now,
        )
        return s


def _hash_of(obj: dict[str, Any]) -> str | None:
    annotations: dict[str, str] = obj["metadata"].get("annotations", {})
    return annotations.get(children.ANNOTATION_SPEC_HASH)


def describe(step: api.Step) -> str:
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}"
    assert step.pause is not None
    return f"pause {step.pause.duration}" if step.pause.duration else "pause until promoted"


def refused(
    md: api.ModelDeployment, planned: api.ModelDeploymentStatus, message: str, now: datetime
) -> api.ModelDeploymentStatus:
    """The status to report when the apiserver refused a child built from the spec (a bad
    resource quantity, say, that the ModelDeployment schema cannot check): Degraded, naming the
    apiserver's reason, with everything else as planned. Nothing else moves until the spec is fixed."""
    status = planned.model_copy(deep=True)
    status.phase = Phase.DEGRADED
    status.message = f"the apiserver refused a child object: {message}"[:1024]
    generation = md.metadata.generation
    for type_ in (conditions.READY, conditions.PROGRESSING):
        status.conditions = conditions.set_condition(
            status.conditions, type_, "False", "ChildRejected", status.message, generation, now
        )
    return status


def reconcile(
    md: api.ModelDeployment,
    observed: Observed,
    now: datetime,
    default_image: str = children.DEFAULT_SERVING_IMAGE,
) -> Plan:
    """Computes the writes that move `md` one step closer to its spec, and its next status."""
    return _Reconcile(md, observed, now, default_image).run()
