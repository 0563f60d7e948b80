"""The well-behaved client of the hostile-client tests, run as a process of its own.

It keeps one keep-alive connection to the server and, for each number N read from stdin, sends N one-row
V2 infer requests one after another and prints one JSON line: each request's latency in seconds and how
many answers were wrong. A process of its own, so that the attacking threads in the test process cannot
slow its measurements through the GIL. Standard library only: it starts fast and measures little of
itself.

    python hostile_probe.py PORT EXPECTED_CLASS
"""

from __future__ import annotations

import json
import socket
import sys
import time

BODY = json.dumps(
    {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
).encode()
REQUEST = (
    b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: probe\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the probe's connection")
        buffer += chunk
    head, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:"))
    end = len(head) + 4 + length
    while len(buffer) < end:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the probe's connection mid-response")
        buffer += chunk
    body = bytes(buffer[len(head) + 4 : end])
    del buffer[:end]
    return int(lines[0].split()[1]), body


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def closed_while_idle(sock: socket.socket) -> bool:
    """Whether the server closed this idle connection (its idle timeout), as a client pool checks."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def main() -> None:
    port, expected = int(sys.argv[1]), int(sys.argv[2])
    sock = connect(port)
    buffer = bytearray()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        count = int(line)
        if closed_while_idle(sock):
            sock.close()
            sock = connect(port)
        latencies, wrong = [], 0
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(REQUEST)
            status, body = read_response(sock, buffer)
            latencies.append(time.perf_counter() - started)
            if status != 200 or json.loads(body)["outputs"][0]["data"] != [expected]:
                wrong += 1
        print(json.dumps({"latencies": latencies, "wrong": wrong}), flush=True)


if __name__ == "__main__":
    main()
