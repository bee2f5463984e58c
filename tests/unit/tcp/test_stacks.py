# SPDX-License-Identifier: MIT
"""Switchable TCP stacks (stacks.py): the registry, TCP_FUNCTION_BLK per socket, the
stack-wide default, inheritance by accepted sockets, refused handoffs, switching
mid-connection with the data intact, and congestion control by name with pacing."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from tests.unit.tcp.helpers import (
    ACK,
    SYN,
    Impairment,
    RawPeer,
    connect,
    ep_of,
    established_peer,
    impaired_pair,
    pair,
    pattern,
    peer_listen_accept,
    pump,
)
from ustack.transport.tcp import stacks
from ustack.transport.tcp.socket import (
    SO_MAX_PACING_RATE,
    TCP_CONGESTION,
    TCP_FUNCTION_ALIAS,
    TCP_FUNCTION_BLK,
    TCP_PACING,
)
from ustack.wire import tcp as wire

TCP = socket.IPPROTO_TCP


def test_registry_names_aliases_and_ids() -> None:
    assert stacks.available() == ["default", "rack"]
    assert stacks.get("rack") is stacks.get(1) is stacks.get("rack_tlp")
    assert stacks.get("default") is stacks.get(0) is stacks.DEFAULT
    assert stacks.parse(b"rack\0\0\0") is stacks.get("rack")
    assert stacks.parse(struct.pack("32sI", b"rack", 0)) is stacks.get("rack")  # FreeBSD
    assert stacks.parse("1").name == "rack"
    with pytest.raises(KeyError):
        stacks.get("bbr")


def test_tcp_function_blk_set_and_get_per_socket() -> None:
    p = pair()
    s = p.a.socket(socket.AF_INET, socket.SOCK_STREAM)
    assert s.getsockopt(TCP, TCP_FUNCTION_BLK) == b"default"
    s.setsockopt(TCP, TCP_FUNCTION_BLK, b"rack")
    assert s.getsockopt(TCP, TCP_FUNCTION_BLK) == b"rack"
    assert s.getsockopt(TCP, TCP_FUNCTION_ALIAS) == b"rack_tlp"
    s.setsockopt(TCP, TCP_FUNCTION_BLK, 0)
    assert s.getsockopt(TCP, TCP_FUNCTION_BLK) == b"default"
    with pytest.raises(OSError) as exc:
        s.setsockopt(TCP, TCP_FUNCTION_BLK, b"nonesuch")
    assert exc.value.errno == errno.ENOENT


def test_stack_wide_default_and_accepted_sockets_inherit() -> None:
    p = pair(tcp_a={"tcp_stack": "rack"}, tcp_b={"tcp_stack": "default"})
    c = connect(p, server_setup=lambda s: s.setsockopt(TCP, TCP_FUNCTION_BLK, "rack"))
    assert c.client.getsockopt(TCP, TCP_FUNCTION_BLK) == b"rack"  # a's stack-wide default
    assert c.server.getsockopt(TCP, TCP_FUNCTION_BLK) == b"rack"  # its listener's
    assert c.cep.sender.recovery.name == "rack" and c.sep.sender.recovery.name == "rack"
    other = connect(p, port=81)
    assert other.server.getsockopt(TCP, TCP_FUNCTION_BLK) == b"default"


def test_handoff_refused_while_the_handshake_is_in_progress() -> None:
    peer = RawPeer.create()
    cli = peer.stack.socket(socket.AF_INET, socket.SOCK_STREAM)
    cli.setblocking(False)
    assert cli.connect_ex(("10.0.0.2", 5000)) == errno.EINPROGRESS
    with pytest.raises(OSError) as exc:
        cli.setsockopt(TCP, TCP_FUNCTION_BLK, b"rack")  # SYN-SENT: SACK not known yet
    assert exc.value.errno == errno.EAGAIN
    assert cli.getsockopt(TCP, TCP_FUNCTION_BLK) == b"default"
    assert peer.stack.stats["tcp.stack_switch_refused"] == 1


def test_refused_handoff_for_peer_without_sack_falls_back_to_default() -> None:
    """A listener on rack (which requires SACK here) accepts a peer that offers no SACK:
    the connection, established, is refused by rack and runs on the default stack."""
    peer = RawPeer.create(tcp_a={"rack_require_sack": True})

    def setup(s: socket.socket) -> None:
        s.setsockopt(TCP, TCP_FUNCTION_BLK, b"rack")

    conn, synack = peer_listen_accept(peer, wire.TCPOptions(mss=1460), setup=setup)
    assert not synack.options.sack_permitted
    assert conn.sock.getsockopt(TCP, TCP_FUNCTION_BLK) == b"default"
    assert conn.listener.getsockopt(TCP, TCP_FUNCTION_BLK) == b"rack"
    assert peer.stack.stats["tcp.stack_handoff_refused"] == 1
    with pytest.raises(OSError) as exc:
        conn.sock.setsockopt(TCP, TCP_FUNCTION_BLK, b"rack")  # and stays refused
    assert exc.value.errno == errno.EINVAL
    # a SACK peer on the same listener keeps rack
    peer.port = 5001
    peer.send(2_000_000, 0, SYN, 65535, wire.TCPOptions(mss=1460, sack_permitted=True))
    synack2 = peer.expect()
    peer.send(2_000_001, synack2.seq + 1, ACK)
    peer.run()
    sock, _ = conn.listener.accept()
    assert sock.getsockopt(TCP, TCP_FUNCTION_BLK) == b"rack"


def test_rack_without_sack_allowed_uses_newreno_recovery() -> None:
    conn = established_peer(sack=False, setup=lambda s: s.setsockopt(TCP, TCP_FUNCTION_BLK,
                                                                       b"rack"))
    assert conn.sock.getsockopt(TCP, TCP_FUNCTION_BLK) == b"rack"
    assert conn.ep.sender.recovery.name == "newreno"


def test_switch_stacks_mid_connection_keeps_data_intact() -> None:
    """A lossy bulk transfer whose sender changes stack (and congestion control) several
    times while data, losses and recoveries are in flight."""
    p, _a, _b = impaired_pair(Impairment(loss=0.02), Impairment(loss=0.01), seed=7,
                              latency=0.005)
    c = connect(p)
    data = pattern(3_000_000, seed=11)
    cli = c.client
    switches = [("rack", "cubic"), ("default", "newreno"), ("rack", "bbr"), ("default", "cubic"),
                ("rack", "newreno")]
    done = [0]

    def switch_on_progress() -> None:
        i = done[0]
        if i < len(switches) and ep_of(cli).sender.bytes_acked > (i + 1) * 500_000:
            stack, cc = switches[i]
            cli.setsockopt(TCP, TCP_FUNCTION_BLK, stack.encode())
            cli.setsockopt(TCP, TCP_CONGESTION, cc.encode())
            done[0] += 1
        p.clock.call_later(0.01, switch_on_progress)

    p.clock.call_later(0.01, switch_on_progress)
    got = pump(p, [(cli, c.server, data)])
    assert got == [data]
    assert done[0] == len(switches)
    assert p.a.stats["tcp.stack_switches"] == len(switches)
    info = cli.tcp_info()
    assert info.tcp_stack == "rack" and info.congestion_control == "newreno"
    assert info.total_retrans > 0  # losses were repaired across the switches


def test_switch_during_recovery_hands_the_episode_over() -> None:
    conn = established_peer(sack=True, mss=1000,
                            setup=lambda s: s.setsockopt(TCP, socket.TCP_NODELAY, 1))
    conn.sock.send(bytes(10_000))
    flight = conn.take()
    una = flight[0].seq
    for k in range(1, 4):
        blocks = ((una + 1000) & 0xFFFFFFFF, (una + (k + 1) * 1000) & 0xFFFFFFFF)
        conn.send(ACK, ack=una, options=wire.TCPOptions(sack_blocks=(blocks,)))
    conn.take()
    s = conn.ep.sender
    assert s.recovery.in_recovery and s.recovery.name == "rfc6675"
    point = s.recovery.recovery_point
    conn.sock.setsockopt(TCP, TCP_FUNCTION_BLK, b"rack")
    assert s.recovery.name == "rack" and s.recovery.in_recovery
    assert s.recovery.recovery_point == point
    conn.send(ACK, ack=s.snd_max)  # everything arrived: recovery ends on the new stack
    assert not s.recovery.in_recovery


def test_congestion_control_by_name_and_stack_wide() -> None:
    p = pair(tcp_a={"congestion_control": "cubic"})
    c = connect(p, client_setup=lambda s: None)
    assert c.client.getsockopt(TCP, TCP_CONGESTION) == b"cubic"
    c.client.setsockopt(TCP, TCP_CONGESTION, b"bbr")
    info = c.client.tcp_info()
    assert info.congestion_control == "bbr" and info.cc_state == "startup"
    assert ep_of(c.client).sender.pacer is not None  # BBR is paced
    with pytest.raises(OSError):
        c.client.setsockopt(TCP, TCP_CONGESTION, b"vegas")


def test_pacing_any_congestion_control_and_max_rate() -> None:
    p = pair(latency=0.005)
    c = connect(p)
    cli = c.client
    assert ep_of(cli).sender.pacer is None  # the default path carries no pacer
    cli.setsockopt(TCP, TCP_PACING, 1)
    cli.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, 1_000_000)  # 8 Mbit/s
    assert cli.getsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE) == 1_000_000
    data = pattern(600_000, seed=2)
    start = p.clock.now()
    assert pump(p, [(cli, c.server, data)]) == [data]
    took = p.clock.now() - start
    assert took >= 0.55  # 600 kB at 1 MB/s
    info = cli.tcp_info()
    assert info.pacing_rate == 1_000_000 and info.pacing_waits > 100
    # the measured gaps match the ones the rate asked for within 5%
    assert info.pacing_spacing == pytest.approx(info.pacing_spacing_target, rel=0.05)
    cli.setsockopt(TCP, TCP_PACING, 0)
    cli.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, 0xFFFFFFFF)
    assert ep_of(cli).sender.pacer is None
