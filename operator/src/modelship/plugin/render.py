"""Text for `kubectl modelship status` and `history`: pure functions of the objects and the time.

Both take objects as the API serves them (plain dicts), so they render anything the apiserver
holds, including an object the operator has not written status for yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from modelship.children import LABEL_VERSION
from modelship.plugin.view import RolloutView

NONE = "-"


def age(delta: timedelta) -> str:
    """kubectl's style: 45s, 3m20s, 2h5m, 3d4h."""
    seconds = max(0, math.ceil(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds}s" if seconds else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Columns padded to their widest cell, the last one left ragged (as kubectl prints)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)] + [row[-1]]
        lines.append((indent + "   ".join(cells)).rstrip())
    return lines


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return NONE
    return f"{moment:%Y-%m-%dT%H:%M:%SZ} ({age(now - moment)} ago)"


def version_rows(view: RolloutView, deployments: Sequence[dict[str, Any]]) -> list[list[str]]:
    """One row per version Deployment: stable first, then the canary, then the rest newest first."""
    status = view.status
    order = {v: i for i, v in enumerate([status.stable_version, status.canary_version]) if v}
    newest_first = [r.version for r in reversed(status.revisions)]
    rows: list[tuple[tuple[int, int, str], list[str]]] = []
    for dep in deployments:
        version = ((dep.get("metadata") or {}).get("labels") or {}).get(LABEL_VERSION)
        if not version:
            continue
        spec, dstatus = dep.get("spec") or {}, dep.get("status") or {}
        if version == status.stable_version:
            role = "stable"
        elif version == status.canary_version:
            role = "canary"
        elif version == status.failed_version:
            role = "failed"
        else:
            role = "previous"
        ready, desired = int(dstatus.get("readyReplicas") or 0), int(spec.get("replicas") or 0)
        key = (
            order.get(version, 2),
            newest_first.index(version) if version in newest_first else len(newest_first),
            version,
        )
        rows.append((key, [version, role, f"{ready}/{desired}"]))
    return [row for _, row in sorted(rows)]


def step_lines(view: RolloutView, now: datetime) -> list[str]:
    """The canary steps, the current one marked with `->` while a rollout walks them."""
    steps = view.steps
    index = view.step_index if view.rolling else None
    if view.rolling_back:
        return [f"  (skipped: version {view.target} served before, so the rollback goes straight to it)"]
    lines = []
    for i, step in enumerate(steps):
        marker = "->" if i == index else "  "
        note = ""
        if i == index:
            left = view.pause_left(now)
            if left is not None:
                note = f"{age(left)} left"
            elif view.waiting_for_promote:
                note = f"waiting for `kubectl modelship promote {view.name}`"
            elif view.paused_by_user:
                note = "paused by user"
            else:
                note = "in progress"
        elif index is not None and i < index:
            note = "done"
        lines.append(f"  {marker} {i + 1:>2}. {step.describe():<22} {note}".rstrip())
    if index is not None and index >= len(steps):
        lines.append(f"  ->     {'promote to stable':<22} waiting for every pod of version {view.target}")
    return lines


def _number(value: float | None) -> str:
    return NONE if value is None else f"{value:.4g}"


def analysis_lines(view: RolloutView, now: datetime) -> list[str]:
    """Each analysis run of the current (or last) rollout and its checks' last measurements."""
    lines: list[str] = []
    for run in view.status.analysis_runs:
        where = "background" if run.step_index is None else f"step {run.step_index + 1}"
        message = f": {run.message}" if run.message else ""
        lines.append(f"  {where} ({run.name}), started {_when(run.started_at, now)}: {run.phase}{message}")
        rows = []
        for check in run.checks:
            last = check.measurements[-1] if check.measurements else None
            counts = f"{check.successful}/{check.failed}/{check.inconclusive}/{check.errors}"
            name = f"{check.name} (dry run)" if check.dry_run else check.name
            if last is None:
                rows.append([name, "not measured yet", NONE, NONE, NONE, counts, NONE])
                continue
            rows.append(
                [
                    name,
                    str(last.verdict),
                    _number(last.value),
                    last.threshold or NONE,
                    _when(last.measured_at, now),
                    counts,
                    last.message or NONE,
                ]
            )
        header = ["CHECK", "LAST VERDICT", "VALUE", "THRESHOLD", "MEASURED", "S/F/I/E", "MESSAGE"]
        lines += table(header, rows, indent="    ")
    return lines


def render_status(obj: dict[str, Any], deployments: Sequence[dict[str, Any]], now: datetime) -> str:
    view = RolloutView.of(obj)
    md, status = view.md, view.status
    lines = [
        f"Name:          {md.metadata.name}",
        f"Namespace:     {md.metadata.namespace}",
    ]
    if status.observed_generation is None:
        lines.append("Phase:         - (no status yet: the operator has not seen this object)")
    else:
        lines.append(f"Phase:         {view.phase or NONE}")
        lines.append(f"Message:       {status.message or NONE}")
        if not view.fresh:
            lines.append(
                f"               (status is for generation {status.observed_generation}; "
                f"the spec is at generation {md.metadata.generation}: the operator has not caught up)"
            )
    lines.append(f"Spec version:  {view.target}")
    lines.append(f"Stable:        {status.stable_version or NONE}")
    if status.canary_version:
        lines.append(f"Canary:        {status.canary_version} (weight {status.canary_weight or 0}%)")
    else:
        lines.append(f"Canary:        {NONE}")
    if status.failed_version:
        lines.append(
            f"Failed:        {status.failed_version} (`kubectl modelship retry {md.metadata.name}` "
            "tries it again)"
        )
    if view.paused_by_user:
        lines.append(f"Paused:        by user (`kubectl modelship resume {md.metadata.name}` continues)")
    if status.replicas is not None:
        lines.append(
            f"Replicas:      {status.replicas} desired, {status.ready_replicas or 0} ready and serving"
        )
    if status.progress_started_at and view.rolling:
        lines.append(f"Rollout began: {_when(status.progress_started_at, now)}")
    if view.steps:
        lines += ["", "Steps:", *step_lines(view, now)]
    if view.status.analysis_runs:
        lines += ["", "Analysis (counts: Successful/Failed/Inconclusive/Error):", *analysis_lines(view, now)]
    rows = version_rows(view, deployments)
    lines += ["", "Versions:"]
    if rows:
        lines += table(["VERSION", "ROLE", "PODS (READY/DESIRED)"], rows, indent="  ")
    else:
        lines.append("  (no Deployments yet)")
    return "\n".join(lines) + "\n"


def render_history(obj: dict[str, Any], now: datetime) -> str:
    """The revisions the operator recorded, oldest first (as `kubectl rollout history` lists)."""
    view = RolloutView.of(obj)
    revisions = view.status.revisions
    if not revisions:
        return f"modeldeployment {view.name} has no recorded revisions yet\n"
    rows = []
    for rev in revisions:
        finished = rev.finished_at
        took = age(finished - rev.deployed_at) if finished else age(now - rev.deployed_at) + " so far"
        marker = (
            " (stable)" if rev.version == view.status.stable_version and rev.outcome == "Promoted" else ""
        )
        rows.append(
            [
                str(rev.revision),
                rev.version,
                f"{rev.outcome}{marker}",
                f"{rev.deployed_at:%Y-%m-%dT%H:%M:%SZ}",
                took,
                rev.reason or NONE,
                rev.message or NONE,
            ]
        )
    header = ["REVISION", "VERSION", "OUTCOME", "DEPLOYED", "TOOK", "REASON", "MESSAGE"]
    return "\n".join(table(header, rows)) + "\n"
