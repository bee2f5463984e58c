# SPDX-License-Identifier: MIT
"""Routing (longest prefix, defaults, per-NIC lookups), source address selection, and
transport demultiplexing (4-tuple, bound, wildcard; bind conflicts; ephemeral ports)."""

from __future__ import annotations

import errno
import random
import socket

import pytest

from tests.unit.stackframes import ARP, UDP, frames, mac_text, packed, record
from ustack import demux
from ustack.demux import EndpointTable
from ustack.link.channel import ChannelEndpoint
from ustack.route import RouteEntry, RouteTable
from ustack.socket import DatagramSocket
from ustack.stack import Stack, StackOptions
from ustack.testing.pair import StackPair


def entry(prefix: str, nic_id: int = 1, gateway: str | None = None,
          metric: int = 0) -> RouteEntry:
    net, length = prefix.split("/")
    return RouteEntry(packed(net), int(length), packed(gateway) if gateway else None, nic_id,
                      metric)


def nic_of(table: RouteTable, dst: str, nic_id: int | None = None) -> int | None:
    found = table.lookup(packed(dst), nic_id)
    return None if found is None else found.nic_id


# --- the route table ------------------------------------------------------------------------

def test_longest_prefix_match_ipv4() -> None:
    table = RouteTable()
    table.add(entry("0.0.0.0/0", 1, gateway="10.0.0.254"))
    table.add(entry("10.0.0.0/8", 2))
    table.add(entry("10.1.0.0/16", 3))
    table.add(entry("10.1.2.0/24", 4))
    table.add(entry("10.1.2.3/32", 5))
    assert nic_of(table, "10.1.2.3") == 5
    assert nic_of(table, "10.1.2.4") == 4
    assert nic_of(table, "10.1.3.4") == 3
    assert nic_of(table, "10.2.0.1") == 2
    assert nic_of(table, "11.0.0.1") == 1
    assert nic_of(table, "0.0.0.0") == 1


def test_longest_prefix_match_ipv6() -> None:
    table = RouteTable()
    table.add(entry("::/0", 1, gateway="fe80::1"))
    table.add(entry("2001:db8::/32", 2))
    table.add(entry("2001:db8:1::/48", 3))
    table.add(entry("2001:db8:1:2::/64", 4))
    assert nic_of(table, "2001:db8:1:2::99") == 4
    assert nic_of(table, "2001:db8:1:3::1") == 3
    assert nic_of(table, "2001:db8:ffff::1") == 2
    assert nic_of(table, "2001:db9::1") == 1


def test_no_route_without_a_default() -> None:
    table = RouteTable()
    table.add(entry("192.168.0.0/16"))
    assert table.lookup(packed("10.0.0.1")) is None


def test_families_are_separate_tables() -> None:
    table = RouteTable()
    table.add(entry("0.0.0.0/0"))
    assert table.lookup(packed("2001:db8::1")) is None
    table.add(entry("::/0", 7))
    assert nic_of(table, "2001:db8::1") == 7
    assert nic_of(table, "8.8.8.8") == 1


def test_lower_metric_wins_among_equal_prefixes_and_duplicates_collapse() -> None:
    table = RouteTable()
    table.add(entry("0.0.0.0/0", 1, "10.0.0.1", metric=100))
    table.add(entry("0.0.0.0/0", 2, "10.0.0.2", metric=10))
    table.add(entry("0.0.0.0/0", 2, "10.0.0.2", metric=10))
    assert nic_of(table, "1.2.3.4") == 2
    assert len(table.entries()) == 2
    assert table.remove(entry("0.0.0.0/0", 2, "10.0.0.2", metric=10))
    assert nic_of(table, "1.2.3.4") == 1


def test_per_nic_lookup_falls_back_to_that_nics_less_specific_route() -> None:
    table = RouteTable()
    table.add(entry("10.0.0.0/8", 1))
    table.add(entry("10.1.0.0/16", 2))
    assert nic_of(table, "10.1.0.5") == 2
    assert nic_of(table, "10.1.0.5", nic_id=1) == 1
    assert nic_of(table, "10.1.0.5", nic_id=2) == 2
    assert nic_of(table, "10.9.0.5", nic_id=2) is None
    assert nic_of(table, "10.1.0.5", nic_id=3) is None


