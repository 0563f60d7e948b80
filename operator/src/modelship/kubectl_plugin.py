"""`kubectl modelship`: see and steer a ModelDeployment's rollout.

    kubectl modelship status NAME [--watch]     phase, versions, steps, pods per version
    kubectl modelship history NAME              the revisions the operator recorded
    kubectl modelship promote NAME [--full]     go past an indefinite pause (or skip every step)
    kubectl modelship abort NAME                send the canary back; stable takes all traffic
    kubectl modelship retry NAME                run a failed version's rollout again
    kubectl modelship pause NAME / resume NAME  hold or release the rollout at step boundaries

Actions write annotations only (see `modelship.plugin.actions`): Argo CD sees no drift and the
object's generation does not change. kubectl finds this program as `kubectl-modelship` on PATH.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from pydantic import ValidationError

from modelship.plugin import actions
from modelship.plugin.actions import ActionRefused, new_token, plan_action
from modelship.plugin.kube import Conflict, Kube, PluginError
from modelship.plugin.render import render_history, render_status

KIND = "modeldeployment.modelship.dev"
# A conflicting write means the operator (or someone) changed the object after we read it; each
# retry decides again on a fresh read, so a few are plenty.
CONFLICT_ATTEMPTS = 5
WATCH_INTERVAL = 1.0


def _connection_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: the options may come before or after the subcommand without one erasing the other.
    parser.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="the object's namespace")
    parser.add_argument("--context", default=argparse.SUPPRESS, help="the kubeconfig context to use")
    parser.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="path to the kubeconfig file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl modelship",
        description="See and steer the rollout of a Modelship ModelDeployment.",
    )
    _connection_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("name", metavar="NAME", help="the ModelDeployment")
        _connection_options(p)
        return p

    status = command("status", "show the rollout: phase, versions, canary steps, pods per version")
    status.add_argument("-w", "--watch", action="store_true", help="keep showing it as it changes")
    command("history", "list the revisions the operator recorded, oldest first")
    promote = command("promote", "continue a rollout waiting at a pause without a duration")
    promote.add_argument("--full", action="store_true", help="skip every remaining step")
    command("abort", "stop the rollout: the stable version takes all traffic back")
    command("retry", "roll out again the version whose rollout failed or was aborted")
    command("pause", "hold the rollout at the end of its current step")
    command("resume", "release a paused rollout")
    return parser


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def show_status(kube: Kube, namespace: str, name: str) -> str:
    obj = kube.get(namespace, name)
    return render_status(obj, kube.deployments(namespace, name), _now())


def watch_status(kube: Kube, namespace: str, name: str, out: TextIO) -> None:
    """Redraws in place on a terminal; elsewhere (a pipe, a log) prints each change once."""
    last = None
    while True:
        text = show_status(kube, namespace, name)
        if out.isatty():
            out.write("\x1b[H\x1b[2J" + text)
        elif text != last:
            out.write(("\n" if last is not None else "") + text)
        out.flush()
        last = text
        time.sleep(WATCH_INTERVAL)


def act(kube: Kube, namespace: str, name: str, action: str) -> str:
    """Reads, decides, writes; on a conflict decides again from a fresh read."""
    for _ in range(CONFLICT_ATTEMPTS):
        plan = plan_action(action, kube.get(namespace, name), new_token())
        try:
            kube.patch(namespace, name, plan.patch)
        except Conflict:
            continue
        return f"{KIND}/{name} {plan.summary}"
    raise PluginError(f"{KIND}/{name} kept changing while we tried to {action} it; try again")


def run(argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = build_parser().parse_args(argv)
    try:
        kube = Kube.connect(getattr(args, "kubeconfig", None), getattr(args, "context", None))
        namespace = getattr(args, "namespace", None) or kube.default_namespace
        if args.command == "status":
            if args.watch:
                watch_status(kube, namespace, args.name, out)
            else:
                out.write(show_status(kube, namespace, args.name))
        elif args.command == "history":
            out.write(render_history(kube.get(namespace, args.name), _now()))
        else:
            action = actions.PROMOTE_FULL if args.command == "promote" and args.full else args.command
            out.write(act(kube, namespace, args.name, action) + "\n")
    except (PluginError, ActionRefused) as exc:
        err.write(f"error: {exc}\n")
        return 1
    except ValidationError as exc:
        err.write(f"error: {KIND}/{args.name} does not parse as a ModelDeployment: {exc.errors()[:3]}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
