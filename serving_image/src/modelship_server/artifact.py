"""Getting the model file onto local disk and proving it is the expected one.

Nothing here deserializes anything: the digest is checked on the raw bytes first, so a tampered or
truncated file is refused before any loader sees it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from modelship_server.digests import digest_of_directory, files_under, stream_digest
from modelship_server.errors import StartupError
from modelship_server.s3 import S3Options

log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
_EXTENSION_FORMATS = {
    ".skops": "skops",
    ".onnx": "onnx",
    ".joblib": "joblib",
    ".pkl": "joblib",
    ".pickle": "joblib",
}


@dataclass(frozen=True)
class LocalArtifact:
    """A model file on local disk whose bytes hash to ``sha256``."""

    path: Path
    sha256: str
    size: int
    format: str
    # A directory this process created for a download, removed when the server exits.
    scratch_dir: Path | None = None
    # For a model directory (an s3:// key prefix): the directory ``sha256`` covers; ``path`` is the one
    # file in it the loader opens (ONNX finds its external data files beside it).
    directory: Path | None = None

    @property
    def location(self) -> Path:
        """What the digest covers: the directory of a directory model, else the file."""
        return self.directory or self.path

    def remove_scratch(self) -> None:
        if self.scratch_dir is not None:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)


def format_for(uri: str, explicit: str | None) -> str:
    """The explicit format, else the one the file extension names; StartupError when neither tells."""
    if explicit is not None:
        return explicit
    suffix = Path(urllib.parse.urlsplit(uri).path).suffix.lower()
    if suffix in _EXTENSION_FORMATS:
        return _EXTENSION_FORMATS[suffix]
    name = Path(urllib.parse.urlsplit(uri).path).name or uri
    raise StartupError(f"cannot tell the model format from {name!r}; pass --format skops, onnx or joblib")


def fetch(
    uri: str,
    *,
    model_format: str | None,
    expected_sha256: str | None,
    max_bytes: int,
    timeout_s: float,
    s3: S3Options | None = None,
) -> LocalArtifact:
    """Make the model at ``uri`` a verified local file.

    ``file://`` URIs and plain paths are read in place; ``http(s)://`` URLs are downloaded into a private
    temporary directory, refusing more than ``max_bytes``; so are ``s3://bucket/key`` objects and the
    objects under an ``s3://bucket/prefix/`` (a model directory: digests.py says what its sha256 covers).
    With ``expected_sha256`` a mismatch raises StartupError; without it the computed digest is logged so
    it can be pinned.
    """
    fmt = format_for(uri, model_format)
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        artifact = _download(uri, fmt, max_bytes=max_bytes, timeout_s=timeout_s)
    elif scheme == "s3":
        from modelship_server import s3 as s3_download

        got = s3_download.download(uri, s3 or S3Options(), max_bytes=max_bytes, timeout_s=timeout_s)
        directory = got.path if got.path.is_dir() else None
        try:
            model_file = model_file_in(got.path, fmt) if directory else got.path
        except StartupError as error:
            shutil.rmtree(got.scratch_dir, ignore_errors=True)
            raise StartupError(f"model directory {uri}: {error}") from None
        artifact = LocalArtifact(
            path=model_file,
            sha256=got.sha256,
            size=got.size,
            format=fmt,
            scratch_dir=got.scratch_dir,
            directory=directory,
        )
    elif scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
        artifact = _local(_local_path(uri, parts), fmt)
    else:
        raise StartupError(
            f"unsupported model URI scheme {parts.scheme!r} in {uri!r} "
            "(supported: file://, http://, https://, s3:// and plain paths)"
        )
    try:
        _verify(artifact, uri, expected_sha256)
    except StartupError:
        artifact.remove_scratch()
        raise
    return artifact


def _local_path(uri: str, parts: urllib.parse.SplitResult) -> Path:
    if parts.scheme.lower() != "file":
        return Path(uri)
    if parts.netloc not in ("", "localhost"):
        raise StartupError(f"file URI {uri!r} names host {parts.netloc!r}; only local files can be read")
    return Path(urllib.parse.unquote(parts.path))


def _local(path: Path, fmt: str) -> LocalArtifact:
    try:
        with path.open("rb") as model_file:
            digest, size = stream_digest(model_file)
    except FileNotFoundError:
        raise StartupError(f"model file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise StartupError(f"model path {str(path)!r} is a directory, not a file") from None
    except OSError as error:
        raise StartupError(f"cannot read model file {str(path)!r}: {error.strerror or error}") from None
    return LocalArtifact(path=path, sha256=digest, size=size, format=fmt)


def _download(url: str, fmt: str, *, max_bytes: int, timeout_s: float) -> LocalArtifact:
    scratch = Path(tempfile.mkdtemp(prefix="modelship-model-"))
    name = Path(urllib.parse.urlsplit(url).path).name or "model"
    target = scratch / name
    shown = _redact(url)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "modelship-server"})
        with urllib.request.urlopen(request, timeout=timeout_s or None) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise StartupError(
                    f"model at {shown} is {int(declared)} bytes, more than the limit of "
                    f"{max_bytes} (--max-model-bytes)"
                )
            hasher = hashlib.sha256()
            size = 0
            with target.open("wb") as out:
                while chunk := response.read(_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise StartupError(
                            f"model at {shown} is larger than the limit of {max_bytes} "
                            "bytes (--max-model-bytes)"
                        )
                    hasher.update(chunk)
                    out.write(chunk)
    except StartupError:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    except urllib.error.HTTPError as error:
        shutil.rmtree(scratch, ignore_errors=True)
        raise StartupError(f"cannot download model from {shown}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        shutil.rmtree(scratch, ignore_errors=True)
        raise StartupError(f"cannot download model from {shown}: {error.reason}") from None
    except (OSError, ValueError) as error:
        shutil.rmtree(scratch, ignore_errors=True)
        raise StartupError(f"cannot download model from {shown}: {error}") from None
    log.info("model downloaded", extra={"uri": shown, "bytes": size})
    return LocalArtifact(path=target, sha256=hasher.hexdigest(), size=size, format=fmt, scratch_dir=scratch)


def _verify(artifact: LocalArtifact, uri: str, expected_sha256: str | None) -> None:
    if expected_sha256 is None:
        log.warning(
            "no --sha256 given: the model file is not verified",
            extra={"uri": _redact(uri), "sha256": artifact.sha256},
        )
        return
    if artifact.sha256 != expected_sha256:
        raise StartupError(
            f"model digest mismatch for {_redact(uri)}: expected sha256 {expected_sha256}, "
            f"got {artifact.sha256}"
        )
    if artifact.format == "onnx" and artifact.directory is None:
        _refuse_unpinned_external_data(artifact.path)


def _refuse_unpinned_external_data(path: Path) -> None:
    """A pinned digest must cover every byte the model loads: a single file's does not cover the
    external data files onnxruntime would read beside it."""
    from modelship_server.onnx_files import external_data_files

    try:
        files = external_data_files(path)
    except Exception as error:  # not parseable as ONNX: the loader says why, in its own words
        log.debug("cannot list external data", extra={"error": str(error)})
        return
    if files:
        raise StartupError(
            f"ONNX model {path.name!r} keeps tensors in {', '.join(files)} beside it, which its sha256 "
            "does not cover: serve it as a model directory (s3://bucket/prefix/, whose digest covers "
            "every file) or save it self-contained"
        )


def verify_local_copy(path: Path, expected_sha256: str) -> None:
    """Check again, in a worker process, that the file the supervisor verified was not swapped since."""
    with path.open("rb") as model_file:
        digest, _ = stream_digest(model_file)
    if digest != expected_sha256:
        raise StartupError(f"model file {str(path)!r} changed after it was verified")


def verified_local_copy(location: Path, expected_sha256: str, fmt: str) -> LocalArtifact:
    """The artifact the supervisor verified at ``location`` (a file, or a model directory), checked again
    in a worker process so a file swapped since is refused."""
    if not location.is_dir():
        verify_local_copy(location, expected_sha256)
        return LocalArtifact(path=location, sha256=expected_sha256, size=location.stat().st_size, format=fmt)
    digest, size = digest_of_directory(location)
    if digest != expected_sha256:
        raise StartupError(f"model directory {str(location)!r} changed after it was verified")
    return LocalArtifact(
        path=model_file_in(location, fmt), sha256=digest, size=size, format=fmt, directory=location
    )


def model_file_in(directory: Path, fmt: str) -> Path:
    """The one file of format ``fmt`` (by its extension) in a model directory; the others are its data."""
    extensions = sorted(ext for ext, named in _EXTENSION_FORMATS.items() if named == fmt)
    found = sorted(
        (relative, path) for relative, path in files_under(directory) if path.suffix.lower() in extensions
    )
    if len(found) != 1:
        names = ", ".join(relative for relative, _ in found) or "none"
        raise StartupError(
            f"a model directory must hold exactly one {fmt} file ({'/'.join(extensions)}); found {names}"
        )
    return found[0][1]


def _redact(uri: str) -> str:
    """The URI without credentials or query (pre-signed URLs carry secrets there), fit for logs."""
    parts = urllib.parse.urlsplit(uri)
    if not parts.scheme.lower().startswith("http"):
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
