"""`kubectl modelship` against the local cluster, run as a user runs it: a `kubectl` subprocess
that finds the `kubectl-modelship` plugin on PATH, with the operator watching the test's
namespace. Every action must do what it says through annotations alone: `metadata.generation`
never moves, and the spec is what the user applied."""

from __future__ import annotations

import subprocess
import threading
from typing import Any

from tests.support.k8s import (
    ENV,
    OperatorProcess,
    apply,
    get_json,
    mdep_status,
    model_deployment,
    wait_for,
)

PROMOTE_GATE: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]


def modelship(namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "modelship", *args, "-n", namespace],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )


def ok(namespace: str, *args: str) -> str:
    """Runs the plugin and fails the test, with its stderr, if it does not succeed."""
    proc = modelship(namespace, *args)
    assert proc.returncode == 0, f"`kubectl modelship {' '.join(args)}` failed: {proc.stderr}"
    return proc.stdout


def mdep(namespace: str) -> dict[str, Any]:
    obj: dict[str, Any] = get_json("-n", namespace, "mdep", "iris")
    return obj


def status_has(namespace: str, **fields: Any) -> dict[str, Any] | None:
    status = mdep_status(namespace, "iris")
    return status if all(status.get(k) == v for k, v in fields.items()) else None


def healthy(namespace: str, version: str) -> dict[str, Any]:
    return wait_for(
        f"Healthy on {version}", lambda: status_has(namespace, phase="Healthy", stableVersion=version), 90
    )


def canary(namespace: str, steps: list[dict[str, Any]], **status: Any) -> dict[str, Any]:
    """v1 stable on 2 replicas, then a canary of v2 with `steps`, until its status has `status`."""
    apply(namespace, model_deployment("iris", "v1", replicas=2, steps=steps, deadline=20))
    healthy(namespace, "v1")
    apply(namespace, model_deployment("iris", "v2", replicas=2, steps=steps, deadline=20))
    wait_for(f"v2 rolling with {status}", lambda: status_has(namespace, canaryVersion="v2", **status), 60)
    return mdep(namespace)


def waiting_for_promote(namespace: str) -> dict[str, Any]:
    return canary(namespace, PROMOTE_GATE, phase="Paused", currentStepIndex=1)


def test_status_shows_the_versions_weight_steps_and_pods_of_a_paused_canary(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given v2 at 50% waiting at step 2, a pause without duration
    waiting_for_promote(namespace)
    # When the user asks for the status
    out = ok(namespace, "status", "iris")
    # Then it shows the phase, both versions, the weight, the marked step and each version's pods
    assert "Phase:         Paused" in out
    assert "Stable:        v1" in out
    assert "Canary:        v2 (weight 50%)" in out
    assert "  ->  2. pause until promoted   waiting for `kubectl modelship promote iris`" in out
    versions = [line.split() for line in out.split("Versions:\n")[1].splitlines()[1:]]
    assert versions == [["v1", "stable", "1/1"], ["v2", "canary", "1/1"]]


def test_promote_moves_the_canary_past_its_pause_and_leaves_the_generation_alone(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given v2 waiting at step 2, a pause without duration
    before = waiting_for_promote(namespace)
    # When the user promotes it
    out = ok(namespace, "promote", "iris")
    # Then v2 becomes stable, and only a promote annotation was written
    assert "promoted" in out
    healthy(namespace, "v2")
    after = mdep(namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    added = set(after["metadata"]["annotations"]) - set(before["metadata"]["annotations"])
    assert added == {"modelship.dev/promote"}


def test_promote_full_skips_every_remaining_step(namespace: str, operator: OperatorProcess) -> None:
    # Given v2 at 50% in a 60s timed pause, with another pause without duration after it
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "60s"}}, {"pause": {}}]
    before = canary(namespace, steps, phase="Paused", currentStepIndex=1)
    # When the user promotes in full
    ok(namespace, "promote", "iris", "--full")
    # Then v2 becomes stable well before the 60s pause would have ended, generation unchanged
    healthy(namespace, "v2")
    assert mdep(namespace)["metadata"]["generation"] == before["metadata"]["generation"]


def test_status_watch_prints_the_rollout_as_it_changes(namespace: str, operator: OperatorProcess) -> None:
    # Given v2 waiting for a promote, and `status --watch` running
    waiting_for_promote(namespace)
    watch = subprocess.Popen(
        ["kubectl", "modelship", "status", "iris", "--watch", "-n", namespace],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    printed: list[str] = []
    stdout, stderr = watch.stdout, watch.stderr
    assert stdout is not None and stderr is not None
    reader = threading.Thread(target=lambda: printed.extend(iter(stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for("the watch to print the paused canary", lambda: "Canary:        v2" in "".join(printed))
        # When the rollout is promoted
        ok(namespace, "promote", "iris")
        healthy(namespace, "v2")
        wait_for("the watch to print the promotion", lambda: "Stable:        v2" in "".join(printed))
    finally:
        watch.terminate()
        watch.wait(timeout=10)
        reader.join(timeout=10)
    out, err = "".join(printed), stderr.read()
    # Then the watch printed the paused canary first and the promoted version later
    assert "Traceback" not in err
    paused_at = out.find("Canary:        v2 (weight 50%)")
    promoted_at = out.find("Stable:        v2")
    assert 0 <= paused_at < promoted_at, out


def test_abort_sends_the_canary_back_and_history_records_it(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given v2 waiting at step 2
    before = waiting_for_promote(namespace)
    # When the user aborts
    ok(namespace, "abort", "iris")
    # Then v1 serves on both replicas, v2 is the failed version, and the generation did not move
    status = wait_for("aborted", lambda: status_has(namespace, phase="Degraded", failedVersion="v2"), 60)
    assert status["stableVersion"] == "v1"
    wait_for("v1 back on 2 pods", lambda: status_has(namespace, readyReplicas=2), 60)
    assert mdep(namespace)["metadata"]["generation"] == before["metadata"]["generation"]
    # And history shows v1 promoted and v2 aborted by the user
    rows = [line.split()[:3] for line in ok(namespace, "history", "iris").splitlines()[1:]]
    assert rows == [["1", "v1", "Promoted"], ["2", "v2", "Aborted"]]
    assert "AbortedByUser" in ok(namespace, "history", "iris")


def test_retry_after_an_abort_runs_the_canary_again(namespace: str, operator: OperatorProcess) -> None:
    # Given v2 aborted by the user
    before = waiting_for_promote(namespace)
    ok(namespace, "abort", "iris")
    wait_for("aborted", lambda: status_has(namespace, phase="Degraded", failedVersion="v2"), 60)
    # When the user retries
    ok(namespace, "retry", "iris")
    # Then v2 walks its steps again up to the pause, as a new revision, generation unchanged
    wait_for("the canary again", lambda: status_has(namespace, phase="Paused", canaryVersion="v2"), 60)
    status = mdep_status(namespace, "iris")
    assert "failedVersion" not in status
    assert [(r["version"], r["outcome"]) for r in status["revisions"]] == [
        ("v1", "Promoted"),
        ("v2", "Aborted"),
        ("v2", "Progressing"),
    ]
    assert mdep(namespace)["metadata"]["generation"] == before["metadata"]["generation"]


def test_pause_holds_a_rollout_at_the_end_of_its_step_and_resume_releases_it(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given v2 in the 6s timed pause of step 2, with a last step of 100% to go
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "6s"}}, {"setWeight": 100}]
    before = canary(namespace, steps, phase="Paused", currentStepIndex=1)
    # When the user pauses it
    ok(namespace, "pause", "iris")
    # Then once the timed pause is over, the rollout stays at step 2, paused by the user
    held = wait_for(
        "held by the user", lambda: status_has(namespace, phase="Paused", message=PAUSED_BY_USER), 60
    )
    assert held["currentStepIndex"] == 1
    assert "Paused:        by user" in ok(namespace, "status", "iris")
    # When the user resumes it
    ok(namespace, "resume", "iris")
    # Then v2 is promoted, the pause annotation is gone, and the generation never moved
    healthy(namespace, "v2")
    after = mdep(namespace)
    assert "modelship.dev/paused" not in after["metadata"]["annotations"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


PAUSED_BY_USER = "paused by user; run `kubectl modelship resume` to continue"


def test_actions_that_make_no_sense_are_refused_and_write_nothing(
    namespace: str, operator: OperatorProcess
) -> None:
    # Given v1 healthy, with nothing rolling out, failed or paused
    apply(namespace, model_deployment("iris", "v1", replicas=2, steps=PROMOTE_GATE))
    healthy(namespace, "v1")
    before = mdep(namespace)["metadata"]["resourceVersion"]
    # When the user asks for each action that needs a rollout, a failure or a pause
    refused = {
        action: modelship(namespace, action, "iris") for action in ("promote", "abort", "retry", "resume")
    }
    # Then each exits non-zero with a reason and no traceback, and the object was not written
    for action, proc in refused.items():
        assert proc.returncode == 1, f"{action}: {proc.stdout}"
        assert proc.stderr.startswith("error: "), f"{action}: {proc.stderr}"
        assert "Traceback" not in proc.stderr
    assert "nothing to promote" in refused["promote"].stderr
    assert "nothing to retry" in refused["retry"].stderr
    assert "is not paused" in refused["resume"].stderr
    assert mdep(namespace)["metadata"]["resourceVersion"] == before
