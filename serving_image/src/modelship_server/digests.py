"""SHA-256 digests of a model file and of a model directory.

A directory's digest is the SHA-256 of what `sha256sum` prints for its files, one line
``<hex digest>  <relative path>\\n`` per file, sorted by path (bytewise), the shape of Go's module
``dirhash``. Users compute it with the tools they have, without Modelship:

    cd model-dir && find . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum

Paths with a backslash or a newline are refused: `sha256sum` escapes them, so the two would disagree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from modelship_server.errors import StartupError

_CHUNK = 1024 * 1024


def stream_digest(stream: IO[bytes]) -> tuple[str, int]:
    """Hex SHA-256 and size of everything ``stream`` still holds."""
    hasher = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        hasher.update(chunk)
        size += len(chunk)
    return hasher.hexdigest(), size


def check_relative_path(relative: str) -> None:
    """StartupError unless ``relative`` is a plain relative path a directory digest can name."""
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts) or "\\" in relative or "\n" in relative:
        raise StartupError(f"refusing model directory entry {relative!r}: not a plain relative path")


def directory_digest(files: Iterable[tuple[str, str]]) -> str:
    """The directory digest from (relative path, hex SHA-256 of the file) pairs, in any order."""
    listing = sorted(files, key=lambda entry: entry[0].encode())
    for relative, _ in listing:
        check_relative_path(relative)
    text = "".join(f"{digest}  {relative}\n" for relative, digest in listing)
    return hashlib.sha256(text.encode()).hexdigest()


def files_under(directory: Path) -> list[tuple[str, Path]]:
    """Every regular file below ``directory`` with its path relative to it (symlinks are not followed)."""
    return [
        (path.relative_to(directory).as_posix(), path)
        for path in directory.rglob("*")
        if path.is_file() and not path.is_symlink()
    ]


def digest_of_directory(directory: Path) -> tuple[str, int]:
    """The directory digest and total size of the files under ``directory``."""
    entries: list[tuple[str, str]] = []
    total = 0
    for relative, path in files_under(directory):
        with path.open("rb") as stream:
            digest, size = stream_digest(stream)
        entries.append((relative, digest))
        total += size
    return directory_digest(entries), total
