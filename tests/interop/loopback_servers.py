# SPDX-License-Identifier: MIT
"""Services on the loopback of the namespace ustack runs in ("the host's loopback").

``python3 loopback_servers.py TCPPORT UDPPORT``: on 127.0.0.1 and ::1, a TCP server
that reads to EOF and answers ``tcp <bytes read> <sha256> <peer address>``, and a
UDP server that answers ``udp <datagram> <peer address>``. Prints ``ready``.
"""

from __future__ import annotations

import hashlib
import socket
import sys
import threading


def tcp_server(family: int, address: str, port: int) -> None:
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(16)
    ready.release()
    while True:
        conn, peer = listener.accept()
        threading.Thread(target=answer, args=(conn, peer[0]), daemon=True).start()


def answer(conn: socket.socket, peer: str) -> None:
    digest, size = hashlib.sha256(), 0
    while chunk := conn.recv(1 << 16):
        digest.update(chunk)
        size += len(chunk)
    conn.sendall(f"tcp {size} {digest.hexdigest()} {peer}".encode())
    conn.close()


def udp_server(family: int, address: str, port: int) -> None:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((address, port))
    ready.release()
    while True:
        data, peer = sock.recvfrom(65535)
        sock.sendto(b"udp " + data + b" " + peer[0].encode(), peer)


ready = threading.Semaphore(0)

if __name__ == "__main__":
    tcp_port, udp_port = int(sys.argv[1]), int(sys.argv[2])
    for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        threading.Thread(target=tcp_server, args=(fam, addr, tcp_port), daemon=True).start()
        threading.Thread(target=udp_server, args=(fam, addr, udp_port), daemon=True).start()
    for _ in range(4):
        ready.acquire()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin
