"""What a ModelDeployment's status says about its rollout.

The operator records every rollout fact in status when it decides it (the kind of rollout, the
step index and the current step's kind, when a timed pause ends, whether it waits for a promote,
the failed version, the action tokens it handled), so the plugin tells from one GET what an
action would do. It reads those facts and re-derives none: no rollout rule lives here. The Argo
CD discovery script (argocd/actions/discovery.lua) reads the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from modelship import api
from modelship.api import Phase, RolloutKind


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
    def facts(self) -> api.RolloutFacts | None:
        return self.status.rollout

    @property
    def rolling(self) -> bool:
        """A rollout of the spec's version over a stable one is under way (not the first rollout,
        which runs at full size at once, and not one that already failed)."""
        facts = self.facts
        return (
            facts is not None
            and facts.kind != RolloutKind.FIRST
            and facts.version == self.target
            and self.status.canary_version == self.target
            and self.phase in (Phase.PROGRESSING, Phase.PAUSED)
        )

    @property
    def rolling_back(self) -> bool:
        """The operator decided, when the rollout started, that it goes back to a proven version."""
        return self.rolling and self.facts is not None and self.facts.kind == RolloutKind.ROLLBACK

    @property
    def step_index(self) -> int:
        return self.status.current_step_index or 0

    @property
    def current_step(self) -> api.Step | None:
        """The canary step the rollout is at, or None when not rolling or past the last step."""
        if not self.rolling or self.facts is None or self.facts.step_kind is None:
            return None
        return self.steps[self.step_index] if self.step_index < len(self.steps) else None

    @property
    def paused_by_user(self) -> bool:
        return self.md.metadata.annotations.get(api.ANNOTATION_PAUSED, "").lower() == "true"

    @property
    def waiting_for_promote(self) -> bool:
        """Parked at a pause without a duration: only `promote` (or `promote --full`) moves on."""
        return self.rolling and self.facts is not None and self.facts.waiting_for_promote

    @property
    def held_analysis(self) -> api.AnalysisRun | None:
        """An analysis holding the rollout as inconclusive: promote skips it, retry runs it again."""
        if not self.rolling:
            return None
        return next((r for r in self.status.analysis_runs if r.phase == api.AnalysisPhase.INCONCLUSIVE), None)

    @property
    def retryable(self) -> bool:
        failed = self.status.failed_version
        return failed is not None and failed == self.target

    def pause_left(self, now: datetime) -> timedelta | None:
        """Time left in the current timed pause; None when the rollout is not in one."""
        ends = self.facts.step_ends_at if self.rolling and self.facts else None
        return None if ends is None else max(timedelta(0), ends - now)

    def pending(self, action: str) -> str | None:
        """The token of an action annotation the operator has not handled yet, if any."""
        token = self.md.metadata.annotations.get(api.ACTION_PREFIX + action)
        if token and self.status.handled_actions.get(action) != token:
            return token
        return None
