"""The soak's model of an abort: the operator acts on it in the state it first sees it in, so an
abort it has not handled before a version edit may abort the new version's rollout."""

from __future__ import annotations

import random
from typing import Any, cast

from tests.soak.actions import Actor
from tests.soak.invariants import Exemptions, Record
from tests.soak.kube import Kube


class Objects:
    """The ModelDeployments as the soak reads them, and the patches it sends."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {"stableVersion": "1-ok", "handledActions": {}}
        self.patches: list[dict[str, Any]] = []

    def objects(self) -> dict[str, dict[str, Any]]:
        return {"m": {"status": self.status}}

    def patch(self, name: str, patch: dict[str, Any]) -> None:
        self.patches.append(patch)

    def annotate(self, name: str, key: str, value: str) -> None:
        self.patch(name, {"metadata": {"annotations": {key: value}}})


def actor(objects: Objects) -> Actor:
    return Actor(cast(Kube, objects), random.Random(1), Record(), Exemptions(), ["m"])


def test_an_abort_not_handled_before_a_version_edit_may_fail_the_new_version() -> None:
    # Given an abort sent, which the operator has not handled yet
    objects = Objects()
    soak = actor(objects)
    soak.user_action("m", "abort")
    # When a new version is set
    soak.new_version("m", "slow")
    # Then the new version may end aborted
    assert "m" in soak.may_fail


def test_an_abort_handled_before_a_version_edit_leaves_the_new_version_to_succeed() -> None:
    # Given an abort sent, which the operator has handled (its token is in status)
    objects = Objects()
    soak = actor(objects)
    soak.user_action("m", "abort")
    token = objects.patches[-1]["metadata"]["annotations"]["modelship.dev/abort"]
    objects.status["handledActions"]["abort"] = token
    # When a new version is set
    soak.new_version("m", "slow")
    # Then the new version must end Healthy
    assert "m" not in soak.may_fail
