# SPDX-License-Identifier: MIT
"""The DHCPv6 server (RFC 8415 16 and 18.3) against scapy-built client messages sent to
ff02::1:2 on the guest link; each reply is decoded by scapy, field by field."""

from __future__ import annotations

import pytest
from scapy.layers.dhcp6 import (
    DHCP6,
    DUID_LL,
    DHCP6_Advertise,
    DHCP6_Confirm,
    DHCP6_Decline,
    DHCP6_InfoRequest,
    DHCP6_Rebind,
    DHCP6_Release,
    DHCP6_Renew,
    DHCP6_Reply,
    DHCP6_Request,
    DHCP6_Solicit,
    DHCP6OptClientId,
    DHCP6OptDNSDomains,
    DHCP6OptDNSServers,
    DHCP6OptElapsedTime,
    DHCP6OptIA_NA,
    DHCP6OptIA_PD,
    DHCP6OptIAAddress,
    DHCP6OptOptReq,
    DHCP6OptPref,
    DHCP6OptRapidCommit,
    DHCP6OptServerId,
    DHCP6OptStatusCode,
)
from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from tests.unit.guest_link import GuestLink, make_guest_link
from ustack.wire import dhcpv6 as wire

CLIENT_MAC = "02:00:00:00:99:03"
CLIENT_LL = "fe80::99:3"
TRID = 0x0A0B0C
GUEST6 = "fd00:0:0:2::100"


@pytest.fixture
def link() -> GuestLink:
    link = make_guest_link()
    link.run(1.0)
    link.record()
    return link


def gateway_duid(link: GuestLink) -> bytes:
    return b"\x00\x03\x00\x01" + link.link_gw.link_address  # DUID-LL (RFC 8415 11.4)


def client_id() -> DHCP6OptClientId:
    return DHCP6OptClientId(duid=DUID_LL(lladdr=CLIENT_MAC))


def frame(message: Packet, src: str = CLIENT_LL) -> bytes:
    return bytes(Ether(src=CLIENT_MAC, dst="33:33:00:01:00:02")
                 / IPv6(src=src, dst="ff02::1:2", hlim=1) / UDP(sport=546, dport=547)
                 / message)


def exchange(link: GuestLink, message: Packet, src: str = CLIENT_LL) -> list[Packet]:
    link.record()
    link.link_gw.inject(frame(message, src))
    link.run(0.1)
    return [f for f in map(Ether, link.link_gw.written or [])
            if f.haslayer(UDP) and f[UDP].sport == 547]


def check_envelope(reply: Packet, link: GuestLink, kind: type[Packet]) -> None:
    """18.3: unicast from the gateway's link-local address to the client, port 546."""
    assert reply[Ether].dst == CLIENT_MAC  # the link address the request came from: no NDP
    assert (reply[IPv6].src, reply[IPv6].dst) == ("fe80::2", CLIENT_LL)
    assert (reply[UDP].sport, reply[UDP].dport) == (547, 546)
    assert reply.haslayer(kind)
    assert reply[kind].trid == TRID
    assert bytes(reply[DHCP6OptClientId].duid) == bytes(client_id().duid)
    assert bytes(reply[DHCP6OptServerId].duid) == gateway_duid(link)


def check_binding(reply: Packet, iaid: int = 7) -> None:
    ia = reply[DHCP6OptIA_NA]
    assert (ia.iaid, ia.T1, ia.T2) == (iaid, 1800, 2880)  # 0.5 and 0.8 of 3600 (21.4)
    addr = ia[DHCP6OptIAAddress]
    assert (addr.addr, addr.preflft, addr.validlft) == (GUEST6, 3600, 3600)


def check_dns(reply: Packet) -> None:
    assert list(reply[DHCP6OptDNSServers].dnsservers) == ["fd00:0:0:2::2"]
    assert list(reply[DHCP6OptDNSDomains].dnsdomains) == ["guest.test."]


def status_of(pkt: Packet) -> tuple[int, bytes]:
    status = pkt[DHCP6OptStatusCode]
    return int(status.statuscode), bytes(status.statusmsg)


