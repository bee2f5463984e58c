# SPDX-License-Identifier: MIT
"""ARP (RFC 826, RFC 1122 2.3.2, RFC 5227 announcements) between two stacks."""

from __future__ import annotations

import errno
import socket

import pytest

from tests.unit.stackframes import (
    ARP,
    UDP,
    Ether,
    Packet,
    frames,
    inject,
    mac_text,
    packed,
    record,
)
from ustack.network.neighbor import NeighborState
from ustack.nic import NIC
from ustack.socket import DatagramSocket
from ustack.testing.pair import StackPair

BCAST = "ff:ff:ff:ff:ff:ff"


def cached(nic: NIC, addr: str) -> bytes | None:
    """The link address cached for ``addr`` (without the side effects of a lookup)."""
    cache = nic.neighbor_cache()
    assert cache is not None
    for entry in cache.entries():
        if entry.addr == packed(addr):
            return entry.link_addr or b""
    return None


def arp_frames(pair: StackPair, side: str = "a") -> list[Packet]:
    return frames(pair.link_a if side == "a" else pair.link_b, ARP)


def udp_socket(pair: StackPair, side: str = "a") -> DatagramSocket:
    stack = pair.a if side == "a" else pair.b
    sock = stack.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert isinstance(sock, DatagramSocket)
    sock.settimeout(1.0)
    return sock


def receiver(pair: StackPair, port: int = 5000) -> DatagramSocket:
    sock = udp_socket(pair, "b")
    sock.bind(("10.0.0.2", port))
    sock.setblocking(False)
    return sock


def drain(sock: DatagramSocket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(2000))
        except BlockingIOError:
            return out


def test_rfc826_request_is_broadcast_and_reply_is_unicast(pair: StackPair) -> None:
    rx = receiver(pair)
    record(pair)
    udp_socket(pair).sendto(b"hello", ("10.0.0.2", 5000))
    pair.run(0.01)
    a_mac, b_mac = mac_text(pair.link_a.link_address), mac_text(pair.link_b.link_address)
    (request,) = arp_frames(pair, "a")
    assert request.dst == BCAST and request.src == a_mac
    assert request[ARP].op == 1
    assert (request[ARP].hwsrc, request[ARP].psrc) == (a_mac, "10.0.0.1")
    assert request[ARP].pdst == "10.0.0.2"
    (reply,) = arp_frames(pair, "b")
    assert reply.dst == a_mac and reply.src == b_mac
    assert reply[ARP].op == 2
    assert (reply[ARP].hwsrc, reply[ARP].psrc) == (b_mac, "10.0.0.2")
    assert (reply[ARP].hwdst, reply[ARP].pdst) == (a_mac, "10.0.0.1")
    (data,) = frames(pair.link_a, UDP)
    assert data.dst == b_mac
    assert drain(rx) == [b"hello"]
    assert cached(pair.nic_a, "10.0.0.2") == pair.link_b.link_address


def test_rfc826_the_target_of_a_request_learns_the_sender(pair: StackPair) -> None:
    rx = receiver(pair)
    sender = udp_socket(pair)
    sender.bind(("10.0.0.1", 4000))
    record(pair)
    sender.sendto(b"ping", ("10.0.0.2", 5000))
    pair.run(0.01)
    assert cached(pair.nic_b, "10.0.0.1") == pair.link_a.link_address
    rx.sendto(b"pong", ("10.0.0.1", 4000))
    pair.run(0.01)
    assert [f[ARP].op for f in arp_frames(pair, "b")] == [2]  # the reply only, no request
    assert sender.recv(100) == b"pong"


def test_cache_is_reused_without_new_requests(pair: StackPair) -> None:
    rx = receiver(pair)
    tx = udp_socket(pair)
    record(pair)
    for i in range(5):
        tx.sendto(b"%d" % i, ("10.0.0.2", 5000))
        pair.run(1.0)
    assert len(arp_frames(pair, "a")) == 1
    assert pair.a.stats["arp.tx_request"] == 1
    assert drain(rx) == [b"0", b"1", b"2", b"3", b"4"]


