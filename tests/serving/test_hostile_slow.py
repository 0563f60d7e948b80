"""Hostile clients that are slow on purpose: slowloris on the head and on the body, and a thousand idle
connections against a worker's connection cap. Each runs against a real server while a well-behaved
client measures its own latency (see hostile.py)."""

from __future__ import annotations

import resource
import selectors
import socket
import threading
import time

from tests.serving.hostile import (
    LATE_S,
    MAX_CONNECTIONS,
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

SLOW_CLIENTS = 20
# Fast enough that an idle timer refreshed by every byte would never fire.
TRICKLE_EVERY_S = 0.25


def _trickle(attack: Attack, outcome: Outcome, opening: bytes, more: bytes) -> None:
    """Send ``opening``, then ``more`` one byte at a time, until the server answers or closes."""
    started = time.monotonic()
    with attack.connect() as sock:
        sock.sendall(opening)
        attack.engaged()
        for byte in more:
            sock.settimeout(TRICKLE_EVERY_S)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                try:
                    sock.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    outcome.closed = True
                    break
                continue
            except ConnectionResetError:
                outcome.closed = True
                break
            outcome.received += chunk
            if not chunk:
                outcome.closed = True
                break
            sock.settimeout(TIMEOUT_S + LATE_S)
            read_until_closed(sock, outcome, started)
            return
        else:
            outcome.error = "the server kept reading a trickle for the whole attack"
    outcome.seconds = time.monotonic() - started


def _assert_timed_out(attack: Attack) -> None:
    for outcome in attack.outcomes:
        assert not outcome.error, outcome.error
        assert outcome.status == 408, outcome.received[:200]
        assert outcome.closed
        assert outcome.seconds < TIMEOUT_S + LATE_S, outcome.seconds


def test_slowloris_on_the_head_gets_408_at_the_head_deadline(hostile_server: Server, probe: Probe) -> None:
    # Given the well-behaved client's latency right before the attack,
    baseline = probe.measure()
    memory = Memory(hostile_server)

    # when 20 clients each send a request head one byte at a time, every quarter second,
    def attacker(attack: Attack, outcome: Outcome) -> None:
        _trickle(attack, outcome, b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a" * 200)

    with Attack(hostile_server, attacker, SLOW_CLIENTS) as attack:
        during = probe.measure()

    # then each gets 408 and is closed at the head deadline, not kept alive by its bytes,
    _assert_timed_out(attack)
    # and the well-behaved client was served as before.
    assert_unharmed(baseline, during, memory)


def test_slowloris_on_the_body_gets_408_at_the_body_deadline(hostile_server: Server, probe: Probe) -> None:
    # Given the well-behaved client's latency right before the attack,
    baseline = probe.measure()
    memory = Memory(hostile_server)

    # when 20 clients each send a complete head announcing 1000 bytes, then the body one byte at a time,
    def attacker(attack: Attack, outcome: Outcome) -> None:
        head = b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
        _trickle(attack, outcome, head, b"{" * 1000)

    with Attack(hostile_server, attacker, SLOW_CLIENTS) as attack:
        during = probe.measure()

    # then each gets 408 and is closed at the body deadline,
    _assert_timed_out(attack)
    # and the well-behaved client was served as before.
    assert_unharmed(baseline, during, memory)


IDLE_CONNECTIONS = 1000


def _open_idle(server: Server, outcomes: list[Outcome], engaged: threading.Event) -> None:
    """Open IDLE_CONNECTIONS connections that send nothing; record how each ends."""
    # A default soft limit of 1024 open files would stop this process first, not the server's cap.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < IDLE_CONNECTIONS + 512:
        wanted = IDLE_CONNECTIONS + 512
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )
    selector = selectors.DefaultSelector()
    started: dict[socket.socket, float] = {}
    try:
        for _ in range(IDLE_CONNECTIONS):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.setblocking(False)
            outcome = Outcome()
            outcomes.append(outcome)
            started[sock] = time.monotonic()
            selector.register(sock, selectors.EVENT_READ, outcome)
        engaged.set()
        give_up = time.monotonic() + TIMEOUT_S + LATE_S + 5
        while selector.get_map() and time.monotonic() < give_up:
            for key, _ in selector.select(timeout=1.0):
                assert isinstance(key.fileobj, socket.socket)
                sock, outcome = key.fileobj, key.data
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                outcome.received += chunk
                if not chunk:
                    outcome.closed = True
                    outcome.seconds = time.monotonic() - started[sock]
                    selector.unregister(sock)
                    sock.close()
    finally:
        engaged.set()
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()


def test_a_thousand_idle_connections_meet_the_cap_and_the_head_deadline(
    hostile_server: Server, probe: Probe
) -> None:
    # Given the well-behaved client's latency on its keep-alive connection, right before the attack,
    baseline = probe.measure()
    memory = Memory(hostile_server)
    # when a client opens 1000 connections (the cap is 200 per worker) and sends nothing on any,
    outcomes: list[Outcome] = []
    engaged = threading.Event()
    attacker = threading.Thread(target=_open_idle, args=(hostile_server, outcomes, engaged), daemon=True)
    attacker.start()
    assert engaged.wait(timeout=60)
    during = probe.measure()
    attacker.join(timeout=60)
    assert not attacker.is_alive()

    # then those beyond the cap are refused at once with 503,
    assert len(outcomes) == IDLE_CONNECTIONS
    refused = [o for o in outcomes if o.received.startswith(b"HTTP/1.1 503 ")]
    assert len(refused) >= IDLE_CONNECTIONS - MAX_CONNECTIONS
    assert all(o.seconds < LATE_S for o in refused), max(o.seconds for o in refused)
    # the ones let in are closed, without a word, at the deadline for a first request,
    admitted = [o for o in outcomes if not o.received]
    assert len(refused) + len(admitted) == IDLE_CONNECTIONS
    assert all(o.closed and o.seconds < TIMEOUT_S + LATE_S for o in outcomes), max(
        o.seconds for o in outcomes
    )
    # the well-behaved client's keep-alive connection was served throughout,
    assert_unharmed(baseline, during, memory)
    # and new connections are served again once the idle ones are gone.
    assert hostile_server.request("GET", "/v2/health/ready").status == 200
