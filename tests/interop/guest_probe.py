# SPDX-License-Identifier: MIT
"""What a ``ustack run`` guest sees and reaches, as one JSON line on stdout.

``python3 guest_probe.py ACTION...``, each ACTION one of:

- ``tcp:ADDR:PORT:SIZE``: connect, send SIZE bytes, half-close, read the answer;
- ``udp:ADDR:PORT``: send ``hi`` and read the answer (three tries);
- ``dns`` or ``dns:ADDR``: ask the first nameserver of /etc/resolv.conf (or ADDR)
  for the A record of test.example, answer the address.

Each result is the answer as text, or ``error:ERRNONAME`` (``error:timeout``).
The report also holds the tap's addresses, the routes of both families and the
resolv.conf nameservers.
"""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import sys
from typing import Any

PATTERN = bytes(range(256)) * 4096


def family_of(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def error(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "error:timeout"
    return f"error:{errno.errorcode.get(exc.errno or 0, str(exc.errno))}"


def tcp(address: str, port: int, size: int) -> str:
    sock = socket.socket(family_of(address), socket.SOCK_STREAM)
    sock.settimeout(20)
    try:
        sock.connect((address, port))
        sent = 0
        while sent < size:
            block = PATTERN[:size - sent]
            sock.sendall(block)
            sent += len(block)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer.decode() if answer else "eof"
    except OSError as exc:
        return error(exc)
    finally:
        sock.close()


def udp(address: str, port: int) -> str:
    sock = socket.socket(family_of(address), socket.SOCK_DGRAM)
    sock.settimeout(2)
    try:
        for attempt in range(3):
            try:
                sock.sendto(b"hi", (address, port))
                return sock.recv(1000).decode()
            except TimeoutError:
                if attempt == 2:
                    raise
        return "error:timeout"
    except OSError as exc:
        return error(exc)
    finally:
        sock.close()


def nameservers() -> list[str]:
    with open("/etc/resolv.conf") as resolv:
        return [line.split()[1] for line in resolv if line.startswith("nameserver")]


def dns(server: str | None) -> str:
    server = server or nameservers()[0]
    query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
             b"\x04test\x07example\x00\x00\x01\x00\x01")
    sock = socket.socket(family_of(server), socket.SOCK_DGRAM)
    sock.settimeout(5)
    try:
        sock.sendto(query, (server, 53))
        reply = sock.recv(512)
        return socket.inet_ntoa(reply[-4:]) if reply[:2] == b"\x12\x34" else "error:bad-reply"
    except OSError as exc:
        return error(exc)
    finally:
        sock.close()


def ip_json(*args: str) -> Any:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout or "[]")


def main(actions: list[str]) -> None:
    results: dict[str, str] = {}
    for action in actions:
        kind, _, rest = action.partition(":")
        if kind == "tcp":
            address, port, size = rest.rsplit(":", 2)
            results[action] = tcp(address.strip("[]"), int(port), int(size))
        elif kind == "udp":
            address, port = rest.rsplit(":", 1)
            results[action] = udp(address.strip("[]"), int(port))
        elif kind == "dns":
            results[action] = dns(rest or None)
        else:
            raise SystemExit(f"unknown action {action!r}")
    addresses = [(a["local"], a["prefixlen"]) for link in ip_json("addr", "show", "dev", "tap0")
                 for a in link["addr_info"] if a.get("scope") == "global"]
    report = {"results": results, "addresses": addresses,
              "routes4": ip_json("-4", "route"), "routes6": ip_json("-6", "route"),
              "nameservers": nameservers()}
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
