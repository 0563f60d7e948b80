"""`hack/faults.sh`: the fault harness by hand.

    hack/faults.sh restart COMPONENT [--cluster NAME]     kill it; the supervisor starts it again
    hack/faults.sh freeze COMPONENT SECONDS [--cluster NAME]   SIGSTOP, then SIGCONT
    hack/faults.sh proxy [--cluster NAME] [--kubeconfig PATH]  a misbehaving proxy (see fault_proxy.py)

COMPONENT is etcd, kube-apiserver, kube-controller-manager, kube-scheduler or kwok-controller. The
cluster defaults to the fault tests' own (modelship-faults, started when missing); faults that stop
the shared cluster's apiserver or etcd would break everybody's tests. The proxy writes a kubeconfig
for `modelship run` and reads commands on stdin: `pass`, `drop`, `hold`, `hold-all`, `429`, `409`,
`lose` (the next status write of a ModelDeployment is stored, its answer lost, the watches silenced).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.fault_proxy import FaultProxy
from tests.support.faults import COMPONENTS, FAULTS_CLUSTER, cluster_up


def main() -> None:
    parser = argparse.ArgumentParser(prog="hack/faults.sh")
    parser.add_argument("command", choices=["restart", "freeze", "proxy"])
    parser.add_argument("component", nargs="?", choices=COMPONENTS)
    parser.add_argument("seconds", nargs="?", type=float, default=10.0)
    parser.add_argument("--cluster", default=FAULTS_CLUSTER)
    parser.add_argument("--kubeconfig", type=Path, default=Path("proxied-kubeconfig.yaml"))
    args = parser.parse_args()
    cluster = cluster_up(args.cluster)
    if args.command == "proxy":
        run_proxy(FaultProxy(cluster.server, cluster.directory / "pki").start(), args.kubeconfig)
        return
    if args.component is None:
        parser.error(f"{args.command} needs a COMPONENT")
    if args.command == "restart":
        cluster.restart(args.component)
        print(f"{args.component} restarted (pid {cluster.pid(args.component)})")
    else:
        with cluster.frozen(args.component):
            time.sleep(args.seconds)  # by hand, the fault's length is the point
        print(f"{args.component} ran again after {args.seconds:g} s")


def run_proxy(proxy: FaultProxy, kubeconfig: Path) -> None:
    print(
        f"KUBECONFIG={proxy.write_kubeconfig(kubeconfig.resolve())}; commands: pass drop hold hold-all 429 409 lose"
    )
    faults: dict[str, Callable[[], contextlib.AbstractContextManager[object]]] = {
        "drop": proxy.dropping,
        "hold": proxy.holding_watches,
        "hold-all": lambda: proxy.holding_watches(new_too=True),
        "429": lambda: proxy.answering(429),
        "409": lambda: proxy.answering(409, writes_only=True),
        "lose": lambda: proxy.losing_answer(to=FaultProxy.status_write),
    }
    with contextlib.ExitStack() as active:
        for line in sys.stdin:
            command = line.strip()
            active.close()
            if command in faults:
                active.enter_context(faults[command]())
            print(f"{command or 'pass'}; {len(proxy.requests)} requests so far", flush=True)


if __name__ == "__main__":
    main()
