"""A model directory's digest and its safety, without a store: what digests.py and artifact.py promise."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from modelship_server.artifact import verified_local_copy
from modelship_server.digests import check_relative_path, digest_of_directory, directory_digest
from modelship_server.errors import StartupError


def test_the_digest_does_not_depend_on_the_order_files_are_listed_in() -> None:
    a, b = ("model.onnx", "1" * 64), ("weights/part-0.bin", "2" * 64)
    assert directory_digest([a, b]) == directory_digest([b, a])


def test_the_digest_is_that_of_sha256sum_lines_sorted_by_path() -> None:
    lines = f"{'2' * 64}  a.bin\n{'1' * 64}  b.onnx\n"
    assert (
        directory_digest([("b.onnx", "1" * 64), ("a.bin", "2" * 64)])
        == hashlib.sha256(lines.encode()).hexdigest()
    )


@pytest.mark.parametrize("key", ["../escape", "a/../../escape", "/absolute", "a//b", "./a", "a\\b"])
def test_a_key_that_is_not_a_plain_relative_path_is_refused(key: str) -> None:
    with pytest.raises(StartupError, match="not a plain relative path"):
        check_relative_path(key)


def test_a_worker_refuses_a_directory_changed_after_it_was_verified(tmp_path: Path) -> None:
    # Given a verified model directory
    (tmp_path / "model.onnx").write_bytes(b"graph")
    (tmp_path / "weights.bin").write_bytes(b"weights")
    verified, _ = digest_of_directory(tmp_path)
    # When a file in it changes before a worker loads it
    (tmp_path / "weights.bin").write_bytes(b"swapped")
    # Then the worker refuses it
    with pytest.raises(StartupError, match="changed after it was verified"):
        verified_local_copy(tmp_path, verified, "onnx")
