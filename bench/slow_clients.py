#!/usr/bin/env python3
"""Hostile and slow HTTP clients for the endpoint benchmarks (bench/serve_load.sh --slow N,
bench/serve_soak.sh --slow N).

Keeps N connections open to 127.0.0.1:PORT for DURATION seconds, in three kinds, a third each:
  idle      connects and sends nothing;
  header    sends "POST /invocations HTTP/1.1" and part of a header, then nothing;
  body      sends a complete header announcing a 500-byte body and 2 bytes of it, then nothing.
A connection the server closes (its header or body deadline) is opened again at once, so N stay
open the whole time. Meanwhile, every PING_EVERY seconds, it times GET /ping on a fresh
connection. At the end it prints one line of key=value pairs: connections opened, dropped by the
server, pings sent and failed, and the ping latency p50 / p99 / max in ms.

Standard library only; loopback only.
"""
import argparse
import select
import socket
import time


def open_hog(port, kind):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setblocking(False)
    if kind == 1:
        s.send(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Le")
    elif kind == 2:
        s.send(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
               b"Content-Length: 500\r\n\r\n1,")
    return s


def ping_ms(port):
    t0 = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                return None
    except OSError:
        return None
    return (time.perf_counter() - t0) * 1000.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--ping-every", type=float, default=0.05)
    args = ap.parse_args()

    hogs = {}
    opened = dropped = open_errors = 0
    for i in range(args.connections):
        try:
            s = open_hog(args.port, i % 3)
            hogs[s] = i % 3
            opened += 1
        except OSError:
            open_errors += 1
    pings, failed = [], 0
    end = time.monotonic() + args.duration
    next_ping = time.monotonic()
    while time.monotonic() < end:
        timeout = max(0.0, min(next_ping, end) - time.monotonic())
        readable, _, _ = select.select(list(hogs), [], [], timeout) if hogs else ([], [], [])
        for s in readable:
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if data:
                continue  # an answer (e.g. an error status): the server closes next
            kind = hogs.pop(s)
            s.close()
            dropped += 1
            try:
                n = open_hog(args.port, kind)
                hogs[n] = kind
                opened += 1
            except OSError:
                open_errors += 1
        if time.monotonic() >= next_ping:
            ms = ping_ms(args.port)
            if ms is None:
                failed += 1
            else:
                pings.append(ms)
            next_ping = time.monotonic() + args.ping_every
    for s in hogs:
        s.close()
    pings.sort()

    def q(p):
        return pings[min(len(pings) - 1, int(p * len(pings)))] if pings else float("nan")

    print(f"slow_clients connections={args.connections} opened={opened} dropped_by_server={dropped} "
          f"open_errors={open_errors} pings={len(pings) + failed} ping_failures={failed} "
          f"ping_p50_ms={q(0.5):.2f} ping_p99_ms={q(0.99):.2f} "
          f"ping_max_ms={(pings[-1] if pings else float('nan')):.2f}")


if __name__ == "__main__":
    main()
