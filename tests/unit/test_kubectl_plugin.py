"""`kubectl modelship` without a cluster: which patch each action writes, when it refuses, and
what `status` and `history` print. Objects are plain dicts, as the API serves them."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelship.kubectl_plugin import act, build_parser, run
from modelship.plugin.actions import ActionRefused, new_token, plan_action
from modelship.plugin.kube import Conflict
from modelship.plugin.render import age, render_history, render_status

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {"duration": "30s"}},
    {"setWeight": 50},
    {"pause": {}},
]


def ts(seconds_ago: float) -> str:
    return f"{NOW - timedelta(seconds=seconds_ago):%Y-%m-%dT%H:%M:%SZ}"


def mdep(
    version: str = "v1",
    *,
    steps: list[dict[str, Any]] | None = STEPS,
    annotations: dict[str, str] | None = None,
    generation: int = 1,
    **status: Any,
) -> dict[str, Any]:
    """A ModelDeployment; `status` keys are the wire names, and none at all means no status yet."""
    rollout: dict[str, Any] = {"progressDeadlineSeconds": 30}
    if steps is not None:
        rollout["canary"] = {"steps": steps}
    obj: dict[str, Any] = {
        "apiVersion": "modelship.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {
            "name": "iris",
            "namespace": "ml",
            "generation": generation,
            "resourceVersion": "42",
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "model": {"version": version, "uri": f"https://m.example/iris/{version}.skops"},
            "replicas": 4,
            "rollout": rollout,
        },
    }
    if status:
        obj["status"] = {"observedGeneration": generation, **status}
    return obj


def healthy(version: str = "v1", **kwargs: Any) -> dict[str, Any]:
    return mdep(
        version,
        phase="Healthy",
        message=f"version {version} serves with 4 replica(s)",
        stableVersion=version,
        **kwargs,
    )


def facts(at_step: int, phase: str, kind: str = "Canary") -> dict[str, Any]:
    """`status.rollout` as the operator records it at step `at_step` of STEPS (the steps' kinds,
    the end of the 30s pause begun 10s ago, and the wait for a promote at the last pause)."""
    recorded: dict[str, Any] = {"kind": kind, "version": "v2", "fromVersion": "v1"}
    if kind == "Rollback":
        return {**recorded, "provenByRevision": 1, "keptDeploymentFound": True}
    if at_step < len(STEPS):
        recorded["stepKind"] = "SetWeight" if "setWeight" in STEPS[at_step] else "Pause"
    if at_step == 1 and phase == "Paused":
        recorded["stepEndsAt"] = ts(-20)
    if at_step == 3 and phase == "Paused":
        recorded["waitingForPromote"] = True
    return recorded


def rolling(at_step: int, phase: str = "Paused", **kwargs: Any) -> dict[str, Any]:
    """Version v2 rolling out over stable v1, at step `at_step` (0-based) of STEPS."""
    weights = [25, 25, 50, 50, 100]
    fields: dict[str, Any] = {
        "rollout": facts(at_step, phase, kwargs.pop("kind", "Canary")),
        "phase": phase,
        "message": "rolling",
        "stableVersion": "v1",
        "canaryVersion": "v2",
        "canaryWeight": weights[at_step],
        "currentStepIndex": at_step,
        "stepStartedAt": ts(10),
        "progressStartedAt": ts(100),
    }
    annotations = kwargs.pop("annotations", None)
    generation = kwargs.pop("generation", 2)
    return mdep("v2", annotations=annotations, generation=generation, **{**fields, **kwargs})


def waiting_for_promote(**kwargs: Any) -> dict[str, Any]:
    return rolling(3, message="step 4: waiting for `kubectl modelship promote`", **kwargs)


def failed(**kwargs: Any) -> dict[str, Any]:
    return mdep(
        "v2",
        generation=2,
        phase="Degraded",
        message="version v2 rolled back: 0/1 Ready pods after 30s",
        stableVersion="v1",
        failedVersion="v2",
        **kwargs,
    )


def refusal(action: str, obj: dict[str, Any]) -> str:
    with pytest.raises(ActionRefused) as exc:
        plan_action(action, obj, "t-1")
    return str(exc.value)


# -- tokens and patches ----------------------------------------------------------------------------


def test_a_token_is_the_utc_time_plus_a_random_suffix() -> None:
    assert new_token(NOW, "abc123") == "20261127T120000Z-abc123"
    assert new_token(NOW) != new_token(NOW)


def test_promote_at_an_indefinite_pause_writes_a_fresh_token_and_nothing_else() -> None:
    # Given v2 waiting at step 4 (pause without duration)
    obj = waiting_for_promote()
    # When the user promotes
    plan = plan_action("promote", obj, "t-1")
    # Then the patch sets only the promote annotation, guarded by the resourceVersion it read
    assert plan.patch == {
        "metadata": {"annotations": {"modelship.dev/promote": "t-1"}, "resourceVersion": "42"}
    }
    assert "continues past step 4/4" in plan.summary


@pytest.mark.parametrize(
    ("action", "obj"),
    [
        ("promote-full", rolling(0, phase="Progressing")),
        ("promote-full", rolling(1)),
        ("abort", rolling(2, phase="Progressing")),
        ("abort", waiting_for_promote()),
        ("retry", failed()),
    ],
)
def test_each_one_shot_action_writes_only_its_own_annotation(action: str, obj: dict[str, Any]) -> None:
    plan = plan_action(action, obj, "t-1")
    assert plan.patch == {
        "metadata": {"annotations": {f"modelship.dev/{action}": "t-1"}, "resourceVersion": "42"}
    }


def test_pause_sets_the_level_annotation_and_resume_removes_it() -> None:
    # Given a rollout in progress
    obj = rolling(0, phase="Progressing")
    # When paused, then resumed
    pause = plan_action("pause", obj, "ignored")
    resume = plan_action("resume", rolling(0, annotations={"modelship.dev/paused": "true"}), "ignored")
    # Then pause writes "true" and resume writes null (a merge patch deletes the key)
    assert pause.patch["metadata"]["annotations"] == {"modelship.dev/paused": "true"}
    assert resume.patch["metadata"]["annotations"] == {"modelship.dev/paused": None}
    assert "stops at the end of its current step" in pause.summary


def test_pause_is_allowed_with_no_rollout_and_holds_the_next_one() -> None:
    plan = plan_action("pause", healthy(), "ignored")
    assert "next canary rollout" in plan.summary


# -- refusals ---------------------------------------------------------------------------------------


def test_promote_refuses_when_nothing_is_rolling_out() -> None:
    message = refusal("promote", healthy())
    assert "nothing to promote" in message
    assert "version v1 is stable" in message


def test_promote_refuses_during_a_timed_pause_and_points_to_full() -> None:
    message = refusal("promote", rolling(1))
    assert "step 2/4 (pause 30s)" in message
    assert "--full" in message


def test_promote_refuses_while_a_weight_step_is_in_progress() -> None:
    assert "step 1/4 (setWeight 25), not waiting for a promote" in refusal(
        "promote", rolling(0, phase="Progressing")
    )


def test_promote_is_allowed_under_a_user_pause_which_then_holds_the_next_step() -> None:
    # The operator passes the indefinite pause on a promote; the user pause holds what follows.
    obj = waiting_for_promote(annotations={"modelship.dev/paused": "true"})
    plan = plan_action("promote", obj, "t-1")
    assert plan.patch["metadata"]["annotations"] == {"modelship.dev/promote": "t-1"}


def test_promote_refuses_while_an_earlier_promote_is_unhandled() -> None:
    obj = waiting_for_promote(annotations={"modelship.dev/promote": "old"}, handledActions={})
    assert "earlier promote (old) has not been handled" in refusal("promote", obj)


def test_a_handled_token_does_not_block_the_next_promote() -> None:
    obj = waiting_for_promote(annotations={"modelship.dev/promote": "old"}, handledActions={"promote": "old"})
    assert plan_action("promote", obj, "new").patch["metadata"]["annotations"] == {
        "modelship.dev/promote": "new"
    }


def test_actions_refuse_while_the_operator_has_not_seen_the_latest_generation() -> None:
    obj = waiting_for_promote()
    obj["metadata"]["generation"] = 3
    assert "not caught up with generation 3" in refusal("promote", obj)


def test_actions_refuse_on_an_object_without_status() -> None:
    assert "no status yet" in refusal("abort", mdep())


def test_promote_on_a_failed_version_points_to_retry() -> None:
    assert "kubectl modelship retry iris" in refusal("promote", failed())


def test_promote_full_refuses_once_past_the_last_step() -> None:
    assert "nothing to skip" in refusal("promote-full", rolling(4, phase="Progressing"))


def test_abort_refuses_without_a_rollout_and_on_a_first_rollout() -> None:
    assert "nothing to abort" in refusal("abort", healthy())
    first = mdep(phase="Progressing", message="deploying version v1: 0/4 pods Ready")
    assert "first version deployed" in refusal("abort", first)


def test_retry_refuses_when_nothing_failed() -> None:
    assert "no version has failed" in refusal("retry", healthy())
    first = mdep(phase="Degraded", message="version v1 has 0/4 Ready pods after 30s")
    assert "first rollout never gives up" in refusal("retry", first)


def test_pause_refuses_when_already_paused_and_resume_when_not() -> None:
    assert "already paused" in refusal("pause", healthy(annotations={"modelship.dev/paused": "true"}))
    message = refusal("resume", waiting_for_promote())
    assert "is not paused" in message
    assert "waiting at step 4 for `kubectl modelship promote iris`" in message


def test_act_decides_again_after_a_conflict() -> None:
    # Given an object that changes between the first read and write
    class FlakyKube:
        def __init__(self) -> None:
            self.patches: list[dict[str, Any]] = []

        def get(self, namespace: str, name: str) -> dict[str, Any]:
            return waiting_for_promote()

        def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
            self.patches.append(patch)
            if len(self.patches) == 1:
                raise Conflict("changed")
            return {}

    kube = FlakyKube()
    # When the user promotes
    out = act(kube, "ml", "iris", "promote")  # type: ignore[arg-type]
    # Then the plugin wrote twice, the second time with a new token, and reports success
    assert len(kube.patches) == 2
    tokens = [p["metadata"]["annotations"]["modelship.dev/promote"] for p in kube.patches]
    assert tokens[0] != tokens[1]
    assert out.startswith("modeldeployment.modelship.dev/iris promoted")


# -- status and history ----------------------------------------------------------------------------


def deployment(version: str, desired: int, ready: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"iris-{version}",
            "labels": {"modelship.dev/model-deployment": "iris", "modelship.dev/version": version},
        },
        "spec": {"replicas": desired},
        "status": {"readyReplicas": ready},
    }


def test_status_marks_the_current_step_and_shows_the_time_left_in_a_timed_pause() -> None:
    # Given v2 ten seconds into the 30s pause of step 2
    text = render_status(rolling(1), [deployment("v1", 3, 3), deployment("v2", 1, 1)], NOW)
    # Then the phase, both versions, the marker and the time left show
    assert "Phase:         Paused" in text
    assert "Stable:        v1" in text
    assert "Canary:        v2 (weight 25%)" in text
    assert "      1. setWeight 25           done" in text
    assert "  ->  2. pause 30s              20s left" in text
    assert "      3. setWeight 50\n" in text


def test_status_lists_each_version_with_its_ready_and_desired_pods_stable_first() -> None:
    deps = [deployment("v0", 0, 0), deployment("v2", 1, 0), deployment("v1", 3, 3)]
    text = render_status(rolling(0, phase="Progressing"), deps, NOW)
    versions = text.split("Versions:\n")[1].splitlines()
    assert versions[0].split() == ["VERSION", "ROLE", "PODS", "(READY/DESIRED)"]
    assert [line.split() for line in versions[1:]] == [
        ["v1", "stable", "3/3"],
        ["v2", "canary", "0/1"],
        ["v0", "previous", "0/0"],
    ]


def test_status_says_what_a_paused_rollout_waits_for() -> None:
    text = render_status(waiting_for_promote(), [], NOW)
    assert "  ->  4. pause until promoted   waiting for `kubectl modelship promote iris`" in text
    paused = render_status(rolling(2, annotations={"modelship.dev/paused": "true"}), [], NOW)
    assert "Paused:        by user" in paused
    assert "  ->  3. setWeight 50           paused by user" in paused


def test_status_of_a_failed_rollout_names_the_failed_version_and_no_step_marker() -> None:
    text = render_status(failed(), [], NOW)
    assert "Phase:         Degraded" in text
    assert "Failed:        v2 (`kubectl modelship retry iris` tries it again)" in text
    assert "->" not in text


def test_status_of_an_object_the_operator_has_not_seen() -> None:
    text = render_status(mdep(steps=None), [], NOW)
    assert "no status yet" in text
    assert "(no Deployments yet)" in text


def test_status_warns_when_it_describes_an_older_generation() -> None:
    obj = healthy()
    obj["metadata"]["generation"] = 2
    assert "status is for generation 1; the spec is at generation 2" in render_status(obj, [], NOW)


def test_history_lists_revisions_oldest_first_with_outcome_and_reason() -> None:
    revisions = [
        {
            "revision": 1,
            "version": "v1",
            "uri": "u1",
            "deployedAt": ts(300),
            "finishedAt": ts(290),
            "outcome": "Promoted",
        },
        {
            "revision": 2,
            "version": "v2",
            "uri": "u2",
            "deployedAt": ts(100),
            "finishedAt": ts(40),
            "outcome": "RolledBack",
            "reason": "ProgressDeadlineExceeded",
            "message": "version v2 had 0/1 Ready pods after 30s",
        },
        {"revision": 3, "version": "v2", "uri": "u2", "deployedAt": ts(5), "outcome": "Progressing"},
    ]
    lines = render_history(rolling(0, phase="Progressing", revisions=revisions), NOW).splitlines()
    assert lines[0].split() == ["REVISION", "VERSION", "OUTCOME", "DEPLOYED", "TOOK", "REASON", "MESSAGE"]
    assert lines[1].split()[:5] == ["1", "v1", "Promoted", "(stable)", "2026-11-27T11:55:00Z"]
    assert lines[2].split()[:6] == [
        "2",
        "v2",
        "RolledBack",
        "2026-11-27T11:58:20Z",
        "1m",
        "ProgressDeadlineExceeded",
    ]
    assert lines[2].endswith("version v2 had 0/1 Ready pods after 30s")
    assert lines[3].split()[:5] == ["3", "v2", "Progressing", "2026-11-27T11:59:55Z", "5s"]


def test_history_of_a_new_object_says_there_is_none() -> None:
    assert "no recorded revisions" in render_history(mdep(), NOW)


def test_ages_read_like_kubectl() -> None:
    assert [age(timedelta(seconds=s)) for s in (0, 45, 60, 200, 3600, 7500, 90000)] == [
        "0s",
        "45s",
        "1m",
        "3m20s",
        "1h",
        "2h5m",
        "1d1h",
    ]


# -- the command line ------------------------------------------------------------------------------


def test_connection_options_work_before_and_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["-n", "ml", "--context", "c", "promote", "iris", "--full"])
    after = parser.parse_args(["promote", "iris", "--full", "-n", "ml", "--kubeconfig", "k"])
    assert (before.namespace, before.context, before.full) == ("ml", "c", True)
    assert (after.namespace, after.kubeconfig) == ("ml", "k")


def test_an_unusable_kubeconfig_is_an_error_message_not_a_traceback(tmp_path: Any) -> None:
    err = io.StringIO()
    code = run(["status", "iris", "--kubeconfig", str(tmp_path / "missing")], io.StringIO(), err)
    assert code == 1
    assert err.getvalue().startswith("error: cannot use the kubeconfig")


def rolling_back() -> dict[str, Any]:
    """Stable v1 going back to v2, which served before (revision 1): the steps are skipped."""
    revisions = [
        {"revision": 1, "version": "v2", "uri": "u", "deployedAt": ts(900), "outcome": "Superseded"},
        {"revision": 2, "version": "v1", "uri": "u", "deployedAt": ts(600), "outcome": "Superseded"},
        {"revision": 3, "version": "v2", "uri": "u", "deployedAt": ts(5), "outcome": "Progressing"},
    ]
    return rolling(0, phase="Progressing", revisions=revisions, kind="Rollback")


def test_a_rollback_to_a_version_that_served_before_shows_its_steps_as_skipped() -> None:
    text = render_status(rolling_back(), [], NOW)
    assert "(skipped: version v2 served before" in text
    assert "->" not in text


def test_promote_full_refuses_on_a_rollback_which_has_no_steps_to_skip() -> None:
    assert "nothing to skip" in refusal("promote-full", rolling_back())
    assert plan_action("abort", rolling_back(), "t").action == "abort"


def test_an_unknown_context_is_named_in_the_error(tmp_path: Any) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: a, context: {cluster: c, user: u}}]\n"
    )
    err = io.StringIO()
    code = run(["history", "iris", "--kubeconfig", str(config), "--context", "b"], io.StringIO(), err)
    assert code == 1
    assert err.getvalue().startswith('error: context "b" not found in the kubeconfig')
