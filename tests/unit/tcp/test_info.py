# SPDX-License-Identifier: MIT
"""TCP_INFO snapshots (named as Linux's struct tcp_info): state, negotiated options, RTO
and RTT, congestion window, MSS, retransmission counts, byte counters and the delivery
rate (draft-cheng-iccrg-delivery-rate-estimation) are consistent with what happened."""

from __future__ import annotations

import socket

import pytest

from tests.unit.tcp.helpers import connect, drop_nth_data, pair, pattern, pump, tap
from ustack.transport.tcp.info import OPT_SACK, OPT_TIMESTAMPS, OPT_WSCALE, TCPInfo

TCP_INFO = getattr(socket, "TCP_INFO", 11)


def test_tcp_info_after_handshake() -> None:
    p = pair(latency=0.01)
    connect(p, port=81)  # resolve the link addresses first: the SYN is not held by ARP
    c = connect(p)
    for sock in (c.client, c.server):
        info = sock.tcp_info()
        assert info.state == "ESTABLISHED" and info.ca_state == "open"
        assert info.options == OPT_TIMESTAMPS | OPT_SACK | OPT_WSCALE
        assert info.snd_mss == 1448 and info.advmss == 1460
        assert info.cwnd == 10 * 1448  # RFC 6928 initial window
        assert info.ssthresh == 0x7FFFFFFF  # "infinite"
        assert info.unacked == 0 and info.retransmits == 0 and info.total_retrans == 0
        assert info.bytes_acked == 0 and info.bytes_received == 0
        assert info.congestion_control == "newreno"
    # the client timed its SYN: 20 ms there and back
    cinfo = c.client.tcp_info()
    assert cinfo.rtt == pytest.approx(0.02) and cinfo.min_rtt == pytest.approx(0.02)
    assert cinfo.rto == pytest.approx(0.2)
    sinfo = c.server.tcp_info()
    assert sinfo.rtt == pytest.approx(0.02)  # the server timed its SYN-ACK
    assert c.client.getsockopt(socket.IPPROTO_TCP, TCP_INFO) == cinfo
    assert isinstance(cinfo.as_dict()["rtt"], float)


def test_tcp_info_after_transfer() -> None:
    p = pair(latency=0.01)
    c = connect(p)
    data = pattern(2_000_000, seed=11)
    start = p.clock.now()
    assert pump(p, [(c.client, c.server, data)]) == [data]
    p.run(0.1)  # the last ACKs arrive
    elapsed = p.clock.now() - start
    s = c.client.tcp_info()
    r = c.server.tcp_info()
    assert s.bytes_acked == len(data) and s.bytes_sent == len(data)
    assert r.bytes_received == len(data)
    assert s.segs_out >= len(data) // 1448
    assert s.unacked == 0 and s.total_retrans == 0 and s.bytes_retrans == 0
    assert s.cwnd > 10 * 1448  # slow start grew it
    assert s.rtt == pytest.approx(0.02, rel=0.3) and s.min_rtt >= 0.02 - 1e-9
    assert s.rto >= 0.2
    average = len(data) / elapsed
    # (the last sample waited for a delayed ACK of the tail: lower than the average)
    assert 0.1 * average < s.delivery_rate < 20 * average
    assert not s.delivery_rate_app_limited
    assert r.rcv_mss == 1448


def test_tcp_info_counts_retransmissions() -> None:
    p = pair(latency=0.005)
    c = connect(p)
    tap(p, "a", drop_nth_data(10, 30))
    data = pattern(200_000, seed=12)
    assert pump(p, [(c.client, c.server, data)]) == [data]
    p.run(0.1)
    info = c.client.tcp_info()
    assert info.total_retrans == 2 and info.bytes_retrans == 2 * 1448
    assert info.ssthresh < 0x7FFFFFFF  # the losses halved the window
    assert info.bytes_acked == len(data)


def test_tcp_info_states_through_close() -> None:
    p = pair()
    c = connect(p)
    c.client.shutdown(socket.SHUT_WR)
    p.run(0.01)
    assert c.client.tcp_info().state == "FIN-WAIT-2"
    assert c.server.tcp_info().state == "CLOSE-WAIT"
    c.server.close()
    p.run(0.01)
    assert c.client.tcp_info().state == "TIME-WAIT"
    assert isinstance(c.client.tcp_info(), TCPInfo)
