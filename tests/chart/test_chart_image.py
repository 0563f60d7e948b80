"""The chart and the operator image agree: the user the pod runs as, the ports it probes and
scrapes, the command, the version, and the operator's own defaults.

No Docker engine runs here, so operator/Dockerfile is read, not built: these tests catch the drift
that would otherwise show only on a real cluster (a pod refused for running as root, a probe on
the wrong port).
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
import yaml

from modelship.cli import parse_args
from tests.chart.helm import CHART
from tests.support.k8s import REPO

DOCKERFILE = REPO / "operator/Dockerfile"


def instructions(stage: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile stage, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", stage)
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and not line.startswith("#"))
    ]


def stages() -> list[list[tuple[str, str]]]:
    text = DOCKERFILE.read_text()
    parts = re.split(r"^(?=FROM\s)", text, flags=re.MULTILINE)
    return [instructions(part) for part in parts if part.lstrip().startswith("FROM")]


def final_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def args_of(stage: list[tuple[str, str]], instruction: str) -> list[str]:
    return [rest for word, rest in stage if word == instruction]


def chart_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def test_image_is_built_in_two_stages_from_slim_python_3_11() -> None:
    # Given the Dockerfile
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE)
    # Then a builder stage and a final stage both start from the slim Python 3.11 image
    assert (base and base.group(1).startswith("python:3.11-slim"), [s[0] for s in stages()]) == (
        True,
        [("FROM", "${PYTHON_IMAGE} AS builder"), ("FROM", "${PYTHON_IMAGE}")],
    )


def test_final_stage_installs_the_builders_wheel_and_nothing_that_compiles() -> None:
    # Given the final stage
    runs = " ".join(args_of(final_stage(), "RUN"))
    # Then it installs the operator from the builder's wheels alone, and no system packages
    # (a compiler would come from apt)
    assert (
        "from=builder" in runs,
        "--no-index" in runs,
        "modelship-operator" in runs,
        re.search(r"apt-get|apk |gcc|build-essential", runs),
    ) == (True, True, True, None)


def test_image_runs_as_the_numeric_user_the_chart_expects() -> None:
    # Given the final stage's USER and the chart's pod security context
    build_args = dict(arg.split("=", 1) for arg in args_of(final_stage(), "ARG") if "=" in arg)
    (user,) = args_of(final_stage(), "USER")
    uid = re.sub(r"\$\{(\w+)\}", lambda m: build_args[m.group(1)], user).split(":")[0]
    # Then the image's user is numeric and non-root, and the chart runs the pod as that user
    assert (uid.isdigit() and int(uid) > 0, int(uid)) == (
        True,
        chart_values()["podSecurityContext"]["runAsUser"],
    )


def test_image_entrypoint_is_modelship_run() -> None:
    # Given the final stage and the operator's console scripts
    scripts = tomllib.loads((REPO / "operator/pyproject.toml").read_text())["project"]["scripts"]
    # Then the entrypoint is `modelship run` (the chart passes only flags) and `modelship` is
    # the operator's CLI
    assert (args_of(final_stage(), "ENTRYPOINT"), scripts["modelship"]) == (
        ['["modelship", "run"]'],
        "modelship.cli:main",
    )


def test_image_exposes_the_ports_the_chart_probes_and_scrapes() -> None:
    # Given the ports the image exposes
    exposed = sorted(int(port) for arg in args_of(final_stage(), "EXPOSE") for port in arg.split())
    values = chart_values()
    # Then they are the chart's metrics and liveness ports
    assert exposed == sorted([values["metrics"]["port"], values["liveness"]["port"]])


def test_chart_app_version_is_the_operator_version() -> None:
    # Given the chart and the operator's package
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    package = tomllib.loads((REPO / "operator/pyproject.toml").read_text())["project"]
    # Then the chart ships that version of the operator
    assert (chart["appVersion"], chart_values()["image"]["tag"] or chart["appVersion"]) == (
        package["version"],
        package["version"],
    )


@pytest.mark.parametrize(
    ("value_path", "setting"),
    [
        ("operator.servingImage", "default_serving_image"),
        ("operator.logFormat", "log_format"),
        ("operator.logLevel", "log_level"),
        ("operator.watch.serverTimeout", "watch_server_timeout"),
        ("operator.watch.clientTimeout", "watch_client_timeout"),
        ("operator.maxWorkers", "max_workers"),
        ("operator.kubeApi.qps", "kube_api_qps"),
        ("operator.kubeApi.burst", "kube_api_burst"),
        ("metrics.port", "metrics_port"),
        ("liveness.port", "liveness_port"),
    ],
)
def test_chart_defaults_are_the_operators_defaults(value_path: str, setting: str) -> None:
    # Given a chart value that maps to an operator flag
    value: Any = chart_values()
    for key in value_path.split("."):
        value = value[key]
    # Then its default is what `modelship run` uses without the flag
    assert value == getattr(parse_args(["run"]), setting)
