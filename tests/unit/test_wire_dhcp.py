# SPDX-License-Identifier: MIT
"""BOOTP/DHCPv4 messages (RFC 2131 2, RFC 2132, RFC 3396): round trips, scapy as the
independent codec both ways, and malformed input rejected with a reason."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP

from ustack.wire import DropReason, ParseError
from ustack.wire import dhcp as wire

addr4 = st.binary(min_size=4, max_size=4)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
no_nul = st.binary(max_size=64).map(lambda b: b.replace(b"\0", b"x"))
text = st.binary(min_size=1, max_size=300)
KNOWN = {0, 1, 3, 6, 12, 15, 26, 50, 51, 53, 54, 55, 56, 57, 58, 59, 61, 255}
other_codes = st.integers(1, 254).filter(lambda c: c not in KNOWN)

options = st.builds(
    wire.Options,
    message_type=st.none() | st.integers(1, 255),
    server_id=st.none() | addr4,
    requested_address=st.none() | addr4,
    lease_time=st.none() | u32,
    renewal_time=st.none() | u32,
    rebinding_time=st.none() | u32,
    subnet_mask=st.none() | addr4,
    routers=st.lists(addr4, max_size=70).map(tuple),  # 70 * 4 > 255: split (RFC 3396)
    dns_servers=st.lists(addr4, max_size=4).map(tuple),
    domain_name=st.none() | text,
    hostname=st.none() | text,
    mtu=st.none() | st.integers(wire.MIN_MTU, 0xFFFF),
    parameter_request_list=st.lists(st.integers(0, 255), max_size=20).map(tuple),
    client_id=st.none() | st.binary(min_size=2, max_size=40),
    max_message_size=st.none() | u16,
    message=st.none() | st.binary(max_size=40),
    other=st.dictionaries(other_codes, st.binary(max_size=300), max_size=4).map(
        lambda d: tuple(d.items())),
)

messages = st.builds(
    wire.Message,
    op=st.sampled_from((wire.BOOTREQUEST, wire.BOOTREPLY)),
    xid=u32, chaddr=st.binary(max_size=16), options=options, htype=st.integers(0, 255),
    hops=st.integers(0, 255), secs=u16, flags=u16, ciaddr=addr4, yiaddr=addr4, siaddr=addr4,
    giaddr=addr4, sname=no_nul, file=st.binary(max_size=128).map(lambda b: b.replace(b"\0", b"y")),
)

SCAPY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ip(addr: bytes) -> str:
    return str(ipaddress.IPv4Address(addr))


def reason_of(data: bytes) -> DropReason:
    with pytest.raises(ParseError) as info:
        wire.parse(data)
    return info.value.reason


def discover(**fields: Any) -> bytes:
    base = wire.Message(wire.BOOTREQUEST, 0x1234, bytes.fromhex("020000000001"),
                        wire.Options(message_type=wire.DISCOVER))
    return wire.build(base._replace(**fields))


# --- round trips ----------------------------------------------------------------------------

@given(messages)
def test_build_then_parse_is_identity(msg: wire.Message) -> None:
    data = wire.build(msg)
    assert len(data) >= wire.MIN_LENGTH  # RFC 1542 2.1
    assert data[236:240] == wire.MAGIC_COOKIE
    assert wire.parse(data) == msg


@given(st.lists(addr4, min_size=64, max_size=100))
def test_long_option_is_split_and_joined_rfc3396(routers: list[bytes]) -> None:
    data = wire.build(wire.Message(wire.BOOTREPLY, 1, b"", wire.Options(routers=tuple(routers))))
    opts = data[240:]
    assert opts[:2] == bytes((wire.OPT_ROUTER, 255))  # full, then the rest in a second one
    assert opts[257:259] == bytes((wire.OPT_ROUTER, len(routers) * 4 - 255))
    assert wire.parse(data).options.routers == tuple(routers)


def test_options_follow_the_parameter_request_list_order() -> None:
    opts = wire.Options(message_type=wire.OFFER, subnet_mask=bytes(4), routers=(bytes(4),),
                        dns_servers=(bytes(4),), server_id=bytes(4))
    data = wire.build(wire.Message(wire.BOOTREPLY, 1, b"", opts), order=(6, 3, 1))
    codes = []
    offset = 240
    while data[offset] != wire.OPT_END:
        codes.append(data[offset])
        offset += 2 + data[offset + 1]
    assert codes == [53, 6, 3, 1, 54]


# --- scapy, both ways ----------------------------------------------------------------------

@SCAPY
@given(messages)
def test_scapy_reads_what_we_build(msg: wire.Message) -> None:
    pkt = BOOTP(wire.build(msg))
    assert (pkt.op, pkt.htype, pkt.hlen, pkt.hops, pkt.xid, pkt.secs, int(pkt.flags)) == (
        msg.op, msg.htype, len(msg.chaddr), msg.hops, msg.xid, msg.secs, msg.flags)
    assert [pkt.ciaddr, pkt.yiaddr, pkt.siaddr, pkt.giaddr] == [
        ip(msg.ciaddr), ip(msg.yiaddr), ip(msg.siaddr), ip(msg.giaddr)]
    assert bytes(pkt.chaddr)[:len(msg.chaddr)] == msg.chaddr
    assert bytes(pkt.sname).rstrip(b"\0") == msg.sname.rstrip(b"\0")
    assert pkt.haslayer(DHCP)
    seen = {opt[0]: opt[1:] for opt in pkt[DHCP].options if isinstance(opt, tuple)}
    o = msg.options
    if o.message_type is not None and o.message_type <= 18:
        assert seen["message-type"] == (o.message_type,)
    if o.lease_time is not None:
        assert seen["lease_time"] == (o.lease_time,)
    if o.server_id is not None:
        assert seen["server_id"] == (ip(o.server_id),)
    if o.mtu is not None:
        assert seen["interface-mtu"] == (o.mtu,)
    if o.dns_servers:
        assert seen["name_server"] == tuple(ip(a) for a in o.dns_servers)


def test_we_read_what_scapy_builds() -> None:
    pkt = BOOTP(op=2, xid=0xDEADBEEF, flags=0x8000, yiaddr="10.0.2.100", siaddr="10.0.2.2",
                chaddr=bytes.fromhex("020000000001")) / DHCP(options=[
                    ("message-type", "ack"), ("server_id", "10.0.2.2"),
                    ("lease_time", 3600), ("renewal_time", 1800), ("rebinding_time", 3150),
                    ("subnet_mask", "255.255.255.0"), ("router", "10.0.2.2"),
                    ("name_server", "10.0.2.2", "10.0.2.3"), ("domain", b"guest.test"),
                    ("interface-mtu", 1500), ("param_req_list", [1, 3, 6, 15]),
                    ("client_id", b"\x01\x02\x00\x00\x00\x00\x01"), ("hostname", b"vm"),
                    ("max_dhcp_size", 1500), ("requested_addr", "10.0.2.100"),
                    ("error_message", b"hi"), (42, b"\x01\x02"), "end"])
    msg = wire.parse(bytes(pkt))
    assert (msg.op, msg.xid, msg.broadcast, msg.chaddr) == (
        2, 0xDEADBEEF, True, bytes.fromhex("020000000001"))
    assert msg.yiaddr == bytes([10, 0, 2, 100]) and msg.siaddr == bytes([10, 0, 2, 2])
    o = msg.options
    assert o.message_type == wire.ACK
    assert o.server_id == o.routers[0] == bytes([10, 0, 2, 2])
    assert (o.lease_time, o.renewal_time, o.rebinding_time) == (3600, 1800, 3150)
    assert o.subnet_mask == bytes([255, 255, 255, 0])
    assert o.dns_servers == (bytes([10, 0, 2, 2]), bytes([10, 0, 2, 3]))
    assert (o.domain_name, o.hostname, o.mtu, o.max_message_size) == (
        b"guest.test", b"vm", 1500, 1500)
    assert o.parameter_request_list == (1, 3, 6, 15)
    assert o.client_id == b"\x01\x02\x00\x00\x00\x00\x01"
    assert o.requested_address == bytes([10, 0, 2, 100])
    assert o.message == b"hi"
    assert o.other == ((42, b"\x01\x02"),)


# --- malformed input (RFC 2131 2 and 3, RFC 2132) ------------------------------------------

def test_truncated_header_and_missing_cookie() -> None:
    data = discover()
    assert reason_of(data[:239]) is DropReason.TRUNCATED
    assert reason_of(data[:236] + b"\x63\x82\x53\x64" + data[240:]) is DropReason.BAD_MESSAGE


def test_bad_op_and_hlen() -> None:
    data = bytearray(discover())
    data[0] = 3
    assert reason_of(bytes(data)) is DropReason.BAD_MESSAGE
    data[0], data[2] = 1, 17
    assert reason_of(bytes(data)) is DropReason.BAD_MESSAGE


@pytest.mark.parametrize("option", [
    bytes((53, 2, 1, 1)),  # message type is one byte
    bytes((54, 3, 1, 2, 3)),  # server identifier is an address
    bytes((3, 5, 1, 2, 3, 4, 5)),  # routers: a multiple of 4
    bytes((3, 0)),  # routers: at least one
    bytes((26, 2, 0, 67)),  # MTU below 68 (RFC 2132 5.1)
    bytes((51, 2, 0, 1)),  # lease time is 32 bits
    bytes((61, 1, 1)),  # client identifier: at least 2 bytes
    bytes((15, 0)),  # domain name: at least 1 byte
    bytes((6, 8, 1, 2, 3, 4)),  # runs past the end
    bytes((6,)),  # no length byte
])
def test_bad_options_are_rejected(option: bytes) -> None:
    data = discover()[:240] + option
    assert reason_of(data) is DropReason.BAD_OPTION


def test_pad_repeats_and_a_missing_end_are_tolerated() -> None:
    head = discover()[:240]
    body = bytes((0, 0, 53, 1, 3, 0, 3, 4, 10, 0, 2, 2, 3, 4, 10, 0, 2, 3))  # no end option
    opts = wire.parse(head + body).options
    assert opts.message_type == wire.REQUEST
    assert opts.routers == (bytes([10, 0, 2, 2]), bytes([10, 0, 2, 3]))  # RFC 3396: joined


def test_overload_is_ignored_sname_and_file_stay_names() -> None:
    sname = bytes((53, 1, 7, 255))  # would be "release" if sname were read as options
    data = discover(sname=sname, options=wire.Options(
        message_type=wire.DISCOVER, other=((wire.OPT_OVERLOAD, b"\x03"),)))
    msg = wire.parse(data)
    assert msg.options.message_type == wire.DISCOVER
    assert msg.sname == sname
    assert msg.options.other == ((wire.OPT_OVERLOAD, b"\x03"),)


def test_build_rejects_a_long_chaddr() -> None:
    with pytest.raises(ValueError):
        wire.build(wire.Message(1, 1, bytes(17), wire.Options()))


def test_header_layout_rfc2131_figure1() -> None:
    data = discover(flags=wire.FLAG_BROADCAST, secs=3, ciaddr=bytes([1, 2, 3, 4]))
    op, htype, hlen, hops, xid, secs, flags = struct.unpack_from("!BBBBIHH", data)
    assert (op, htype, hlen, hops, xid, secs, flags) == (1, 1, 6, 0, 0x1234, 3, 0x8000)
    assert data[12:16] == bytes([1, 2, 3, 4])
    assert data[28:34] == bytes.fromhex("020000000001") and data[34:44] == bytes(10)
    assert data[240:243] == bytes((53, 1, wire.DISCOVER)) and data[243] == 255
