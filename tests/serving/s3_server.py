"""A real S3 server for the model server's tests: Versity Gateway (Apache-2.0) over a temporary directory.

hack/s3.sh builds it from its Go module at the pinned version (cached); a build or start failure fails the
tests that use it, loudly. Three accounts, as a platform team would set them up:

- root: the gateway's administrator, used only to create the users and the buckets;
- reader (role `user`): granted READ on every bucket made by `S3Server.bucket`, which in versitygw's
  ACL model is listing the bucket and getting its objects, nothing more. The servers under test use it;
- other (role `user`): granted nothing, so every request of its on those buckets is denied.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.serving.support import HERE, SERVER, free_port

REPO = Path(__file__).resolve().parents[2]
ROOT_ACCESS, ROOT_SECRET = "modelship-root", "modelship-root-secret"
READER_ACCESS, READER_SECRET = "modelship-reader", "modelship-reader-secret"
OTHER_ACCESS, OTHER_SECRET = "modelship-other", "modelship-other-secret"
REGION = "us-east-1"
START_TIMEOUT_S = 30.0
MODEL = ("--model-name", "iris", "--model-version", "1", "--workers", "1")


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    data: Path
    binary: Path

    def bucket(self, name: str) -> Path:
        """A bucket owned by root that the reader may read (and not write), created once through the
        admin API; with the POSIX backend it is a directory under the data root, where tests put objects."""
        path = self.data / name
        if not path.is_dir():
            self.admin(
                "create-bucket",
                *("--owner", ROOT_ACCESS, "--bucket", name, "--grant-read", READER_ACCESS),
                # ACL grants are refused under the default (BucketOwnerEnforced: ACLs off).
                *("--object-ownership", "BucketOwnerPreferred"),
            )
        return path

    def env(self, access: str = READER_ACCESS, secret: str = READER_SECRET) -> dict[str, str]:
        """The model server's environment for this store: the read-only user unless told otherwise."""
        return {
            "AWS_ACCESS_KEY_ID": access,
            "AWS_SECRET_ACCESS_KEY": secret,
            "MODELSHIP_S3_ENDPOINT": self.endpoint,
            "MODELSHIP_S3_REGION": REGION,
            "MODELSHIP_S3_ADDRESSING_STYLE": "path",
        }

    def admin(self, *args: str) -> None:
        """versitygw's admin CLI as root against this server; a refusal fails the test with its reason."""
        done = subprocess.run(
            [
                str(self.binary),
                "admin",
                *("--access", ROOT_ACCESS, "--secret", ROOT_SECRET, "--endpoint-url", self.endpoint),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"versitygw admin {args[0]} failed: {done.stderr or done.stdout}")


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
def running_versitygw(root: Path, host: str, port: int) -> Iterator[S3Server]:
    """Versity Gateway over `root`/data (a bucket is a directory there), listening on host:port, with
    the reader and the other user created; stopped afterwards."""
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
        server = S3Server(endpoint=f"http://{host}:{port}", data=root / "data", binary=binary)
        for access, secret in ((READER_ACCESS, READER_SECRET), (OTHER_ACCESS, OTHER_SECRET)):
            server.admin("create-user", "--access", access, "--secret", secret, "--role", "user")
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_versitygw(tmp_path_factory.mktemp("s3"), "127.0.0.1", free_port()) as server:
        yield server


def run_to_failure(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The model server run with `args` and S3 settings `env`, expected to stop at start-up."""
    return subprocess.run(
        [str(SERVER), "--host", "127.0.0.1", "--port", str(free_port()), *args, *MODEL],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(HERE), **env},
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    """Exit code 1 and exactly one line on stderr that holds every phrase: what the user sees."""
    lines = result.stderr.splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
