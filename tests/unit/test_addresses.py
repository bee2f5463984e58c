# SPDX-License-Identifier: MIT
"""Address handling: martian loopback sources, RFC 6724 source selection, and removing an
address together with the route it brought."""

from __future__ import annotations

import ipaddress
import socket

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from ustack.testing.pair import StackPair


def packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def test_rfc1122_loopback_source_from_a_wire_is_dropped(pair: StackPair) -> None:
    sock = pair.b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 9999))
    sock6 = pair.b.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock6.bind(("::", 9999))
    mac_b = pair.link_b.link_address.hex(":")
    for frame in (Ether(dst=mac_b) / IP(src="127.0.0.1", dst="10.0.0.2") / UDP(dport=9999)
                  / b"spoofed",
                  Ether(dst=mac_b) / IPv6(src="::1", dst="fd00::2") / UDP(dport=9999)
                  / b"spoofed"):
        pair.link_b.inject(bytes(frame))
    pair.run(0.01)
    assert pair.b.stats["ipv4.drop.bad_address"] == 1
    assert pair.b.stats["ipv6.drop.bad_address"] == 1
    sock.setblocking(False)
    sock6.setblocking(False)
    for s in (sock, sock6):
        try:
            s.recv(100)
        except BlockingIOError:
            continue
        raise AssertionError("a datagram from a loopback source was delivered")


def test_rfc6724_rule8_longest_matching_prefix(pair: StackPair) -> None:
    pair.b.add_address("eth0", "2001:db8:1::2/64", dad=False)
    pair.b.add_route("default6", "fd00::1", "eth0")
    nic = pair.nic_b
    assert nic.primary_address(16, packed("2001:db8:1:5::9")) == packed("2001:db8:1::2")
    assert nic.primary_address(16, packed("fd00:9::1")) == packed("fd00::2")
    assert nic.primary_address(16, packed("fe80::1")) == nic.primary_address(
        16, packed("fe80::99"))
    route = pair.b.find_route(packed("2001:db8:1:77::1"))
    assert route.local_addr == packed("2001:db8:1::2")


def test_removing_an_address_removes_its_connected_route(pair: StackPair) -> None:
    pair.b.add_address("eth0", "192.0.2.2/24")
    target = packed("192.0.2.9")
    assert pair.b.routes.lookup(target) is not None
    assert pair.b.remove_address("192.0.2.2")
    assert pair.b.routes.lookup(target) is None
    assert pair.b.routes.lookup(packed("10.0.0.1")) is not None  # others stay
