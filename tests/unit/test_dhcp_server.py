# SPDX-License-Identifier: MIT
"""The DHCPv4 server (RFC 2131 4.3) against scapy-built client messages injected on the
guest link; each reply is decoded by scapy and checked field by field."""

from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet

from tests.unit.guest_link import GuestLink, make_guest_link
from ustack.wire import dhcp as wire

CLIENT_MAC = "02:00:00:00:99:01"
CLIENT_HW = bytes.fromhex(CLIENT_MAC.replace(":", ""))
CLIENT_ID = b"\x01" + CLIENT_HW
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
XID = 0x3903F326


@pytest.fixture
def link() -> GuestLink:
    link = make_guest_link()
    link.run(1.0)
    link.record()
    return link


def mac_of(link: GuestLink) -> str:
    return ":".join(f"{b:02x}" for b in link.link_gw.link_address)


def client_frame(options: list[Any], *, src: str = "0.0.0.0", dst: str = "255.255.255.255",
                 eth_dst: str = BROADCAST_MAC, flags: int = 0x8000, ciaddr: str = "0.0.0.0",
                 op: int = 1, giaddr: str = "0.0.0.0", xid: int = XID) -> bytes:
    return bytes(Ether(src=CLIENT_MAC, dst=eth_dst) / IP(src=src, dst=dst)
                 / UDP(sport=68, dport=67)
                 / BOOTP(op=op, xid=xid, flags=flags, ciaddr=ciaddr, giaddr=giaddr,
                         chaddr=CLIENT_HW)
                 / DHCP(options=[*options, ("client_id", CLIENT_ID), "end"]))


def raw_frame(options: bytes) -> bytes:
    """A broadcast DHCP message whose options are exactly ``options``."""
    return bytes(Ether(src=CLIENT_MAC, dst=BROADCAST_MAC) / IP(src="0.0.0.0", dst="255.255.255.255")
                 / UDP(sport=68, dport=67)
                 / BOOTP(xid=XID, chaddr=CLIENT_HW, options=wire.MAGIC_COOKIE + options))


def replies(link: GuestLink) -> list[Packet]:
    out = [Ether(f) for f in link.link_gw.written or []]
    return [f for f in out if f.haslayer(BOOTP)]


def exchange(link: GuestLink, frame: bytes) -> list[Packet]:
    link.record()
    link.link_gw.inject(frame)
    link.run(0.1)
    return replies(link)


def options_of(pkt: Packet) -> dict[str, Any]:
    out = {}
    for opt in pkt[DHCP].options:
        if isinstance(opt, tuple):
            out[opt[0]] = opt[1] if len(opt) == 2 else opt[1:]
    return out


def check_configuration(opts: dict[str, Any], lease: bool = True) -> None:
    assert opts["server_id"] == "10.0.2.2"
    assert opts["subnet_mask"] == "255.255.255.0"
    assert opts["router"] == "10.0.2.2"
    assert opts["name_server"] == "10.0.2.2"
    assert opts["domain"] == b"guest.test"
    assert opts["interface-mtu"] == 1500  # GuestNetwork's 65520, capped by the 1500 link
    assert opts["broadcast_address"] == "10.0.2.255"
    assert opts["client_id"] == CLIENT_ID  # RFC 6842
    if lease:
        assert (opts["lease_time"], opts["renewal_time"], opts["rebinding_time"]) == (
            3600, 1800, 3150)
    else:
        assert "lease_time" not in opts and "renewal_time" not in opts


# --- DISCOVER -> OFFER (4.3.1) --------------------------------------------------------------

def test_discover_with_broadcast_flag_gets_a_broadcast_offer(link: GuestLink) -> None:
    [offer] = exchange(link, client_frame([("message-type", "discover")]))
    assert offer[Ether].dst == BROADCAST_MAC and offer[Ether].src == mac_of(link)
    assert (offer[IP].src, offer[IP].dst, offer[IP].ttl) == ("10.0.2.2", "255.255.255.255", 64)
    assert (offer[UDP].sport, offer[UDP].dport) == (67, 68)
    b = offer[BOOTP]
    assert (b.op, b.xid, int(b.flags), b.hlen) == (2, XID, 0x8000, 6)
    assert (b.ciaddr, b.yiaddr, b.siaddr, b.giaddr) == ("0.0.0.0", "10.0.2.100", "0.0.0.0",
                                                        "0.0.0.0")
    assert bytes(b.chaddr)[:6] == CLIENT_HW
    opts = options_of(offer)
    assert opts["message-type"] == wire.OFFER
    check_configuration(opts)
    assert len(offer[UDP].payload) >= 300  # RFC 1542 2.1
    assert link.gateway.stats["dhcp.tx_offer"] == 1


