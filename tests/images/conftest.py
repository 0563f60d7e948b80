"""Fixtures for the image tests: a throwaway containerd holding the images `hack/images.sh import` put
there, and a small model to serve."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.images.containerd import IMAGES_SCRIPT, Containerd, start_containerd

IMPORT_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class ImportRun:
    returncode: int
    log: str


def run_images_script(containerd: Containerd, *args: str) -> ImportRun:
    """`hack/images.sh ARGS`, importing (with `import`) into this containerd; it builds first whatever
    is not cached."""
    done = subprocess.run(
        [str(IMAGES_SCRIPT), *args],
        env={**os.environ, "MODELSHIP_CONTAINERD_ADDRESS": containerd.address},
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT_S,
        check=False,
    )
    return ImportRun(done.returncode, done.stdout + done.stderr)


@pytest.fixture(scope="session")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    started = start_containerd(tmp_path_factory.mktemp("containerd"))
    yield started
    started.stop()


@pytest.fixture(scope="session")
def first_import(containerd: Containerd) -> ImportRun:
    imported = run_images_script(containerd, "import")
    assert imported.returncode == 0, imported.log
    return imported


@dataclass(frozen=True)
class IrisModel:
    directory: Path
    file_name: str
    x: np.ndarray[Any, Any]
    model: LogisticRegression


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> IrisModel:
    directory = tmp_path_factory.mktemp("model")
    # The container's user (10001) reads it through a read-only bind mount.
    directory.chmod(0o755)
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(x, y)
    skops.io.dump(model, directory / "iris.skops")
    (directory / "iris.skops").chmod(0o644)
    return IrisModel(directory, "iris.skops", x, model)