def test_route_removal() -> None:
    table = RouteTable()
    wide, narrow = entry("10.0.0.0/8", 1), entry("10.1.0.0/16", 2)
    table.add(wide)
    table.add(narrow)
    assert table.remove(narrow)
    assert not table.remove(narrow)
    assert nic_of(table, "10.1.0.5") == 1
    assert table.remove(wide)
    assert table.lookup(packed("10.1.0.5")) is None
    assert table.entries() == []


def test_remove_nic_removes_only_that_nics_routes() -> None:
    table = RouteTable()
    table.add(entry("10.0.0.0/8", 1))
    table.add(entry("10.1.0.0/16", 2))
    table.add(entry("fd00::/64", 2))
    table.remove_nic(2)
    assert nic_of(table, "10.1.0.5") == 1
    assert table.lookup(packed("fd00::1")) is None
    assert [e.nic_id for e in table.entries()] == [1]


def test_route_lookup_matches_a_linear_scan() -> None:
    """Property check against the definition: the longest matching prefix, lowest metric."""
    rng = random.Random(3)
    table = RouteTable()
    entries = []
    for i in range(300):
        length = rng.choice([0, 8, 12, 16, 20, 24, 28, 32])
        addr = rng.getrandbits(32) & ~((1 << (32 - length)) - 1) & 0xFFFFFFFF
        row = RouteEntry(addr.to_bytes(4, "big"), length, None, i, rng.randrange(5))
        entries.append(row)
        table.add(row)
    for _ in range(2000):
        dst = rng.getrandbits(32)
        matching = [e for e in entries
                    if e.length == 0 or dst >> (32 - e.length)
                    == int.from_bytes(e.prefix, "big") >> (32 - e.length)]
        found = table.lookup(dst.to_bytes(4, "big"))
        if not matching:
            assert found is None
            continue
        best = max(e.length for e in matching)
        assert found is not None and found.length == best
        assert found.metric == min(e.metric for e in matching if e.length == best)


# --- Stack.find_route -----------------------------------------------------------------------

def one_nic_stack() -> Stack:
    stack = Stack(seed=1, options=StackOptions(dad_transmits=0))  # addresses usable at once
    link, _ = ChannelEndpoint.pair(stack.clock)
    stack.create_nic(link, "eth0")
    stack.add_address("eth0", "10.0.0.1/24")
    stack.add_address("eth0", "192.168.5.1/24")
    stack.add_address("eth0", "fd00::1/64")
    return stack


def test_find_route_on_link_and_via_gateway() -> None:
    stack = one_nic_stack()
    stack.add_route("default", "10.0.0.254", "eth0")
    on_link = stack.find_route(packed("10.0.0.7"))
    assert on_link.next_hop == packed("10.0.0.7")
    assert on_link.local_addr == packed("10.0.0.1")
    via = stack.find_route(packed("8.8.8.8"))
    assert via.next_hop == packed("10.0.0.254")
    assert via.remote_addr == packed("8.8.8.8")
    assert via.link_addr is None  # resolved by ARP, for the gateway


def test_find_route_unreachable_raises_enetunreach_and_counts() -> None:
    stack = one_nic_stack()
    with pytest.raises(OSError) as info:
        stack.find_route(packed("8.8.8.8"))
    assert info.value.errno == errno.ENETUNREACH
    assert stack.stats["route.unreachable"] == 1
    with pytest.raises(OSError) as info:
        stack.find_route(packed("2001:db8::1"))
    assert info.value.errno == errno.ENETUNREACH


def test_find_route_to_own_address_is_local() -> None:
    stack = one_nic_stack()
    route = stack.find_route(packed("192.168.5.1"))
    assert route.is_local
    assert route.local_addr == packed("192.168.5.1")


def test_find_route_rejects_a_source_we_do_not_own() -> None:
    stack = one_nic_stack()
    with pytest.raises(OSError) as info:
        stack.find_route(packed("10.0.0.7"), local=packed("10.0.0.99"))
    assert info.value.errno == errno.EADDRNOTAVAIL


def test_source_address_selection_prefers_the_destinations_subnet() -> None:
    stack = one_nic_stack()
    assert stack.find_route(packed("192.168.5.9")).local_addr == packed("192.168.5.1")
    assert stack.find_route(packed("10.0.0.9")).local_addr == packed("10.0.0.1")
    # an explicit source wins
    chosen = stack.find_route(packed("10.0.0.9"), local=packed("192.168.5.1"))
    assert chosen.local_addr == packed("192.168.5.1")


