"""Status conditions, following the Kubernetes API conventions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from modelship.api import Condition

READY = "Ready"
AVAILABLE = "Available"
PROGRESSING = "Progressing"

Status = Literal["True", "False", "Unknown"]


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: Status,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """Returns the list with `type_` set. `lastTransitionTime` moves only when the status itself
    changes, so a reason or message update is not mistaken for a transition."""
    previous = next((c for c in conditions if c.type == type_), None)
    transitioned = previous is None or previous.status != status
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=now if transitioned or previous is None else previous.last_transition_time,
    )
    others = [c for c in conditions if c.type != type_]
    return sorted([*others, updated], key=lambda c: c.type)


def get_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)
