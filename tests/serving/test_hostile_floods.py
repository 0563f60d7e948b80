"""Hostile clients that send too much: a header bomb, body bombs past --max-body-bytes, and a pipelining
flood. Each runs against a real server while a well-behaved client measures its own latency (hostile.py)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import pytest

from tests.serving.hostile import (
    LATE_S,
    MAX_BODY_BYTES,
    MAX_PIPELINED,
    TIMEOUT_S,
    Attack,
    Memory,
    Outcome,
    Probe,
    assert_unharmed,
    hostile_server,
    infer_request,
    probe,
    read_until_closed,
)
from tests.serving.support import Server

__all__ = ["hostile_server", "probe"]  # fixtures used by name

BOMBERS = 4
BOMB_BYTES = 8 * 1024 * 1024


def _bomb(attack: Attack, outcome: Outcome, opening: bytes, filler: bytes) -> None:
    """Send ``opening`` then ``filler`` up to BOMB_BYTES from one thread while reading from another."""
    started = time.monotonic()
    with attack.connect() as sock:

        def send() -> None:
            try:
                sock.sendall(opening)
                sent = 0
                # Not cut short by attack.stop: the bomb is the attack (the server ends it by a reset).
                while sent < BOMB_BYTES:
                    sock.sendall(filler)
                    sent += len(filler)
            except OSError:
                pass  # the server closed or reset the connection: the reader records it

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        attack.engaged()
        read_until_closed(sock, outcome, started)
        # End the sender's sendall if the server only half-closed (it may have reset the connection).
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(timeout=30)


def test_a_header_bomb_gets_431_at_the_head_budget(hostile_server: Server, probe: Probe) -> None:
    # Given the well-behaved client's latency right before the attack,
    baseline = probe.measure()
    memory = Memory(hostile_server)

    # when 4 clients each send a header value of 8 MiB that never ends its line,
    def attacker(attack: Attack, outcome: Outcome) -> None:
        _bomb(attack, outcome, b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-Bomb: ", b"a" * 65536)

    with Attack(hostile_server, attacker, BOMBERS) as attack:
        during = probe.measure()

    # then each gets 431 as soon as the head passes its budget (64 KiB), and is closed,
    for outcome in attack.outcomes:
        assert not outcome.error, outcome.error
        assert outcome.status == 431, outcome.received[:200]
        assert outcome.closed
        assert outcome.seconds < LATE_S, outcome.seconds
    # and the well-behaved client was served as before.
    assert_unharmed(baseline, during, memory)


BODY_BOMBS = [
    pytest.param(
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BOMB_BYTES,
        b"{" * 65536,
        id="content-length",
    ),
    pytest.param(
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"10000\r\n" + b"{" * 65536 + b"\r\n",
        id="chunked",
    ),
    pytest.param(
        # Chunk extensions are not body bytes, but they are bytes the server has to read.
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=",
        b"a" * 65536,
        id="chunk-extension",
    ),
]


@pytest.mark.parametrize(("opening", "filler"), BODY_BOMBS)
def test_a_body_bomb_gets_413_past_the_body_limit(
    hostile_server: Server, probe: Probe, opening: bytes, filler: bytes
) -> None:
    # Given the well-behaved client's latency right before the attack,
    baseline = probe.measure()
    memory = Memory(hostile_server)

    # when 4 clients each send an 8 MiB body (the limit is 256 KiB),
    def attacker(attack: Attack, outcome: Outcome) -> None:
        _bomb(attack, outcome, opening, filler)

    with Attack(hostile_server, attacker, BOMBERS) as attack:
        during = probe.measure()

    # then each gets 413 once past the limit, and is closed,
    for outcome in attack.outcomes:
        assert not outcome.error, outcome.error
        assert outcome.status == 413, outcome.received[:200]
        assert str(MAX_BODY_BYTES).encode() in outcome.received
        assert outcome.closed
        assert outcome.seconds < LATE_S, outcome.seconds
    # and the well-behaved client was served as before.
    assert_unharmed(baseline, during, memory)


FLOOD_REQUESTS = 3000
FLOOD_ROUNDS = 10


def _flood(attack: Attack, outcome: Outcome) -> None:
    """Pipeline FLOOD_REQUESTS infer requests at once and read every answer, round after round."""
    burst = infer_request() * FLOOD_REQUESTS
    started = time.monotonic()
    for round_number in range(FLOOD_ROUNDS):
        if round_number and attack.stop.is_set():
            break
        with attack.connect() as sock:
            sender = threading.Thread(target=sock.sendall, args=(burst,), daemon=True)
            sender.start()
            if round_number == 0:
                attack.engaged()
            received = bytearray()
            while received.count(b"HTTP/1.1 ") < FLOOD_REQUESTS or not received.endswith(b"}"):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                received += chunk
            sender.join(timeout=30)
            statuses = received.count(b"HTTP/1.1 200 OK\r\n")
            if statuses != FLOOD_REQUESTS:
                outcome.error = f"round {round_number}: {statuses} of {FLOOD_REQUESTS} answered 200"
                return
            outcome.received = bytes(received[-200:])
    outcome.seconds = time.monotonic() - started


def _batches(server: Server) -> tuple[float, float]:
    """(batches predicted, batches of at most 16 requests) so far."""
    return (
        server.metric("model_batch_size_count", model_name="iris"),
        server.metric("model_batch_size_bucket", model_name="iris", le="16.0"),
    )


def test_a_pipelining_flood_is_read_a_few_requests_at_a_time(hostile_server: Server, probe: Probe) -> None:
    # Given the well-behaved client's latency right before the attack (batches may hold 256 requests),
    baseline = probe.measure()
    batches_before, small_before = _batches(hostile_server)
    memory = Memory(hostile_server)

    # when a client pipelines 3000 infer requests at once, round after round,
    with Attack(hostile_server, _flood, 1) as attack:
        during = probe.measure()

    # then every request is answered, in order, on its connection,
    (outcome,) = attack.outcomes
    assert not outcome.error, outcome.error
    assert json.loads(outcome.received.rpartition(b"\r\n\r\n")[2])["outputs"][0]["data"] == [0]
    # while the server never held more than the pipelining bound (8) of its requests at once: no batch
    # took more than those plus the well-behaved client's one,
    batches_after, small_after = _batches(hostile_server)
    assert batches_after - batches_before >= FLOOD_REQUESTS / (MAX_PIPELINED + 2)
    assert small_after - small_before == batches_after - batches_before, (
        f"{batches_after - batches_before - (small_after - small_before)} batches of more than 16 requests"
    )
    # and the well-behaved client was served as before.
    assert_unharmed(baseline, during, memory)


def test_100_continue_waits_for_the_answers_ahead_of_it(hostile_server: Server) -> None:
    # Given an infer request (answered after its batch) pipelined ahead of a head that expects 100-continue,
    second = infer_request(extra_headers=b"Expect: 100-continue\r\n")
    head, _, body = second.partition(b"\r\n\r\n")
    with socket.create_connection(("127.0.0.1", hostile_server.port), timeout=TIMEOUT_S + LATE_S) as sock:
        sock.sendall(infer_request() + head + b"\r\n\r\n")
        # when the server answers,
        received = b""
        while b"100 Continue" not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        # then the first request's answer comes before the 100 Continue,
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")
        assert received.endswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        # and the second request is answered once its body follows.
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