def test_stale_entry_is_probed_by_unicast_and_reconfirmed(pair: StackPair) -> None:
    """RFC 4861 7.3.3 (as Linux does for ARP): sending to a STALE entry starts DELAY;
    a unicast probe follows DELAY_FIRST_PROBE_TIME later, and the reply confirms it."""
    rx = receiver(pair)
    tx = udp_socket(pair)
    tx.sendto(b"first", ("10.0.0.2", 5000))
    pair.run(0.01)
    cache = pair.nic_a.neighbor_cache()
    assert cache is not None
    pair.run(cache.reachable_time + 1.0)
    assert cache.state(packed("10.0.0.2")) is NeighborState.STALE
    record(pair)
    tx.sendto(b"stale", ("10.0.0.2", 5000))
    pair.run(0.01)
    b_mac = mac_text(pair.link_b.link_address)
    assert arp_frames(pair, "a") == []  # no probe yet: DELAY
    assert cache.state(packed("10.0.0.2")) is NeighborState.DELAY
    (data,) = frames(pair.link_a, UDP)  # the stale entry is still used meanwhile
    assert data.dst == b_mac
    pair.run(cache.config.delay_first_probe_time)
    (probe,) = arp_frames(pair, "a")
    assert probe.dst == b_mac  # unicast to the cached address, not broadcast
    assert probe[ARP].op == 1 and probe[ARP].pdst == "10.0.0.2"
    assert [f[ARP].op for f in arp_frames(pair, "b")] == [2]
    assert cache.state(packed("10.0.0.2")) is NeighborState.REACHABLE
    record(pair)
    tx.sendto(b"fresh", ("10.0.0.2", 5000))
    pair.run(cache.config.delay_first_probe_time + 1.0)
    assert arp_frames(pair, "a") == []  # reconfirmed by the reply: no more probing
    assert drain(rx) == [b"first", b"stale", b"fresh"]


def test_stale_entry_is_forgotten_after_unanswered_probes(pair: StackPair) -> None:
    tx = udp_socket(pair)
    tx.sendto(b"first", ("10.0.0.2", 5000))
    pair.run(0.01)
    pair.link_b.up = False  # b hears a, but its answers are lost from now on
    cache = pair.nic_a.neighbor_cache()
    assert cache is not None
    cfg = cache.config
    pair.run(cache.reachable_time + 1.0)
    record(pair)
    tx.sendto(b"x", ("10.0.0.2", 5000))
    pair.run(cfg.delay_first_probe_time - 0.5)
    assert arp_frames(pair, "a") == []
    for _ in range(cfg.max_unicast_probes):
        tx.sendto(b"y", ("10.0.0.2", 5000))  # sending in PROBE adds no probe
        pair.run(cache.retrans_time)
    pair.run(1.0)
    probes = arp_frames(pair, "a")
    assert len(probes) == cfg.max_unicast_probes
    assert all(p.dst == mac_text(pair.link_b.link_address) for p in probes)
    assert pair.a.stats["arp.neighbor_expired"] == 1
    assert cached(pair.nic_a, "10.0.0.2") is None  # removed (RFC 4861 7.3.3)
    record(pair)
    tx.sendto(b"z", ("10.0.0.2", 5000))
    pair.run(0.01)
    (fresh,) = arp_frames(pair, "a")
    assert fresh.dst == BCAST  # resolved afresh
    assert cached(pair.nic_a, "10.0.0.2") == b""  # INCOMPLETE, holding the datagram
    assert frames(pair.link_a, UDP) == []