def test_source_address_for_a_gateway_route_is_on_the_gateways_subnet() -> None:
    """As Linux (inet_select_addr on the next hop): an address the gateway can answer."""
    stack = one_nic_stack()  # 10.0.0.1/24 first, then 192.168.5.1/24
    stack.add_route("default", "192.168.5.254", "eth0")
    route = stack.find_route(packed("8.8.8.8"))
    assert route.next_hop == packed("192.168.5.254")
    assert route.local_addr == packed("192.168.5.1")


def test_ipv6_source_selection_matches_scope() -> None:
    """RFC 6724 rule 2 (appropriate scope): link-local for link-local, global otherwise."""
    stack = one_nic_stack()
    stack.add_route("default6", "fe80::1", "eth0")
    link_local = stack.find_route(packed("fe80::99"), nic_id=1).local_addr
    assert link_local[:2] == b"\xfe\x80"
    assert stack.find_route(packed("2001:db8::5")).local_addr == packed("fd00::1")
    assert stack.find_route(packed("fd00::5")).local_addr == packed("fd00::1")
    # all-nodes is link-scoped: the source is link-local
    assert stack.find_route(packed("ff02::1"), nic_id=1).local_addr[:2] == b"\xfe\x80"


def test_broadcast_and_multicast_routes_carry_fixed_link_addresses() -> None:
    stack = one_nic_stack()
    assert stack.find_route(packed("10.0.0.255")).link_addr == b"\xff" * 6
    assert stack.find_route(packed("255.255.255.255")).link_addr == b"\xff" * 6
    assert stack.find_route(packed("224.0.0.251")).link_addr == bytes.fromhex("01005e0000fb")
    assert stack.find_route(packed("ff02::1"), nic_id=1).link_addr == bytes.fromhex(
        "333300000001")


def test_packets_for_an_off_link_destination_go_to_the_gateways_mac(pair: StackPair) -> None:
    pair.a.add_route("192.168.9.0/24", "10.0.0.2", "eth0")
    record(pair)
    sock = pair.a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.sendto(b"via gateway", ("192.168.9.9", 4000))
    pair.run(0.01)
    arp = frames(pair.link_a, ARP)
    assert [f[ARP].pdst for f in arp] == ["10.0.0.2"]  # the gateway is resolved, not the host
    (udp,) = frames(pair.link_a, UDP)
    assert udp.dst == mac_text(pair.link_b.link_address)
    assert udp["IP"].dst == "192.168.9.9"
    assert pair.b.stats["ipv4.drop.not_for_us"] == 1  # b is not a router


# --- demultiplexing -------------------------------------------------------------------------

class Dummy:
    def __init__(self, name: str) -> None:
        self.name = name

    def handle_packet(self, pkt: object) -> None:
        pass

    def handle_control(self, error: object, pkt: object) -> None:
        pass


def test_demux_prefers_connected_then_bound_then_wildcard() -> None:
    table = EndpointTable(random.Random(0))
    local, other_local = packed("10.0.0.2"), packed("10.0.0.3")
    peer = packed("10.0.0.1")
    wildcard, bound, connected = Dummy("wildcard"), Dummy("bound"), Dummy("connected")
    table.bind(wildcard, 4, b"", 7000, reuse=True)
    table.bind(bound, 4, local, 7000, reuse=True)
    binding = table.bind(connected, 4, local, 7000, reuse=True)
    table.connect(binding, local, peer, 6000)
    assert table.find(local, 7000, peer, 6000) is connected
    assert table.find(local, 7000, peer, 6001) is bound
    assert table.find(other_local, 7000, peer, 6000) is wildcard
    assert table.find(local, 7001, peer, 6000) is None


def test_demux_end_to_end(pair: StackPair) -> None:
    pair.b.add_address("eth0", "10.0.0.3/24")
    socks = {}
    for name in ("wildcard", "bound", "connected"):
        s = pair.b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setblocking(False)
        socks[name] = s
    socks["wildcard"].bind(("0.0.0.0", 7000))
    socks["bound"].bind(("10.0.0.2", 7000))
    socks["connected"].bind(("10.0.0.2", 7000))
    socks["connected"].connect(("10.0.0.1", 6000))
    senders = {}
    for port in (6000, 6001):
        s = pair.a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("10.0.0.1", port))
        senders[port] = s
    senders[6000].sendto(b"to connected", ("10.0.0.2", 7000))
    senders[6001].sendto(b"to bound", ("10.0.0.2", 7000))
    senders[6000].sendto(b"to wildcard", ("10.0.0.3", 7000))
    pair.run(0.01)
    assert socks["connected"].recv(100) == b"to connected"
    assert socks["bound"].recv(100) == b"to bound"
    assert socks["wildcard"].recvfrom(100) == (b"to wildcard", ("10.0.0.1", 6000))
    for s in socks.values():
        with pytest.raises(BlockingIOError):
            s.recv(100)


