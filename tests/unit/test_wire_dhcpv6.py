# SPDX-License-Identifier: MIT
"""DHCPv6 messages and options (RFC 8415 8, 11, 21; RFC 3646): round trips, scapy as
the independent codec both ways, and malformed input rejected with a reason."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp6 import (
    DHCP6,
    DUID_LL,
    DUID_LLT,
    DHCP6_Advertise,
    DHCP6_Solicit,
    DHCP6OptClientId,
    DHCP6OptDNSDomains,
    DHCP6OptDNSServers,
    DHCP6OptElapsedTime,
    DHCP6OptIA_NA,
    DHCP6OptIAAddress,
    DHCP6OptOptReq,
    DHCP6OptPref,
    DHCP6OptRapidCommit,
    DHCP6OptServerId,
    DHCP6OptStatusCode,
)

from ustack.wire import DropReason, ParseError
from ustack.wire import dhcpv6 as wire

u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
addr6 = st.binary(min_size=16, max_size=16)
mac = st.binary(min_size=6, max_size=6)
duid = st.one_of(st.builds(wire.duid_ll, mac), st.builds(wire.duid_llt, mac, u32),
                 st.binary(min_size=3, max_size=130))
status = st.builds(wire.StatusCode, u16, st.text(max_size=20))
label = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
domain = st.lists(label, min_size=1, max_size=4).map(".".join)
iaaddr = st.builds(wire.IAAddress, addr6, u32, u32, st.none() | status)
ia_na = st.builds(wire.IANA, u32, u32, u32, st.lists(iaaddr, max_size=3).map(tuple),
                  st.none() | status)
KNOWN = {1, 2, 3, 5, 6, 7, 8, 13, 14, 23, 24}
options = st.builds(
    wire.Options,
    client_id=st.none() | duid, server_id=st.none() | duid,
    ia_na=st.lists(ia_na, max_size=3).map(tuple),
    oro=st.lists(u16, max_size=8).map(tuple),
    preference=st.none() | u8, elapsed_time=st.none() | u16, rapid_commit=st.booleans(),
    status=st.none() | status, dns_servers=st.lists(addr6, max_size=3).map(tuple),
    domain_list=st.lists(domain, max_size=3).map(tuple),
    other=st.lists(st.tuples(u16.filter(lambda c: c not in KNOWN), st.binary(max_size=20)),
                   max_size=3).map(tuple),
)
client_types = st.integers(1, 11)
messages = st.builds(wire.Message, client_types, st.integers(0, 0xFFFFFF), options)

SCAPY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ip6(addr: bytes) -> str:
    return str(ipaddress.IPv6Address(addr))


def reason_of(data: bytes) -> DropReason:
    with pytest.raises(ParseError) as info:
        wire.parse(data)
    return info.value.reason


def option(code: int, value: bytes) -> bytes:
    return struct.pack("!HH", code, len(value)) + value


# --- round trips ----------------------------------------------------------------------------

@given(messages)
def test_build_then_parse_is_identity(msg: wire.Message) -> None:
    assert wire.parse(wire.build(msg)) == msg


@given(mac, u32)
def test_duids_rfc8415_section11(link: bytes, time: int) -> None:
    ll = wire.duid_ll(link)
    assert ll == b"\x00\x03\x00\x01" + link  # 11.4: type 3, hardware type 1
    assert wire.parse_duid(ll) == wire.DUID(wire.DUID_LL, 1, None, link)
    llt = wire.duid_llt(link, time)
    assert llt[:4] == b"\x00\x01\x00\x01" and llt[4:8] == struct.pack("!I", time)
    assert wire.parse_duid(llt) == wire.DUID(wire.DUID_LLT, 1, time, link)


def test_header_layout_rfc8415_section8() -> None:
    data = wire.build(wire.Message(wire.REPLY, 0xABCDEF, wire.Options(rapid_commit=True)))
    assert data == bytes((7, 0xAB, 0xCD, 0xEF)) + b"\x00\x0e\x00\x00"


# --- scapy, both ways ----------------------------------------------------------------------

@SCAPY
@given(st.sampled_from([wire.SOLICIT, wire.REQUEST, wire.REPLY, wire.ADVERTISE]),
       st.integers(0, 0xFFFFFF), mac, st.lists(ia_na, min_size=1, max_size=2),
       st.lists(addr6, min_size=1, max_size=3), st.lists(domain, min_size=1, max_size=2),
       u8, u16)
def test_scapy_reads_what_we_build(kind: int, xid: int, link: bytes, ias: list[wire.IANA],
                                   dns: list[bytes], domains: list[str], pref: int,
                                   elapsed: int) -> None:
    msg = wire.Message(kind, xid, wire.Options(
        client_id=wire.duid_ll(link), server_id=wire.duid_llt(link, 1000), ia_na=tuple(ias),
        preference=pref, elapsed_time=elapsed, rapid_commit=True,
        dns_servers=tuple(dns), domain_list=tuple(domains), oro=(23, 24)))
    pkt = DHCP6(wire.build(msg))
    assert (pkt.msgtype, pkt.trid) == (kind, xid)
    assert bytes(pkt[DHCP6OptClientId].duid) == wire.duid_ll(link)
    assert bytes(pkt[DHCP6OptServerId].duid) == wire.duid_llt(link, 1000)
    first = pkt[DHCP6OptIA_NA]
    assert (first.iaid, first.T1, first.T2) == (ias[0].iaid, ias[0].t1, ias[0].t2)
    assert pkt[DHCP6OptPref].prefval == pref
    assert pkt[DHCP6OptElapsedTime].elapsedtime == elapsed
    assert pkt.haslayer(DHCP6OptRapidCommit)
    assert list(pkt[DHCP6OptOptReq].reqopts) == [23, 24]
    assert list(pkt[DHCP6OptDNSServers].dnsservers) == [ip6(a) for a in dns]
    assert [d.rstrip(".") for d in pkt[DHCP6OptDNSDomains].dnsdomains] == domains


def test_we_read_what_scapy_builds() -> None:
    pkt = (DHCP6_Advertise(trid=0x010203)
           / DHCP6OptClientId(duid=DUID_LL(lladdr="02:00:00:00:00:01"))
           / DHCP6OptServerId(duid=DUID_LLT(lladdr="02:00:00:00:00:02", timeval=77))
           / DHCP6OptIA_NA(iaid=9, T1=100, T2=160, ianaopts=[
               DHCP6OptIAAddress(addr="fd00:0:0:2::100", preflft=200, validlft=300),
               DHCP6OptStatusCode(statuscode=0, statusmsg="fine")])
           / DHCP6OptPref(prefval=255)
           / DHCP6OptDNSServers(dnsservers=["fd00:0:0:2::2"])
           / DHCP6OptDNSDomains(dnsdomains=["guest.test"])
           / DHCP6OptStatusCode(statuscode=2, statusmsg="none"))
    msg = wire.parse(bytes(pkt))
    assert (msg.msg_type, msg.transaction_id) == (wire.ADVERTISE, 0x010203)
    o = msg.options
    assert o.client_id == wire.duid_ll(bytes.fromhex("020000000001"))
    assert o.server_id == wire.duid_llt(bytes.fromhex("020000000002"), 77)
    assert o.ia_na == (wire.IANA(9, 100, 160, (wire.IAAddress(
        ipaddress.IPv6Address("fd00:0:0:2::100").packed, 200, 300),),
        wire.StatusCode(0, "fine")),)
    assert o.preference == 255
    assert o.dns_servers == (ipaddress.IPv6Address("fd00:0:0:2::2").packed,)
    assert o.domain_list == ("guest.test",)
    assert o.status == wire.StatusCode(wire.NO_ADDRS_AVAIL, "none")


def test_solicit_from_scapy() -> None:
    pkt = (DHCP6_Solicit(trid=5) / DHCP6OptClientId(duid=DUID_LL(lladdr="02:00:00:00:00:01"))
           / DHCP6OptIA_NA(iaid=1) / DHCP6OptElapsedTime(elapsedtime=0)
           / DHCP6OptOptReq(reqopts=[23, 24]) / DHCP6OptRapidCommit())
    msg = wire.parse(bytes(pkt))
    assert msg.msg_type == wire.SOLICIT
    assert msg.options.ia_na == (wire.IANA(1),)
    assert (msg.options.elapsed_time, msg.options.oro, msg.options.rapid_commit) == (
        0, (23, 24), True)


# --- malformed input ------------------------------------------------------------------------

HEAD = bytes((wire.SOLICIT, 0, 0, 1))


@pytest.mark.parametrize("body", [
    option(wire.OPT_CLIENTID, b"\x00\x03"),  # DUID of 2 bytes (11.1: at least 3)
    option(wire.OPT_CLIENTID, b"\x00\x03" + bytes(129)),  # and at most 130
    option(wire.OPT_CLIENTID, b"\x00\x01\x00\x01\x00"),  # DUID-LLT shorter than its header
    option(wire.OPT_IA_NA, bytes(11)),  # IAID, T1, T2 are 12 bytes
    option(wire.OPT_IA_NA, bytes(12) + option(wire.OPT_IAADDR, bytes(23))),
    option(wire.OPT_IA_NA, bytes(12) + b"\x00\x05\x00\x20" + bytes(8)),  # inner overruns
    option(wire.OPT_ORO, b"\x00\x17\x00"),  # odd length
    option(wire.OPT_PREFERENCE, b"\x01\x02"),
    option(wire.OPT_ELAPSED_TIME, b"\x01"),
    option(wire.OPT_RAPID_COMMIT, b"\x00"),
    option(wire.OPT_STATUS_CODE, b"\x00"),
    option(wire.OPT_DNS_SERVERS, bytes(15)),
    option(wire.OPT_DOMAIN_LIST, b"\x03abc\xc0\x00"),  # compressed (RFC 8415 10)
    option(wire.OPT_DOMAIN_LIST, b"\x05abc"),  # label runs past the end
    b"\x00\x01\x00",  # truncated option header
    b"\x00\x17\x00\x20" + bytes(16),  # length past the message
])
def test_bad_options_are_rejected(body: bytes) -> None:
    assert reason_of(HEAD + body) in (DropReason.BAD_OPTION, DropReason.TRUNCATED,
                                      DropReason.BAD_MESSAGE)


def test_bad_options_reason_is_bad_option() -> None:
    assert reason_of(HEAD + option(wire.OPT_ORO, b"\x00")) is DropReason.BAD_OPTION


def test_short_and_relay_messages_are_rejected() -> None:
    assert reason_of(b"\x01\x00\x00") is DropReason.TRUNCATED
    assert reason_of(bytes((wire.RELAY_FORW, 0, 0, 0))) is DropReason.BAD_MESSAGE


def test_repeated_singleton_keeps_the_first_and_unknown_are_kept() -> None:
    first, second = wire.duid_ll(b"\x02" * 6), wire.duid_ll(b"\x04" * 6)
    data = HEAD + option(1, first) + option(1, second) + option(99, b"xy")
    opts = wire.parse(data).options
    assert opts.client_id == first
    assert opts.other == ((99, b"xy"),)
