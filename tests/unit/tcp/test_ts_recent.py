# SPDX-License-Identifier: MIT
"""RFC 7323 4.3: TS.Recent takes SEG.TSval only from a segment that is acceptable and
whose ACK passed its checks (Linux: FLAG_UPDATE_TS_RECENT in tcp_ack). An in-window
segment with an ACK for unsent data, or an ACK too old (RFC 5961 5.2), is dropped with
a challenge ACK: its TSval must not push TS.Recent forward, or PAWS would then drop
the peer's legitimate segments."""

from __future__ import annotations

import pytest

from tests.unit.tcp.helpers import ACK, PeerConn, established_peer
from ustack.transport.tcp.seqnum import MASK
from ustack.wire import tcp as wire

FAR_FUTURE = 0x40000000  # a TSval this far ahead is "newer" for 2**31 - 2**30 ms more


def _conn_with_data() -> PeerConn:
    conn = established_peer(ts=True)
    conn.send(ACK, payload=b"first")
    conn.take()
    assert conn.sock.recv(100) == b"first"
    return conn


@pytest.mark.parametrize("ack_offset", [1000, -100_000], ids=["ack-of-unsent-data",
                                                               "ack-too-old"])
def test_rfc7323_4_3_dropped_ack_leaves_ts_recent(ack_offset: int) -> None:
    conn = _conn_with_data()
    ep = conn.ep
    recent = ep.ts_recent
    assert recent == conn.tsval  # the in-sequence segment before was recorded
    forged = wire.TCPOptions(timestamp=((conn.tsval + FAR_FUTURE) & MASK, conn.ts_recent))
    conn.send(ACK, payload=b"evil", seq=conn.snd_nxt, ack=conn.rcv_nxt + ack_offset,
              options=forged)
    challenge = conn.expect()
    # the challenge ACK (RFC 5961 5.2) acknowledges nothing new and echoes the old TS.Recent
    assert challenge.flags == ACK and not challenge.payload
    assert challenge.ack == conn.snd_nxt & MASK
    assert challenge.options.timestamp is not None
    assert challenge.options.timestamp[1] == recent
    assert ep.ts_recent == recent
    stats = conn.peer.stack.stats
    assert stats["tcp.bad_ack"] == 1
    # the peer's next real segment (TSval just above the last one) is not PAWS-dropped
    conn.send(ACK, payload=b"hello")
    ack = conn.expect()
    assert ack.ack == conn.snd_nxt & MASK
    assert conn.sock.recv(100) == b"hello"
    assert stats["tcp.paws_rejected"] == 0
    assert ep.ts_recent == conn.tsval


def test_rfc7323_4_3_acceptable_ack_updates_ts_recent() -> None:
    """The control: the same in-window segment with a valid ACK does move TS.Recent."""
    conn = _conn_with_data()
    newer = (conn.tsval + 5000) & MASK
    conn.send(ACK, payload=b"ok", options=wire.TCPOptions(timestamp=(newer, conn.ts_recent)))
    conn.take()
    assert conn.ep.ts_recent == newer
    assert conn.sock.recv(100) == b"ok"
    # and PAWS now rejects a segment carrying an older TSval
    conn.send(ACK, payload=b"old", options=wire.TCPOptions(timestamp=(newer - 10,
                                                                      conn.ts_recent)))
    conn.take()
    assert conn.peer.stack.stats["tcp.paws_rejected"] == 1