def test_packets_held_while_resolving_are_flushed_in_order(pair: StackPair) -> None:
    rx = receiver(pair)
    tx = udp_socket(pair)
    record(pair)
    for i in range(10):
        tx.sendto(b"msg%d" % i, ("10.0.0.2", 5000))
    pair.run(0.01)
    kinds = ["arp" if f.haslayer(ARP) else "udp" for f in frames(pair.link_a)]
    assert kinds == ["arp"] + ["udp"] * 10  # one request for all ten
    assert drain(rx) == [b"msg%d" % i for i in range(10)]


def test_pending_queue_is_bounded_and_drops_the_oldest(pair: StackPair) -> None:
    pair.a.neighbor_config.max_pending = 4
    rx = receiver(pair)
    tx = udp_socket(pair)
    for i in range(10):
        tx.sendto(b"msg%d" % i, ("10.0.0.2", 5000))
    pair.run(0.01)
    assert drain(rx) == [b"msg%d" % i for i in range(6, 10)]
    assert pair.a.stats["arp.drop.queue_full"] == 6


def test_rfc1122_requests_are_retried_once_per_second_then_fail(pair: StackPair) -> None:
    pair.link_b.up = False  # nobody answers
    tx = udp_socket(pair)
    tx.connect(("10.0.0.2", 5000))
    record(pair)
    for i in range(3):
        tx.send(b"held%d" % i)
    counts = []
    for _ in range(16):
        pair.run(0.25)
        counts.append(len(arp_frames(pair, "a")))
    # one request per retransmit interval (RFC 1122 2.3.2.1: not more than once per second)
    assert counts[:4] == [1, 1, 1, 2] and counts[4:8] == [2, 2, 2, 3]
    assert counts[-1] == pair.a.neighbor_config.max_probes == 3
    assert all(f.dst == BCAST for f in arp_frames(pair, "a"))
    assert frames(pair.link_a, UDP) == []
    assert pair.a.stats["arp.resolution_failed"] == 1
    assert pair.a.stats["arp.drop.unresolved"] == 3
    # the connected socket hears about it, once (Linux: EHOSTUNREACH)
    with pytest.raises(OSError) as info:
        tx.recv(100)
    assert info.value.errno == errno.EHOSTUNREACH
    with pytest.raises(TimeoutError):
        tx.recv(100)
    # the next datagram starts a new resolution
    record(pair)
    tx.send(b"again")
    pair.run(0.01)
    assert len(arp_frames(pair, "a")) == 1


def test_resolution_failure_is_not_reported_to_unconnected_sockets(pair: StackPair) -> None:
    pair.link_b.up = False
    tx = udp_socket(pair)
    tx.sendto(b"lost", ("10.0.0.2", 5000))
    pair.run(5.0)
    assert pair.a.stats["arp.resolution_failed"] == 1
    assert tx.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    tx.sendto(b"fine", ("10.0.0.2", 5000))  # no pending error raised


def test_rfc5227_gratuitous_arp_when_an_address_is_added(pair: StackPair) -> None:
    record(pair)
    pair.a.add_address("eth0", "10.0.0.7/24")
    pair.run(0.01)
    (announce,) = arp_frames(pair, "a")
    assert announce.dst == BCAST
    assert announce[ARP].op == 1
    assert announce[ARP].psrc == announce[ARP].pdst == "10.0.0.7"
    assert announce[ARP].hwsrc == mac_text(pair.link_a.link_address)
    assert announce[ARP].hwdst == "00:00:00:00:00:00"
    # a host that had no entry does not create one from an announcement
    assert cached(pair.nic_b, "10.0.0.7") is None
    assert arp_frames(pair, "b") == []