def bind_error(sock: DatagramSocket, address: tuple[str, int]) -> int:
    with pytest.raises(OSError) as info:
        sock.bind(address)
    return info.value.errno or 0


def test_bind_conflicts(pair: StackPair) -> None:
    pair.b.add_address("eth0", "10.0.0.3/24")

    def udp() -> DatagramSocket:
        sock = pair.b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        assert isinstance(sock, DatagramSocket)
        return sock

    first = udp()
    first.bind(("10.0.0.2", 5000))
    assert bind_error(udp(), ("10.0.0.2", 5000)) == errno.EADDRINUSE
    assert bind_error(udp(), ("0.0.0.0", 5000)) == errno.EADDRINUSE  # wildcard covers it
    udp().bind(("10.0.0.3", 5000))  # another address: no clash
    wild = udp()
    wild.bind(("0.0.0.0", 5001))
    assert bind_error(udp(), ("10.0.0.2", 5001)) == errno.EADDRINUSE
    # another family is another port space
    v6 = pair.b.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    v6.bind(("fd00::2", 5000))
    # closing frees the port
    first.close()
    udp().bind(("10.0.0.2", 5000))
    # binding twice is EINVAL, binding an address we do not have EADDRNOTAVAIL
    assert bind_error(wild, ("0.0.0.0", 5002)) == errno.EINVAL
    assert bind_error(udp(), ("10.0.0.99", 5003)) == errno.EADDRNOTAVAIL


def test_so_reuseaddr_needs_both_sockets(pair: StackPair) -> None:
    def udp(reuse: bool) -> DatagramSocket:
        s = pair.b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        assert isinstance(s, DatagramSocket)
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return s

    udp(True).bind(("0.0.0.0", 6000))
    udp(True).bind(("0.0.0.0", 6000))
    assert bind_error(udp(False), ("0.0.0.0", 6000)) == errno.EADDRINUSE
    udp(False).bind(("0.0.0.0", 6001))
    assert bind_error(udp(True), ("0.0.0.0", 6001)) == errno.EADDRINUSE
    assert udp(True).getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1


def test_ephemeral_ports_are_in_range_and_distinct(pair: StackPair) -> None:
    """RFC 6056: an implicit bind picks an unused port from the ephemeral range."""
    ports = set()
    for _ in range(200):
        s = pair.a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
        assert demux.EPHEMERAL_LOW <= port <= demux.EPHEMERAL_HIGH
        ports.add(port)
    assert len(ports) == 200
    implicit = pair.a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    implicit.sendto(b"x", ("10.0.0.2", 9))
    assert implicit.getsockname()[1] >= demux.EPHEMERAL_LOW


def test_ephemeral_port_exhaustion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demux, "EPHEMERAL_LOW", 40000)
    monkeypatch.setattr(demux, "EPHEMERAL_HIGH", 40003)
    table = EndpointTable(random.Random(0))
    table.bind(Dummy("fixed"), 4, b"", 40002)
    got = {table.bind(Dummy(str(i)), 4, b"", 0).local_port for i in range(3)}
    assert got == {40000, 40001, 40003}
    with pytest.raises(OSError) as info:
        table.bind(Dummy("one too many"), 4, b"", 0)
    assert info.value.errno == errno.EADDRNOTAVAIL
    # the other family is another port space, with its whole range free
    assert table.bind(Dummy("v6"), 16, b"", 40002).local_port == 40002


def test_unbind_removes_every_listing() -> None:
    table = EndpointTable(random.Random(0))
    local, peer = packed("10.0.0.2"), packed("10.0.0.1")
    ep = Dummy("ep")
    binding = table.bind(ep, 4, b"", 7000)
    table.connect(binding, local, peer, 6000)
    assert table.find(local, 7000, peer, 6000) is ep
    assert table.find(local, 7000, peer, 6001) is None  # connected: no longer a wildcard
    table.unbind(binding)
    assert table.find(local, 7000, peer, 6000) is None
    assert len(table) == 0
    table.bind(Dummy("again"), 4, b"", 7000)  # the port is free again