def test_discover_without_broadcast_flag_is_unicast_to_chaddr_without_arp(
        link: GuestLink) -> None:
    [offer] = exchange(link, client_frame([("message-type", "discover")], flags=0))
    assert offer[Ether].dst == CLIENT_MAC
    assert offer[IP].dst == "10.0.2.100"
    assert not [f for f in map(Ether, link.link_gw.written or []) if f.haslayer(ARP)]


def test_options_follow_the_parameter_request_list(link: GuestLink) -> None:
    [offer] = exchange(link, client_frame([("message-type", "discover"),
                                           ("param_req_list", [6, 26, 3, 1])]))
    names = [o[0] for o in offer[DHCP].options if isinstance(o, tuple)]
    assert names[:5] == ["message-type", "name_server", "interface-mtu", "router",
                         "subnet_mask"]


# --- REQUEST -> ACK or NAK (4.3.2) ----------------------------------------------------------

def test_request_when_selecting_is_acknowledged(link: GuestLink) -> None:
    [ack] = exchange(link, client_frame([("message-type", "request"),
                                         ("server_id", "10.0.2.2"),
                                         ("requested_addr", "10.0.2.100")]))
    assert ack[BOOTP].yiaddr == "10.0.2.100" and ack[BOOTP].xid == XID
    assert ack[IP].dst == "255.255.255.255"
    opts = options_of(ack)
    assert opts["message-type"] == wire.ACK
    check_configuration(opts)
    lease = link.dhcp_lease()
    assert lease is not None and lease.client == CLIENT_ID and lease.chaddr == CLIENT_HW
    assert lease.expires == pytest.approx(link.clock.now() - 0.1 + 3600)


def test_request_for_another_server_is_ignored(link: GuestLink) -> None:
    assert exchange(link, client_frame([("message-type", "request"),
                                        ("server_id", "10.0.2.3"),
                                        ("requested_addr", "10.0.2.100")])) == []
    assert link.gateway.stats["dhcp.other_server_selected"] == 1


@pytest.mark.parametrize("options", [
    [("message-type", "request"), ("server_id", "10.0.2.2"), ("requested_addr", "10.0.2.7")],
    [("message-type", "request"), ("requested_addr", "192.168.1.5")],  # INIT-REBOOT
])
def test_request_for_a_wrong_address_is_refused_by_broadcast(link: GuestLink,
                                                             options: list[Any]) -> None:
    [nak] = exchange(link, client_frame(options, flags=0))
    assert nak[Ether].dst == BROADCAST_MAC and nak[IP].dst == "255.255.255.255"  # 4.1
    assert (nak[BOOTP].yiaddr, nak[BOOTP].ciaddr) == ("0.0.0.0", "0.0.0.0")
    opts = options_of(nak)
    assert opts["message-type"] == wire.NAK and opts["server_id"] == "10.0.2.2"
    assert "lease_time" not in opts and "router" not in opts  # RFC 2131 table 3
    assert link.dhcp_lease() is None


def test_init_reboot_for_the_right_address_is_acknowledged(link: GuestLink) -> None:
    [ack] = exchange(link, client_frame([("message-type", "request"),
                                         ("requested_addr", "10.0.2.100")]))
    assert options_of(ack)["message-type"] == wire.ACK


def test_renewal_is_unicast_to_ciaddr_after_arp(link: GuestLink) -> None:
    request = client_frame([("message-type", "request")], src="10.0.2.100", dst="10.0.2.2",
                           eth_dst=mac_of(link), flags=0, ciaddr="10.0.2.100")
    assert exchange(link, request) == []  # waits for ARP: the client has an address now
    [who_has] = [f for f in map(Ether, link.link_gw.written or []) if f.haslayer(ARP)]
    assert (who_has[ARP].op, who_has[ARP].pdst) == (1, "10.0.2.100")
    link.link_gw.inject(bytes(Ether(src=CLIENT_MAC, dst=mac_of(link)) / ARP(
        op=2, hwsrc=CLIENT_MAC, psrc="10.0.2.100", hwdst=mac_of(link), pdst="10.0.2.2")))
    link.run(0.1)
    [ack] = replies(link)
    assert ack[Ether].dst == CLIENT_MAC and ack[IP].dst == "10.0.2.100"
    assert (ack[BOOTP].ciaddr, ack[BOOTP].yiaddr) == ("10.0.2.100", "10.0.2.100")
    assert options_of(ack)["message-type"] == wire.ACK