def test_gratuitous_arp_updates_an_existing_entry(pair: StackPair) -> None:
    tx = udp_socket(pair, "b")
    tx.sendto(b"x", ("10.0.0.1", 5000))
    pair.run(0.01)
    assert cached(pair.nic_b, "10.0.0.1") == pair.link_a.link_address
    moved = "02:00:00:00:99:99"
    inject(pair.link_b, Ether(src=moved, dst=BCAST) / ARP(
        op=1, hwsrc=moved, psrc="10.0.0.1", hwdst="00:00:00:00:00:00", pdst="10.0.0.1"))
    pair.run(0.01)
    assert cached(pair.nic_b, "10.0.0.1") == bytes.fromhex("020000009999")
    record(pair)
    tx.sendto(b"y", ("10.0.0.1", 5000))
    pair.run(0.01)
    (data,) = frames(pair.link_b, UDP)
    assert data.dst == moved


def test_arp_not_for_us_gets_no_reply_and_no_entry(pair: StackPair) -> None:
    record(pair)
    stranger = "02:00:00:00:00:99"
    inject(pair.link_b, Ether(src=stranger, dst=BCAST) / ARP(
        op=1, hwsrc=stranger, psrc="10.0.0.9", pdst="10.0.0.77"))
    pair.run(0.01)
    assert pair.b.stats["arp.rx"] >= 1
    assert arp_frames(pair, "b") == []
    assert cached(pair.nic_b, "10.0.0.9") is None


def test_arp_claiming_our_own_address_is_a_conflict_not_an_update(pair: StackPair) -> None:
    record(pair)
    impostor = "02:00:00:00:00:66"
    inject(pair.link_b, Ether(src=impostor, dst=BCAST) / ARP(
        op=1, hwsrc=impostor, psrc="10.0.0.2", pdst="10.0.0.2"))
    pair.run(0.01)
    assert pair.b.stats["arp.address_conflict"] == 1
    assert cached(pair.nic_b, "10.0.0.2") is None
    assert arp_frames(pair, "b") == []


def test_malformed_and_unacceptable_arp_is_dropped(pair: StackPair) -> None:
    before = pair.b.stats["arp.ignored"]
    src = "02:00:00:00:00:99"
    bad_htype = Ether(src=src, dst=BCAST) / ARP(hwtype=6, hwsrc=src, psrc="10.0.0.9",
                                                 pdst="10.0.0.2")
    truncated = bytes(Ether(src=src, dst=BCAST, type=0x0806)) + bytes(20)
    multicast_sender = Ether(src=src, dst=BCAST) / ARP(hwsrc="01:00:5e:00:00:01",
                                                       psrc="10.0.0.9", pdst="10.0.0.2")
    probe_for_other = Ether(src=src, dst=BCAST) / ARP(hwsrc=src, psrc="0.0.0.0",
                                                      pdst="10.0.0.77")
    record(pair)
    for frame in (bad_htype, truncated, multicast_sender, probe_for_other):
        inject(pair.link_b, frame)
    pair.run(0.01)
    assert pair.b.stats["arp.drop.bad_message"] == 1
    assert pair.b.stats["arp.drop.truncated"] == 1
    assert pair.b.stats["arp.ignored"] == before + 2
    assert arp_frames(pair, "b") == []
    assert cached(pair.nic_b, "10.0.0.9") is None


def test_rfc5227_probe_for_our_address_is_answered_and_not_learned(pair: StackPair) -> None:
    """An ARP probe (sender 0.0.0.0) for an address in use gets a reply, as from Linux,
    so the prober sees the conflict; it teaches us no mapping."""
    src = "02:00:00:00:00:99"
    probe = Ether(src=src, dst=BCAST) / ARP(hwsrc=src, psrc="0.0.0.0", pdst="10.0.0.2")
    record(pair)
    inject(pair.link_b, probe)
    pair.run(0.01)
    replies = arp_frames(pair, "b")
    assert len(replies) == 1
    reply = replies[0]
    assert reply[ARP].op == 2 and reply[ARP].psrc == "10.0.0.2"
    assert reply[ARP].hwdst == src and reply[Ether].dst == src
    assert pair.b.stats["arp.tx_probe_reply"] == 1
    assert cached(pair.nic_b, "0.0.0.0") is None
