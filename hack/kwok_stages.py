#!/usr/bin/env python3
"""Writes the kwokctl config for the local cluster: kwok's default node and pod stages, plus two
stages that let tests make a serving version fail on purpose.

  stage.modelship.dev/never-ready: "true"  the pod runs but never turns Ready
  stage.modelship.dev/crash: "true"        the pod crash-loops (Ready false, restartCount rising)
  stage.modelship.dev/slow-ready: "true"   the pod turns Ready as usual, but 4 s late, so a test can
                                           act while a step's pods are still coming up

Supplying any Stage switches kwok's built-in defaults off, so the defaults are read from the kwok
module itself (the exact version pinned in hack/versions.env) and kept in force for every other pod.

usage: kwok_stages.py KWOK_MODULE_DIR OUT_FILE
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

NEVER_READY = "stage.modelship.dev/never-ready"
CRASH = "stage.modelship.dev/crash"
SLOW_READY = "stage.modelship.dev/slow-ready"
SLOW_READY_DELAY_MS = 4000
DEFAULTS = [
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
]


def label_is(label: str, value: str, op: str = "In") -> dict[str, Any]:
    return {"key": f'.metadata.labels["{label}"]', "operator": op, "values": [value]}


ALIVE = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}

# Go templates rendered by kwok for each matching pod: a running pod that is not Ready, with the
# container status that says why in between.
NOT_READY_HEAD = """\
conditions:
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Ready, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: false
"""
NOT_READY_TAIL = """\
{{ end }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Running
startTime: {{ $now | Quote }}
"""

NOT_READY_STATUS = (
    "{{ $now := Now }}\n"
    + NOT_READY_HEAD
    + """\
  started: true
  restartCount: 0
  state: {running: {startedAt: {{ $now | Quote }}}}
"""
    + NOT_READY_TAIL
)

# Each pass adds one restart, so restartCount climbs while the pod sits in CrashLoopBackOff.
CRASH_STATUS = (
    """\
{{ $now := Now }}
{{ $restarts := 0 }}
{{ with .status.containerStatuses }}{{ $restarts = (index . 0).restartCount }}{{ end }}
"""
    + NOT_READY_HEAD
    + """\
  started: false
  restartCount: {{ add1 $restarts }}
  lastState: {terminated: {exitCode: 1, reason: Error, finishedAt: {{ $now | Quote }}}}
  state: {waiting: {reason: CrashLoopBackOff, message: "back-off restarting failed container"}}
"""
    + NOT_READY_TAIL
)


def stage(name: str, match: list[dict[str, Any]], template: str, delay_ms: int) -> dict[str, Any]:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": match},
            "delay": {"durationMilliseconds": delay_ms},
            "next": {"statusTemplate": template},
        },
    }


def modelship_stages() -> list[dict[str, Any]]:
    pending = {"key": ".status.phase", "operator": "In", "values": ["Pending"]}
    return [
        stage(
            "modelship-never-ready", [label_is(NEVER_READY, "true"), ALIVE, pending], NOT_READY_STATUS, 200
        ),
        # Matches its own output again (phase Running), so it repeats every delay: a crash loop.
        stage("modelship-crash", [label_is(CRASH, "true"), ALIVE], CRASH_STATUS, 2000),
    ]


def default_stages(kwok_dir: Path) -> list[dict[str, Any]]:
    out = []
    for rel in DEFAULTS:
        doc = yaml.safe_load((kwok_dir / rel).read_text())
        if doc["spec"]["resourceRef"]["kind"] == "Pod" and doc["metadata"]["name"] == "pod-ready":
            # The same stage, later, for pods marked slow.
            slow = copy.deepcopy(doc)
            slow["metadata"]["name"] = "modelship-slow-ready"
            slow["spec"]["selector"]["matchExpressions"] += [label_is(SLOW_READY, "true")]
            slow["spec"]["delay"] = {"durationMilliseconds": SLOW_READY_DELAY_MS}
            # Pods that a test marked to fail (or slow) must never be made Ready by the default stage.
            doc["spec"]["selector"]["matchExpressions"] += [
                label_is(NEVER_READY, "true", "NotIn"),
                label_is(CRASH, "true", "NotIn"),
                label_is(SLOW_READY, "true", "NotIn"),
            ]
            out.append(slow)
        out.append(doc)
    return out


def main() -> None:
    kwok_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    docs = default_stages(kwok_dir) + modelship_stages()
    out.write_text(yaml.safe_dump_all(docs, sort_keys=False))


if __name__ == "__main__":
    main()
