"""What one HTTP connection may cost a worker, and for how long: the limits a hostile client meets.

A serving pod sits behind a Service that any pod in the cluster can reach, so every limit is enforced as
bytes arrive (never only once a line or a read is complete) and every wait has a deadline.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelship_server.settings import Settings


@dataclass(frozen=True, slots=True)
class Limits:
    # Bytes a request line plus headers may span on the wire; the head is refused with 431 at this size.
    max_header_bytes: int = 64 * 1024
    # Bytes of request body; past it 413 (from Content-Length before the body is read, or as it arrives).
    max_body_bytes: int = 8 * 1024 * 1024
    # A request head must be complete this long after its first byte (for a new connection: after it
    # opened); a body this long after its head. Past either: 408 and close.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    # A connection with nothing in progress is closed after this; only a complete request resets it.
    keepalive_timeout_s: float = 75.0
    # Parsed requests a connection may have waiting for their answers; the server stops reading it there.
    max_pipelined: int = 64
    # Open connections per worker; new ones beyond it get 503 and are closed at once.
    max_connections: int = 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_body_bytes=settings.max_body_bytes,
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            keepalive_timeout_s=settings.keepalive_timeout_s,
            max_pipelined=settings.max_pipelined,
            max_connections=settings.max_connections,
        )
