"""Downloading a model from S3 or an S3-compatible store: one object (``s3://bucket/key``) or a model
directory, every object under a key prefix (``s3://bucket/prefix/``).

obstore (Python bindings of the Rust object_store crate, maintained by the developmentseed team and used by
the Arrow ecosystem) rather than boto3: self-contained abi3 wheels with no Python dependencies, where boto3's
botocore pins python-dateutil<3 and cannot share an environment with the kubernetes client. Its credential
chain reads the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) and web
identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN: IRSA, when no key is set; it calls
AssumeRoleWithWebIdentity at AWS_ENDPOINT_URL_STS, default https://sts.<region>.amazonaws.com, always over
https whatever allow_http says), then the instance metadata service; it retries 5xx answers, dropped
connections and timeouts with exponential backoff and jitter.

Credentials never come from settings: the pod's environment is object_store's to read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelship_server.digests import check_relative_path, directory_digest
from modelship_server.errors import StartupError

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
ADDRESSING_STYLES = ("auto", "path", "virtual")
# S3 error codes that mean these credentials may not do this (object_store passes some only as text).
_DENIED_CODES = (
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
)


@dataclass(frozen=True)
class S3Options:
    """Where the S3 API is and how to address it; None means object_store's default (AWS, region from AWS_REGION)."""

    endpoint: str | None = None
    region: str | None = None
    addressing_style: str = "auto"
    max_attempts: int = 5


@dataclass(frozen=True)
class Downloaded:
    """The object's file, or for a key prefix the directory holding every object under it."""

    path: Path
    sha256: str
    size: int
    scratch_dir: Path


def split_uri(uri: str) -> tuple[str, str]:
    """Bucket and key of ``s3://bucket/key``; a key ending in '/' is a prefix. StartupError for anything else."""
    parts = urllib.parse.urlsplit(uri)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket or not key:
        raise StartupError(f"invalid S3 URI {uri!r}: expected s3://<bucket>/<key> or s3://<bucket>/<prefix>/")
    if parts.query or parts.fragment:
        raise StartupError(f"invalid S3 URI {uri!r}: no query or fragment allowed")
    return bucket, urllib.parse.unquote(key)


def _store(bucket: str, options: S3Options, timeout_s: float) -> Any:
    from obstore.store import S3Store

    config: S3Config = {}
    if options.endpoint is not None:
        config["endpoint"] = options.endpoint
    if options.region is not None:
        config["region"] = options.region
    # object_store addresses by path unless told otherwise; 'auto' keeps that (it works with AWS too).
    config["virtual_hosted_style_request"] = options.addressing_style == "virtual"
    client: ClientConfig = {"allow_http": True, "user_agent": "modelship-server"}
    if timeout_s:
        client["connect_timeout"] = timedelta(seconds=timeout_s)
    retry: RetryConfig = {
        "max_retries": options.max_attempts - 1,
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=5),
            "base": 2,
        },
        "retry_timeout": timedelta(seconds=max(timeout_s, 1.0) * 2),
    }
    return S3Store(bucket, config=config, client_options=client, retry_config=retry)


def download(uri: str, options: S3Options, *, max_bytes: int, timeout_s: float) -> Downloaded:
    """Stream the object at ``uri``, or every object under a key prefix (``s3://bucket/prefix/``), into a
    private temporary directory, hashing as it goes.

    Refuses more than ``max_bytes`` in all (from the listed sizes, then while reading). Every failure is a
    StartupError with one line naming the bucket or key and what went wrong, and leaves nothing on disk.
    """
    from obstore import exceptions as ose

    bucket, key = split_uri(uri)
    scratch = Path(tempfile.mkdtemp(prefix="modelship-model-"))
    where = f"s3://{bucket}/{key}"
    try:
        store = _store(bucket, options, timeout_s)
        if key.endswith("/"):
            got = _download_prefix(store, key, scratch / "model", where, max_bytes)
        else:
            target = scratch / (Path(key).name or "model")
            digest, size = _stream_object(store, key, target, where, max_bytes)
            got = Downloaded(path=target, sha256=digest, size=size, scratch_dir=scratch)
    except StartupError:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    except (ose.NotFoundError, FileNotFoundError) as error:
        shutil.rmtree(scratch, ignore_errors=True)
        if "NoSuchBucket" in str(error):
            raise StartupError(f"cannot download {where}: bucket {bucket!r} does not exist") from None
        raise StartupError(
            f"cannot download {where}: key {key!r} does not exist in bucket {bucket!r}"
        ) from None
    except (ose.PermissionDeniedError, ose.UnauthenticatedError) as error:
        shutil.rmtree(scratch, ignore_errors=True)
        raise StartupError(_web_identity_line(where, str(error)) or _denied_line(where, str(error))) from None
    except ose.BaseError as error:
        shutil.rmtree(scratch, ignore_errors=True)
        raise StartupError(_generic_line(where, bucket, options, str(error))) from None
    except (ValueError, OSError) as error:
        shutil.rmtree(scratch, ignore_errors=True)
        raise StartupError(f"cannot download {where}: {_one_line(str(error))}") from None
    log.info("model downloaded", extra={"uri": where, "bytes": got.size})
    return Downloaded(path=got.path, sha256=got.sha256, size=got.size, scratch_dir=scratch)


def _stream_object(store: Any, key: str, target: Path, where: str, max_bytes: int) -> tuple[str, int]:
    """Write one object to ``target``; its digest and size. ``max_bytes`` is what is left of the limit."""
    import obstore

    result = obstore.get(store, key)
    declared = int(result.meta["size"])
    if declared > max_bytes:
        raise StartupError(_too_large(where, max_bytes, declared))
    hasher = hashlib.sha256()
    size = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for chunk in result.stream(min_chunk_size=_CHUNK):
            data = bytes(chunk)
            size += len(data)
            if size > max_bytes:
                raise StartupError(_too_large(where, max_bytes))
            hasher.update(data)
            out.write(data)
    return hasher.hexdigest(), size


def _download_prefix(store: Any, prefix: str, directory: Path, where: str, max_bytes: int) -> Downloaded:
    """Every object under ``prefix`` into ``directory``, keeping the key's path below the prefix.

    The listing comes first, so a directory over the limit is refused before any byte is read; each key
    must be a plain relative path below the prefix (no '..'), so nothing lands outside ``directory``.
    """
    import obstore

    listed: list[tuple[str, str, int]] = []
    for page in obstore.list(store, prefix):
        for meta in page:
            if meta["path"].endswith("/"):
                continue  # a "folder" marker some tools create: no content
            relative = meta["path"][len(prefix) :] if meta["path"].startswith(prefix) else meta["path"]
            try:
                check_relative_path(relative)
            except StartupError as error:
                raise StartupError(f"cannot download {where}: {error}") from None
            listed.append((meta["path"], relative, int(meta["size"])))
    if not listed:
        raise StartupError(f"cannot download {where}: no objects under prefix {prefix!r}")
    declared = sum(size for _, _, size in listed)
    if declared > max_bytes:
        raise StartupError(_too_large(where, max_bytes, declared))
    files: list[tuple[str, str]] = []
    total = 0
    for key, relative, _ in listed:
        digest, size = _stream_object(store, key, directory / relative, where, max_bytes - total)
        files.append((relative, digest))
        total += size
    return Downloaded(
        path=directory, sha256=directory_digest(files), size=total, scratch_dir=directory.parent
    )


def _too_large(where: str, max_bytes: int, declared: int | None = None) -> str:
    if declared is not None:
        return f"model at {where} is {declared} bytes, more than the limit of {max_bytes} (--max-model-bytes)"
    return f"model at {where} is larger than the limit of {max_bytes} bytes (--max-model-bytes)"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300] or "unknown error"


def _denied_line(where: str, text: str) -> str:
    role = _web_identity_role()
    if role is not None:
        if "InvalidToken" in text or "ExpiredToken" in text:
            return (
                f"cannot download {where}: access denied: the session token the STS issued for role {role} "
                "(web identity) was refused by the store"
            )
        return f"cannot download {where}: access denied; check the policy of role {role} (web identity)"
    if "InvalidToken" in text or "ExpiredToken" in text:
        return (
            f"cannot download {where}: access denied: the session token (AWS_SESSION_TOKEN) was refused; "
            "temporary credentials expire: renew the key, the secret and the token together"
        )
    return f"cannot download {where}: access denied; check the credentials and their policy"


def _generic_line(where: str, bucket: str, options: S3Options, text: str) -> str:
    """object_store reports some S3 answers only as text; pick out the ones users need named."""
    web_identity = _web_identity_line(where, text)
    if web_identity is not None:
        return web_identity
    if "NoSuchBucket" in text:
        return f"cannot download {where}: bucket {bucket!r} does not exist"
    if any(code in text for code in _DENIED_CODES):
        return _denied_line(where, text)
    if "error sending request" in text or "Connect" in text or "dns error" in text:
        endpoint = options.endpoint or "the AWS endpoint"
        return f"cannot download {where}: cannot reach S3 endpoint {endpoint}"
    return f"cannot download {where}: {_one_line(text)}"


def _web_identity_role() -> str | None:
    """The role object_store assumes when it uses web identity (a token file and a role, and no key)."""
    if "AWS_ACCESS_KEY_ID" in os.environ or "AWS_SECRET_ACCESS_KEY" in os.environ:
        return None
    if not os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return None
    return os.environ.get("AWS_ROLE_ARN") or None


def _web_identity_line(where: str, text: str) -> str | None:
    """The line for a failed web-identity exchange, None when ``text`` is not about one.

    object_store wraps the STS answer in a generic error: its request is the only POST of a download and is
    marked sensitive, so the text says "POST REDACTED", and it holds the STS's error document (namespace
    sts.amazonaws.com) or names AssumeRoleWithWebIdentity when the answer would not parse.
    """
    if "Failed to read token file" in text:
        return (
            f"cannot download {where}: web identity: cannot read the token file "
            f"{os.environ.get('AWS_WEB_IDENTITY_TOKEN_FILE', '')!r} (AWS_WEB_IDENTITY_TOKEN_FILE)"
        )
    if "POST REDACTED" not in text and "AssumeRoleWithWebIdentity" not in text:
        return None
    sts = os.environ.get("AWS_ENDPOINT_URL_STS") or "the AWS STS"
    role = os.environ.get("AWS_ROLE_ARN", "")
    code = re.search(r"<Code>([^<]*)</Code>", text)
    if code is not None:
        message = re.search(r"<Message>([^<]*)</Message>", text)
        detail = f"{code.group(1)}: {message.group(1)}" if message else code.group(1)
        return (
            f"cannot download {where}: web identity: the STS refused AssumeRoleWithWebIdentity for role "
            f"{role} ({_one_line(detail)}); check the service account token (AWS_WEB_IDENTITY_TOKEN_FILE) "
            "and the role's trust policy"
        )
    if "error sending request" in text or "Connect" in text or "dns error" in text:
        return (
            f"cannot download {where}: web identity: cannot reach the STS at {sts} over https "
            "(AWS_ENDPOINT_URL_STS; is its certificate trusted?)"
        )
    return (
        f"cannot download {where}: web identity: AssumeRoleWithWebIdentity at {sts} failed: {_one_line(text)}"
    )