def solicit() -> Packet:
    return (DHCP6_Solicit(trid=TRID) / client_id() / DHCP6OptIA_NA(iaid=7)
            / DHCP6OptElapsedTime() / DHCP6OptOptReq(reqopts=[23, 24]))


def server_id(link: GuestLink, duid: bytes | None = None) -> DHCP6OptServerId:
    return DHCP6OptServerId(duid=DUID_LL(duid or gateway_duid(link)))


# --- SOLICIT (18.3.1) -------------------------------------------------------------------------

def test_solicit_gets_an_advertise(link: GuestLink) -> None:
    assert wire.ALL_DHCP_RELAY_AGENTS_AND_SERVERS in link.nic_gw.multicast_groups
    [reply] = exchange(link, solicit())
    check_envelope(reply, link, DHCP6_Advertise)
    check_binding(reply)
    check_dns(reply)
    assert reply[DHCP6OptPref].prefval == 255
    assert not reply.haslayer(DHCP6OptRapidCommit)
    assert not [f for f in map(Ether, link.link_gw.written or []) if f.haslayer(ICMPv6ND_NS)]
    assert link.gateway.stats["dhcpv6.tx_advertise"] == 1


def test_solicit_with_rapid_commit_gets_a_reply(link: GuestLink) -> None:
    [reply] = exchange(link, solicit() / DHCP6OptRapidCommit())
    check_envelope(reply, link, DHCP6_Reply)
    check_binding(reply)
    assert reply.haslayer(DHCP6OptRapidCommit)


def test_second_ia_na_is_told_no_addresses(link: GuestLink) -> None:
    [reply] = exchange(link, solicit() / DHCP6OptIA_NA(iaid=8))
    second = reply.getlayer(DHCP6OptIA_NA, 2)
    assert second is not None
    assert second.iaid == 8 and not second.haslayer(DHCP6OptIAAddress)
    assert status_of(second)[0] == wire.NO_ADDRS_AVAIL


def test_solicit_for_prefixes_only_gets_no_addrs_avail(link: GuestLink) -> None:
    [reply] = exchange(link, DHCP6_Solicit(trid=TRID) / client_id() / DHCP6OptIA_PD(iaid=1))
    check_envelope(reply, link, DHCP6_Advertise)
    assert status_of(reply)[0] == wire.NO_ADDRS_AVAIL  # 18.3.9
    assert not reply.haslayer(DHCP6OptIA_NA)


# --- REQUEST, RENEW, REBIND (18.3.2, 18.3.4, 18.3.5) ----------------------------------------------

def test_request_gets_a_reply_with_the_binding(link: GuestLink) -> None:
    [reply] = exchange(link, DHCP6_Request(trid=TRID) / client_id() / server_id(link)
                       / DHCP6OptIA_NA(iaid=7, ianaopts=[DHCP6OptIAAddress(addr=GUEST6)]))
    check_envelope(reply, link, DHCP6_Reply)
    check_binding(reply)
    check_dns(reply)


def test_request_for_another_server_is_ignored(link: GuestLink) -> None:
    other = b"\x00\x03\x00\x01\x02\x00\x00\x00\x00\x77"
    assert exchange(link, DHCP6_Request(trid=TRID) / client_id() / server_id(link, other)
                    / DHCP6OptIA_NA(iaid=7)) == []
    assert link.gateway.stats["dhcpv6.other_server"] == 1


@pytest.mark.parametrize("kind", [DHCP6_Renew, DHCP6_Rebind])
def test_renew_and_rebind_retire_foreign_addresses(link: GuestLink,
                                                   kind: type[Packet]) -> None:
    message = kind(trid=TRID) / client_id()
    if kind is DHCP6_Renew:
        message = message / server_id(link)
    message = message / DHCP6OptIA_NA(iaid=7, ianaopts=[
        DHCP6OptIAAddress(addr="fd00:0:0:2::55"), DHCP6OptIAAddress(addr=GUEST6)])
    [reply] = exchange(link, message)
    check_envelope(reply, link, DHCP6_Reply)
    addresses = {a.addr: (a.preflft, a.validlft) for a in reply[DHCP6OptIA_NA].ianaopts
                 if isinstance(a, DHCP6OptIAAddress)}
    assert addresses == {GUEST6: (3600, 3600), "fd00:0:0:2::55": (0, 0)}


