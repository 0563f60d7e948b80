"""The local cluster restarts its own control-plane processes, as a kubelet restarts static pods.

These kill and freeze processes, so they run on the fault tests' own cluster, never the shared one.
"""

from __future__ import annotations

import uuid

import yaml

from tests.support.faults import LocalCluster
from tests.support.k8s import wait_for


def new_namespace(cluster: LocalCluster) -> str:
    name = f"sup-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    wait_for("the default ServiceAccount", lambda: cluster.kubectl("-n", name, "get", "sa", "default"))
    return name


def deployment(name: str, replicas: int) -> str:
    labels = {"app": name}
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": "example.com/app:1"}]},
                },
            },
        }
    )


def ready_replicas(cluster: LocalCluster, ns: str, name: str) -> int:
    status = cluster.get_json("-n", ns, "deployment", name).get("status") or {}
    return int(status.get("readyReplicas", 0))


def test_a_killed_controller_manager_is_restarted_and_deployments_work_again(
    faults_cluster: LocalCluster,
) -> None:
    # Given the cluster running
    ns = new_namespace(faults_cluster)
    # When kube-controller-manager is killed outright
    killed = faults_cluster.kill("kube-controller-manager")
    # Then the supervisor starts it again
    wait_for(
        "a new kube-controller-manager",
        lambda: (
            faults_cluster.pid("kube-controller-manager") not in (0, killed)
            and faults_cluster.running("kube-controller-manager")
        ),
        timeout=30,
    )
    # And a Deployment created afterwards gets its ReplicaSet and its Ready pods
    faults_cluster.kubectl("-n", ns, "apply", "-f", "-", input=deployment("after-kill", 2))
    wait_for("2 Ready pods", lambda: ready_replicas(faults_cluster, ns, "after-kill") == 2, timeout=60)
    faults_cluster.kubectl("delete", "namespace", ns, "--wait=false")


def test_controllers_that_lose_their_leases_while_etcd_is_frozen_come_back(
    faults_cluster: LocalCluster,
) -> None:
    # Given the cluster running
    ns = new_namespace(faults_cluster)
    managers = faults_cluster.pid("kube-controller-manager")
    # When etcd is frozen until kube-controller-manager gives up its lease and exits, as it is
    # designed to (the fault the issue saw stall a rollout forever)
    with faults_cluster.frozen("etcd"):
        wait_for(
            "kube-controller-manager to exit on its lost lease",
            lambda: faults_cluster.pid("kube-controller-manager") != managers,
            timeout=60,
        )
    # Then, with etcd back, a Deployment created afterwards still gets its ReplicaSet and pods
    wait_for("the apiserver to answer", faults_cluster.answers, timeout=60)
    faults_cluster.kubectl("-n", ns, "apply", "-f", "-", input=deployment("after-freeze", 2), timeout=60)
    wait_for("2 Ready pods", lambda: ready_replicas(faults_cluster, ns, "after-freeze") == 2, timeout=90)
    assert faults_cluster.running("kube-controller-manager")
    faults_cluster.kubectl("delete", "namespace", ns, "--wait=false")
