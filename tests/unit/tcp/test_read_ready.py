# SPDX-License-Identifier: MIT
"""``TCPEndpoint.read_ready``, the non-raising read of the guest splice and the asyncio
streams, answers as ``recv`` does (RFC 9293 3.10.3 RECEIVE) except that "nothing yet"
is None rather than BlockingIOError; ``recv`` itself keeps raising."""

from __future__ import annotations

import errno

import pytest

from tests.unit.tcp.helpers import connect, pair


def test_read_ready_none_while_empty_then_data_then_eof() -> None:
    p = pair()
    c = connect(p)
    ep = c.sep
    assert ep.read_ready(100) is None
    with pytest.raises(BlockingIOError):
        ep.recv(100)  # the socket-level behaviour is unchanged
    c.client.sendall(b"hello world")
    p.clock.advance(0.1)
    assert ep.read_ready(5) == b"hello"
    assert ep.read_ready(100) == b" world"
    assert ep.read_ready(100) is None
    c.client.shutdown(1)
    p.clock.advance(0.1)
    assert ep.read_ready(100) == b""
    assert ep.recv(100) == b""


def test_read_ready_reports_a_reset_as_recv_does() -> None:
    p = pair()
    c = connect(p)
    c.cep.abort()  # RST to the server's side
    p.clock.advance(0.1)
    with pytest.raises(ConnectionResetError) as info:
        c.sep.read_ready(100)
    assert info.value.errno == errno.ECONNRESET
    assert c.sep.read_ready(100) == b""  # the error is taken once; then end of stream


def test_read_ready_on_a_never_connected_endpoint_is_enotconn() -> None:
    p = pair()
    c = connect(p)
    with pytest.raises(OSError) as info:
        c.cep.protocol.new_endpoint(4).read_ready(10)
    assert info.value.errno == errno.ENOTCONN