# --- CONFIRM (18.3.3) -------------------------------------------------------------------------

@pytest.mark.parametrize("address,code", [(GUEST6, wire.SUCCESS),
                                          ("2001:db8::1", wire.NOT_ON_LINK)])
def test_confirm_says_whether_addresses_are_on_link(link: GuestLink, address: str,
                                                    code: int) -> None:
    [reply] = exchange(link, DHCP6_Confirm(trid=TRID) / client_id()
                       / DHCP6OptIA_NA(iaid=7, ianaopts=[DHCP6OptIAAddress(addr=address)]))
    check_envelope(reply, link, DHCP6_Reply)
    assert status_of(reply)[0] == code


def test_confirm_without_addresses_gets_no_reply(link: GuestLink) -> None:
    assert exchange(link, DHCP6_Confirm(trid=TRID) / client_id()
                    / DHCP6OptIA_NA(iaid=7)) == []


# --- INFORMATION-REQUEST, RELEASE, DECLINE (18.3.6 to 18.3.8) ----------------------------------

def test_information_request_gets_dns_configuration(link: GuestLink) -> None:
    [reply] = exchange(link, DHCP6_InfoRequest(trid=TRID) / client_id()
                       / DHCP6OptOptReq(reqopts=[23, 24]))
    check_envelope(reply, link, DHCP6_Reply)
    check_dns(reply)
    assert not reply.haslayer(DHCP6OptIA_NA)


@pytest.mark.parametrize("kind", [DHCP6_Release, DHCP6_Decline])
def test_release_and_decline_are_acknowledged(link: GuestLink, kind: type[Packet]) -> None:
    [reply] = exchange(link, kind(trid=TRID) / client_id() / server_id(link)
                       / DHCP6OptIA_NA(iaid=7, ianaopts=[DHCP6OptIAAddress(addr=GUEST6)]))
    check_envelope(reply, link, DHCP6_Reply)
    assert status_of(reply)[0] == wire.SUCCESS
    assert not reply.haslayer(DHCP6OptIA_NA)


# --- what is dropped and counted (16) -------------------------------------------------------

@pytest.mark.parametrize("message,counter", [
    (DHCP6_Solicit(trid=TRID) / DHCP6OptIA_NA(iaid=7), "dhcpv6.drop.bad_message"),  # no client
    (DHCP6_Request(trid=TRID) / client_id() / DHCP6OptIA_NA(iaid=7),
     "dhcpv6.drop.bad_message"),  # no server id
    (DHCP6_InfoRequest(trid=TRID) / client_id() / DHCP6OptIA_NA(iaid=7),
     "dhcpv6.drop.bad_message"),  # 16.12: no IA options
    (DHCP6_Reply(trid=TRID) / client_id(), "dhcpv6.drop.bad_message"),  # a server's message
    (DHCP6_Solicit(trid=TRID) / DHCP6OptClientId(duid=b"\x00"), "dhcpv6.drop.bad_option"),
    (DHCP6(msgtype=12), "dhcpv6.drop.bad_message"),  # relay-forward
], ids=["no-client-id", "no-server-id", "info-with-ia", "reply", "bad-duid", "relay"])
def test_invalid_messages_are_dropped(link: GuestLink, message: Packet, counter: str) -> None:
    assert exchange(link, message) == []
    assert link.gateway.stats[counter] == 1


def test_solicit_carrying_a_server_id_is_dropped(link: GuestLink) -> None:
    assert exchange(link, solicit() / server_id(link)) == []
    assert link.gateway.stats["dhcpv6.drop.bad_message"] == 1
