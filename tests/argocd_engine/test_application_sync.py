"""Argo CD syncing ModelDeployments from git, end to end: a local git repository, an Application
syncing it automatically, Argo CD's application controller computing health with our health.lua,
and our actions run through its API server by the `argocd` CLI. The operator runs as in the other
integration tests; the pods are kwok's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.argocd_engine.argocd import GitOps
from tests.support.k8s import OperatorProcess, get_json, mdep_status, model_deployment

STEPS: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]
NEVER_READY = {"stage.modelship.dev/never-ready": "true"}
WAITING_FOR_PROMOTE = "step 2: waiting for `kubectl modelship promote`"


def iris(version: str, steps: list[dict[str, Any]] = STEPS, **kwargs: Any) -> dict[str, Any]:
    return model_deployment("iris", version, replicas=2, steps=steps, deadline=20, **kwargs)


def mdep(namespace: str) -> dict[str, Any]:
    obj: dict[str, Any] = get_json("-n", namespace, "mdep", "iris")
    return obj


def step_events(namespace: str) -> int:
    events = get_json("-n", namespace, "events", "--field-selector", "involvedObject.name=iris")["items"]
    return sum(e.get("count", 1) for e in events if e["reason"] == "StepStarted")


@pytest.fixture
def gitops(argocd: None, namespace: str, tmp_path: Path) -> Iterator[GitOps]:
    ops = GitOps(namespace, tmp_path / "models")
    yield ops
    ops.delete_application()


def healthy_on(gitops: GitOps, version: str, revision: str) -> None:
    gitops.wait(f"{version} Synced and Healthy", sync="Synced", revision=revision, health="Healthy")
    assert mdep_status(gitops.namespace, "iris")["stableVersion"] == version


def test_an_initial_sync_shows_the_model_progressing_then_healthy(
    gitops: GitOps, namespace: str, tmp_path: Path
) -> None:
    # Given a repository holding iris v1, and no operator running yet
    revision = gitops.commit(iris("v1"), "iris v1")
    # When an Application syncs it automatically
    gitops.create_application()
    # Then Argo CD shows it synced and Progressing, waiting for the operator
    state = gitops.wait("Synced, Progressing", sync="Synced", revision=revision, health="Progressing")
    assert state.message == "Waiting for the Modelship operator to report status"
    # When the operator runs
    op = OperatorProcess([namespace], tmp_path / "operator.log").start()
    try:
        # Then Argo CD shows it Healthy, with the operator's message
        state = gitops.wait("Healthy", health="Healthy")
        assert state.message == "version v1 serves with 2 replica(s)"
    finally:
        op.stop()


def test_a_canary_commit_shows_progressing_then_suspended_at_its_pause_with_modelships_message(
    gitops: GitOps, namespace: str, tmp_path: Path
) -> None:
    # Given v1 synced and Healthy
    op = OperatorProcess([namespace], tmp_path / "operator.log").start()
    first = gitops.commit(iris("v1"), "iris v1")
    gitops.create_application()
    healthy_on(gitops, "v1", first)
    # When a commit brings v2 with canary steps, before the operator has looked at it (stopped,
    # so the Progressing state Argo CD shows in between cannot slip by unseen)
    op.stop()
    second = gitops.commit(iris("v2"), "iris v2, canary 50% then a pause")
    gitops.refresh()
    # Then Argo CD syncs it and shows it Progressing
    state = gitops.wait("v2 Synced, Progressing", sync="Synced", revision=second, health="Progressing")
    assert state.message is not None and "observe generation 2" in state.message
    # And once the operator runs, Suspended at the pause, with Modelship's message, promote offered
    op = OperatorProcess([namespace], tmp_path / "operator.log").start()
    try:
        state = gitops.wait("Suspended at the pause", sync="Synced", health="Suspended")
        assert state.message == WAITING_FOR_PROMOTE
        assert gitops.enabled_actions() == {"promote", "promote-full", "abort", "pause"}
    finally:
        op.stop()


def suspended_canary(gitops: GitOps, steps: list[dict[str, Any]] = STEPS) -> str:
    """v1 synced and Healthy, then a commit of v2 with `steps`, until Argo CD shows it Suspended."""
    first = gitops.commit(iris("v1", steps=steps), "iris v1")
    gitops.create_application()
    healthy_on(gitops, "v1", first)
    second = gitops.commit(iris("v2", steps=steps), "iris v2")
    gitops.refresh()
    gitops.wait("v2 Suspended", sync="Synced", revision=second, health="Suspended")
    return second


def test_the_promote_action_run_by_argocd_promotes_without_drift(
    gitops: GitOps, namespace: str, operator: OperatorProcess
) -> None:
    # Given v2 waiting at its pause, synced from git
    revision = suspended_canary(gitops)
    generation = mdep(namespace)["metadata"]["generation"]
    # When the promote action runs through Argo CD's API
    gitops.action("promote")
    # Then v2 is promoted, spec and generation untouched, and the Application Synced and Healthy
    healthy_on(gitops, "v2", revision)
    after = mdep(namespace)
    assert after["metadata"]["generation"] == generation
    assert after["status"]["handledActions"]["promote"].startswith("argocd-")


def test_a_never_ready_version_is_degraded_and_git_revert_brings_back_healthy_without_steps(
    gitops: GitOps, namespace: str, operator: OperatorProcess
) -> None:
    # Given v1 synced and Healthy
    first = gitops.commit(iris("v1"), "iris v1")
    gitops.create_application()
    healthy_on(gitops, "v1", first)
    # When a commit brings v2, whose pods never become Ready
    broken = gitops.commit(iris("v2", pod_labels=NEVER_READY), "iris v2 (never Ready)")
    gitops.refresh()
    # Then Argo CD shows it Degraded, with the operator's rollback message
    state = gitops.wait("Degraded", timeout=120, sync="Synced", revision=broken, health="Degraded")
    assert state.message is not None and "version v2 rolled back" in state.message
    assert mdep_status(namespace, "iris")["stableVersion"] == "v1"
    steps_before = step_events(namespace)
    # When the commit is reverted
    reverted = gitops.revert()
    gitops.refresh()
    # Then Argo CD shows v1 Healthy again, reached without walking any canary step
    healthy_on(gitops, "v1", reverted)
    assert step_events(namespace) == steps_before
    status = mdep_status(namespace, "iris")
    assert "canaryVersion" not in status and "failedVersion" not in status


def test_abort_and_retry_through_argocd_act_as_the_kubectl_plugin_does(
    gitops: GitOps, namespace: str, operator: OperatorProcess
) -> None:
    # Given v2 waiting at its pause, synced from git
    revision = suspended_canary(gitops)
    generation = mdep(namespace)["metadata"]["generation"]
    # When abort runs through Argo CD
    gitops.action("abort")
    # Then v1 takes all traffic back and Argo CD shows Degraded with why
    state = gitops.wait("aborted", health="Degraded")
    assert state.message is not None and "aborted" in state.message
    status = mdep_status(namespace, "iris")
    assert (status["stableVersion"], status["failedVersion"]) == ("v1", "v2")
    assert [(r["version"], r["outcome"]) for r in status["revisions"]] == [
        ("v1", "Promoted"),
        ("v2", "Aborted"),
    ]
    assert gitops.enabled_actions() == {"retry", "pause"}
    # When retry runs
    gitops.action("retry")
    # Then v2 walks its steps again up to the pause, as a new revision, still synced from git
    gitops.wait("v2 at its pause again", sync="Synced", revision=revision, health="Suspended")
    status = mdep_status(namespace, "iris")
    assert "failedVersion" not in status
    assert [(r["version"], r["outcome"]) for r in status["revisions"]] == [
        ("v1", "Promoted"),
        ("v2", "Aborted"),
        ("v2", "Progressing"),
    ]
    assert mdep(namespace)["metadata"]["generation"] == generation


PAUSED_BY_USER = "paused by user; run `kubectl modelship resume` to continue"


def test_pause_and_resume_through_argocd_act_as_the_kubectl_plugin_does(
    gitops: GitOps, namespace: str, operator: OperatorProcess
) -> None:
    # Given v2 in the 6s timed pause of step 2, with a last step of 100% to go
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {"duration": "6s"}}, {"setWeight": 100}]
    revision = suspended_canary(gitops, steps)
    generation = mdep(namespace)["metadata"]["generation"]
    # When pause runs through Argo CD
    gitops.action("pause")
    # Then once the timed pause is over, Argo CD shows it Suspended by the user, resume offered
    gitops.wait("held by the user", health="Suspended", message=PAUSED_BY_USER)
    assert mdep_status(namespace, "iris")["currentStepIndex"] == 1
    enabled = gitops.enabled_actions()
    assert "resume" in enabled and "pause" not in enabled
    # When resume runs
    gitops.action("resume")
    # Then v2 is promoted; the annotation is gone, the generation never moved, and nothing drifted
    healthy_on(gitops, "v2", revision)
    after = mdep(namespace)
    assert after["metadata"]["annotations"].get("modelship.dev/paused") in (None, "false")
    assert after["metadata"]["generation"] == generation
