"""What one reconcile pass reads (a frozen context), what each handler answers, and what it decides.

The context is built once per pass from the object, the observed children and the clock, and
never changes. Handlers answer Continue, Wait or Fail; the pipeline records what they ask for
(replicas, traffic, status, events) in one Decision, from which the plan and status are computed.
Nothing survives a pass except what status records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from modelship import api, children
from modelship.api import Outcome, Phase, Revision
from modelship.observation import Observed, VersionState


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class RolloutContext:
    md: api.ModelDeployment
    observed: Observed
    now: datetime
    default_image: str
    # Action annotations whose token the operator has not handled yet.
    actions: frozenset[str]

    @property
    def spec(self) -> api.ModelDeploymentSpec:
        return self.md.spec

    @property
    def target(self) -> str:
        return self.md.spec.model.version

    @property
    def n(self) -> int:
        return self.md.spec.replicas

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
        return self.md.metadata.annotations.get(api.ANNOTATION_PAUSED, "").lower() == "true"

    def state(self, version: str | None) -> VersionState | None:
        return self.observed.versions.get(version or "")

    def ready(self, version: str | None) -> int:
        return self.observed.ready(version)

    def fully_ready(self, version: str, want: int) -> bool:
        state = self.state(version)
        if want == 0:
            return state is None or state.replicas == 0
        return state is not None and state.fully_ready(want)


def steps_hash(steps: list[api.Step]) -> str:
    return children.content_hash([s.wire() for s in steps])


# -- what a handler answers ----------------------------------------------------------------------
@dataclass(frozen=True)
class Continue:
    # A promote passes its pause even under a user pause, which then holds the next step.
    past_user_pause: bool = False


@dataclass(frozen=True)
class Wait:
    why: str
    until: datetime | None = None
    paused: bool = False  # Paused (waiting on time or a person) rather than Progressing (on pods)
    for_promote: bool = False


@dataclass(frozen=True)
class Fail:
    reason: str
    why: str
    outcome: Outcome = Outcome.ROLLED_BACK


StepResult = Continue | Wait | Fail


# -- what a pass decides -------------------------------------------------------------------------
@dataclass
class Decision:
    """Collects, over one pass, the desired replicas and traffic, the next status and the events."""

    status: api.ModelDeploymentStatus
    replicas: dict[str, int] = field(default_factory=dict)
    serving_version: str | None = None  # None: every version's Ready pods take traffic
    route_weight: int = 0  # the canary's share in the HTTPRoute, with Gateway API routing
    phase: Phase = Phase.PROGRESSING
    reason: str = "RolloutInProgress"
    message: str = ""
    events: list[Event] = field(default_factory=list)
    wakes: list[datetime] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    step_ends_at: datetime | None = None
    waiting_for_promote: bool = False

    def take(self, ctx: RolloutContext, action: str) -> bool:
        """True once for a new `action` annotation: an action acts at most once."""
        if action in ctx.actions and action not in self.used:
            self.used.add(action)
            return True
        return False

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(Event("Warning" if warning else "Normal", reason, message))

    def wait(self, result: Wait) -> None:
        if result.until is not None:
            self.wakes.append(result.until)
        if result.paused:
            self.phase, self.reason, self.message = Phase.PAUSED, "RolloutPaused", result.why
        else:
            self.progressing(result.why)
        if result.for_promote:
            self.waiting_for_promote = True

    def healthy(self, ctx: RolloutContext) -> None:
        self.phase, self.reason = Phase.HEALTHY, "RolloutComplete"
        self.message = f"version {ctx.target} serves with {ctx.n} replica(s)"

    def progressing(self, message: str) -> None:
        self.phase, self.reason, self.message = Phase.PROGRESSING, "RolloutInProgress", message

    def degraded(self, reason: str, message: str) -> None:
        self.phase, self.reason, self.message = Phase.DEGRADED, reason, message

    # -- the revision history -------------------------------------------------------------------
    def revision_of(self, version: str | None) -> Revision | None:
        return next((r for r in reversed(self.status.revisions) if r.version == version), None)

    def finish_revision(
        self,
        ctx: RolloutContext,
        version: str | None,
        outcome: Outcome,
        message: str | None = None,
        reason: str | None = None,
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
            rev.finished_at = ctx.now
            if message:
                rev.message = message[:1024]
            if reason:
                rev.reason = reason

    def new_revision(self, ctx: RolloutContext) -> None:
        number = max((r.revision for r in self.status.revisions), default=0) + 1
        model = ctx.spec.model
        self.status.revisions.append(
            Revision(
                revision=number,
                version=model.version,
                uri=model.uri,
                format=model.format,
                sha256=model.sha256,
                s3=model.s3,
                deployed_at=ctx.now,
            )
        )

    def clear_rollout(self) -> None:
        s = self.status
        s.canary_version = s.canary_weight = s.current_step_index = None
        s.steps_hash = None
        s.progress_started_at = s.step_started_at = None
        s.rollout = None


def overdue(ctx: RolloutContext, version: str, want: int, since: datetime) -> Fail | datetime:
    """A Fail naming how many pods were Ready once the progress deadline counted from `since` has
    passed; until then the deadline itself, for the caller to wake up at."""
    ends = since + ctx.deadline
    if ctx.now < ends:
        return ends
    return Fail(
        "ProgressDeadlineExceeded",
        f"version {version} had {ctx.ready(version)}/{want} Ready pods after "
        f"{ctx.spec.rollout.progress_deadline_seconds}s",
    )
