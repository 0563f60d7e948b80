"""The images hack/images.sh builds, imported into a containerd and run with runc, without Kubernetes:
named as the operator and the chart expect, serving a real model as user 10001 on a read-only root.

Run by `make test-images`, which builds the images first (cached by content).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelship.children import DEFAULT_SERVING_IMAGE
from tests.images.conftest import ImportRun, IrisModel, run_images_script
from tests.images.containerd import REPO, Containerd
from tests.serving.support import free_port

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
READY_TIMEOUT_S = 180.0
USER = "10001:10001"


def operator_image() -> str:
    chart = REPO / "charts" / "modelship"
    repository = yaml.safe_load((chart / "values.yaml").read_text())["image"]["repository"]
    return f"{repository}:{yaml.safe_load((chart / 'Chart.yaml').read_text())['appVersion']}"


@dataclass
class ServingContainer:
    container_id: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            payload = None if body is None else json.dumps(body)
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            conn.close()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"container exited {self.process.returncode}: {self.log.read_text()}")
            try:
                if self.request("GET", "/v2/health/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"not ready after {READY_TIMEOUT_S}s: {self.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def serving(
    first_import: ImportRun,
    containerd: Containerd,
    iris_model: IrisModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServingContainer]:
    """The serving image's entrypoint, as the operator's pods run it: a model from a file:// URI on
    a read-only bind mount, a writable /tmp (the emptyDir of a pod), the root read-only."""
    port = free_port()
    container_id = f"images-test-serving-{os.getpid()}"
    entrypoint = containerd.image_config(DEFAULT_SERVING_IMAGE)["Entrypoint"]
    args = [
        *entrypoint,
        *("--model-uri", f"file:///models/{iris_model.file_name}"),
        *("--model-name", "iris", "--model-version", "1"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
    ]
    mounts = [
        "type=tmpfs,src=tmpfs,dst=/tmp,options=rw:nosuid:nodev:mode=1777",
        f"type=bind,src={iris_model.directory},dst=/models,options=rbind:ro",
    ]
    log = tmp_path_factory.mktemp("serving") / "container.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            containerd.run_command(DEFAULT_SERVING_IMAGE, container_id, args, mounts),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    container = ServingContainer(container_id, port, process, log)
    try:
        container.wait_ready()
        yield container
    finally:
        containerd.ctr("tasks", "kill", "--signal", "SIGTERM", container_id)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            containerd.ctr("tasks", "kill", "--signal", "SIGKILL", container_id)
            process.wait(timeout=60)


def test_import_names_each_image_exactly_as_the_operator_and_the_chart_run_it(
    first_import: ImportRun, containerd: Containerd
) -> None:
    # Given the images imported by hack/images.sh; then containerd holds them under the exact names
    # a pod spec uses (not localhost/... or docker.io/library/...).
    names = set(containerd.image_digests())

    assert {DEFAULT_SERVING_IMAGE, operator_image(), PAUSE_IMAGE} <= names


def test_a_second_import_skips_the_images_already_there(
    first_import: ImportRun, containerd: Containerd
) -> None:
    # Given the images imported once
    before = containerd.image_digests()

    # When imported again
    again = run_images_script(containerd, "import")

    # Then nothing is imported twice and the images are unchanged
    assert again.returncode == 0, again.log
    assert again.log.count("already in containerd") == 3, again.log
    assert containerd.image_digests() == before


def test_a_second_build_with_unchanged_inputs_builds_nothing(
    first_import: ImportRun, containerd: Containerd
) -> None:
    # Given every image built (or found in the cache) by the first import; when built again
    again = run_images_script(containerd)

    # Then all four come from the cache
    assert again.returncode == 0, again.log
    assert (again.log.count(" cached "), again.log.count(" built in ")) == (4, 0), again.log


@pytest.mark.parametrize(
    ("image", "entrypoint"),
    [
        (DEFAULT_SERVING_IMAGE, ["modelship-server"]),
        (operator_image(), ["modelship", "run"]),
    ],
)
def test_project_images_run_their_command_as_a_numeric_non_root_user(
    first_import: ImportRun, containerd: Containerd, image: str, entrypoint: list[str]
) -> None:
    # The restricted Pod Security Standard checks runAsNonRoot against the image's numeric USER.
    config = containerd.image_config(image)

    assert (config["User"], config["Entrypoint"]) == (USER, entrypoint)


def test_pause_image_runs_pause_as_user_65535(first_import: ImportRun, containerd: Containerd) -> None:
    config = containerd.image_config(PAUSE_IMAGE)

    assert (config["User"], config["Entrypoint"]) == ("65535:65535", ["/pause"])


def test_serving_container_answers_a_v2_inference_with_the_models_prediction(
    serving: ServingContainer, iris_model: IrisModel
) -> None:
    # Given the serving image ready with the iris model; when asked for three rows
    rows = iris_model.x[[0, 60, 120]]
    status, body = serving.request(
        "POST",
        "/v2/models/iris/infer",
        {
            "inputs": [
                {"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
            ]
        },
    )

    # Then it answers what the model predicts
    assert status == 200, body
    assert body["outputs"][0]["data"] == iris_model.model.predict(rows).tolist()


def test_serving_container_runs_as_user_10001(serving: ServingContainer, containerd: Containerd) -> None:
    pid = containerd.task_pid(serving.container_id)
    assert pid is not None

    uid_line = next(
        line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:")
    )

    assert uid_line.split()[1:] == ["10001"] * 4


def test_serving_container_root_filesystem_is_read_only(
    serving: ServingContainer, containerd: Containerd
) -> None:
    pid = containerd.task_pid(serving.container_id)
    assert pid is not None

    # mountinfo fields: id, parent, major:minor, root, mount point, mount options, ...
    root_mount = next(
        line.split()
        for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        if line.split()[4] == "/"
    )

    assert "ro" in root_mount[5].split(",")


def test_operator_image_entrypoint_runs(first_import: ImportRun, containerd: Containerd) -> None:
    # Given the operator image's own entrypoint; when asked for its help on a read-only root
    image = operator_image()
    entrypoint = containerd.image_config(image)["Entrypoint"]
    done = subprocess.run(
        containerd.run_command(image, f"images-test-operator-{os.getpid()}", [*entrypoint, "--help"]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then the operator's command starts and answers
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("usage: modelship run"), done.stdout
