#!/usr/bin/env python3
"""Readiness probe for a Kafka-compatible broker, standard library only.

Usage: probe.py HOST:PORT

Sends ApiVersions (v0) and then Metadata (v4, all topics) over one TCP connection and
succeeds (exit 0) only when the broker answers ApiVersions without error and its Metadata
names at least one broker. It prints the brokers it saw. Any failure exits 1 with the reason
on stderr, so scripts/broker can retry until its timeout.
"""

import socket
import struct
import sys

MAX_FRAME = 16 * 1024 * 1024


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf.extend(chunk)
    return bytes(buf)


def request(sock, api_key, api_version, correlation_id, body):
    client_id = b"kafee-probe"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id
    frame = header + body
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    if size < 4 or size > MAX_FRAME:
        raise ValueError(f"api {api_key}: response frame size {size} out of range")
    payload = recv_exact(sock, size)
    (got,) = struct.unpack(">i", payload[:4])
    if got != correlation_id:
        raise ValueError(f"api {api_key}: correlation id {got} != {correlation_id}")
    return payload[4:]


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, fmt):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError("response truncated")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self):
        length = self.take(">h")
        if length < 0:
            return None
        if self.pos + length > len(self.data):
            raise ValueError("response truncated")
        value = self.data[self.pos:self.pos + length].decode("utf-8", "replace")
        self.pos += length
        return value


def probe(address):
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.settimeout(5)
        # ApiVersions v0: empty body; response: error_code, [api_key, min, max].
        r = Reader(request(sock, 18, 0, 1, b""))
        error = r.take(">h")
        if error != 0:
            raise ValueError(f"ApiVersions error code {error}")
        count = r.take(">i")
        if count <= 0:
            raise ValueError("ApiVersions listed no APIs")
        # Metadata v4: topics = null (all), allow_auto_topic_creation = false.
        r = Reader(request(sock, 3, 4, 2, struct.pack(">ib", -1, 0)))
        r.take(">i")  # throttle_time_ms
        brokers = []
        for _ in range(r.take(">i")):
            node_id = r.take(">i")
            host_name = r.string()
            broker_port = r.take(">i")
            r.string()  # rack
            brokers.append(f"{node_id}@{host_name}:{broker_port}")
        if not brokers:
            raise ValueError("Metadata lists no broker yet")
        return brokers


def main():
    if len(sys.argv) != 2:
        print("usage: probe.py HOST:PORT", file=sys.stderr)
        return 2
    try:
        brokers = probe(sys.argv[1])
    except (OSError, ValueError) as err:
        print(f"probe {sys.argv[1]}: {err}", file=sys.stderr)
        return 1
    print("brokers: " + " ".join(brokers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
