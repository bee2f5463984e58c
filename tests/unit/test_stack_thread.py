# SPDX-License-Identifier: MIT
"""Blocking TCP sockets used from ordinary threads while two stacks run on their own
event-loop thread (ustack.runtime.StackThread), joined by a channel link."""

from __future__ import annotations

import hashlib
import os
import socket
import threading

import pytest

from ustack.link.channel import ChannelEndpoint
from ustack.runtime import StackThread
from ustack.stack import Stack


def _wire(st: StackThread) -> tuple[Stack, Stack]:
    def build() -> tuple[Stack, Stack]:
        clock = st.stack.clock
        other = Stack(clock, seed=9)
        la, lb = ChannelEndpoint.pair(clock)
        st.stack.create_nic(la, "eth0")
        other.create_nic(lb, "eth0")
        st.stack.add_address("eth0", "10.0.0.1/24")
        other.add_address("eth0", "10.0.0.2/24")
        return st.stack, other

    return st.call(build)


def test_tcp_from_threads_with_timeouts() -> None:
    payload = os.urandom(2 << 20)
    with StackThread() as st:
        a, b = _wire(st)
        listener = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("0.0.0.0", 5000))
        listener.listen()
        received: list[bytes] = []

        def serve() -> None:
            conn, _ = listener.accept()
            conn.settimeout(10)
            chunks = []
            while data := conn.recv(65536):
                chunks.append(data)
            received.append(b"".join(chunks))
            conn.sendall(hashlib.sha256(received[0]).digest())
            conn.close()

        server = threading.Thread(target=serve)
        server.start()
        client = a.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.settimeout(10)
        client.connect(("10.0.0.2", 5000))
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)
        digest = client.recv(64)
        client.close()
        server.join(timeout=20)
        listener.close()
        idle = a.socket(socket.AF_INET, socket.SOCK_STREAM)
        idle.settimeout(0.2)
        idle.bind(("0.0.0.0", 5001))
        idle.listen()
        with pytest.raises(TimeoutError):
            idle.accept()  # a timed-out accept returns control to this thread
        idle.close()
    assert received and received[0] == payload
    assert digest == hashlib.sha256(payload).digest()
