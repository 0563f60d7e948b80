"""The newest ModelDeployment body the operator knows of, per object: what a reconcile starts from.

Two sources feed it: the watch (kopf hands every event's body to `seen`) and the operator's own
status writes (`wrote`, with the body the apiserver answered, or the body it read back after a
write whose outcome it did not hear). The second matters because the
watch lags: a pass that starts right after a status write, before the watch has delivered that
write, would otherwise decide from the status before it (and, say, announce a step twice). So a
written body wins until the watch delivers that version or a newer one. Versions are compared as
numbers: the apiserver's are etcd revisions, and when one is not a number the watch's body wins.
"""

from __future__ import annotations

from typing import Any

Key = tuple[str, str]  # (namespace, name)
Body = dict[str, Any]


class LatestBodies:
    def __init__(self) -> None:
        self._seen: dict[Key, Body] = {}
        self._written: dict[Key, Body] = {}

    def seen(self, key: Key, body: Body) -> None:
        self._seen[key] = body
        written = self._written.get(key)
        if written is not None and not _newer(written, body):
            del self._written[key]

    def wrote(self, key: Key, body: Body) -> None:
        if key in self._seen and _newer(body, self._seen[key]):
            self._written[key] = body

    def forget(self, key: Key) -> None:
        self._seen.pop(key, None)
        self._written.pop(key, None)

    def get(self, key: Key) -> Body | None:
        return self._written.get(key) or self._seen.get(key)

    def __len__(self) -> int:
        return len(self._seen)


def _version(body: Body) -> int | None:
    value = (body.get("metadata") or {}).get("resourceVersion")
    try:
        return int(str(value))
    except ValueError:
        return None


def _newer(a: Body, b: Body) -> bool:
    va, vb = _version(a), _version(b)
    return va is not None and vb is not None and va > vb
