"""What a ModelDeployment's status says about its rollout, read the way the operator reads it.

The operator keeps every rollout fact in status (step index, when the step began, the failed
version, the action tokens it handled), so the plugin can tell from one GET what an action would
do, without asking the operator. These readings mirror `modelship.reconcile`; the Argo CD
discovery script (argocd/actions/discovery.lua) applies the same rules in Lua.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from modelship import api
from modelship.api import Outcome, Phase
from modelship.reconcile import ACTION_PREFIX, ANNOTATION_PAUSED, parse_duration


@dataclass(frozen=True)
class RolloutView:
    md: api.ModelDeployment

    @classmethod
    def of(cls, obj: dict[str, Any]) -> RolloutView:
        return cls(api.ModelDeployment.model_validate(obj))

    @property
    def name(self) -> str:
        return self.md.metadata.name

    @property
    def status(self) -> api.ModelDeploymentStatus:
        return self.md.status

    @property
    def target(self) -> str:
        """The version the spec asks for."""
        return self.md.spec.model.version

    @property
    def phase(self) -> str | None:
        phase = self.status.phase
        return None if phase is None else str(phase)

    @property
    def fresh(self) -> bool:
        """True when status describes the current spec; until then, any decision taken from
        status may be about a rollout the operator is about to replace."""
        return self.status.observed_generation == self.md.metadata.generation

    @property
    def steps(self) -> list[api.Step]:
        canary = self.md.spec.rollout.canary
        return list(canary.steps) if canary else []

    @property
    def rolling(self) -> bool:
        """A canary rollout of the spec's version is under way (not the first rollout, which
        runs at full size at once, and not one that already failed)."""
        return (
            self.status.stable_version is not None
            and self.status.canary_version == self.target
            and self.phase in (Phase.PROGRESSING, Phase.PAUSED)
        )

    @property
    def rolling_back(self) -> bool:
        """Going back to a version that served before: the operator skips the canary steps (the
        version is proven), as `reconcile.is_rollback` decides from the same revision records."""
        earlier = self.status.revisions[:-1]
        return self.rolling and any(
            r.version == self.target and r.outcome in (Outcome.PROMOTED, Outcome.SUPERSEDED) for r in earlier
        )

    @property
    def active_steps(self) -> list[api.Step]:
        """The steps this rollout walks: none when rolling back."""
        return [] if self.rolling_back else self.steps

    @property
    def step_index(self) -> int:
        return self.status.current_step_index or 0

    @property
    def current_step(self) -> api.Step | None:
        """The canary step the rollout is at, or None when not rolling or past the last step."""
        if not self.rolling or self.step_index >= len(self.active_steps):
            return None
        return self.active_steps[self.step_index]

    @property
    def paused_by_user(self) -> bool:
        return self.md.metadata.annotations.get(ANNOTATION_PAUSED, "").lower() == "true"

    @property
    def at_indefinite_pause(self) -> bool:
        step = self.current_step
        return step is not None and step.pause is not None and step.pause.duration is None

    @property
    def waiting_for_promote(self) -> bool:
        """Parked at a pause without a duration: only `promote` (or `promote --full`) moves on."""
        return self.at_indefinite_pause and self.phase == Phase.PAUSED

    @property
    def retryable(self) -> bool:
        failed = self.status.failed_version
        return failed is not None and failed == self.target

    def pause_left(self, now: datetime) -> timedelta | None:
        """Time left in the current timed pause; None when the rollout is not in one."""
        step = self.current_step
        if step is None or step.pause is None or step.pause.duration is None:
            return None
        started = self.status.step_started_at or now
        return max(timedelta(0), started + parse_duration(step.pause.duration) - now)

    def pending(self, action: str) -> str | None:
        """The token of an action annotation the operator has not handled yet, if any."""
        token = self.md.metadata.annotations.get(ACTION_PREFIX + action)
        if token and self.status.handled_actions.get(action) != token:
            return token
        return None
