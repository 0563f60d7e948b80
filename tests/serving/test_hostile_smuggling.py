"""Request smuggling shapes: framing that two HTTP parsers (a proxy's and ours) could read differently.

Each must be refused with one answer and a closed connection, so that nothing behind it is ever read as a
request: every shape carries a second, smuggled request, which must go unanswered. Most refusals are
llhttp's strict mode; transfer codings other than chunked (501), Transfer-Encoding in HTTP/1.0 and
HTTP/0.9 and HTTP/2 request lines are refused by the server itself.
"""

from __future__ import annotations

import time

import pytest

from tests.serving.hostile import (
    LATE_S,
    TIMEOUT_S,
    Attack,
    Memory,
    Outcome,
    Probe,
    assert_unharmed,
    hostile_server,
    probe,
    read_until_closed,
)
from tests.serving.support import Server

__all__ = ["hostile_server", "probe"]  # fixtures used by name

SMUGGLED = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"

# (id, bytes sent before the smuggled request, status of the one answer)
CORPUS = [
    ("cl-then-te", POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-then-cl", POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("duplicate-cl-same", POST + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400),
    ("duplicate-cl-different", POST + b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}", 400),
    ("cl-list", POST + b"Content-Length: 2, 2\r\n\r\n{}", 400),
    ("negative-cl", POST + b"Content-Length: -1\r\n\r\n", 400),
    ("signed-cl", POST + b"Content-Length: +2\r\n\r\n{}", 400),
    ("hex-cl", POST + b"Content-Length: 0x2\r\n\r\n{}", 400),
    ("huge-cl", POST + b"Content-Length: 99999999999999999999999\r\n\r\n", 400),
    ("invalid-chunk-size", CHUNKED + b"zz\r\n{}\r\n0\r\n\r\n", 400),
    ("negative-chunk-size", CHUNKED + b"-2\r\n{}\r\n0\r\n\r\n", 400),
    ("huge-chunk-size", CHUNKED + b"ffffffffffffffffffffff\r\n{}\r\n0\r\n\r\n", 400),
    ("chunk-size-bare-lf", CHUNKED + b"2\n{}\n0\n\n", 400),
    ("chunk-extension-bare-lf", CHUNKED + b"2;a=b\n{}\r\n0\r\n\r\n", 400),
    ("chunk-extension-quoted-crlf", CHUNKED + b'2;a="b\r\nc"\r\n{}\r\n0\r\n\r\n', 400),
    ("te-unknown-coding", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("te-not-chunked", POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501),
    ("te-chunked-not-last", POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    ("te-twice", POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-space-before-colon", POST + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    (
        "te-in-http-1.0",
        b"POST /v2/models/iris/infer HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    ("obs-fold", b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    ("bare-lf-request-line", b"GET /v2 HTTP/1.1\nHost: x\r\n\r\n", 400),
    ("bare-lf-header", b"GET /v2 HTTP/1.1\r\nHost: x\n\r\n", 400),
    ("bare-cr-request-line", b"GET /v2 HTTP/1.1\rHost: x\r\n\r\n", 400),
    ("bare-cr-header", b"GET /v2 HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 400),
    ("nul-in-header-value", b"GET /v2 HTTP/1.1\r\nX-A: a\x00b\r\n\r\n", 400),
    ("nul-in-header-name", b"GET /v2 HTTP/1.1\r\nX\x00A: a\r\n\r\n", 400),
    ("nul-in-url", b"GET /v2\x00x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("control-char-in-header", b"GET /v2 HTTP/1.1\r\nX-A: a\x01b\r\n\r\n", 400),
    ("http-0.9", b"GET /v2\r\n\r\n", 400),
    ("http-2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    ("http-2-request-line", b"GET /v2 HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("http-3-request-line", b"GET /v2 HTTP/3.1\r\nHost: x\r\n\r\n", 400),
]


def _send(server: Server, data: bytes) -> Outcome:
    outcome = Outcome()
    started = time.monotonic()
    attack = Attack(server, lambda *_: None, 0)
    with attack.connect() as sock:
        sock.sendall(data)
        read_until_closed(sock, outcome, started)
    return outcome


@pytest.mark.parametrize(("shape", "status"), [pytest.param(d, s, id=i) for i, d, s in CORPUS])
def test_a_smuggling_shape_gets_one_refusal_and_a_closed_connection(
    hostile_server: Server, shape: bytes, status: int
) -> None:
    # When a client sends the shape with a second request behind it,
    outcome = _send(hostile_server, shape + SMUGGLED)
    # then it gets one answer, the refusal, and the connection is closed at once: the smuggled request
    # was never read as one.
    assert not outcome.error, outcome.error
    assert outcome.status == status, outcome.received[:300]
    assert outcome.received.count(b"HTTP/1.1 ") == 1, outcome.received
    assert outcome.closed
    assert outcome.seconds < LATE_S, outcome.seconds


def test_an_unfinished_http_0_9_request_gets_408_at_the_head_deadline(hostile_server: Server) -> None:
    # When a client sends an HTTP/0.9 request line (no version) and nothing more,
    outcome = _send(hostile_server, b"GET /v2\r\n")
    # then the head never completes: 408 at the head deadline, and the connection is closed.
    assert outcome.status == 408, outcome.received[:300]
    assert outcome.closed
    assert outcome.seconds < TIMEOUT_S + LATE_S, outcome.seconds


SMUGGLERS = 2
CORPUS_ROUNDS = 3


def test_the_corpus_as_an_attack_leaves_the_well_behaved_client_unharmed(
    hostile_server: Server, probe: Probe
) -> None:
    # Given the well-behaved client's latency right before the attack,
    baseline = probe.measure()
    memory = Memory(hostile_server)

    # when 4 clients send the whole corpus, each shape on a connection of its own, a few times over,
    def attacker(attack: Attack, outcome: Outcome) -> None:
        for round_number in range(CORPUS_ROUNDS):
            if round_number and attack.stop.is_set():
                return
            for _, shape, status in CORPUS:
                answer = _send(attack.server, shape + SMUGGLED)
                if answer.status != status or not answer.closed:
                    outcome.error = f"{shape[:40]!r} got {answer.received[:60]!r}"
                    return
                attack.engaged()

    with Attack(hostile_server, attacker, SMUGGLERS) as attack:
        during = probe.measure()

    # then every shape was refused every time,
    assert not [o.error for o in attack.outcomes if o.error]
    # and the well-behaved client was served as before.
    assert_unharmed(baseline, during, memory)