def test_renewal_of_a_foreign_address_is_refused(link: GuestLink) -> None:
    request = client_frame([("message-type", "request")], src="10.0.2.50", dst="10.0.2.2",
                           eth_dst=mac_of(link), flags=0, ciaddr="10.0.2.50")
    [nak] = exchange(link, request)
    assert options_of(nak)["message-type"] == wire.NAK and nak[IP].dst == "255.255.255.255"


# --- INFORM, RELEASE, DECLINE (4.3.4 to 4.3.6) -------------------------------------------------

def test_inform_is_acknowledged_without_a_lease(link: GuestLink) -> None:
    link.link_gw.inject(bytes(Ether(src=CLIENT_MAC, dst=mac_of(link)) / ARP(
        op=2, hwsrc=CLIENT_MAC, psrc="10.0.2.100", hwdst=mac_of(link), pdst="10.0.2.2")))
    inform = client_frame([("message-type", "inform")], src="10.0.2.100", dst="10.0.2.2",
                          eth_dst=mac_of(link), flags=0, ciaddr="10.0.2.100")
    [ack] = exchange(link, inform)
    assert ack[IP].dst == "10.0.2.100" and ack[Ether].dst == CLIENT_MAC
    assert (ack[BOOTP].yiaddr, ack[BOOTP].ciaddr) == ("0.0.0.0", "10.0.2.100")
    opts = options_of(ack)
    assert opts["message-type"] == wire.ACK
    check_configuration(opts, lease=False)


@pytest.mark.parametrize("kind", ["release", "decline"])
def test_release_and_decline_forget_the_lease_silently(link: GuestLink, kind: str) -> None:
    exchange(link, client_frame([("message-type", "request"), ("server_id", "10.0.2.2"),
                                 ("requested_addr", "10.0.2.100")]))
    assert link.dhcp_lease() is not None
    message = client_frame([("message-type", kind), ("server_id", "10.0.2.2")],
                           src="10.0.2.100", dst="10.0.2.2", eth_dst=mac_of(link), flags=0,
                           ciaddr="10.0.2.100")
    assert exchange(link, message) == []
    assert link.dhcp_lease() is None
    assert link.gateway.stats[f"dhcp.rx_{kind}"] == 1


# --- what is dropped and counted --------------------------------------------------------------

def with_cookie(cookie: bytes, options: bytes = bytes((53, 1, 1, 255))) -> bytes:
    return bytes(Ether(src=CLIENT_MAC, dst=BROADCAST_MAC) / IP(src="0.0.0.0", dst="255.255.255.255")
                 / UDP(sport=68, dport=67)
                 / BOOTP(xid=XID, chaddr=CLIENT_HW, options=cookie + options))


@pytest.mark.parametrize("frame,counter", [
    (with_cookie(b"\x63\x82\x53\x64"), "dhcp.drop.bad_message"),  # not DHCP's cookie
    (with_cookie(b"\x63\x82", b""), "dhcp.drop.truncated"),
    (client_frame([("message-type", "offer")], op=2), "dhcp.drop.bad_message"),  # a reply
    (with_cookie(wire.MAGIC_COOKIE, b"\xff"), "dhcp.drop.bad_message"),  # plain BOOTP
    (client_frame([("message-type", "discover")], giaddr="10.9.9.9"), "dhcp.drop.not_for_us"),
    (raw_frame(bytes((53, 1, 1, 3, 3, 1, 2, 3, 255))), "dhcp.drop.bad_option"),
], ids=["cookie", "truncated", "reply", "bootp", "relayed", "option"])
def test_malformed_and_foreign_messages_are_dropped_and_counted(
        link: GuestLink, frame: bytes, counter: str) -> None:
    assert exchange(link, frame) == []
    stats = link.gateway.stats
    assert stats[counter] == 1
    assert stats["udp.drop.bad_checksum"] == 0  # it did reach the server
    assert stats["dhcp.tx_offer"] == 0
