"""A real S3 server for the model server's tests: Versity Gateway (Apache-2.0) over a temporary directory.

hack/s3.sh builds it from its Go module at the pinned version (cached); a build or start failure fails the
tests that use it, loudly. The server listens on 127.0.0.1 only, with its own IAM store for a second user.
"""

from __future__ import annotations

import http.client
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.serving.support import free_port

REPO = Path(__file__).resolve().parents[2]
ROOT_ACCESS, ROOT_SECRET = "modelship-root", "modelship-root-secret"
OTHER_ACCESS, OTHER_SECRET = "modelship-other", "modelship-other-secret"
REGION = "us-east-1"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    data: Path

    def bucket(self, name: str) -> Path:
        """A bucket: with the POSIX backend, a directory under the data root."""
        path = self.data / name
        path.mkdir(exist_ok=True)
        return path

    def env(self, access: str = ROOT_ACCESS, secret: str = ROOT_SECRET) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": access,
            "AWS_SECRET_ACCESS_KEY": secret,
            "MODELSHIP_S3_ENDPOINT": self.endpoint,
            "MODELSHIP_S3_REGION": REGION,
            "MODELSHIP_S3_ADDRESSING_STYLE": "path",
        }


def _build() -> Path:
    built = subprocess.run(
        [str(REPO / "hack" / "s3.sh")], capture_output=True, text=True, timeout=1800, check=False
    )
    if built.returncode != 0:
        pytest.fail(f"hack/s3.sh could not build the S3 server: {built.stderr[-2000:]}")
    return Path(built.stdout.strip().splitlines()[-1])


def _healthy(host: str, port: int) -> bool:
    connection = http.client.HTTPConnection(host, port, timeout=1.0)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@contextmanager
def running_versitygw(root: Path, host: str, port: int) -> Iterator[tuple[Path, str]]:
    """Versity Gateway over `root`/data (a bucket is a directory there), listening on host:port with
    the root user's credentials; yields the binary and the endpoint, and stops it afterwards."""
    binary = _build()
    (root / "data").mkdir(exist_ok=True)
    (root / "iam").mkdir(exist_ok=True)
    log = (root / "versitygw.log").open("wb")
    process = subprocess.Popen(
        [
            str(binary),
            *("--access", ROOT_ACCESS, "--secret", ROOT_SECRET, "--region", REGION),
            *("--port", f"{host}:{port}", "--iam-dir", str(root / "iam"), "--health", "/health"),
            *("posix", str(root / "data")),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(host, port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"versitygw did not start: {(root / 'versitygw.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield binary, f"http://{host}:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    root = tmp_path_factory.mktemp("s3")
    with running_versitygw(root, "127.0.0.1", free_port()) as (binary, endpoint):
        # A second user, of the plain 'user' role: it may use only buckets it owns, so reading the
        # root's bucket is denied.
        created = subprocess.run(
            [
                str(binary),
                "admin",
                "--access",
                ROOT_ACCESS,
                "--secret",
                ROOT_SECRET,
                "--endpoint-url",
                endpoint,
                "create-user",
                "--access",
                OTHER_ACCESS,
                "--secret",
                OTHER_SECRET,
                "--role",
                "user",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0:
            pytest.fail(f"versitygw admin create-user failed: {created.stderr}")
        yield S3Server(endpoint=endpoint, data=root / "data")
